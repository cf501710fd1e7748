"""Entry- and row-level forms of the non-GEMM gradient steps, lowered from ``derive.py``.

``derive.element_forms()`` states every term one entry at a time with ``IndexedBase`` arrays and
``Sum`` over symbolic bounds. A kernel needs plain scalar expressions over the values one thread
holds, so this module *lowers* those element forms: an ``Indexed`` entry becomes a scalar symbol
named after the kernel argument that supplies it, a ``Sum`` over the row becomes a row reduction,
and a ``Sum`` that a GEMM computes becomes the GEMM result's symbol. The few steps that derive.py
does not state as element forms (the stabilising row max, the algebraic rearrangements the fast
path uses, the feature recurrences) are written here and proved, like every lowered form, by
exact SymPy algebra for all shapes in a small scope in
:mod:`verified_lora.symbolic.elementwise_proofs` against the ``derive.py`` matrices and
:mod:`verified_lora.features`. Kernels print only the forms of :func:`forms`.

Symbols are real and named after kernel arguments; reductions are named after the row value
they produce.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import sympy as sp

__all__ = ["EntryForm", "RowForm", "SYMBOLS", "forms", "lower"]


@dataclass(frozen=True)
class EntryForm:
    """``outputs[name] = expr`` evaluated independently at every entry (or every loop step)."""

    name: str
    outputs: tuple[tuple[str, sp.Expr], ...]
    doc: str
    source: str


@dataclass(frozen=True)
class RowForm:
    """Row reductions followed by entry and row outputs, for one row at a time.

    ``reductions`` run in order, each ``(name, op, summand)`` with ``op`` in ``{"sum", "max"}``
    over the row's entries; later expressions may use earlier results. ``entry_outputs`` are
    written at every entry of the row, ``row_outputs`` once per row.
    """

    name: str
    reductions: tuple[tuple[str, str, sp.Expr], ...]
    entry_outputs: tuple[tuple[str, sp.Expr], ...]
    row_outputs: tuple[tuple[str, sp.Expr], ...]
    doc: str
    source: str


SYMBOLS: dict[str, sp.Symbol] = {n: sp.Symbol(n, real=True) for n in (
    "s", "beta", "m", "alpha", "f", "q", "r", "fv", "y", "a", "b", "d", "t", "w", "prev", "x", "mono", "g",
    "mult", "z")}
"""Every scalar symbol a form may use (real), by name."""


def lower(expr: sp.Expr, names: dict[str, str]) -> sp.Expr:
    """Replace each ``Indexed`` entry ``X[...]`` by ``SYMBOLS[names["X"]]`` and each named scalar
    (``beta``) by its real kernel symbol. Raises ``KeyError`` for an array without a name."""
    mapping: dict[sp.Basic, sp.Basic] = {}
    for ix in expr.atoms(sp.Indexed):
        mapping[ix] = SYMBOLS[names[str(ix.base)]]
    for sym in expr.free_symbols:
        if isinstance(sym, sp.Symbol) and sym.name in names:
            mapping[sym] = SYMBOLS[names[sym.name]]
    return expr.xreplace(mapping)


def _single_sum(expr: sp.Expr) -> sp.Sum:
    sums = list(expr.atoms(sp.Sum))
    if len(sums) != 1:
        raise AssertionError(f"expected exactly one Sum in {expr}")
    return sums[0]


@lru_cache(maxsize=1)
def forms() -> dict[str, EntryForm | RowForm]:
    """Every kernel form by name, lowered from ``derive.element_forms()`` where derive states it."""
    from .derive import element_forms

    E = element_forms()
    S_ = SYMBOLS
    # score S_ij = beta * (P K^T)_ij: the sum is the GEMM s = P K^T
    score = E["score"].expr
    score_l = lower(score.xreplace({_single_sum(score): S_["s"]}), {"beta": "beta"})        # beta*s
    u_l = lower(E["u"].expr, {"S": "s", "m": "m"}).xreplace({S_["s"]: score_l})             # exp(beta s - m)
    alpha_summand = _single_sum(E["alpha"].expr).function                                   # u[i, j]
    f_expr = E["f"].expr                                                                    # u / alpha
    # the residual c = sum_j f_ij V_ja - Y_ia: the sum is the GEMM fv = f V
    c_expr = E["c"].expr
    c_gemm = c_expr.xreplace({_single_sum(c_expr): sp.IndexedBase("fv")[0, 0]})
    rvec_summand = _single_sum(E["rvec"].expr).function                                     # f q
    p_expr = E["p"].expr                                                                    # f (q - rvec)
    kron = E["kron_row"].expr                                                               # U1 U2

    out: list[EntryForm | RowForm] = [
        RowForm("softmax_rows",
                reductions=(("m", "max", score_l),
                            ("alpha", "sum", lower(alpha_summand, {"u": "alpha"}).xreplace({S_["alpha"]: u_l}))),
                entry_outputs=(("f", lower(f_expr, {"u": "f", "alpha": "alpha"}).xreplace({S_["f"]: u_l})),),
                row_outputs=(),
                doc="f_ij = exp(beta s_ij - m_i) / alpha_i, alpha_i = sum_l exp(beta s_il - m_i), m_i = max_l beta s_il",
                source="derive.element_forms: score (sum -> GEMM s), u, alpha, f; row max m stated here"),
        EntryForm("residual", (("c", lower(c_gemm, {"fv": "fv", "Y": "y"})),),
                  doc="c = fv - y with fv = f V (GEMM)", source="derive.element_forms: c (sum -> GEMM fv)"),
        RowForm("softmax_grad_rows",
                reductions=(("r", "sum", lower(rvec_summand, {"f": "f", "q": "q"})),),
                entry_outputs=(("p", lower(p_expr, {"f": "f", "q": "q", "rvec": "r"})),),
                row_outputs=(("rvec", S_["r"]),),
                doc="rvec_i = sum_l f_il q_il, p_ij = f_ij (q_ij - rvec_i)",
                source="derive.element_forms: rvec, p"),
        RowForm("row_dot",
                reductions=(("r", "sum", lower(rvec_summand, {"f": "a", "q": "b"})),),
                entry_outputs=(), row_outputs=(("rvec", S_["r"]),),
                doc="rvec_i = sum_l a_il b_il; with a = f V, b = c this is rvec = (f*q) 1",
                source="derive.element_forms: rvec summand, applied to (fV, c) (proved: rowsum(fV * c) = rvec)"),
        RowForm("normalised_residual_rows",
                # fv_ia = t_ia / d_i (f~ V = D~^{-1} U~ (V~^T V)); c = fv - y; rvec = sum_a c_a fv_a
                reductions=(("r", "sum", lower(rvec_summand, {"f": "a", "q": "b"}).xreplace(
                    {S_["a"]: lower(c_gemm, {"fv": "fv", "Y": "y"}), S_["b"]: S_["fv"]}).xreplace(
                    {S_["fv"]: lower(f_expr, {"u": "t", "alpha": "d"})})),),
                entry_outputs=(("c", lower(c_gemm, {"fv": "fv", "Y": "y"}).xreplace(
                                   {S_["fv"]: lower(f_expr, {"u": "t", "alpha": "d"})})),
                               ("yp", lower(f_expr, {"u": "a", "alpha": "d"}).xreplace(
                                   {S_["a"]: lower(c_gemm, {"fv": "fv", "Y": "y"}).xreplace(
                                       {S_["fv"]: lower(f_expr, {"u": "t", "alpha": "d"})})}))),
                row_outputs=(("rvec", S_["r"]), ("rneg", -lower(f_expr, {"u": "r", "alpha": "d"}))),
                doc="factored forward rows: c = t/d - y, rvec = sum_a c_a t_a/d, yp = c/d, rneg = -rvec/d "
                    "([yp, rneg] [V, 1]^T = dL~/dA~ = (q~ - rvec~)/D~)",
                source="derive.element_forms: f (u/alpha with u -> t, alpha -> d), c, rvec; rearrangement proved"),
        EntryForm("scaled_divide", (("o", lower(f_expr, {"u": "a", "alpha": "d"}).xreplace(
                      {S_["a"]: S_["w"] * S_["a"]})),),
                  doc="o_ij = w_i a_ij / d_j: U1^T = diag(w) M / D~^T (U1 = D~^{-1} Phi_U, Lemma 3.3)",
                  source="derive.element_forms: f = u / alpha with u = w * mono"),
        EntryForm("kron_rows_t", (("o", lower(kron, {"U1": "a", "U2": "b"})),),
                  doc="(U1 (x) U2)^T[l1 k2 + l2, n] = U1^T[l1, n] U2^T[l2, n] (Lemma 3.6, face-splitting)",
                  source="derive.element_forms: kron_row (transposed layout)"),
        EntryForm("paper_grad_rows", (("o", S_["beta"] * lower(p_expr, {"f": "f", "q": "q", "rvec": "r"}).xreplace(
                      {S_["f"] * S_["q"]: S_["a"], S_["f"]: S_["b"], S_["q"]: S_["a"] / S_["b"]}).expand()),),
                  doc="o_ij = beta (a_ij - r_i b_ij) with a = p1~ K, b = f~ K: dL/dP = beta (p1 - diag(rvec) f) K",
                  source="derive.element_forms: p = p1 - p2 contracted with K; proved against derive.backward"),
        EntryForm("monomial_step", (("mono", S_["prev"] * S_["x"]),),
                  doc="x^m = x^(m - e_i) x_i (degree t from degree t-1; features.layout)",
                  source="stated here; proved against features.layout.feature_layout exponents"),
        EntryForm("monomial_backward_term", (("term", S_["g"] * S_["mult"] * S_["mono"]),),
                  doc="summand g[m'+e_j] (m'_j + 1) x^m' of dx_j = sum_m g_m d(x^m)/dx_j",
                  source="stated here; proved by sympy.diff against features.layout.derivative_table"),
        EntryForm("contract_term", (("term", S_["z"] * S_["y"]),),
                  doc="summand z[n, j, a] y[n, a] of dx[n, j] = sum_a Y[n, a] d/dx_j <C[:, a], x^m>",
                  source="stated here; proved against features.maps.lowrank_vjp_t / derivative_coefficients"),
    ]
    return {f.name: f for f in out}
