"""Small-scope proofs that the kernel forms of :mod:`.elementwise` reproduce ``derive.py``.

Each ``prove_*`` function assembles a kernel form entry by entry (row reductions as explicit
sums, in the template's order) on matrices of fully symbolic entries and checks, by exact SymPy
algebra, that the result equals the corresponding ``derive.py`` matrix (or, for the feature
kernels, the ``features`` layout). It returns the number of shapes checked and raises
:class:`~verified_lora.symbolic.certificates.ProofFailure` otherwise. Scope: every shape listed
in :data:`SCOPE` (level "small-scope" of docs/design.md section 5). Exponentials are handled as
atoms: ``exp(a - m)`` is expanded to ``exp(a) exp(-m)`` and each distinct ``exp`` becomes a
positive symbol, so identities are decided as rational functions.
"""

from __future__ import annotations

from collections.abc import Callable

import sympy as sp

from . import derive
from . import prooftools as pt
from .certificates import ProofFailure
from .elementwise import SYMBOLS, EntryForm, RowForm, forms

__all__ = ["SCOPE", "FEATURE_SCOPE", "PROOFS", "prove_all"]

SCOPE = [(L, L_k, dv) for L in (1, 2) for L_k in (1, 2, 3) for dv in (1, 2)]
"""(rows, columns, inner width) shapes checked for the matrix forms."""
FEATURE_SCOPE = [(d, g) for d in (1, 2, 3) for g in range(0, 5)]
"""(d, g) checked for the feature kernels."""


def _require(cond: bool, what: str) -> None:
    if not cond:
        raise ProofFailure(what)


def _evaluate(form: EntryForm | RowForm, entry: dict[str, sp.Matrix], row: dict[str, list] | None = None,
              col: dict[str, list] | None = None, scalars: dict[str, sp.Expr] | None = None,
              fixed: dict[str, list] | None = None) -> dict[str, object]:
    """Assemble ``form`` over ``n_rows x n_cols`` symbolic inputs, as the templates do.

    ``fixed`` gives a reduction's per-row value instead of computing it (used for the row max,
    which the proof leaves free: the identity holds for *any* shift).
    """
    S = SYMBOLS
    n_rows, n_cols = next(iter(entry.values())).shape
    row, col, scalars, fixed = row or {}, col or {}, scalars or {}, fixed or {}

    def env(i: int, j: int) -> dict[sp.Symbol, sp.Expr]:
        e = {S[k]: v for k, v in scalars.items()}
        e.update({S[k]: m[i, j] for k, m in entry.items()})
        e.update({S[k]: v[i] for k, v in row.items()})
        e.update({S[k]: v[j] for k, v in col.items()})
        return e

    if isinstance(form, EntryForm):
        return {name: sp.Matrix(n_rows, n_cols, lambda i, j: expr.xreplace(env(i, j))) for name, expr in form.outputs}
    out: dict[str, object] = {}
    reds: list[dict[sp.Symbol, sp.Expr]] = [dict() for _ in range(n_rows)]
    for name, op, summand in form.reductions:
        for i in range(n_rows):
            if name in fixed:
                reds[i][S[name]] = fixed[name][i]
            else:
                if op != "sum":
                    raise ProofFailure(f"{form.name}: reduction {name!r} ({op}) must be fixed in the proof")
                reds[i][S[name]] = sp.Add(*[summand.xreplace(env(i, j)).xreplace(reds[i]) for j in range(n_cols)])
    for name, expr in form.entry_outputs:
        out[name] = sp.Matrix(n_rows, n_cols, lambda i, j: expr.xreplace(env(i, j)).xreplace(reds[i]))
    for name, expr in form.row_outputs:
        out[name] = sp.Matrix(n_rows, 1, lambda i, _: expr.xreplace(env(i, 0)).xreplace(reds[i]))
    return out


