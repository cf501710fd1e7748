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

* ``fast-a0-density-ratio`` (A0): ``r_l = pi_l / pi~_l = abar / a_l`` with ``abar = sum_m pi_m a_m``
  (symbolic ``n``) in ``[1 - e, 1 + e]``; ``r_l`` lies in ``[abar / (1 + e), abar / (1 - e)]``, of length
  ``2e abar / (1 - e^2) <= delta = 2e / (1 - e)``, which contains ``1 = E~r``; so ``|r_l - 1| <= delta``.
* ``fast-a1-means`` (A1): ``E_pi F - E~F = Cov~(r, F)``; Popoviciu (``Var <= (M - m)^2 / 4``) gives
  ``sd~(r) <= e abar / (1 - e^2) <= delta1 = e / (1 - e)``; Cauchy-Schwarz (Lagrange's identity at symbolic
  ``n``, also used by (A2), (GQ), (GK), (GV)) gives ``|E_pi F - E~F| <= delta1 sd~(F)``.
* ``fast-a2-covariances`` (A2): ``Cov_pi(F, G) = E_pi[F'G'] - E_pi[F'] E_pi[G']`` for any shifts,
  ``|Cov_pi - Cov~| <= (delta + delta1^2) sd~(F) sd~(G)``.
* ``fast-moment-rounding``: ``_sd_up`` (an upper bound of ``sqrt(m2 - m1^2)`` from floats), ``_x_rms``
  (``E~[x^2]`` from the computed squares) and the error of the moment of a computed square column.

