"""``method="antiderivative"``: the paper chain's gradient through the factored backward on ``Q = int P``.

* it computes the same gradient as ``method="paper"`` (to rounding) and the same loss and ``dV`` as
  ``method="factored"`` (the forward is ``P``'s in both);
* its certificate holds against the mpmath reference on the adversarial problems of
  ``tests/test_certificates_adversarial.py`` (that suite also draws it among every method);
* its certificate has no ``eps_D`` term: inflating the plan's ``eps_D`` changes nothing, while the
  factored certificate grows.
"""

from __future__ import annotations

import math
from fractions import Fraction
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from verified_lora import Adapter, LoraAttention, exact, fast
from verified_lora import features as F
from verified_lora.approx import polynomials as polys
from verified_lora.bounds import Sensitivity, score_bound
from verified_lora.bounds import _approx_api as api
from verified_lora.bounds.cost import fast_flops, rank
from verified_lora.errors import InputError
from verified_lora.fast.bench import make_problem
from verified_lora.fast.certificate import run_bounds
from verified_lora.examples import random_problem

from .test_certificates_adversarial import N_EXAMPLES, R_DEGREES, _check, adversarial_problems


def _rel(a, b) -> float:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    m = float(np.max(np.abs(b))) if b.size else 0.0
    return float(np.max(np.abs(a - b))) / m if m > 0 else float(np.max(np.abs(a - b), initial=0.0))


def test_antiderivative_coefficients_are_exact():
    q = F.antiderivative_coefficients([1, 0.5, Fraction(-2, 3)])
    assert q == [Fraction(0), Fraction(1), Fraction(1, 4), Fraction(-2, 9)]
    assert all(isinstance(c, Fraction) for c in q)
    with pytest.raises(InputError):
        F.antiderivative_coefficients([])


CASES = [
    dict(seed=0, L=37, d_model=5, d_head=3, d_v=2, r=2),                       # self-attention
    dict(seed=1, L=23, L_k=41, d_model=4, d_head=2, d_v=3, r=1, beta=-0.8),    # cross-attention, beta < 0
    dict(seed=2, L=19, d_model=4, d_head=4, d_v=4, r=2, n_batch=2),              # a batch
]


@pytest.mark.parametrize("case", range(len(CASES)))
@pytest.mark.parametrize("g", [0, 1, 3, 7])
def test_gradients_equal_paper_loss_and_dv_equal_factored(case, g):
    kw = dict(CASES[case])
    p = random_problem(kw.pop("seed"), **kw)
    R = float(score_bound(p).R)
    coeffs = list(polys.minimax(g, Fraction(R).limit_denominator(10**6) + 1).coeffs) if g > 0 else [1]
    got = fast.run_with_polynomial(p, coeffs, "antiderivative", block_size=8)   # several row blocks
    pap = fast.run_with_polynomial(p, coeffs, "paper", block_size=8)
    fac = fast.run_with_polynomial(p, coeffs, "factored", block_size=8)
    assert got[3]["rank"] == rank(p.d_head, g) and got[3]["backward_rank"] == rank(p.d_head, g + 1)
    for key in pap[1]:
        assert _rel(got[1][key], pap[1][key]) <= 1e-12, key
    for key in pap[2]:
        assert _rel(got[2][key], pap[2][key]) <= 1e-12, key
    assert _rel(got[2]["V"], fac[2]["V"]) <= 1e-12
    assert abs(got[0] - fac[0]) <= 1e-12 * abs(fac[0])
    if g >= 1 and "Q" in pap[2]:   # and it is not the factored gradient (P' differs from P at this degree)
        assert _rel(fac[2]["Q"], pap[2]["Q"]) > 1e-9


def test_the_degree_one_antiderivative_gradient_is_hand_computable():
    """P(x) = 1 + x: the paper kernel is 1 + S (not P' = 1); one query, two keys, no adapter mixing."""
    x = np.array([[0.3, -0.2]])
    xk = np.array([[0.5, 0.1], [-0.4, 0.7]])
    wv = np.array([[1.0], [2.0]])
    y = np.array([[0.25]])
    p = LoraAttention(x_q=x, x_k=xk, x_v=xk, y=y, w_q=np.eye(2), w_k=np.eye(2), w_v=wv,
                      adapters={"Q": Adapter(a=np.zeros((1, 2)), b=np.zeros((2, 1)))})
    _loss, _g, wg, _i = fast.run_with_polynomial(p, [1, 1], "antiderivative")
    S = x @ xk.T
    A = 1 + S
    f = A / A.sum()
    V = xk @ wv
    c = f @ V - y
    q = c @ V.T
    pt = f * (q - (f * q).sum())            # the paper's p~ = f~ (q~ - rvec~)
    dP = pt @ xk                            # beta = 1
    assert np.allclose(wg["Q"], x.T @ dP, rtol=1e-14, atol=1e-16)


def test_cost_model_and_methods():
    assert "antiderivative" in fast.METHODS
    d, g = 8, 10
    k, k1 = rank(d, g), rank(d, g + 1)
    assert k1 * (g + 1) == k * (d + g + 1)
    assert fast_flops("antiderivative", 100, 100, d, d, k) == 2.0 * 200 * k * (d + 1) + 4.0 * 200 * k1 * (d + 1)
    assert fast_flops("factored", 100, 100, d, d, k) < fast_flops("antiderivative", 100, 100, d, d, k) \
        < fast_flops("paper", 100, 100, d, d, k)
    p = random_problem(0, L=8, d_model=3, d_head=2, d_v=2, r=1)
    with pytest.raises(InputError, match="auto"):
        fast.loss_and_grads(p, method="nope")


