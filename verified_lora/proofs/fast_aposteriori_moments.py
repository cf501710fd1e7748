"""SymPy and z3 proofs of the moment lemmas of the fast path's a-posteriori certificate.

The lemmas are stated in the docstring of ``verified_lora/fast/aposteriori.py`` (labels (A0), (A1),
(A2), and the floating-point paragraph: ``_sd_up``, ``_x_rms``); each certificate cites its label.
Identities over vectors are decided at a *symbolic* number of keys ``n`` by
the index normal form; the normalisation ``sum_l pi_l = 1`` is never assumed by the solver: each
identity is proved for arbitrary weights with the explicit correction term ``(1 - sum_l pi_l) Q``,
which vanishes for a probability vector. Inequalities are decided by z3 per key (one key's term),
then summed over the keys (finite sums are monotone, the triangle inequality: stated on paper),
and also directly for a small fixed number of keys; planted false variants (the lemma altered)
must be refuted.

* ``fast-a0-density-ratio`` (A0): ``pi_l / pi~_l = abar / a_l`` with ``abar = sum_m pi_m a_m``
  (symbolic ``n``), ``abar`` in ``[1 - e, 1 + e]``, ``|abar / a_l - 1| <= 2e / (1 - e)``.
* ``fast-a1-means`` (A1): ``E_pi F - E~ F = sum_l pi~_l (pi_l / pi~_l - 1) F'_l``;
  ``|.| <= delta E~|F'| <= delta sd~(F)``; the weighted Cauchy-Schwarz inequality (Lagrange's
  identity at symbolic ``n``) used by (A2), (GQ), (GK), (GV).
* ``fast-a2-covariances`` (A2): ``Cov_pi(F, G) = E_pi[F'G'] - E_pi[F'] E_pi[G']`` for any shifts,
  ``|Cov_pi - Cov~| <= delta (1 + delta) sd~(F) sd~(G)``.
* ``fast-moment-rounding``: ``_sd_up`` (an upper bound of ``sqrt(m2 - m1^2)`` from floats) and
  ``_x_rms`` (``E~[x^2]`` from the computed squares).

Run: ``python -m verified_lora.proofs.fast_aposteriori_moments``.
"""

from __future__ import annotations

import sympy as sp

from verified_lora.symbolic import prooftools as pt
from verified_lora.symbolic import smt
from verified_lora.symbolic.certificates import Certificate, ProofFailure, register_proof, run_main

PAPER = {"iclr2025": "no lemma of the paper: the library's a-posteriori certificate of the almost-linear "
                     "gradient of Section 3 (Theorem 3.1's algorithm); docs/math.md section 4",
         "arxiv_v2": "same (not a paper claim)",
         "module": "verified_lora/fast/aposteriori.py"}

n = sp.Symbol("n", integer=True, positive=True)          # number of keys
l, m = sp.symbols("l m", integer=True, nonnegative=True)


def _r(names: str):
    return sp.symbols(names, real=True)


def _sum(expr, var, size=n):
    return sp.Sum(expr, (var, 0, size - 1))


def _generic(lhs, rhs, what: str) -> None:
    if not pt.sums_equal(lhs, rhs, what):
        raise ProofFailure(f"{what}: not shown at symbolic size")


def _paper(label: str) -> dict:
    return dict(PAPER, module=f"verified_lora/fast/aposteriori.py {label}")


@register_proof("fast-a0-density-ratio", title="(A0) pi_l/pi~_l = abar/a_l, |abar/a_l - 1| <= 2e/(1-e)",
                paper=_paper("(A0)"))
