"""The symbolic layer: certificates re-check byte for byte, the float64 code agrees with the SymPy
derivation lambdified to mpmath, and mutated derivations are rejected by the proofs."""

from __future__ import annotations

import json
import shutil
from functools import lru_cache

import mpmath
import numpy as np
import pytest
import sympy as sp
from hypothesis import example, given, settings
from hypothesis import strategies as st

from verified_lora import Adapter, LoraAttention, exact
from verified_lora.symbolic import certificates as certs
from verified_lora.symbolic import derive
from verified_lora.symbolic.certificates import Certificate
from verified_lora.symbolic.prooftools import polynomial_identity
from verified_lora.tolerances import EXACT_VS_REFERENCE, max_relative_error


def _registry():
    return certs.discover()


# ------------------------------------------------------------------------------------ certificates
STORED = sorted(certs.certificates_dir().glob("*.json"))


def test_every_stored_certificate_has_a_proof_and_vice_versa():
    reg = _registry()
    stored = {p.name for p in STORED}
    expected = {certs.certificate_path(c).name for c in reg}
    assert stored == expected


@pytest.mark.parametrize("path", STORED, ids=[p.stem for p in STORED])
def test_certificate_rechecks_byte_identical(path):
    _registry()
    out = certs.check_certificate(path)
    # identical bytes; only the recorded SymPy version may differ when another SymPy is installed
    assert out.ok, out.message
    assert out.message == "identical bytes" or out.message.startswith("identical except tools"), out.message


def test_certificate_bytes_deterministic_and_exact(tmp_path):
    x = sp.Symbol("x")
    cert = Certificate(claim="t/x", title="t", statement="x", level="generic", method="m", scope="s",
                       result="proved", expressions={"e": sp.exp(x) / 3}, data={"m": sp.Matrix([[sp.Rational(1, 3)]])})
    p1 = certs.write_certificate(cert, tmp_path)
    b1 = p1.read_bytes()
    assert certs.certificate_bytes(cert) == b1 and p1.name == "t__x.json"
    doc = json.loads(b1)
    assert doc["data"]["m"] == [["1/3"]] and doc["level"] == "generic" and "time" not in b1.decode()
    with pytest.raises(TypeError):
        Certificate(claim="t/y", title="t", statement="", level="generic", method="", scope="", result="proved",
                    data={"v": 0.5}).to_json()
    with pytest.raises(ValueError):
        Certificate(claim="t/z", title="t", statement="", level="counterexample", method="", scope="", result="proved")
    with pytest.raises(ValueError):
        certs.expression_hash(sp.Dummy("d"))


def test_tampered_certificate_is_rejected(tmp_path):
    _registry()
    src = certs.certificate_path("erratum/q-orientation")
    doc = json.loads(src.read_bytes())
    doc["data"]["p_printed"][0][0] = "0"
    bad = tmp_path / src.name
    bad.write_text(json.dumps(doc, sort_keys=True, indent=2) + "\n")
    out = certs.check_certificate(bad)
    assert not out.ok and "data" in out.message
    shutil.copy(src, tmp_path / "copy.json")
    assert certs.check_certificate(tmp_path / "copy.json").ok


# ------------------------------------------------------------------------------------ mutations
def _run(claim):
    reg = _registry()
    return certs.run_proof(reg[claim], write=False)


def test_mutated_q_orientation_is_rejected(monkeypatch):
    real = derive.element_forms

    def mutated():
        forms = dict(real())
        q = forms["q"]
        i, j = q.out.indices
        c, V = sp.IndexedBase("c"), sp.IndexedBase("V")
        (a, lo, hi), = q.expr.limits
        forms["q"] = derive.ElementForm("q", q.out, sp.Sum(V[i, a] * c[j, a], (a, lo, hi)), q.ranges, "q = C3 c^T")
        return forms

    monkeypatch.setattr(derive, "element_forms", mutated)
    out = _run("definition-3.6")
    assert not out.ok and "dL/df_{mn} != q_{mn}" in out.message


def test_mutated_p2_orientation_is_rejected(monkeypatch):
    real = derive.element_forms

    def mutated():
        forms = dict(real())
        p = forms["p"]
        i, j = p.out.indices
        f, q, rvec = (sp.IndexedBase(n) for n in ("f", "q", "rvec"))
        forms["p"] = derive.ElementForm("p", p.out, f[i, j] * q[i, j] - f[i, j] * rvec[j], p.ranges, "f diag(r)")
        return forms

    monkeypatch.setattr(derive, "element_forms", mutated)
    assert not _run("definition-3.6").ok