def _fake_terms(L: int, L_k: int, dv: int, dh: int = 2) -> tuple[derive.Inputs, derive.Terms]:
    """derive.Inputs and a forward Terms with *generic* f, c, V, P, K (any values, not only softmax)."""
    M = derive.matrix_symbols
    inp = derive.symbolic_inputs(derive.Shapes(L=L, L_k=L_k, d_model=1, d_head=dh, d_v=dv, r=1), adapters=())
    z = sp.zeros(L, L_k)
    fw = derive.Terms(W=inp.w, P=M("P", L, dh), K=M("Kmat", L_k, dh), V=M("V", L_k, dv), S=z, u=z,
                      alpha=sp.zeros(L, 1), f=M("f", L, L_k), c=M("c", L, dv), loss=sp.Integer(0))
    return inp, derive.backward(inp, fw)


def prove_softmax_rows() -> int:
    F = forms()["softmax_rows"]
    beta = sp.Symbol("beta", real=True)
    for L, L_k, _ in SCOPE:
        s = derive.matrix_symbols("s", L, L_k)
        shift = [sp.Symbol(f"m_{i}", real=True) for i in range(L)]
        got = _evaluate(F, {"s": s}, scalars={"beta": beta}, fixed={"m": shift})["f"]
        _u, _alpha, f = derive.softmax_rows(beta * s)
        pt.check_equal(got, f, f"softmax_rows == derive.softmax_rows at {L}x{L_k}", "exp-cancel")
    return len(SCOPE)


def prove_residual() -> int:
    F = forms()["residual"]
    for L, L_k, dv in SCOPE:
        inp = derive.symbolic_inputs(derive.Shapes(L=L, L_k=L_k, d_model=1, d_head=1, d_v=dv, r=1), adapters=())
        fw = derive.forward(inp, exp=derive.FormalExp)
        got = _evaluate(F, {"fv": fw.f * fw.V, "y": inp.y})["c"]
        pt.check_equal(got, fw.c, f"residual != derive c at {L},{L_k},{dv}")
    return len(SCOPE)


def prove_softmax_grad_rows() -> int:
    F = forms()["softmax_grad_rows"]
    for L, L_k, dv in SCOPE:
        _inp, t = _fake_terms(L, L_k, dv)
        got = _evaluate(F, {"f": t.f, "q": t.q})
        pt.check_equal(got["p"], t.p, f"p != derive p at {L},{L_k},{dv}")
        pt.check_equal(got["rvec"], t.rvec, f"rvec != derive rvec")
    return len(SCOPE)


def prove_row_dot() -> int:
    """rowsum((f V) * c) = rvec = (f * q) 1 with q = c V^T (the fast path's form of Lemma 3.7)."""
    F = forms()["row_dot"]
    for L, L_k, dv in SCOPE:
        _inp, t = _fake_terms(L, L_k, dv)
        got = _evaluate(F, {"a": t.f * t.V, "b": t.c})["rvec"]
        pt.check_equal(got, t.rvec, f"row_dot != derive rvec at {L},{L_k},{dv}")
    return len(SCOPE)


def prove_normalised_residual_rows() -> int:
    """For any positive A~ (e.g. U V~^T), D~ = A~ 1, f~ = D~^{-1} A~ (derive.softmax_rows with exp -> id):
    c = f~ Vmat - Y, rvec = derive rvec, and [yp, rneg] [Vmat, 1]^T = p / A~ entrywise
    (= dL~/dA~, the chain rule of p = dL/dS through u = exp(S)); t = A~ Vmat, d = D~."""
    F = forms()["normalised_residual_rows"]
    M = derive.matrix_symbols
    for L, L_k, dv in SCOPE:
        A = M("A", L, L_k, positive=True)
        inp, _ = _fake_terms(L, L_k, dv)
        Vmat = M("V", L_k, dv)
        u, alpha, f = derive.softmax_rows(A, exp=lambda x: x)
        c = f * Vmat - inp.y                                   # Definition 3.5
        fw = derive.Terms(W=inp.w, P=M("P", L, 2), K=M("Kmat", L_k, 2), V=Vmat, S=u, u=u, alpha=alpha, f=f, c=c,
                          loss=sp.Integer(0))
        t = derive.backward(inp, fw)
        got = _evaluate(F, {"t": A * Vmat, "y": inp.y}, row={"d": list(A * sp.ones(L_k, 1))})
        pt.check_equal(got["c"], c, f"c~ at {L},{L_k},{dv}", "cancel")
        pt.check_equal(got["rvec"], t.rvec, f"rvec~ at {L},{L_k},{dv}", "cancel")
        lhs = sp.Matrix(L, L_k, lambda i, j: sum(got["yp"][i, a] * Vmat[j, a] for a in range(dv)) + got["rneg"][i, 0])
        pt.check_equal(lhs, sp.Matrix(L, L_k, lambda i, j: t.p[i, j] / u[i, j]),
                       f"[yp, rneg][V,1]^T = p/u at {L},{L_k},{dv}", "cancel")
    return len(SCOPE)


