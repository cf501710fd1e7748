"""SymPy and z3 proofs of the scalar lemmas and identities behind verified_lora.bounds.propagation.

Every inequality is decided by the SMT solver z3 (query, ``unsat`` answer and solver version are
stored in the certificate, see ``verified_lora.symbolic.smt``); the algebraic identities by SymPy.
Each certificate also plants false variants of its inequality, which z3 must refute (``sat``).

* ``bounds-f-entrywise`` (F1): for ``A~/E, D~/D in [1-e, 1+e]`` the ratio ``f~/f`` lies in
  ``[(1-e)/(1+e), (1+e)/(1-e)]`` and ``|f~/f - 1| <= 2e/(1-e)``.
* ``bounds-f-row-l1`` (F2) over any number n of keys, reduced to fixed-size scalar lemmas:
  per key, ``pi |a - abar| = 2 pi max(a - abar, 0) - pi (a - abar)`` and
  ``pi max(a - abar, 0) <= pi [a > abar] x``, ``pi max(abar - a, 0) <= pi [a < abar] y`` (z3, one key);
  summed over the keys (monotonicity of finite sums: stated on paper; ``sum pi (a - abar) =
  abar (1 - sum pi)`` checked for a symbolic number of keys) the numerator is ``2P`` with ``P <= m+ x``,
  ``P <= m- y``, ``m+ + m- <= 1``; then ``2P <= 2xy/(x+y)`` and
  ``2xy/((x+y) abar) <= e/(1 - e^2/2)`` (z3). Also ``s >= 1 - e^2`` for ``s = sqrt(1 - e^2)`` and
  the sharp form ``(e^2 - t^2)/(e(1+t)) <= 2e/(1+s)`` (z3), the identities by SymPy, and the whole
  lemma for n = 2 keys directly (z3).
* ``bounds-h-identity`` (P, structured): ``<c + dv, V_l - v - dv> - <c, V_l - v> =
  <dv, V_l - v> - <c + dv, dv>`` for vectors of symbolic length (index notation).
* ``bounds-factored-gradient``: ``d/dA~_ij (1/2 ||D~^{-1} A~ V - Y||^2) = (q~_ij - r~_i) / D~_i``
  with ``q~ = c~ V^T``, ``r~_i = sum_j f~_ij q~_ij``: exact SymPy differentiation for every
  ``L <= 2``, ``L_k <= 3``, ``d_v <= 2``; ``|(1+eta)/(1+zeta) - 1| <= (eps_A + eps_D)/(1 - eps_A)``
  and ``sqrt(1 + tau^2) <= 1 + tau^2/2`` (z3).

Run: ``python -m verified_lora.proofs.bounds_propagation``.
"""

from __future__ import annotations

import sympy as sp

from verified_lora.symbolic import prooftools as pt
from verified_lora.symbolic import smt
from verified_lora.symbolic.certificates import Certificate, ProofFailure, register_proof, run_main

PAPER = {"iclr2025": "Lemmas 3.3-3.7 and Theorem 3.1 (error steps stated as eps/poly(L)); docs/math.md section 4; "
                     "verified_lora/bounds/propagation.py (F1), (F2), (P, factored)",
         "arxiv_v2": "Section 3, same lemmas (numbering not confirmed)"}


def _zero(expr, what: str) -> None:
    pt.check_zero(expr, what, method="cancel")


def _r(names: str):
    return sp.symbols(names, real=True)