@pytest.mark.parametrize("seed", [0, 1])
def test_certificate_has_no_eps_D_term(seed, monkeypatch):
    """The plan's eps_D inflated 1e6 times: the antiderivative certificate is unchanged; the factored one grows
    (per-row radii off, so that the factored certificate reads the plan's eps_D rather than its own per row)."""
    from verified_lora.fast import certificate

    monkeypatch.setattr(certificate, "ROW_RADII", False)
    p = make_problem(3, 48, 1.0, seed=seed)        # R = 1: degree 6 has eps_A ~ 3e-6, eps_D ~ 2e-4
    sb = score_bound(p)
    cert = api.certify("minimax", 6, sb.R, need_derivative=True)
    sens = Sensitivity(p)
    coeffs = list(cert.polynomial.coeffs)
    out = {}
    for method in ("antiderivative", "factored"):
        for factor in (1.0, 1e6):
            eD = min(0.5, cert.eps_D * factor)
            eps_D = eD if method == "factored" else None
            gb = sens.bounds(cert.eps_A, eps_D, method)
            pl = SimpleNamespace(eps_A=cert.eps_A, eps_D=eD, R=sb.R, rank=rank(p.d_head, 6), bounds=dict(gb.grads),
                                 weight_bounds=dict(gb.weights_max))
            _loss, grads, wg, info = fast.run_with_polynomial(p, coeffs, method)
            rb = run_bounds(p, pl, sens, method, coeffs, grads, wg, block=info["block_size"])
            out[method, factor] = rb
    a1, a2 = out["antiderivative", 1.0], out["antiderivative", 1e6]
    assert a1.total == a2.total and a1.weight_total == a2.weight_total
    f1, f2 = out["factored", 1.0], out["factored", 1e6]
    assert all(f2.total[k] > 2 * f1.total[k] for k in f1.total if k.endswith("_Q") or k.endswith("_K"))
    for key, b in a1.approx.items():           # at the same polynomial, no larger than the factored bound
        assert b <= f1.approx[key] * (1 + 1e-12)


def test_loss_and_grads_certifies_and_holds():
    p = random_problem(3, L=64, d_model=4, d_head=3, d_v=3, r=2)
    ex = exact.loss_and_grads(p)
    res = fast.loss_and_grads(p, 1e-6, method="antiderivative", force="fast")
    assert res.path == "fast" and res.certified and res.method == "antiderivative" and res.eps_D is None
    for key, b in res.bounds.items():
        assert float(np.max(np.abs(res.grads[key] - ex.grads[key]))) <= b


@settings(max_examples=max(10, N_EXAMPLES // 2), deadline=None)
@given(adversarial_problems(), st.sampled_from(["minimax", "chebyshev", "taylor", "minimax-antiderivative"]), st.data())
def test_antiderivative_bound_holds_against_mpmath(case, family, data):
    problem, R = case
    degree = data.draw(st.sampled_from(R_DEGREES[R]))
    _check(problem, family, degree, "antiderivative")


def test_float32_problem():
    p = random_problem(4, L=16, d_model=3, d_head=2, d_v=2, r=1, dtype="float32")
    ex = exact.loss_and_grads(p)
    res = fast.loss_and_grads(p, 1e-4, method="antiderivative", force="fast")
    for key, b in res.bounds.items():
        assert math.isfinite(b)
        assert float(np.max(np.abs(res.grads[key].astype(np.float64) - ex.grads[key]))) <= b


def _qk_only(d: int, L: int) -> LoraAttention:
    p = make_problem(d, L, 1.0)
    return p.replace(adapters={k: v for k, v in p.adapters.items() if k in ("Q", "K")})


def test_auto_takes_the_antiderivative_where_it_certifies_a_lower_degree():
    """Q and K adapters only (no V gradient, whose bound has no eps_D term, to bind): at d = 6, R = 1 the
    antiderivative certifies 1e-6 at a lower degree than the factored path, and costs less there."""
    p = _qk_only(6, 2048)
    fac = fast.loss_and_grads(p, 1e-6, method="factored", force="fast")
    res = fast.loss_and_grads(p, 1e-6, method="auto", force="fast")
    assert res.method == "antiderivative" and res.info["method_requested"] == "auto"
    assert res.certified and res.degree < fac.degree
    ex = exact.loss_and_grads(p)
    for key, b in res.bounds.items():
        assert float(np.max(np.abs(res.grads[key] - ex.grads[key]))) <= b


def test_auto_keeps_factored_at_the_same_degree():
    p = _qk_only(4, 2048)
    res = fast.loss_and_grads(p, 1e-6, method="auto", force="fast")
    anti = fast.loss_and_grads(p, 1e-6, method="antiderivative", force="fast")
    assert res.method == "factored" and res.certified and res.degree <= anti.degree
    ex = fast.loss_and_grads(p, 1e-6, method="auto", force="exact")
    assert ex.path == "exact" and ex.info["method_requested"] == "auto"