def prove_scaled_divide() -> int:
    """U1^T = diag(w) M / D~^T with D~ = Phi_U (Phi_V^T 1), Phi_U = (diag(w) M)^T: U1 Phi_V^T = f~."""
    F = forms()["scaled_divide"]
    M_ = derive.matrix_symbols
    for L, L_k, k in SCOPE:
        Mt, w, Vf = M_("M", k, L, positive=True), M_("w", k, 1, positive=True), M_("Vf", L_k, k, positive=True)
        PhiU = (sp.diag(*w) * Mt).T
        D = PhiU * (Vf.T * sp.ones(L_k, 1))
        got = _evaluate(F, {"a": Mt}, row={"w": list(w)}, col={"d": list(D)})["o"]
        _u, _alpha, f = derive.softmax_rows(PhiU * Vf.T, exp=lambda x: x)
        pt.check_equal(got.T * Vf.T, f, f"U1 V1^T = f~ at {L},{L_k},{k}", "cancel")
    return len(SCOPE)


def prove_kron_rows_t() -> int:
    F = forms()["kron_rows_t"]
    M = derive.matrix_symbols
    count = 0
    for n, k1, k2 in [(n, k1, k2) for n in (1, 2) for k1 in (1, 2, 3) for k2 in (1, 2)]:
        U1, U2 = M("U1", n, k1), M("U2", n, k2)
        expected = derive.rowwise_kron(U1, U2).T
        o = F.outputs[0][1]
        got = sp.Matrix(k1 * k2, n, lambda r, i: o.xreplace({SYMBOLS["a"]: U1[i, r // k2], SYMBOLS["b"]: U2[i, r % k2]}))
        pt.check_equal(got, expected, f"kron_rows_t = derive.rowwise_kron^T at n={n}, k1={k1}, k2={k2}")
        count += 1
    return count


def prove_paper_grad_rows() -> int:
    """beta (p1 K - diag(rvec) f K) = beta p K = dL/dP, and X_Q^T of it is derive's G_Q."""
    F = forms()["paper_grad_rows"]
    for L, L_k, dv in SCOPE:
        inp, t = _fake_terms(L, L_k, dv)
        got = _evaluate(F, {"a": t.p1 * t.K, "b": t.f * t.K}, row={"r": list(t.rvec)}, scalars={"beta": inp.beta})["o"]
        pt.check_equal(got, inp.beta * t.p * t.K, "dP != beta p K")
        pt.check_equal(inp.x_q.T * got, t.G["Q"], "X^T dP != G_Q")
    return len(SCOPE)


def prove_monomial_step() -> int:
    """The kernel's recurrence with :func:`features.layout.monomial_tables` yields column m = x^E[m]."""
    from ..features.layout import feature_layout, monomial_tables

    (name, step), = forms()["monomial_step"].outputs
    for d, g in FEATURE_SCOPE:
        xs = sp.symbols(f"x0:{d}", real=True)
        parent, var = monomial_tables(d, g)
        mono = [sp.Integer(1)]
        for m in range(1, len(parent)):
            _require(0 <= parent[m] < m, f"parent[{m}] = {parent[m]} is not an earlier column")
            mono.append(step.xreplace({SYMBOLS["prev"]: mono[parent[m]], SYMBOLS["x"]: xs[var[m]]}))
        E = feature_layout(d, g).exponents()
        pt.check_equal(sp.Matrix(mono), sp.Matrix([sp.Mul(*[xs[j] ** int(E[m, j]) for j in range(d)])
                                                   for m in range(len(mono))]), f"monomials_t tables at d={d}, g={g}")
    return len(FEATURE_SCOPE)


def prove_monomial_backward() -> int:
    """sum_{m'} g[succ[m', j]] mult[m', j] x^m' = sum_m g_m d(x^m)/dx_j (derivative_tables)."""
    from ..features.layout import derivative_tables, feature_layout

    (_, term), = forms()["monomial_backward_term"].outputs
    for d, g in FEATURE_SCOPE:
        xs = sp.symbols(f"x0:{d}", real=True)
        E = feature_layout(d, g).exponents()
        k = E.shape[0]
        G = sp.symbols(f"G0:{k}", real=True)
        mono = [sp.Mul(*[xs[j] ** int(E[m, j]) for j in range(d)]) for m in range(k)]
        succ, mult = derivative_tables(d, g)
        for j in range(d):
            got = sp.Add(*[term.xreplace({SYMBOLS["g"]: G[succ[m, j]], SYMBOLS["mult"]: sp.Integer(int(mult[m, j])),
                                          SYMBOLS["mono"]: mono[m]}) for m in range(succ.shape[0])])
            want = sp.Add(*[G[m] * sp.diff(mono[m], xs[j]) for m in range(k)])
            pt.check_equal(got, want, f"monomials_backward at d={d}, g={g}, j={j}")
    return len(FEATURE_SCOPE)


def prove_contract_rows() -> int:
    """sum_a z[j n_inner + a] y_a with z = x^{m'} Dc = sum_a y_a d/dx_j sum_m C[m, a] x^m."""
    import numpy as np

    from ..features.layout import feature_layout
    from ..features.maps import derivative_coefficients

    (_, term), = forms()["contract_term"].outputs
    count = 0
    for d, g in FEATURE_SCOPE:
        if g == 0:
            continue
        for A in (1, 2):
            xs = sp.symbols(f"x0:{d}", real=True)
            E = feature_layout(d, g).exponents()
            k = E.shape[0]
            C = np.array([[sp.Symbol(f"C_{m}_{a}", real=True) for a in range(A)] for m in range(k)], dtype=object)
            ys = sp.symbols(f"y0:{A}", real=True)
            mono = np.array([sp.Mul(*[xs[j] ** int(E[m, j]) for j in range(d)]) for m in range(k)], dtype=object)
            Dc = derivative_coefficients(C, d, g)
            z = mono[:Dc.shape[0]] @ Dc
            for j in range(d):
                got = sp.Add(*[term.xreplace({SYMBOLS["z"]: z[j * A + a], SYMBOLS["y"]: ys[a]}) for a in range(A)])
                want = sp.Add(*[ys[a] * sp.diff(sp.Add(*[C[m, a] * mono[m] for m in range(k)]), xs[j])
                                for a in range(A)])
                pt.check_equal(got, want, f"contract_rows at d={d}, g={g}, A={A}, j={j}")
            count += 1
    return count


PROOFS: dict[str, Callable[[], int]] = {
    "softmax_rows": prove_softmax_rows,
    "residual": prove_residual,
    "softmax_grad_rows": prove_softmax_grad_rows,
    "row_dot": prove_row_dot,
    "normalised_residual_rows": prove_normalised_residual_rows,
    "scaled_divide": prove_scaled_divide,
    "kron_rows_t": prove_kron_rows_t,
    "paper_grad_rows": prove_paper_grad_rows,
    "monomial_step": prove_monomial_step,
    "monomial_backward_term": prove_monomial_backward,
    "contract_term": prove_contract_rows,
}
"""Form name -> its proof (every form of :func:`elementwise.forms` has one)."""


def prove_all() -> dict[str, int]:
    """Run every proof; return the number of shapes checked per form."""
    missing = set(forms()) - set(PROOFS)
    if missing:
        raise ProofFailure(f"kernel forms without a proof: {sorted(missing)}")
    return {name: fn() for name, fn in PROOFS.items()}