@register_proof("bounds-f-entrywise", title="(F1) |f~ - f| <= 2e/(1-e) f", paper=PAPER)
def prove_f_entrywise() -> Certificate:
    e, a, d = _r("e a d")
    up = (1 + e) / (1 - e) - 1
    down = 1 - (1 - e) / (1 + e)
    delta = 2 * e / (1 - e)
    _zero(up - delta, "(1+e)/(1-e) - 1 = 2e/(1-e)")
    gap = sp.factor(sp.together(delta - down))
    _zero(gap - 4 * e**2 / ((1 - e) * (1 + e)), "delta - (1 - (1-e)/(1+e)) = 4e^2/(1-e^2)")
    hyps = [e > 0, e < 1, a >= 1 - e, a <= 1 + e, d >= 1 - e, d <= 1 + e]   # a = A~/E, d = D~/D
    n = smt.prove("F1: lower end of the ratio interval", hyps, (1 - e) / (1 + e) <= a / d)
    n += smt.prove("F1: upper end of the ratio interval", hyps, a / d <= (1 + e) / (1 - e))
    n += smt.prove("F1: |f~/f - 1| <= 2e/(1-e)", hyps, sp.Abs(a / d - 1) <= delta)
    smt.refute("planted false: |f~/f - 1| <= 2e/(1+e)", hyps, sp.Abs(a / d - 1) <= 2 * e / (1 + e))
    smt.refute("planted false: |f~/f - 1| <= e", hyps, sp.Abs(a / d - 1) <= e)
    return Certificate(claim="bounds-f-entrywise", title="(F1) entrywise relative error of f~",
                       statement=r"\frac{\tilde f_{ij}}{f_{ij}}\in\Big[\frac{1-e}{1+e},\frac{1+e}{1-e}\Big]"
                                 r"\Rightarrow |\tilde f_{ij}-f_{ij}|\le \frac{2e}{1-e} f_{ij}",
                       level="generic",
                       method=(f"z3 (QF_NRA): the ratio interval and |a/d - 1| <= 2e/(1-e) for 0 < e < 1, "
                               f"a, d in [1-e, 1+e] ({n} unsat queries, denominators included); planted false "
                               "variants refuted (sat); SymPy for the identities"),
                       scope="0 < e < 1, symbolic", result="proved",
                       expressions={"delta": delta, "gap": gap})


