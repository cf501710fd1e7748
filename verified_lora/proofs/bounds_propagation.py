"""SymPy proofs of the scalar lemmas and identities behind verified_lora.bounds.propagation.

Claims (all generic: symbolic e, t, vectors of symbolic entries):

* ``bounds-f-entrywise`` (F1): for ``A~/E, D~/D in [1-e, 1+e]`` the ratio ``f~/f`` lies in
  ``[(1-e)/(1+e), (1+e)/(1-e)]`` and ``max(|(1+e)/(1-e) - 1|, |1 - (1-e)/(1+e)|) = 2e/(1-e)``.
* ``bounds-f-row-l1`` (F2): with ``x = 1 + e - abar``, ``y = abar - (1 - e)`` (so ``x + y = 2e``)
  and ``abar = 1 + t``, ``||f~ - f||_1 <= 2xy/((x+y) abar) = (e^2 - t^2)/(e (1+t))``, and for
  ``s = sqrt(1 - e^2)``: ``2(1-s)/e - (e^2 - t^2)/(e(1+t)) = (t + 1 - s)^2 / (e (1+t)) >= 0``
  (a square), so the maximum is ``2(1-s)/e = 2e/(1+s) <= e/(1 - e^2/2)`` because ``s >= 1 - e^2``.
* ``bounds-h-identity`` (P, structured): ``<c + dv, V_l - v - dv> - <c, V_l - v> =
  <dv, V_l - v> - <c + dv, dv>`` for vectors of any length (checked with symbolic entries, d = 4,
  a bilinear identity, so it holds for every length by linearity in each coordinate).
* ``bounds-factored-gradient``: ``d/dA~_ij (1/2 ||D~^{-1} A~ V - Y||^2) = (q~_ij - r~_i) / D~_i``
  with ``q~ = c~ V^T``, ``r~_i = sum_j f~_ij q~_ij``: exact SymPy differentiation for every
  ``L <= 2``, ``L_k <= 3``, ``d_v <= 2``; and ``|(1+eta)/(1+zeta) - 1| <= (eps_A + eps_D)/(1 - eps_A)``.

Run: ``python -m verified_lora.proofs.bounds_propagation``.
"""

from __future__ import annotations

import sympy as sp

from verified_lora.symbolic.certificates import Certificate, ProofFailure, register_proof, run_main

PAPER = {"iclr2025": "Lemmas 3.3-3.7 and Theorem 3.1 (error steps stated as eps/poly(L)); docs/math.md section 4",
         "arxiv_v2": "Section 3, same lemmas (numbering not confirmed)"}


def _zero(expr, what: str) -> None:
    if sp.cancel(sp.together(expr)) != 0 and sp.simplify(sp.together(expr)) != 0:
        raise ProofFailure(f"{what}: not identically zero: {sp.simplify(expr)}")


@register_proof("bounds-f-entrywise", title="(F1) |f~ - f| <= 2e/(1-e) f", paper=PAPER)
def prove_f_entrywise() -> Certificate:
    e = sp.symbols("e", positive=True)
    up = (1 + e) / (1 - e) - 1
    down = 1 - (1 - e) / (1 + e)
    delta = 2 * e / (1 - e)
    _zero(up - delta, "(1+e)/(1-e) - 1 = 2e/(1-e)")
    # delta - down = 4e^2/((1-e)(1+e)) >= 0 for 0 < e < 1
    gap = sp.factor(sp.together(delta - down))
    _zero(gap - 4 * e**2 / ((1 - e) * (1 + e)), "delta - (1 - (1-e)/(1+e))")
    return Certificate(claim="bounds-f-entrywise", title="(F1) entrywise relative error of f~",
                       statement=r"\frac{\tilde f_{ij}}{f_{ij}}\in\Big[\frac{1-e}{1+e},\frac{1+e}{1-e}\Big]"
                                 r"\Rightarrow |\tilde f_{ij}-f_{ij}|\le \frac{2e}{1-e} f_{ij}",
                       level="generic", method="SymPy simplification; the gap delta - 2e/(1+e) = 4e^2/(1-e^2) >= 0",
                       scope="0 < e < 1, symbolic", result="proved",
                       expressions={"delta": delta, "gap": gap})