def prove_a0() -> Certificate:
    E, a = sp.IndexedBase("E"), sp.IndexedBase("a")          # E_l = e^{S_l} > 0, a_l = P(S^_l) e^{-S_l}
    Z, Za = sp.symbols("Z Z_a", positive=True)               # Z = sum_m E_m, Z_a = sum_m a_m E_m
    # pi_l = E_l / Z, pi~_l = a_l E_l / Z_a; abar = sum_m pi_m a_m = Z_a / Z (symbolic n)
    _generic(_sum(E[m] / Z * a[m], m), _sum(a[m] * E[m], m) / Z, "(A0) abar = sum_m pi_m a_m = Z_a / Z")
    El, al = sp.symbols("E_l a_l", positive=True)
    pt.check_equal((El / Z) / (al * El / Za), (Za / Z) / al, "(A0) pi_l / pi~_l = abar / a_l", method="cancel")
    e = sp.Symbol("e", real=True)
    base = [e > 0, e < 1]
    # abar is a pi-average of values in [1-e, 1+e]: per key, then summed (sum_m pi_m = 1)
    p1, a1, a2, a3, ab, av = _r("pi_1 a_1 a_2 a_3 abar a_l")
    nk = smt.prove("(A0) per key: pi (1 - e) <= pi a <= pi (1 + e)", base + [p1 >= 0, a1 >= 1 - e, a1 <= 1 + e],
                   sp.And(p1 * (1 - e) <= p1 * a1, p1 * a1 <= p1 * (1 + e)))
    q1, q2, q3 = _r("q_1 q_2 q_3")
    three = base + [q1 >= 0, q2 >= 0, q3 >= 0, sp.Eq(q1 + q2 + q3, 1)] + \
        [x for y in (a1, a2, a3) for x in (y >= 1 - e, y <= 1 + e)]
    mean = q1 * a1 + q2 * a2 + q3 * a3
    nk += smt.prove("(A0) abar in [1-e, 1+e] for 3 keys directly", three, sp.And(mean >= 1 - e, mean <= 1 + e))
    band = base + [ab >= 1 - e, ab <= 1 + e, av >= 1 - e, av <= 1 + e]
    delta = 2 * e / (1 - e)
    nk += smt.prove("(A0) |abar/a_l - 1| <= 2e/(1-e)", band, sp.Abs(ab / av - 1) <= delta)
    nk += smt.prove("(A0) for 3 keys directly: |abar/a_1 - 1| <= 2e/(1-e)", three, sp.Abs(mean / a1 - 1) <= delta)
    smt.refute("planted false (factor 2 dropped): |abar/a_l - 1| <= e/(1-e)", band, sp.Abs(ab / av - 1) <= e / (1 - e))
    smt.refute("planted false: |abar/a_l - 1| <= 2e/(1+e)", band, sp.Abs(ab / av - 1) <= 2 * e / (1 + e))
    smt.refute("planted false: |pi~_l/pi_l - 1| = |a_l/abar - 1| <= e", band,
               sp.Abs(av / ab - 1) <= e)
    return Certificate(claim="fast-a0-density-ratio", title="(A0) density ratio of the approximate softmax",
                       statement=r"\frac{\pi_l}{\tilde\pi_l}=\frac{\bar a}{a_l},\ \bar a=\sum_m\pi_m a_m,\ "
                                 r"a_l\in[1-e,1+e]\Rightarrow\Big|\frac{\pi_l}{\tilde\pi_l}-1\Big|\le\frac{2e}{1-e}",
                       level="generic",
                       method=(f"index normal form (symbolic number of keys n) for abar = Z_a/Z; SymPy cancel for the "
                               f"ratio; z3 ({nk} unsat queries incl. denominators) per key, for 3 keys directly and "
                               "for the ratio bound; planted false variants refuted (sat)"),
                       scope="any number of keys n (symbolic), 0 < e < 1",
                       result="proved", expressions={"delta": delta},
                       on_paper=("summing the per-key inequality over the keys with sum_m pi_m = 1 gives "
                                 "abar in [1-e, 1+e] (checked by z3 for 3 keys directly)",))