def test_mutated_backward_is_rejected_end_to_end(monkeypatch):
    real = derive.backward

    def mutated(inp, fw):
        t = real(inp, fw)
        p_bad = t.p1 - t.f * sp.diag(*t.rvec)          # printed p2 = f diag(r)
        G = derive.weight_gradients(inp.x_q, inp.x_k, inp.x_v, fw.P, fw.K, t.f, t.c, p_bad, inp.beta)
        grads = {}
        for key, (a, b) in inp.adapters.items():
            grads[f"A_{key}"], grads[f"B_{key}"] = derive.adapter_gradients(G[key], a, b, inp.scale(key))
        return derive.Terms(**{**t.__dict__, "p": p_bad, "G": G, "grads": grads})

    monkeypatch.setattr(derive, "backward", mutated)
    out = _run("lemma-3.2")
    assert not out.ok and "does not reduce" in out.message


def test_mutated_k_gradient_is_rejected(monkeypatch):
    real = derive.weight_gradients

    def mutated(x_q, x_k, x_v, P, K, f, c, p, beta):
        G = real(x_q, x_k, x_v, P, K, f, c, p, beta)
        G["K"] = G["K"] * 2                           # wrong by a factor: a detectably different formula
        return G

    monkeypatch.setattr(derive, "weight_gradients", mutated)
    assert not _run("lemmas-d.3-d.4").ok


