"""SymPy derivations of the LoRA variants, and the audit's mpmath references checked against them."""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp

from verified_lora.symbolic import lora_variants as lv


def test_every_variant_formula_matches_its_derivation():
    results = lv.verify_all()
    assert results and all(results.values()), {k: v for k, v in results.items() if not v}


def test_a_wrong_closed_form_is_detected():
    """The comparison can fail: DoRA's dm without the 1/n, and dB with G instead of G diag(k)."""
    forms = lv.derive_dora()
    derived, closed = forms["dm"]
    n = sp.Matrix(closed.shape[0], 1, lambda j, _: sp.Symbol(f"n_{j}", positive=True))
    wrong = closed.multiply_elementwise(n)
    assert not lv._zero(derived - wrong)
    lora = lv.derive_lora()
    assert not lv._zero(forms["dB"][0] - lora["dB"][1])


def test_dora_reference_evaluates_the_derived_formula():
    pytest.importorskip("mpmath")
    from verified_lora.audit.error_bounds import LayerArrays
    from verified_lora.audit.variants.dora import dora_reference

    rng = np.random.default_rng(3)
    N, d_in, d_out, r = 2, 3, 2, 2
    X, W = rng.uniform(-1, 1, (N, d_in)), rng.uniform(-1, 1, (d_out, d_in))
    A, B, G = rng.uniform(-1, 1, (r, d_in)), rng.uniform(-1, 1, (d_out, r)), rng.uniform(-1, 1, (N, d_out))
    bias, m, s = rng.uniform(-1, 1, d_out), rng.uniform(0.5, 2, d_out), 1.25
    arrays = LayerArrays(W=W, bias=bias, blocks=[(np.arange(d_out), A, B, None)], s=s, m=m)
    ref = dora_reference(arrays, X, G)
    forms = lv.derive_dora(N, d_in, d_out, r)
    sub = {sp.Symbol("s", real=True): sp.Rational(s)}
    for name, M in (("x", X), ("w", W), ("a", A), ("b", B), ("g", G)):
        sub.update({sp.Symbol(f"{name}_{i}_{j}", real=True): sp.Rational(M[i, j]) for i in range(M.shape[0])
                    for j in range(M.shape[1])})
    sub.update({sp.Symbol(f"c_{j}", real=True): sp.Rational(bias[j]) for j in range(d_out)})
    sub.update({sp.Symbol(f"m_{j}", real=True): sp.Rational(m[j]) for j in range(d_out)})
    Vq = sp.Matrix(d_out, d_in, lambda i, j: sp.Rational(W[i, j]) + sp.Rational(s) * sum(
        sp.Rational(B[i, q]) * sp.Rational(A[q, j]) for q in range(r)))
    sub.update({sp.Symbol(f"n_{j}", positive=True): sp.sqrt(sum(v**2 for v in Vq.row(j))) for j in range(d_out)})
    for name, got in (("dA", ref.blocks[0]["dA"]), ("dB", ref.blocks[0]["dB"]), ("dm", ref.blocks[0]["dm"]),
                      ("dX", ref.dX)):
        exact = np.array(forms[name][1].subs(sub).evalf(30).tolist(), dtype=float).reshape(np.shape(got))
        np.testing.assert_allclose(got, exact, rtol=2**-52, atol=0)