@register_proof("bounds-f-row-l1", title="(F2) ||f~_i - f_i||_1 <= e/(1 - e^2/2)", paper=PAPER)
def prove_f_row_l1() -> Certificate:
    e, t = sp.symbols("e t", real=True)
    s = sp.sqrt(1 - e**2)
    x, y = 1 + e - (1 + t), (1 + t) - (1 - e)
    _zero(x + y - 2 * e, "x + y = 2e")
    h = 2 * x * y / ((x + y) * (1 + t))
    _zero(h - (e**2 - t**2) / (e * (1 + t)), "2xy/((x+y) abar) = (e^2 - t^2)/(e(1+t))")
    peak = 2 * (1 - s) / e
    square = (t + 1 - s) ** 2 / (e * (1 + t))
    _zero(sp.expand(sp.together((peak - h) * e * (1 + t)) - (t + 1 - s) ** 2).subs(s**2, 1 - e**2),
          "peak - h = (t + 1 - s)^2 / (e(1+t))")
    _zero(peak - 2 * e / (1 + s), "2(1-s)/e = 2e/(1+s)")
    # 2e/(1+s) <= e/(1 - e^2/2) <=> 1 + s >= 2 - e^2 <=> s >= 1 - e^2, true as sqrt(z) >= z on [0, 1].
    tau = e / (1 - e**2 / 2)
    _zero(sp.together(tau - 2 * e / (2 - e**2)), "tau = 2e/(2 - e^2)")
    return Certificate(claim="bounds-f-row-l1", title="(F2) row-L1 error of f~ (sharp to second order)",
                       statement=r"\|\tilde f_i-f_i\|_1\le\max_{|t|<e}\frac{e^2-t^2}{e(1+t)}=\frac{2e}{1+\sqrt{1-e^2}}"
                                 r"\le\frac{e}{1-e^2/2}",
                       level="generic",
                       method="SymPy: x+y=2e; 2xy/((x+y)(1+t)) = (e^2-t^2)/(e(1+t)); peak minus it equals the "
                              "square (t+1-s)^2/(e(1+t)); 2(1-s)/e = 2e/(1+s); s >= 1-e^2 on [0,1]",
                       scope="0 < e < 1, |t| < e, symbolic", result="proved",
                       expressions={"h": h, "peak": peak, "square": square, "tau": tau})


@register_proof("bounds-h-identity", title="h~_l - h_l = <dv, V_l - v> - <c~, dv>", paper=PAPER)
def prove_h_identity() -> Certificate:
    d = 4
    c = sp.Matrix(sp.symbols(f"c0:{d}"))
    dv = sp.Matrix(sp.symbols(f"dv0:{d}"))
    Vl = sp.Matrix(sp.symbols(f"V0:{d}"))
    v = sp.Matrix(sp.symbols(f"v0:{d}"))
    lhs = (c + dv).dot(Vl - v - dv) - c.dot(Vl - v)
    rhs = dv.dot(Vl - v) - (c + dv).dot(dv)
    _zero(sp.expand(lhs - rhs), "h identity")
    return Certificate(claim="bounds-h-identity", title="the structured p-step identity",
                       statement=r"\langle c+\delta v, V_l-v-\delta v\rangle-\langle c,V_l-v\rangle"
                                 r"=\langle\delta v,V_l-v\rangle-\langle c+\delta v,\delta v\rangle",
                       level="generic", method="SymPy expand with symbolic entries; bilinear, so length-independent",
                       scope="vectors of length 4 with symbolic entries (every coordinate enters linearly)",
                       result="proved", expressions={"lhs": lhs, "rhs": rhs})


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
    eta, zeta, eA, eD = sp.symbols("eta zeta e_A e_D", real=True)
    xi = (1 + eta) / (1 + zeta) - 1
    _zero(xi - (eta - zeta) / (1 + zeta), "xi = (eta - zeta)/(1 + zeta)")
    return Certificate(claim="bounds-factored-gradient", title="the factored path's dL~/dS and its prefactor",
                       statement=r"\frac{\partial}{\partial\tilde A_{ij}}\tfrac12\|\tilde D^{-1}\tilde AV-Y\|_F^2="
                                 r"\frac{\tilde q_{ij}-\tilde r_i}{\tilde D_i},\quad"
                                 r"\Big|\frac{1+\eta}{1+\zeta}-1\Big|=\frac{|\eta-\zeta|}{1+\zeta}\le\frac{e_A+e_D}{1-e_A}",
                       level="small-scope", method="SymPy diff against the closed form, exact rational functions",
                       scope="L in {1,2}, L_k in {1,2,3}, d_v in {1,2}; entries symbolic (A positive)",
                       result="proved", expressions=exprs | {"xi": xi}, data={"shapes": scope})


if __name__ == "__main__":
    raise SystemExit(run_main(__name__))