@register_proof("bounds-f-row-l1", title="(F2) ||f~_i - f_i||_1 <= e/(1 - e^2/2)", paper=PAPER)
def prove_f_row_l1() -> Certificate:
    e, t, s = _r("e t s")
    x, y = 1 + e - (1 + t), (1 + t) - (1 - e)
    _zero(x + y - 2 * e, "x + y = 2e")
    h = 2 * x * y / ((x + y) * (1 + t))
    _zero(h - (e**2 - t**2) / (e * (1 + t)), "2xy/((x+y) abar) = (e^2 - t^2)/(e(1+t))")
    peak = 2 * (1 - s) / e
    _zero(sp.expand(sp.together((peak - h) * e * (1 + t)) - (t + 1 - s) ** 2).subs(s**2, 1 - e**2),
          "(peak - h) e (1+t) = (t + 1 - s)^2 when s^2 = 1 - e^2")
    tau = e / (1 - e**2 / 2)
    _zero(sp.together(tau - 2 * e / (2 - e**2)), "tau = 2e/(2 - e^2)")
    base = [e > 0, e < 1]
    # per-key reduction (one key: weight pi, ratio a; abar the weighted mean, in [1-e, 1+e])
    pi, a, ab = _r("pi a abar")
    key = base + [pi >= 0, a >= 1 - e, a <= 1 + e, ab >= 1 - e, ab <= 1 + e]
    n = smt.prove("F2 per key: pi|a - abar| = 2 pi max(a - abar, 0) - pi (a - abar)", key,
                  sp.Eq(pi * sp.Abs(a - ab), 2 * pi * sp.Max(a - ab, 0) - pi * (a - ab)))
    n += smt.prove("F2 per key: pi max(a - abar, 0) <= pi [a > abar] x", key,
                   pi * sp.Max(a - ab, 0) <= sp.Piecewise((pi, a > ab), (0, True)) * (1 + e - ab))
    n += smt.prove("F2 per key: pi max(abar - a, 0) <= pi [a < abar] y", key,
                   pi * sp.Max(ab - a, 0) <= sp.Piecewise((pi, a < ab), (0, True)) * (ab - (1 - e)))
    # sum_l pi_l (a_l - abar) = abar (1 - sum_l pi_l) for abar = sum_l pi_l a_l (= 0 when sum pi = 1), any n keys
    nk = sp.Symbol("n", integer=True, positive=True)
    l, m = sp.symbols("l m", integer=True, nonnegative=True)
    piv, av = sp.IndexedBase("pi"), sp.IndexedBase("a")
    mean = sp.Sum(piv[m] * av[m], (m, 0, nk - 1))
    if not pt.sums_equal(sp.Sum(piv[l] * (av[l] - mean), (l, 0, nk - 1)),
                         mean * (1 - sp.Sum(piv[l], (l, 0, nk - 1))),
                         "sum_l pi_l (a_l - abar) = abar (1 - sum_l pi_l), n keys"):
        raise ProofFailure("mean identity not shown")
    # after summing: P <= m+ x, P <= m- y, m+ + m- <= 1  =>  2P <= 2xy/(x+y)
    P, mp, mm, X, Y = _r("P m_p m_m x y")
    n += smt.prove("F2: 2 min(m+ x, m- y) <= 2xy/(x+y)",
                   base + [P >= 0, mp >= 0, mm >= 0, mp + mm <= 1, X >= 0, Y >= 0, sp.Eq(X + Y, 2 * e),
                           P <= mp * X, P <= mm * Y], 2 * P <= 2 * X * Y / (X + Y))
    band = base + [ab >= 1 - e, ab <= 1 + e]
    bound = 2 * (1 + e - ab) * (ab - (1 - e)) / (2 * e * ab)
    n += smt.prove("F2: 2xy/((x+y) abar) <= e/(1 - e^2/2)", band, bound <= tau)
    n += smt.prove("F2: s >= 1 - e^2 for s = sqrt(1 - e^2)", base + [s >= 0, sp.Eq(s**2, 1 - e**2)], s >= 1 - e**2)
    n += smt.prove("F2: sharp form <= 2e/(1 + s)", base + [s >= 0, sp.Eq(s**2, 1 - e**2), t >= -e, t <= e],
                   (e**2 - t**2) / (e * (1 + t)) <= 2 * e / (1 + s))
    # the lemma itself for n = 2 keys, no reduction
    p1, a1, a2 = _r("pi_1 a_1 a_2")
    two = base + [p1 >= 0, p1 <= 1, a1 >= 1 - e, a1 <= 1 + e, a2 >= 1 - e, a2 <= 1 + e]
    mean = p1 * a1 + (1 - p1) * a2
    l1 = p1 * sp.Abs(a1 / mean - 1) + (1 - p1) * sp.Abs(a2 / mean - 1)
    n += smt.prove("F2 for n = 2 keys directly", two, l1 <= tau)
    smt.refute("planted false: row-L1 <= e (n = 2 keys)", two, l1 <= e)
    smt.refute("planted false: 2xy/((x+y) abar) <= e", band, bound <= e)
    smt.refute("planted false: xy/(x+y) bound without the 2 on the numerator",
               base + [P >= 0, mp >= 0, mm >= 0, mp + mm <= 1, X >= 0, Y >= 0, sp.Eq(X + Y, 2 * e),
                       P <= mp * X, P <= mm * Y], 2 * P <= X * Y / (X + Y))
    return Certificate(claim="bounds-f-row-l1", title="(F2) row-L1 error of f~ (sharp to second order)",
                       statement=r"\|\tilde f_i-f_i\|_1\le\max_{|t|<e}\frac{e^2-t^2}{e(1+t)}=\frac{2e}{1+\sqrt{1-e^2}}"
                                 r"\le\frac{e}{1-e^2/2}",
                       level="generic",
                       method=(f"z3 (QF_NRA, {n} unsat queries incl. denominators): the per-key inequalities of the "
                               "reduction, 2 min(m+ x, m- y) <= 2xy/(x+y), 2xy/((x+y) abar) <= e/(1-e^2/2), "
                               "s >= 1-e^2, the sharp form, and the lemma for n = 2 keys directly; planted false "
                               "variants refuted (sat). SymPy for x+y = 2e, the closed form of 2xy/((x+y)(1+t)) and "
                               "the square (t+1-s)^2"),
                       scope="0 < e < 1, |t| < e, any number of keys (summing inequalities over keys: stated on paper)",
                       result="proved",
                       expressions={"h": h, "peak": peak, "tau": tau},
                       on_paper=("summing the per-key inequalities over the n keys (finite sums are monotone), "
                                 "which gives P <= m+ x and P <= m- y with m+ + m- <= sum_l pi_l = 1; the identity "
                                 "sum_l pi_l (a_l - abar) = abar (1 - sum_l pi_l) is checked for symbolic n",))


@register_proof("bounds-h-identity", title="h~_l - h_l = <dv, V_l - v> - <c~, dv>", paper=PAPER)
def prove_h_identity() -> Certificate:
    n = sp.Symbol("n", integer=True, positive=True)
    k = sp.Symbol("k", integer=True, nonnegative=True)
    c, dv, Vl, v = (sp.IndexedBase(x) for x in ("c", "dv", "V_l", "v"))

    def dot(x, y):
        return sp.Sum(x * y, (k, 0, n - 1))

    lhs = dot(c[k] + dv[k], Vl[k] - v[k] - dv[k]) - dot(c[k], Vl[k] - v[k])
    rhs = dot(dv[k], Vl[k] - v[k]) - dot(c[k] + dv[k], dv[k])
    if not pt.sums_equal(lhs, rhs, "h identity, vectors of symbolic length n"):
        raise ProofFailure("h identity not shown at symbolic length")
    return Certificate(claim="bounds-h-identity", title="the structured p-step identity",
                       statement=r"\langle c+\delta v, V_l-v-\delta v\rangle-\langle c,V_l-v\rangle"
                                 r"=\langle\delta v,V_l-v\rangle-\langle c+\delta v,\delta v\rangle",
                       level="generic", method="index notation: inner products as sums over a symbolic length n, "
                                               "decided by the index normal form",
                       scope="vectors of any length n (symbolic)",
                       result="proved", expressions={"lhs": pt.canonical_bound(lhs), "rhs": pt.canonical_bound(rhs)})