def test_mutated_kron_row_is_rejected(monkeypatch):
    def mixed_rows(U1, U2):  # pairs row i of U1 with row i+1 of U2: no longer a row-wise product
        k2 = U2.cols
        return sp.Matrix(U1.rows, U1.cols * k2, lambda i, t: U1[i, t // k2] * U2[(i + 1) % U1.rows, t % k2])

    monkeypatch.setattr(derive, "rowwise_kron", mixed_rows)
    out = _run("rowwise-kronecker")
    assert not out.ok and "derive.rowwise_kron" in out.message

    def other_order(U1, U2):  # a consistent but different column order: the identity still holds, but the
        k1 = U1.cols          # kron_row element form (what the kernels print) no longer matches
        return sp.Matrix(U1.rows, k1 * U2.cols, lambda i, t: U1[i, t % k1] * U2[i, t // k1])

    monkeypatch.setattr(derive, "rowwise_kron", other_order)
    out = _run("rowwise-kronecker")
    assert not out.ok and "kron_row element form differs" in out.message


# ------------------------------------------------------------------------------------ float64 vs SymPy
@lru_cache(maxsize=None)
def _staged(shapes: derive.Shapes, adapters: tuple[str, ...], cross: bool, scaling: str):
    """The derivation lambdified to mpmath in three stages (leaves -> P, K, V -> f, c, loss -> grads).

    Each stage is a SymPy expression of derive (forward/backward); staging keeps the lambdified
    trees small (the fully expanded tree of a 3x3 problem takes minutes to print).
    """
    inp = derive.symbolic_inputs(shapes, adapters, cross=cross, scaling=scaling)
    fw = derive.forward(inp)
    leaf_mats = [inp.x_q] + ([inp.x_k, inp.x_v] if cross else []) + [inp.y] + [inp.w[k] for k in derive.KEYS]
    leaf_mats += [m for k in adapters for m in inp.adapters[k]]
    leaves = [inp.alpha, inp.beta] + [x for M in leaf_mats for x in M]
    stage0 = sp.lambdify(leaves, [fw.P, fw.K, fw.V], modules="mpmath")
    Ps = derive.matrix_symbols("P", shapes.L, shapes.d_head)
    Ks = derive.matrix_symbols("K", shapes.L_k, shapes.d_head)
    Vs = derive.matrix_symbols("V", shapes.L_k, shapes.d_v)
    S = inp.beta * Ps * Ks.T
    u, alpha, f = derive.softmax_rows(S)
    c = f * Vs - inp.y
    loss = sp.Rational(1, 2) * sum((x**2 for x in c), sp.Integer(0))
    mid = list(Ps) + list(Ks) + list(Vs)
    stage1 = sp.lambdify([inp.beta, *mid, *inp.y], [f, c, loss], modules="mpmath")
    fs = derive.matrix_symbols("f", shapes.L, shapes.L_k)
    cs = derive.matrix_symbols("c", shapes.L, shapes.d_v)
    bw = derive.backward(inp, derive.Terms(W=fw.W, P=Ps, K=Ks, V=Vs, S=S, u=u, alpha=alpha, f=fs, c=cs, loss=loss))
    names = sorted(bw.grads)
    stage2 = sp.lambdify([*leaves, *mid, *fs, *cs], [bw.grads[k] for k in names], modules="mpmath")
    return leaf_mats, stage0, stage1, stage2, names


def _mpmath_grads(problem: LoraAttention, dps: int = 40):
    pr = problem
    r = next(iter(pr.adapters.values())).r
    sh = derive.Shapes(pr.L, pr.L_k, pr.d_model, pr.d_head, pr.d_v, r)
    cross = pr.is_cross_attention
    adapters = tuple(k for k in derive.KEYS if k in pr.adapters)
    leaf_mats, stage0, stage1, stage2, names = _staged(sh, adapters, cross, pr.scaling)
    arrays = [pr.x_q] + ([pr.x_k, pr.x_v] if cross else []) + [pr.y] + [pr.frozen_weight(k) for k in derive.KEYS]
    arrays += [m for k in adapters for m in (pr.adapters[k].a, pr.adapters[k].b)]
    with mpmath.workdps(dps):
        mp = lambda x: mpmath.mpf(float(x))  # noqa: E731  (binary floats are exact rationals)
        leaves = [mp(pr.alpha), mp(pr.beta)] + [mp(v) for a in arrays for v in np.asarray(a).ravel()]
        P, K, V = stage0(*leaves)
        mid = [v for M in (P, K, V) for v in M]
        y = [mp(v) for v in np.asarray(pr.y).ravel()]
        f, c, loss = stage1(mp(pr.beta), *mid, *y)
        grads = stage2(*leaves, *mid, *list(f), *list(c))
        return float(loss), {k: np.array(g.tolist(), dtype=float) for k, g in zip(names, grads)}


@st.composite
def rational_problems(draw):
    """Small problems whose entries are dyadic rationals k/8 (exact in float64), B != 0, alpha != r."""
    L, L_k = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    cross = draw(st.booleans()) or L != L_k
    d_model, d_head, d_v, r = (draw(st.integers(1, 2)) for _ in range(4))
    adapters = draw(st.sampled_from([("Q",), ("K",), ("V",), ("Q", "K", "V"), ("Q", "V")]))
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)

    def m(*shape, nonzero=False):
        a = rng.integers(-8, 9, size=shape).astype(np.float64) / 8
        if nonzero:
            a[a == 0] = 0.625
        return a

    d_out = {"Q": d_head, "K": d_head, "V": d_v}
    ads = {k: Adapter(a=m(r, d_out[k]), b=m(d_model, r, nonzero=True)) for k in adapters}
    return LoraAttention(x_q=m(L, d_model), y=m(L, d_v), w_q=m(d_model, d_head), w_k=m(d_model, d_head),
                         w_v=m(d_model, d_v), x_k=m(L_k, d_model) if cross else None,
                         x_v=m(L_k, d_model) if cross else None, adapters=ads,
                         alpha=draw(st.sampled_from([0.5, 1.5, 3.0])), beta=draw(st.sampled_from([1.0, 0.5, -0.75])),
                         scaling=draw(st.sampled_from(["lora", "rslora"])))


# Found by hypothesis: with a single key (L_k = 1) the softmax is constant, so the Q/K gradients
# are exactly zero; the 40-digit reference returns ~1e-44 rounding noise there.
_ONE_KEY = LoraAttention(
    x_q=np.array([[-0.375, -1.0], [-0.875, -1.0]]), y=np.array([[-0.75], [0.625]]),
    w_q=np.array([[0.375, 0.875], [0.0, 0.25]]), w_k=np.array([[1.0, 0.5], [0.25, 0.125]]),
    w_v=np.array([[0.125], [0.875]]), x_k=np.array([[-0.5, 0.625]]), x_v=np.array([[0.375, -1.0]]),
    adapters={"Q": Adapter(a=np.array([[0.75, 0.25]]), b=np.array([[0.625], [-0.5]]))},
    alpha=0.5, beta=1.0, scaling="lora")

# Below this the 40-digit reference is zero up to its own rounding (entries and intermediates are O(1)).
_REFERENCE_ZERO = 1e-30


@settings(max_examples=25)
@given(rational_problems())
@example(_ONE_KEY)
def test_exact_float64_matches_sympy_derivation_in_mpmath(problem):
    loss, grads = _mpmath_grads(problem)
    ex = exact.loss_and_grads(problem)
    tol = EXACT_VS_REFERENCE["float64"]
    assert max_relative_error(ex.loss, loss) <= tol
    assert set(grads) == set(ex.grads)
    for key, ref in grads.items():
        assert ex.grads[key].shape == ref.shape
        if np.max(np.abs(ref)) <= _REFERENCE_ZERO:      # an exactly-zero gradient: float64 must give 0 too
            assert np.max(np.abs(ex.grads[key])) <= _REFERENCE_ZERO, key
        else:
            assert max_relative_error(ex.grads[key], ref) <= tol, key


def test_default_style_problem_matches_sympy_derivation():
    """A fixed cross-attention problem with all three adapters (rectangular, r = 2, alpha != r)."""
    rng = np.random.default_rng(7)
    m = lambda *s: rng.integers(-8, 9, size=s).astype(np.float64) / 8  # noqa: E731
    pr = LoraAttention(x_q=m(3, 2), y=m(3, 2), w_q=m(2, 2), w_k=m(2, 2), w_v=m(2, 2), x_k=m(2, 2), x_v=m(2, 2),
                       adapters={k: Adapter(a=m(2, 2), b=m(2, 2) + 0.0625) for k in "QKV"},
                       alpha=3.0, beta=0.5, scaling="lora")
    loss, grads = _mpmath_grads(pr)
    ex = exact.loss_and_grads(pr)
    for key, ref in grads.items():
        assert max_relative_error(ex.grads[key], ref) <= EXACT_VS_REFERENCE["float64"], key


# ------------------------------------------------------------------------------------ element forms
def test_element_forms_agree_with_matrix_forms():
    """Element-level forms (what the kernels print) evaluated entry by entry equal derive.backward."""
    sh = derive.Shapes(2, 3, 2, 2, 2, 1)
    inp = derive.rational_inputs(sh, ("Q",), seed=3)
    T = derive.derive(inp, exp=derive.FormalExp)
    forms = derive.element_forms()
    Z = derive.SIZE_SYMBOLS
    sizes = {Z["L"]: sh.L, Z["L_k"]: sh.L_k, Z["d_head"]: sh.d_head, Z["d_v"]: sh.d_v}
    arrays = {"P": T.P, "Kmat": T.K, "V": T.V, "Y": inp.y, "S": T.S, "u": T.u, "f": T.f, "c": T.c, "q": T.q,
              "p1": T.p1, "p2": T.p2, "p": T.p, "alpha": T.alpha, "rvec": T.rvec,
              "m": sp.zeros(sh.L, 1)}
    beta = sp.Symbol("beta", positive=True)

    def ev(expr):
        expr = expr.xreplace(sizes).doit()
        expr = expr.xreplace({x: arrays[str(x.base)][tuple(int(v) for v in x.indices)] if len(x.indices) == 2
                              else arrays[str(x.base)][int(x.indices[0]), 0] for x in expr.atoms(sp.Indexed)})
        return expr.xreplace({beta: inp.beta})

    i, j, a = (sp.Symbol(n, integer=True, nonnegative=True) for n in ("i", "j", "a"))
    for name in ("score", "alpha", "f", "c", "q", "p1", "rvec", "p2", "p"):
        form = forms[name]
        for ii in range(sh.L):
            cols = {"score": sh.L_k, "f": sh.L_k, "q": sh.L_k, "p1": sh.L_k, "p2": sh.L_k, "p": sh.L_k,
                    "c": sh.d_v}.get(name, 1)
            for jj in range(cols):
                free = {i: ii, j: jj} if name != "c" else {i: ii, a: jj}
                val = ev(form.expr.subs(free))  # subs leaves bound summation indices alone
                target = arrays[name if name != "score" else "S"]
                want = target[ii, 0] if name in ("alpha", "rvec") else target[ii, jj]
                assert polynomial_identity(val, want), (name, ii, jj)


# ------------------------------------------------------------------------------------ command line
def test_cli_prove_check_list_and_bad_claim(capsys):
    from verified_lora.cli import main

    assert main(["prove", "erratum/q-orientation", "theorem-f.1", "--check", "-q"]) == 0
    out = capsys.readouterr().out
    assert "erratum/q-orientation" in out and "identical" in out and "PASS: 2/2" in out
    assert main(["prove", "--list"]) == 0
    assert "lemma-3.2" in capsys.readouterr().out
    assert main(["prove", "no-such-claim"]) == 2


def test_cli_prove_fails_on_failing_proof(monkeypatch, capsys):
    from verified_lora.cli import main

    real = derive.element_forms

    def mutated():
        forms = dict(real())
        p = forms["p"]
        i, j = p.out.indices
        f, q = sp.IndexedBase("f"), sp.IndexedBase("q")
        forms["p"] = derive.ElementForm("p", p.out, f[i, j] * q[i, j], p.ranges, "p1 only")
        return forms

    monkeypatch.setattr(derive, "element_forms", mutated)
    assert main(["prove", "definition-3.6", "--no-write", "-q"]) == 1
    assert "FAIL" in capsys.readouterr().out