@register_proof("fast-a1-means", title="(A1) |E_pi F - E~F| <= delta E~|F'| <= delta sd~(F)", paper=_paper("(A1)"))
def prove_a1() -> Certificate:
    pit, r, F = sp.IndexedBase("pit"), sp.IndexedBase("r"), sp.IndexedBase("F")   # pi_l = pit_l r_l
    Et = _sum(pit[m] * F[m], m)
    lhs = _sum(pit[l] * r[l] * F[l], l) - _sum(pit[l] * F[l], l)
    corr = Et * (_sum(pit[m] * r[m], m) - _sum(pit[m], m))       # = E~F (sum pi - sum pi~) = 0
    _generic(lhs, _sum(pit[l] * (r[l] - 1) * (F[l] - Et), l) + corr,
             "(A1) E_pi F - E~F = sum_l pi~_l (r_l - 1) F'_l + E~F (sum pi - sum pi~)")
    # weighted Cauchy-Schwarz: Lagrange's identity (any weights), and the variance identity
    p, a, b = sp.IndexedBase("p"), sp.IndexedBase("x"), sp.IndexedBase("y")
    lag_l = _sum(p[l] * a[l] ** 2, l) * _sum(p[m] * b[m] ** 2, m) - _sum(p[l] * a[l] * b[l], l) ** 2
    lag_r = sp.Rational(1, 2) * _sum(_sum(p[l] * p[m] * (a[l] * b[m] - a[m] * b[l]) ** 2, m), l)
    _generic(lag_l, lag_r, "(A1) Lagrange: (sum p x^2)(sum p y^2) - (sum p x y)^2 = 1/2 sum_l sum_m p_l p_m (x_l y_m - x_m y_l)^2")
    mu = _sum(p[m] * a[m], m)
    _generic(_sum(p[l] * a[l] ** 2, l) - mu ** 2,
             _sum(p[l] * (a[l] - mu) ** 2, l) + mu ** 2 * (1 - _sum(p[m], m)),
             "(A1) variance: sum p x^2 - (sum p x)^2 = sum p (x - mean)^2 + mean^2 (1 - sum p)")
    delta, pt1, r1, f1 = _r("delta pit_1 r_1 F_1")
    key = [delta >= 0, pt1 >= 0, sp.Abs(r1 - 1) <= delta]
    nq = smt.prove("(A1) per key: |pi~ (r - 1) F'| <= delta pi~ |F'|", key,
                   sp.Abs(pt1 * (r1 - 1) * f1) <= delta * pt1 * sp.Abs(f1))
    X, Y, M, sx, sy = _r("X Y M s_x s_y")
    nq += smt.prove("(A1) Cauchy-Schwarz: M^2 <= X Y, M >= 0 => M <= sqrt(X) sqrt(Y)",
                    [X >= 0, Y >= 0, M >= 0, M ** 2 <= X * Y, sx >= 0, sy >= 0, sp.Eq(sx ** 2, X), sp.Eq(sy ** 2, Y)],
                    M <= sx * sy)
    # directly for 2 keys: |sum pi~ (r-1) F'| <= delta sd~(F), with F' centred under pi~
    q1, r2, x1, x2, s = _r("q_1 r_2 x_1 x_2 s")
    xbar = q1 * x1 + (1 - q1) * x2
    two = [delta >= 0, q1 >= 0, q1 <= 1, sp.Abs(r1 - 1) <= delta, sp.Abs(r2 - 1) <= delta, s >= 0,
           sp.Eq(s ** 2, q1 * (x1 - xbar) ** 2 + (1 - q1) * (x2 - xbar) ** 2)]
    diff = q1 * (r1 - 1) * (x1 - xbar) + (1 - q1) * (r2 - 1) * (x2 - xbar)
    nq += smt.prove("(A1) for 2 keys directly: |sum pi~ (r - 1) F'| <= delta sd~(F)", two, sp.Abs(diff) <= delta * s)
    smt.refute("planted false: |sum pi~ (r - 1) F'| <= delta sd~(F) / 2 (2 keys)", two, sp.Abs(diff) <= delta * s / 2)
    return Certificate(claim="fast-a1-means", title="(A1) means under pi against pi~",
                       statement=r"E_\pi F-\tilde E F=\sum_l\tilde\pi_l\Big(\frac{\pi_l}{\tilde\pi_l}-1\Big)F'_l,\ "
                                 r"|E_\pi F-\tilde E F|\le\delta\,\tilde E|F'|\le\delta\,\tilde{\mathrm{sd}}(F)",
                       level="generic",
                       method=(f"index normal form at a symbolic number of keys for the identity (with its explicit "
                               f"normalisation term), Lagrange's identity and the variance identity; z3 ({nq} unsat "
                               "queries incl. denominators) per key, for Cauchy-Schwarz from Lagrange, and for 2 keys "
                               "directly; planted false variants refuted (sat)"),
                       scope="any number of keys n (symbolic), any weights (the normalisation term vanishes when "
                             "sum pi = sum pi~ = 1)",
                       result="proved", expressions={"lagrange": pt.canonical_bound(lag_r)},
                       on_paper=("summing the per-key inequality over the keys and the triangle inequality give "
                                 "|E_pi F - E~F| <= delta sum_l pi~_l |F'_l|",
                                 "Lagrange's right side is a sum of non-negative terms, so (E~|F'|)^2 <= E~[F'^2] "
                                 "(y = 1, x = |F'|) and (E~|x y|)^2 <= E~[x^2] E~[y^2]"))