@register_proof("bounds-factored-gradient", title="dL~/dA~_ij = (q~_ij - r~_i)/D~_i; |xi| <= (eA+eD)/(1-eA)",
                paper=PAPER)
def prove_factored_gradient() -> Certificate:
    scope = []
    exprs = {}
    for L in (1, 2):
        for Lk in (1, 2, 3):
            for dv in (1, 2):
                A = sp.Matrix(L, Lk, lambda i, j: sp.Symbol(f"a{i}_{j}", positive=True))
                V = sp.Matrix(Lk, dv, lambda i, j: sp.Symbol(f"v{i}_{j}"))
                Y = sp.Matrix(L, dv, lambda i, j: sp.Symbol(f"y{i}_{j}"))
                D = [sum(A[i, j] for j in range(Lk)) for i in range(L)]
                f = sp.Matrix(L, Lk, lambda i, j: A[i, j] / D[i])
                c = f * V - Y
                loss = sp.Rational(1, 2) * sum(x**2 for x in c)
                q = c * V.T
                r = [sum(f[i, j] * q[i, j] for j in range(Lk)) for i in range(L)]
                for i in range(L):
                    for j in range(Lk):
                        _zero(sp.diff(loss, A[i, j]) - (q[i, j] - r[i]) / D[i], f"dL/dA[{i},{j}] at {(L, Lk, dv)}")
                scope.append(f"({L},{Lk},{dv})")
                exprs[f"loss_{L}_{Lk}_{dv}"] = loss
    eta, zeta, eA, eD, tau, root = sp.symbols("eta zeta e_A e_D tau s", real=True)
    xi = (1 + eta) / (1 + zeta) - 1
    _zero(xi - (eta - zeta) / (1 + zeta), "xi = (eta - zeta)/(1 + zeta)")
    hyps = [eA >= 0, eA < 1, eD >= 0, sp.Abs(eta) <= eD, sp.Abs(zeta) <= eA]
    n = smt.prove("xi bound: |(1+eta)/(1+zeta) - 1| <= (e_A + e_D)/(1 - e_A)", hyps,
                  sp.Abs(xi) <= (eA + eD) / (1 - eA))
    n += smt.prove("sqrt(1 + tau^2) <= 1 + tau^2/2", [root >= 0, sp.Eq(root**2, 1 + tau**2)], root <= 1 + tau**2 / 2)
    smt.refute("planted false: |xi| <= (e_A + e_D)/(1 + e_A)", hyps, sp.Abs(xi) <= (eA + eD) / (1 + eA))
    smt.refute("planted false: |xi| <= e_A + e_D", hyps, sp.Abs(xi) <= eA + eD)
    return Certificate(claim="bounds-factored-gradient", title="the factored path's dL~/dS and its prefactor",
                       statement=r"\frac{\partial}{\partial\tilde A_{ij}}\tfrac12\|\tilde D^{-1}\tilde AV-Y\|_F^2="
                                 r"\frac{\tilde q_{ij}-\tilde r_i}{\tilde D_i},\quad"
                                 r"\Big|\frac{1+\eta}{1+\zeta}-1\Big|=\frac{|\eta-\zeta|}{1+\zeta}\le\frac{e_A+e_D}{1-e_A}",
                       level="small-scope",
                       method=("SymPy diff against the closed form, exact rational functions; the xi bound and "
                               f"sqrt(1 + tau^2) <= 1 + tau^2/2 by z3 ({n} unsat queries incl. denominators); "
                               "planted false variants of the xi bound refuted (sat)"),
                       scope="derivative: L in {1,2}, L_k in {1,2,3}, d_v in {1,2}, entries symbolic (A positive); "
                             "xi bound: all |eta| <= e_D, |zeta| <= e_A < 1",
                       result="proved", expressions=exprs | {"xi": xi}, data={"shapes": scope})


if __name__ == "__main__":
    raise SystemExit(run_main(__name__))
