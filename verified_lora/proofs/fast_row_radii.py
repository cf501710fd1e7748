"""SymPy and z3 proofs of the row-radius lemma of the fast path's a-posteriori certificate.

The lemma is stated in the docstring of ``verified_lora/fast/row_radii.py``: with entrywise magnitude
bounds ``|P_ib| <= Pm_ib`` and ``|K_lb| <= Km_lb`` (for the exact and the core's projections alike), every
score of query row ``i`` satisfies ``|beta <P_i, K_l>| <= R_i = |beta| ||Pm_i|| max_l ||Km_l||``; a row with
``R_i <= rho`` may use the polynomial's certified errors on ``[-rho, rho]`` (the minimum with the plan's).
Cauchy-Schwarz is Lagrange's identity at a symbolic width ``d``; the inequalities are decided by z3
(the norm bound directly at ``d = 2``); planted false variants are refuted. That a certificate on
``[-rho, rho]`` bounds the error at every point of it, and that every lemma of
``verified_lora/fast/aposteriori.py`` is per row, are stated on paper.

* ``fast-row-radius``: ``|S_il| <= R_i``; ``R_i <= fl_down(rho) <= rho``; per-row errors
  ``min(eps(rho), eps_plan)``; ``eps'``, ``delta``, ``delta1``, ``zeta`` monotone in the errors.

Run: ``python -m verified_lora.proofs.fast_row_radii``.
"""

from __future__ import annotations

import sympy as sp

from verified_lora.symbolic import prooftools as pt
from verified_lora.symbolic import smt
from verified_lora.symbolic.certificates import Certificate, ProofFailure, register_proof, run_main


d = sp.Symbol("d", integer=True, positive=True)
a, b = sp.symbols("a b", integer=True, nonnegative=True)


_r = pt.real_symbols


@register_proof("fast-row-radius", title="(row radius) |S_il| <= R_i = |beta| ||Pm_i|| max_l ||Km_l||",
                paper=pt.a_posteriori_paper("verified_lora/fast/row_radii.py (row radius)"))