@register_proof("fast-a2-covariances", title="(A2) |Cov_pi(F,G) - Cov~(F,G)| <= delta (1+delta) sd~F sd~G",
                paper=_paper("(A2)"))
def prove_a2() -> Certificate:
    p, F, G = sp.IndexedBase("p"), sp.IndexedBase("F"), sp.IndexedBase("G")
    s1, s2 = sp.symbols("s_F s_G", real=True)                      # arbitrary shifts (E~F, E~G)
    EF, EG, S = _sum(p[m] * F[m], m), _sum(p[m] * G[m], m), _sum(p[m], m)
    cov = _sum(p[l] * (F[l] - EF) * (G[l] - EG), l)
    shifted = _sum(p[l] * (F[l] - s1) * (G[l] - s2), l) - _sum(p[l] * (F[l] - s1), l) * _sum(p[l] * (G[l] - s2), l)
    _generic(cov, shifted + (S - 1) * (EF * EG - s2 * EF - s1 * EG + s1 * s2 * S),
             "(A2) Cov_p(F, G) = E_p[F'G'] - E_p[F'] E_p[G'] for any shifts (+ (sum p - 1) term)")
    r, pit = sp.IndexedBase("r"), sp.IndexedBase("pit")
    H = (F[l] - s1) * (G[l] - s2)
    _generic(_sum(pit[l] * r[l] * H, l) - _sum(pit[l] * H, l), _sum(pit[l] * (r[l] - 1) * H, l),
             "(A2) E_pi[F'G'] - E~[F'G'] = sum_l pi~_l (r_l - 1) F'_l G'_l")
    delta, sF, sG, X, mF, mG = _r("delta sd_F sd_G X m_F m_G")
    hyps = [delta >= 0, sF >= 0, sG >= 0, sp.Abs(X) <= delta * sF * sG, sp.Abs(mF) <= delta * sF,
            sp.Abs(mG) <= delta * sG]
    bound = delta * (1 + delta) * sF * sG
    nq = smt.prove("(A2) |X - m_F m_G| <= delta (1 + delta) sd_F sd_G", hyps, sp.Abs(X - mF * mG) <= bound)
    smt.refute("planted false ((1 + delta) dropped): |X - m_F m_G| <= delta sd_F sd_G", hyps,
               sp.Abs(X - mF * mG) <= delta * sF * sG)
    smt.refute("planted false: |X - m_F m_G| <= delta (1 + delta) sd_F sd_G / 2", hyps, sp.Abs(X - mF * mG) <= bound / 2)
    return Certificate(claim="fast-a2-covariances", title="(A2) covariances under pi against pi~",
                       statement=r"|\mathrm{Cov}_\pi(F,G)-\widetilde{\mathrm{Cov}}(F,G)|\le\delta(1+\delta)"
                                 r"\,\tilde{\mathrm{sd}}(F)\,\tilde{\mathrm{sd}}(G)",
                       level="generic",
                       method=(f"index normal form (symbolic n) for the shifted covariance and the difference of "
                               f"expectations; z3 ({nq} unsat queries) for the final combination with "
                               "X = E_pi[F'G'] - E~[F'G'] (|X| <= delta E~|F'G'| <= delta sd sd by fast-a1-means) and "
                               "m_F = E_pi F' (|m_F| <= delta sd_F by (A1)); planted false variants refuted"),
                       scope="any number of keys n (symbolic); sum pi = 1 for the covariance (term shown explicitly)",
                       result="proved", expressions={"bound": bound},
                       on_paper=("|X| <= delta E~|F'G'| and E~|F'G'| <= sd~F sd~G combine fast-a1-means' per-key "
                                 "bound and its Cauchy-Schwarz step",))


@register_proof("fast-moment-rounding", title="_sd_up and _x_rms: float moments to rigorous sd and rms bounds",
                paper=_paper("(floating point: _sd_up, _x_rms)"))