Run: ``python -m verified_lora.proofs.fast_aposteriori_moments``.
"""

from __future__ import annotations

import sympy as sp

from verified_lora.symbolic import prooftools as pt
from verified_lora.symbolic import smt
from verified_lora.symbolic.certificates import Certificate, register_proof, run_main


n = sp.Symbol("n", integer=True, positive=True)          # number of keys
l, m = sp.symbols("l m", integer=True, nonnegative=True)


_r = pt.real_symbols


def _sum(expr, var, size=n):
    return pt.finite_sum(expr, var, size)


_generic = pt.require_sums_equal


def _paper(label: str) -> dict:
    return pt.a_posteriori_paper(f"verified_lora/fast/aposteriori.py {label}")


@register_proof("fast-a0-density-ratio",
                title="(A0) r_l = pi_l/pi~_l = abar/a_l lies in an interval of length <= 2e/(1-e) containing 1",
                paper=_paper("(A0)"))
def prove_a0() -> Certificate:
    E, a = sp.IndexedBase("E"), sp.IndexedBase("a")          # E_l = e^{S_l} > 0, a_l = P(S^_l) e^{-S_l}
    Z, Za = sp.symbols("Z Z_a", positive=True)               # Z = sum_m E_m, Z_a = sum_m a_m E_m
    # pi_l = E_l / Z, pi~_l = a_l E_l / Z_a; abar = sum_m pi_m a_m = Z_a / Z (symbolic n)
    _generic(_sum(E[m] / Z * a[m], m), _sum(a[m] * E[m], m) / Z, "(A0) abar = sum_m pi_m a_m = Z_a / Z")
    El, al = sp.symbols("E_l a_l", positive=True)
    pt.check_equal((El / Z) / (al * El / Za), (Za / Z) / al, "(A0) pi_l / pi~_l = abar / a_l", method="cancel")
    pt.check_equal((al * El / Za) * ((Za / Z) / al), El / Z, "(A0) pi~_l r_l = pi_l (so E~r = sum_l pi_l = 1)",
                   method="cancel")
    e = sp.Symbol("e", real=True)
    base = [e > 0, e < 1]
    p1, a1, a2, a3, ab, av = _r("pi_1 a_1 a_2 a_3 abar a_l")
    nk = smt.prove("(A0) per key: pi (1 - e) <= pi a <= pi (1 + e)", base + [p1 >= 0, a1 >= 1 - e, a1 <= 1 + e],
                   sp.And(p1 * (1 - e) <= p1 * a1, p1 * a1 <= p1 * (1 + e)))
    q1, q2, q3 = _r("q_1 q_2 q_3")
    three = base + [q1 >= 0, q2 >= 0, q3 >= 0, sp.Eq(q1 + q2 + q3, 1)] + \
        [x for y in (a1, a2, a3) for x in (y >= 1 - e, y <= 1 + e)]
    mean = q1 * a1 + q2 * a2 + q3 * a3
    nk += smt.prove("(A0) abar in [1-e, 1+e] for 3 keys directly", three, sp.And(mean >= 1 - e, mean <= 1 + e))
    band = base + [ab >= 1 - e, ab <= 1 + e, av >= 1 - e, av <= 1 + e]
    lo, hi = ab / (1 + e), ab / (1 - e)
    nk += smt.prove("(A0) r_l = abar/a_l in [abar/(1+e), abar/(1-e)]", band, sp.And(lo <= ab / av, ab / av <= hi))
    pt.check_equal(hi - lo, 2 * e * ab / (1 - e ** 2), "(A0) length abar/(1-e) - abar/(1+e) = 2e abar/(1-e^2)",
                   method="cancel")
    delta = 2 * e / (1 - e)
    nk += smt.prove("(A0) abar <= 1 + e => 2e abar/(1-e^2) <= 2e/(1-e) = delta", band, 2 * e * ab / (1 - e ** 2) <= delta)
    # 1 lies in the interval: E~r = 1 is a pi~-average of values in it (3 keys directly)
    r1, r2, r3, lw, hg, rr = _r("r_1 r_2 r_3 lo hi r_l")
    conv = [q1 >= 0, q2 >= 0, q3 >= 0, sp.Eq(q1 + q2 + q3, 1)] + \
        [x for y in (r1, r2, r3) for x in (y >= lw, y <= hg)]
    rm = q1 * r1 + q2 * r2 + q3 * r3
    nk += smt.prove("(A0) E~r = sum pi~ r in [lo, hi] (3 keys directly)", conv, sp.And(rm >= lw, rm <= hg))
    nk += smt.prove("(A0) r_l and 1 in [lo, hi] => |r_l - 1| <= hi - lo", [rr >= lw, rr <= hg, lw <= 1, hg >= 1],
                    sp.Abs(rr - 1) <= hg - lw)
    nk += smt.prove("(A0) |abar/a_l - 1| <= 2e/(1-e)", band, sp.Abs(ab / av - 1) <= delta)
    nk += smt.prove("(A0) for 3 keys directly: |abar/a_1 - 1| <= 2e/(1-e)", three, sp.Abs(mean / a1 - 1) <= delta)
    smt.refute("planted false (factor 2 dropped): |abar/a_l - 1| <= e/(1-e)", band, sp.Abs(ab / av - 1) <= e / (1 - e))
    smt.refute("planted false: interval length 2e abar/(1-e^2) <= 2e/(1+e)", band, 2 * e * ab / (1 - e ** 2) <= 2 * e / (1 + e))
    smt.refute("planted false: r_l <= abar (1 + e)", band, ab / av <= ab * (1 + e))
    smt.refute("planted false: |pi~_l/pi_l - 1| = |a_l/abar - 1| <= e", band, sp.Abs(av / ab - 1) <= e)
    return Certificate(claim="fast-a0-density-ratio", title="(A0) density ratio of the approximate softmax",
                       statement=r"r_l=\frac{\pi_l}{\tilde\pi_l}=\frac{\bar a}{a_l}\in\Big[\frac{\bar a}{1+e},"
                                 r"\frac{\bar a}{1-e}\Big]\ni 1,\ \frac{2e\bar a}{1-e^2}\le\delta=\frac{2e}{1-e},\ "
                                 r"|r_l-1|\le\delta",
                       level="generic",
                       method=(f"index normal form (symbolic number of keys n) for abar = Z_a/Z; SymPy cancel for the "
                               f"ratio, pi~ r = pi and the interval length; z3 ({nk} unsat queries incl. denominators) "
                               "per key, for 3 keys directly (abar, E~r in the interval), the interval, its length and "
                               "|r - 1|; planted false variants refuted (sat)"),
                       scope="any number of keys n (symbolic), 0 < e < 1",
                       result="proved", expressions={"delta": delta, "length": hi - lo},
                       on_paper=("summing the per-key inequality over the keys with sum_m pi_m = 1 gives "
                                 "abar in [1-e, 1+e] (checked by z3 for 3 keys directly)",
                                 "E~r = sum_l pi~_l r_l = sum_l pi_l = 1 (sum_l E_l = Z) is a pi~-average of values in "
                                 "the interval, so 1 lies in it (z3 for 3 keys directly; any number alike)"))


@register_proof("fast-a1-means", title="(A1) |E_pi F - E~F| = |Cov~(r, F)| <= delta1 sd~(F), delta1 = e/(1-e) (Popoviciu)",
                paper=_paper("(A1)"))
def prove_a1() -> Certificate:
    pit, r, F = sp.IndexedBase("pit"), sp.IndexedBase("r"), sp.IndexedBase("F")   # pi_l = pit_l r_l
    Et, Er, S = _sum(pit[m] * F[m], m), _sum(pit[m] * r[m], m), _sum(pit[m], m)
    lhs = _sum(pit[l] * r[l] * F[l], l) - _sum(pit[l] * F[l], l)
    cov = _sum(pit[l] * (r[l] - Er) * (F[l] - Et), l)
    _generic(lhs, cov + Et * (Er - 1) + Et * Er * (1 - S),
             "(A1) E_pi F - E~F = Cov~(r, F) + E~F (E~r - 1) + E~F E~r (1 - sum pi~)")
    # weighted Cauchy-Schwarz: Lagrange's identity (any weights), and the variance identities
    p, a, b = sp.IndexedBase("p"), sp.IndexedBase("x"), sp.IndexedBase("y")
    lag_l = _sum(p[l] * a[l] ** 2, l) * _sum(p[m] * b[m] ** 2, m) - _sum(p[l] * a[l] * b[l], l) ** 2
    lag_r = sp.Rational(1, 2) * _sum(_sum(p[l] * p[m] * (a[l] * b[m] - a[m] * b[l]) ** 2, m), l)
    _generic(lag_l, lag_r, "(A1) Lagrange: (sum p x^2)(sum p y^2) - (sum p x y)^2 = 1/2 sum_l sum_m p_l p_m (x_l y_m - x_m y_l)^2")
    mu = _sum(p[m] * a[m], m)
    Sp = _sum(p[m], m)
    _generic(_sum(p[l] * a[l] ** 2, l) - mu ** 2,
             _sum(p[l] * (a[l] - mu) ** 2, l) + mu ** 2 * (1 - Sp),
             "(A1) variance: sum p x^2 - (sum p x)^2 = sum p (x - mean)^2 + mean^2 (1 - sum p)")
    cc = sp.Symbol("c_mid", real=True)
    _generic(_sum(p[l] * (a[l] - mu) ** 2, l),
             _sum(p[l] * (a[l] - cc) ** 2, l) - (mu - cc) ** 2 + (Sp - 1) * (mu ** 2 - cc ** 2),
             "(A1) Popoviciu: Var(x) = E(x - c)^2 - (E x - c)^2 (+ (sum p - 1) term) for any c")
    lo, hi, x1, x2 = _r("m M x_1 x_2")
    nq = smt.prove("(A1) Popoviciu per key: m <= x <= M => (x - (m+M)/2)^2 <= (M - m)^2/4", [x1 >= lo, x1 <= hi],
                   (x1 - (lo + hi) / 2) ** 2 <= (hi - lo) ** 2 / 4)
    q1 = sp.Symbol("q_1", real=True)
    twok = [q1 >= 0, q1 <= 1] + [z for y in (x1, x2) for z in (y >= lo, y <= hi)]
    xb = q1 * x1 + (1 - q1) * x2
    var2 = q1 * (x1 - xb) ** 2 + (1 - q1) * (x2 - xb) ** 2
    nq += smt.prove("(A1) Popoviciu for 2 keys directly: Var(x) <= (M - m)^2/4", twok, var2 <= (hi - lo) ** 2 / 4)
    smt.refute("planted false: Var(x) <= (M - m)^2/8 (2 keys)", twok, var2 <= (hi - lo) ** 2 / 8)
    e, ab, sr, ln = _r("e abar sd_r len")
    nq += smt.prove("(A1) sd~(r)^2 <= (len/2)^2 => sd~(r) <= len/2", [sr >= 0, ln >= 0, sr ** 2 <= (ln / 2) ** 2],
                    sr <= ln / 2)
    eb = [e > 0, e < 1, ab >= 0, ab <= 1 + e]
    delta1 = e / (1 - e)
    nq += smt.prove("(A1) abar <= 1 + e => e abar/(1-e^2) <= e/(1-e) = delta1", eb, e * ab / (1 - e ** 2) <= delta1)
    smt.refute("planted false: e abar/(1-e^2) <= e/(1+e)", eb, e * ab / (1 - e ** 2) <= e / (1 + e))
    X, Y, M, sx, sy = _r("X Y M s_x s_y")
    nq += smt.prove("(A1) Cauchy-Schwarz: M^2 <= X Y, M >= 0 => M <= sqrt(X) sqrt(Y)",
                    [X >= 0, Y >= 0, M >= 0, M ** 2 <= X * Y, sx >= 0, sy >= 0, sp.Eq(sx ** 2, X), sp.Eq(sy ** 2, Y)],
                    M <= sx * sy)
    d1, sF, C = _r("delta_1 sd_F C")
    nq += smt.prove("(A1) |Cov~(r, F)| <= sd~(r) sd~(F), sd~(r) <= delta1 => |E_pi F - E~F| <= delta1 sd~(F)",
                    [sr >= 0, sF >= 0, sp.Abs(C) <= sr * sF, sr <= d1], sp.Abs(C) <= d1 * sF)
    return Certificate(claim="fast-a1-means", title="(A1) means under pi against pi~ (Popoviciu)",
                       statement=r"E_\pi F-\tilde EF=\widetilde{\mathrm{Cov}}(r,F),\ \tilde{\mathrm{sd}}(r)\le"
                                 r"\frac{e\bar a}{1-e^2}\le\delta_1=\frac{e}{1-e},\ |E_\pi F-\tilde E F|\le\delta_1\,"
                                 r"\tilde{\mathrm{sd}}(F)",
                       level="generic",
                       method=(f"index normal form at a symbolic number of keys for the covariance identity (with its "
                               f"explicit normalisation terms), Lagrange's identity and the two variance identities; "
                               f"z3 ({nq} unsat queries incl. denominators) for Popoviciu per key and for 2 keys "
                               "directly, the bound on sd~(r), Cauchy-Schwarz from Lagrange and the combination; planted "
                               "false variants refuted (sat)"),
                       scope="any number of keys n (symbolic), any weights (the normalisation terms vanish when "
                             "sum pi = sum pi~ = 1 and E~r = 1); 0 < e < 1",
                       result="proved", expressions={"lagrange": pt.canonical_bound(lag_r), "delta1": delta1},
                       on_paper=("Popoviciu: summing the per-key bound with c = (m + M)/2 gives "
                                 "Var~(r) <= E~(r - c)^2 <= (M - m)^2/4 (z3 for 2 keys directly); with the interval of "
                                 "fast-a0-density-ratio, M - m = 2e abar/(1 - e^2)",
                                 "Lagrange's right side is a sum of non-negative terms; applied to the centred r and F it "
                                 "gives Cov~(r, F)^2 <= Var~(r) Var~(F)",
                                 "F = V_j gives |Delta_j| = |E~V_j - E_pi V_j| <= delta1 sd_j"))


@register_proof("fast-a2-covariances", title="(A2) |Cov_pi(F,G) - Cov~(F,G)| <= (delta + delta1^2) sd~F sd~G",
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
    delta, pt1, r1, f1 = _r("delta pit_1 r_1 H_1")
    nq = smt.prove("(A2) per key: |pi~ (r - 1) F'G'| <= delta pi~ |F'G'| (|r - 1| <= delta, fast-a0-density-ratio)",
                   [delta >= 0, pt1 >= 0, sp.Abs(r1 - 1) <= delta],
                   sp.Abs(pt1 * (r1 - 1) * f1) <= delta * pt1 * sp.Abs(f1))
    d1, sF, sG, X, mF, mG = _r("delta_1 sd_F sd_G X m_F m_G")
    hyps = [delta >= 0, d1 >= 0, sF >= 0, sG >= 0, sp.Abs(X) <= delta * sF * sG, sp.Abs(mF) <= d1 * sF,
            sp.Abs(mG) <= d1 * sG]
    bound = (delta + d1 ** 2) * sF * sG
    nq += smt.prove("(A2) |X - m_F m_G| <= (delta + delta1^2) sd_F sd_G", hyps, sp.Abs(X - mF * mG) <= bound)
    smt.refute("planted false (delta1^2 dropped): |X - m_F m_G| <= delta sd_F sd_G", hyps,
               sp.Abs(X - mF * mG) <= delta * sF * sG)
    smt.refute("planted false (Popoviciu's delta1 on the first term): |X - m_F m_G| <= (delta1 + delta1^2) sd_F sd_G",
               hyps + [sp.Eq(delta, 2 * d1)], sp.Abs(X - mF * mG) <= (d1 + d1 ** 2) * sF * sG)
    return Certificate(claim="fast-a2-covariances", title="(A2) covariances under pi against pi~",
                       statement=r"|\mathrm{Cov}_\pi(F,G)-\widetilde{\mathrm{Cov}}(F,G)|\le(\delta+\delta_1^2)"
                                 r"\,\tilde{\mathrm{sd}}(F)\,\tilde{\mathrm{sd}}(G)",
                       level="generic",
                       method=(f"index normal form (symbolic n) for the shifted covariance and the difference of "
                               f"expectations; z3 ({nq} unsat queries) per key and for the final combination with "
                               "X = E_pi[F'G'] - E~[F'G'] (|X| <= delta E~|F'G'| <= delta sd sd) and "
                               "m_F = E_pi F' (|m_F| <= delta1 sd_F by fast-a1-means); planted false variants refuted"),
                       scope="any number of keys n (symbolic); sum pi = 1 for the covariance (term shown explicitly)",
                       result="proved", expressions={"bound": bound},
                       on_paper=("summing the per-key bound gives |X| <= delta E~|F'G'|, and E~|F'G'| <= sd~F sd~G by "
                                 "fast-a1-means' Cauchy-Schwarz step",))


@register_proof("fast-moment-rounding", title="_sd_up, _x_rms and square columns: float moments to rigorous sd and rms bounds",
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
    # the second moment of a computed square column fl(x^2): F = E~[fl(x^2)] within u of the exact E~[x^2] = X2,
    # the computed moment mh within e_rel max fl(x^2) <= e_rel (1 + u) c^2 of F (xv_mean_sd, adapter_chain._moment_bound)
    sq = [u > 0, u <= sp.Rational(1, 8), X2 >= 0, er >= 0, F >= (1 - u) * X2, F <= (1 + u) * X2,
          sp.Abs(mh - F) <= er * (1 + u) * c ** 2]
    nq += smt.prove("squares: |m^ - E~[x^2]| <= (1 + 4u) e_rel c^2 + 4u |m^|", sq,
                    sp.Abs(mh - X2) <= (1 + 4 * u) * er * c ** 2 + 4 * u * sp.Abs(mh))
    smt.refute("planted false (the rounding of the squares omitted): |m^ - E~[x^2]| <= e_rel c^2 + 4u |m^|", sq,
               sp.Abs(mh - X2) <= er * c ** 2 + 4 * u * sp.Abs(mh))
    return Certificate(claim="fast-moment-rounding", title="rigorous sd and rms from the computed moments",
                       statement=r"m_2-m_1^2\le \mathrm{fl}(\hat m_2-\hat m_1^2)+e_2+2|\hat m_1|e_1+4u(|\hat m_2|+\hat m_1^2),"
                                 r"\ \tilde E[x^2]\le(\max(\hat m,0)+e_{rel}c^2)(1+4u),\ |\hat m-\tilde E[x^2]|\le"
                                 r"(1+4u)e_{rel}c^2+4u|\hat m|",
                       level="generic",
                       method=(f"z3 (QF_NRA, {nq} unsat queries incl. denominators) over every rounding factor "
                               "|theta| <= u <= 1/8 and every moment within its error bound; planted false variants "
                               "(terms dropped) refuted (sat)"),
                       scope="0 < u <= 1/8, any moments within their error bounds",
                       result="proved", expressions={"var_up": var_up},
                       on_paper=("rg.up / add_up / mul_up / sqrt_up round each float operation upward (one correctly "
                                 "rounded operation, nextafter), so the computed bounds dominate the exact expressions "
                                 "proved here; a computed moment lies within e_rel (column max) of the exact moment of "
                                 "the column it was given (verified_lora/fast/rounding_bound.py, e_rel): for a column "
                                 "of computed squares fl(x^2) the column max is <= fl(c^2) <= (1 + u) c^2 (rounding "
                                 "is monotone), so _sd_up needs e2 = (1 + 4u) e_rel c^2 + 4u |m2^| for the exact "
                                 "E~[x^2] (proved here; as in xv_mean_sd and adapter_chain._moment_bound)",))


if __name__ == "__main__":
    raise SystemExit(run_main(__name__))