def prove_row_radius() -> Certificate:
    p, k = sp.IndexedBase("p"), sp.IndexedBase("k")
    S = lambda e, v: sp.Sum(e, (v, 0, d - 1))                                 # noqa: E731
    lag_l = S(p[a] ** 2, a) * S(k[b] ** 2, b) - S(p[a] * k[a], a) ** 2
    lag_r = sp.Rational(1, 2) * S(S((p[a] * k[b] - p[b] * k[a]) ** 2, b), a)
    if not pt.sums_equal(lag_l, lag_r, "Cauchy-Schwarz: ||p||^2 ||k||^2 - <p,k>^2 = 1/2 sum_ab (p_a k_b - p_b k_a)^2"):
        raise ProofFailure("Lagrange's identity not shown at symbolic d")
    be, p1, p2, k1, k2, m1, m2, n1, n2, np_, nk = _r("beta p_1 p_2 k_1 k_2 Pm_1 Pm_2 Km_1 Km_2 nP nK")
    dom = [sp.Abs(p1) <= m1, sp.Abs(p2) <= m2, sp.Abs(k1) <= n1, sp.Abs(k2) <= n2, np_ >= 0, nk >= 0,
           sp.Eq(np_ ** 2, m1 ** 2 + m2 ** 2), sp.Eq(nk ** 2, n1 ** 2 + n2 ** 2)]
    score = be * (p1 * k1 + p2 * k2)
    nq = smt.prove("(row radius) d = 2 directly: |beta <P_i, K_l>| <= |beta| ||Pm_i|| ||Km_l||", dom,
                   sp.Abs(score) <= sp.Abs(be) * np_ * nk)
    smt.refute("planted false (max-norm of Pm_i): |beta <P_i, K_l>| <= |beta| max_b Pm_ib ||Km_l||", dom,
               sp.Abs(score) <= sp.Abs(be) * sp.Max(m1, m2) * nk)
    s, Sb, R, K, rd, rho = _r("S_il Sbound R_i Kmax rho_down rho")
    nq += smt.prove("(row radius) ||Km_l|| <= max_l ||Km_l||, R_i >= |beta| ||Pm_i|| Kmax => |S_il| <= R_i",
                    [np_ >= 0, nk >= 0, nk <= K, R >= sp.Abs(be) * np_ * K, sp.Abs(s) <= sp.Abs(be) * np_ * nk],
                    sp.Abs(s) <= R)
    nq += smt.prove("(row radius) R_i <= fl_down(rho) <= rho => every score of row i in [-rho, rho]",
                    [sp.Abs(s) <= R, R <= rd, rd <= rho], sp.Abs(s) <= rho)
    e, e1, e2 = _r("eps eps_rho eps_plan")
    nq += smt.prove("(row radius) both certificates bound the error on the sub-interval: eps <= min(eps_rho, eps_plan)",
                    [e <= e1, e <= e2], e <= sp.Min(e1, e2))
    x, y, sg = _r("e_row e_plan sigma")
    mono = [x >= 0, x <= y, y < 1]
    nq += smt.prove("(row radius) a smaller error gives a smaller delta1 = e/(1-e) (so delta = 2 delta1)", mono,
                    x / (1 - x) <= y / (1 - y))
    nq += smt.prove("(row radius) eps_i' = (1 + eps_A(rho))(1 + 2 sigma) - 1 is monotone in eps_A(rho)",
                    [x >= 0, x <= y, sg >= 0], (1 + x) * (1 + 2 * sg) - 1 <= (1 + y) * (1 + 2 * sg) - 1)
    xa, xd, ya, yd = _r("eA_row eD_row eA_plan eD_plan")
    nq += smt.prove("(row radius) zeta = (eps_A + eps_D)/(1 - eps_A) is monotone in both",
                    [xa >= 0, xa <= ya, ya < 1, xd >= 0, xd <= yd], (xa + xd) / (1 - xa) <= (ya + yd) / (1 - ya))
    return Certificate(claim="fast-row-radius", title="(row radius) per-row score radii",
                       statement=r"|S_{il}|,|\hat S_{il}|\le R_i=|\beta|\,\|Pm_i\|\max_l\|Km_l\|,\ R_i\le\rho\Rightarrow"
                                 r"\epsilon_i\le\min(\epsilon(\rho),\epsilon_{plan})",
                       level="generic",
                       method=(f"index normal form (symbolic d) for Lagrange's identity; z3 ({nq} unsat queries incl. "
                               "denominators) for the norm bound at d = 2 directly, the chain to rho, the min and the "
                               "monotonicity of eps', delta1, zeta; a planted false variant refuted"),
                       scope="any d (symbolic) for Cauchy-Schwarz; the norm bound directly at d = 2",
                       result="proved", expressions={"lagrange": pt.canonical_bound(lag_r)},
                       on_paper=("Lagrange's right side is non-negative, so |<p, k>| <= ||p|| ||k||, and ||P_i|| <= "
                                 "||Pm_i|| when |P_ib| <= Pm_ib entrywise (likewise K), for the exact and the core's "
                                 "projections (verified_lora/fast/rounding_bound.py)",
                                 "R_i is computed with sum_up / sqrt_up / mul_up, whose rounding depth covers the "
                                 "products Pm * Pm (fast-rounding-gamma, bounds/_rigorous.inflate)",
                                 "a certificate of P on [-rho, rho] bounds |P(x) e^{-x} - 1| (and P') at every x in it; "
                                 "every lemma of fast/aposteriori.py and fast/adapter_chain.py is per query row (rows are "
                                 "added at the end with non-negative weights), so each row may use its own errors"))


if __name__ == "__main__":
    raise SystemExit(run_main(__name__))