def prove_moment_rounding() -> Certificate:
    m1, m2, M1, M2, e1, e2, t1, t2, u, s = _r("m_1 m_2 mh_1 mh_2 e_1 e_2 theta_1 theta_2 u s")
    hyps = [u > 0, u <= sp.Rational(1, 8), e1 >= 0, e2 >= 0, sp.Abs(m1 - M1) <= e1, sp.Abs(m2 - M2) <= e2,
            sp.Abs(t1) <= u, sp.Abs(t2) <= u]
    computed = (M2 - M1 * M1 * (1 + t1)) * (1 + t2)                   # fl(m2^ - fl(m1^ m1^))
    var_up = computed + e2 + 2 * sp.Abs(M1) * e1 + 4 * u * (sp.Abs(M2) + M1 ** 2)
    nq = smt.prove("_sd_up: m2 - m1^2 <= fl(m2^ - m1^^2) + e2 + 2|m1^| e1 + 4u(|m2^| + m1^^2)", hyps,
                   m2 - m1 ** 2 <= var_up)
    v, V, sV = _r("v V s_V")
    nq += smt.prove("_sd_up: sqrt is monotone: 0 <= v <= V => sqrt(v) <= sqrt(V)",
                    [s >= 0, sV >= 0, v >= 0, v <= V, sp.Eq(s ** 2, v), sp.Eq(sV ** 2, V)], s <= sV)
    smt.refute("planted false (2|m1^| e1 dropped)", hyps, m2 - m1 ** 2 <= computed + e2 + 4 * u * (sp.Abs(M2) + M1 ** 2))
    smt.refute("planted false (float evaluation error dropped)", hyps, m2 - m1 ** 2 <= computed + e2 + 2 * sp.Abs(M1) * e1)
    # _x_rms: X2 = E~[x^2], F = E~[fl(x^2)] >= (1 - u) X2, |F - m^| <= e_rel max fl(x^2) <= e_rel (1 + u) c^2
    X2, F, mh, er, c = _r("X_2 F mh e_rel c")
    xh = [u > 0, u <= sp.Rational(1, 8), X2 >= 0, er >= 0, F >= (1 - u) * X2, F <= mh + er * (1 + u) * c ** 2]
    nq += smt.prove("_x_rms: E~[x^2] <= (max(m^, 0) + e_rel c^2)(1 + 4u)", xh,
                    X2 <= (sp.Max(mh, 0) + er * c ** 2) * (1 + 4 * u))
    x1 = sp.Symbol("x_1", real=True)
    nq += smt.prove("_x_rms: fl(x^2) = x^2 (1 + theta) >= (1 - u) x^2 per key", [u > 0, u < 1, sp.Abs(t1) <= u],
                    x1 ** 2 * (1 + t1) >= (1 - u) * x1 ** 2)
    smt.refute("planted false ((1 + 4u) dropped)", xh, X2 <= sp.Max(mh, 0) + er * c ** 2)
    return Certificate(claim="fast-moment-rounding", title="rigorous sd and rms from the computed moments",
                       statement=r"m_2-m_1^2\le \mathrm{fl}(\hat m_2-\hat m_1^2)+e_2+2|\hat m_1|e_1+4u(|\hat m_2|+\hat m_1^2),"
                                 r"\ \tilde E[x^2]\le(\max(\hat m,0)+e_{rel}c^2)(1+4u)",
                       level="generic",
                       method=(f"z3 (QF_NRA, {nq} unsat queries incl. denominators) over every rounding factor "
                               "|theta| <= u <= 1/8 and every moment within its error bound; planted false variants "
                               "(terms dropped) refuted (sat)"),
                       scope="0 < u <= 1/8, any moments within their error bounds",
                       result="proved", expressions={"var_up": var_up},
                       on_paper=("rg.up / add_up / mul_up / sqrt_up round each float operation upward (one correctly "
                                 "rounded operation, nextafter), so the computed bounds dominate the exact expressions "
                                 "proved here; m1^ and m2^ lie within e1 = e_rel vmax, e2 = e_rel vmax^2 of the exact "
                                 "moments (verified_lora/fast/rounding_bound.py, e_rel)",))


if __name__ == "__main__":
    raise SystemExit(run_main(__name__))
