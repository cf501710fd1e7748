"""SymPy and z3 proofs of the proxy-moment lemmas of the fast path's a-posteriori certificate.

The lemmas are stated in the docstring of ``verified_lora/fast/proxy_moments.py`` (labels (P0)-(P4)); the
transfer helpers ``transfer``, ``pi_sd``, ``pi_second``, ``pi_mean_err`` of ``verified_lora/fast/aposteriori.py``
apply them. Same mechanism as ``fast_aposteriori_moments.py``: identities over the keys by the index normal
form at a symbolic number of keys ``n`` (the normalisations ``sum pi^ = 1``, ``E^ t = 1`` carried as explicit
terms, never assumed by the solver), inequalities by z3 per key and for 2 or 3 keys directly, planted
false variants refuted.

* ``fast-proxy-p0-ratio`` (P0), (P4): ``t_l = pi~_l / pi^_l = (D^/D)(1 + theta_l)/(1 + theta^_l)``,
  ``E^ t = sum pi~``; any two keys ``t_a <= (1 + eta) t_b``; ``T_lo <= 1 <= T_hi``; ``T_hi <= 1 + eta``,
  ``T_hi - T_lo <= eta`` (needs ``T_lo <= 1``); ``eta = 2(e + e^)/((1 - e)(1 - e^)) >= 0``;
  ``D >= (1 - e)/(1 + e^) D^``.
* ``fast-proxy-p1-p2`` (P1), (P2): ``E~G = E^[t G] <= (1 + eta) E^G`` for ``G >= 0``; ``Var~F <=
  E~(F - E^F)^2 <= (1 + eta) Var^F``, ``sd~F <= sqrt(1 + eta) sd^F`` (``pi_sd``, ``pi_second``).
* ``fast-proxy-p3-means`` (P3): ``E~F - E^F = Cov^(t, F)``, ``sd^(t) <= (T_hi - T_lo)/2 <= eta/2``
  (Popoviciu), Cauchy-Schwarz, ``|E~F - m^| <= e1 + (eta/2) sd^F`` (``pi_mean_err``).

Run: ``python -m verified_lora.proofs.fast_proxy_moments``.
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
    return pt.a_posteriori_paper(f"verified_lora/fast/proxy_moments.py {label}")


def _eta(e, eh):
    return (1 + e) * (1 + eh) / ((1 - e) * (1 - eh)) - 1


@register_proof("fast-proxy-p0-ratio",
                title="(P0), (P4) t = pi~/pi^ has T_hi/T_lo <= 1+eta, T_lo <= 1 <= T_hi, T_hi - T_lo <= eta; "
                      "D >= (1-e)/(1+e^) D^", paper=_paper("(P0), (P4)"))
def prove_p0() -> Certificate:
    P, Ph = sp.IndexedBase("P"), sp.IndexedBase("Ph")        # P_l = P(S^_l), Ph_l = P^(S^_l), both > 0
    D, Dh = sp.symbols("D Dh", positive=True)                # D = sum P_l, Dh = sum Ph_l
    t = (Dh / D) * P[l] / Ph[l]
    _generic(_sum(Ph[l] / Dh * t, l), _sum(P[m], m) / D,
             "(P0) E^ t = sum_l pi^_l t_l = sum_l P_l / D (= sum pi~ = 1 with D = sum P)")
    El, th, thh = sp.symbols("E_l theta_l thetah_l", real=True)
    Pl, Phl = El * (1 + th), El * (1 + thh)
    pt.check_equal((Pl / D) / (Phl / Dh), (Dh / D) * (1 + th) / (1 + thh),
                   "(P0) t_l = pi~_l / pi^_l = (D^/D)(1 + theta_l)/(1 + theta^_l)", method="cancel")
    e, eh, c = _r("e eh c")
    eta = _eta(e, eh)
    pt.check_equal(eta, 2 * (e + eh) / ((1 - e) * (1 - eh)), "(P0) eta = 2(e + e^)/((1 - e)(1 - e^))", method="cancel")
    base = [e >= 0, e < 1, eh >= 0, eh < 1]
    nq = smt.prove("(P0) eta >= 0", base, eta >= 0)
    ta, tb, ua, ub = _r("theta_a theta_b thetah_a thetah_b")
    keys = base + [c > 0] + [x for y, b in ((ta, e), (tb, e), (ua, eh), (ub, eh)) for x in (y >= -b, y <= b)]
    Ta, Tb = c * (1 + ta) / (1 + ua), c * (1 + tb) / (1 + ub)
    nq += smt.prove("(P0) any two keys: t_a <= (1 + eta) t_b (so T_hi <= (1 + eta) T_lo)", keys, Ta <= (1 + eta) * Tb)
    smt.refute("planted false: t_a <= (1 + e)(1 + e^) t_b / (1 - e e^)", keys,
               Ta <= (1 + e) * (1 + eh) / (1 - e * eh) * Tb)
    smt.refute("planted false (P and P^ errors as one): t_a <= (1 + e)/(1 - e) t_b", keys, Ta <= (1 + e) / (1 - e) * Tb)
    q1, q2, q3, t1, t2, t3, lo, hi, et = _r("q_1 q_2 q_3 t_1 t_2 t_3 T_lo T_hi eta")
    three = [q1 >= 0, q2 >= 0, q3 >= 0, sp.Eq(q1 + q2 + q3, 1)] + [x for y in (t1, t2, t3) for x in (y >= lo, y <= hi)]
    nq += smt.prove("(P0) E^ t = 1 with every t_l in [T_lo, T_hi] => T_lo <= 1 <= T_hi (3 keys directly)",
                    three + [sp.Eq(q1 * t1 + q2 * t2 + q3 * t3, 1)], sp.And(lo <= 1, hi >= 1))
    band = [et >= 0, lo > 0, hi >= lo, hi <= (1 + et) * lo]
    nq += smt.prove("(P0) T_hi <= (1 + eta) T_lo, T_lo <= 1 => T_hi <= 1 + eta", band + [lo <= 1], hi <= 1 + et)
    nq += smt.prove("(P0) T_hi <= (1 + eta) T_lo, T_lo <= 1 => T_hi - T_lo <= eta T_lo <= eta", band + [lo <= 1],
                    sp.And(hi - lo <= et, hi - lo <= et * lo))
    smt.refute("planted false (T_lo <= 1 not used): T_hi - T_lo <= eta", band, hi - lo <= et)
    smt.refute("planted false: T_hi - T_lo <= eta / 2", band + [lo <= 1, hi >= 1], hi - lo <= et / 2)
    # (P4): per key E (1 + theta) >= (1 - e)/(1 + e^) E (1 + theta^); 2 keys directly
    E1, E2 = _r("E_1 E_2")
    p4 = base + [E1 >= 0, E2 >= 0] + [x for y, b in ((ta, e), (tb, e), (ua, eh), (ub, eh)) for x in (y >= -b, y <= b)]
    ratio = (1 - e) / (1 + eh)
    nq += smt.prove("(P4) per key: E_l (1 + theta_l) >= (1 - e)/(1 + e^) E_l (1 + theta^_l)", p4,
                    E1 * (1 + ta) >= ratio * E1 * (1 + ua))
    nq += smt.prove("(P4) 2 keys directly: D >= (1 - e)/(1 + e^) D^", p4,
                    E1 * (1 + ta) + E2 * (1 + tb) >= ratio * (E1 * (1 + ua) + E2 * (1 + ub)))
    smt.refute("planted false (P4) with 1 - e^: D >= (1 - e)/(1 - e^) D^", p4,
               E1 * (1 + ta) + E2 * (1 + tb) >= (1 - e) / (1 - eh) * (E1 * (1 + ua) + E2 * (1 + ub)))
    return Certificate(claim="fast-proxy-p0-ratio", title="(P0) density ratio of pi~ to the proxy's pi^; (P4) normaliser",
                       statement=r"t_l=\frac{\tilde\pi_l}{\hat\pi_l}=\frac{\hat D}{D}\frac{1+\theta_l}{1+\hat\theta_l},\ "
                                 r"\frac{T_{hi}}{T_{lo}}\le1+\eta,\ T_{lo}\le1\le T_{hi},\ T_{hi}\le1+\eta,\ "
                                 r"T_{hi}-T_{lo}\le\eta,\ D\ge\frac{1-e}{1+\hat e}\hat D",
                       level="generic",
                       method=(f"index normal form (symbolic number of keys n) for E^ t = sum pi~; SymPy cancel for t_l "
                               f"and eta; z3 ({nq} unsat queries incl. denominators) for any two keys' ratio, T_lo <= 1 "
                               "<= T_hi from E^ t = 1 (3 keys directly), T_hi <= 1 + eta, T_hi - T_lo <= eta, (P4) per "
                               "key and for 2 keys directly; planted false variants refuted (sat)"),
                       scope="any number of keys n (symbolic), 0 <= e, e^ < 1, |theta_l| <= e, |theta^_l| <= e^",
                       result="proved", expressions={"eta": eta, "p4_ratio": ratio},
                       on_paper=("T_hi, T_lo are the max and min of t over the keys: the two-key bound with a = argmax, "
                                 "b = argmin gives T_hi <= (1 + eta) T_lo; E^ t = 1 is a pi^-average of values in "
                                 "[T_lo, T_hi] (z3 for 3 keys directly; any number alike)",
                                 "(P4): summing the per-key bound over the keys (checked for 2 keys directly)",
                                 "proxy_moments.eta rounds the numerator up, the denominator down and the result up; "
                                 "rounding_rows rounds the (P4) ratio and D^'s lower bound down"))


@register_proof("fast-proxy-p1-p2", title="(P1) E~G <= (1+eta) E^G for G >= 0; (P2) Var~F <= (1+eta) Var^F",
                paper=_paper("(P1), (P2)"))
def prove_p1_p2() -> Certificate:
    ph, t, G, F = sp.IndexedBase("pih"), sp.IndexedBase("t"), sp.IndexedBase("G"), sp.IndexedBase("F")
    P, Ph = sp.IndexedBase("P"), sp.IndexedBase("Ph")
    D, Dh = sp.symbols("D Dh", positive=True)
    _generic(_sum(Ph[l] / Dh * ((Dh / D) * P[l] / Ph[l]) * G[l], l), _sum(P[l] / D * G[l], l),
             "(P1) E^[t G] = sum_l pi^_l t_l G_l = sum_l pi~_l G_l = E~G")
    # (P2) E~(F - c)^2 = Var~F + (E~F - c)^2 (+ (sum p - 1) term), any weights p and shift c
    cc = sp.Symbol("c", real=True)
    mu, Sp = _sum(ph[m] * F[m], m), _sum(ph[m], m)
    _generic(_sum(ph[l] * (F[l] - mu) ** 2, l),
             _sum(ph[l] * (F[l] - cc) ** 2, l) - (mu - cc) ** 2 + (Sp - 1) * (mu ** 2 - cc ** 2),
             "(P2) Var(F) = E(F - c)^2 - (E F - c)^2 (+ (sum p - 1) term) for any c")
    p1, t1, g1, hi, et = _r("pih_1 t_1 G_1 T_hi eta")
    nq = smt.prove("(P1) per key: pi^ t G <= T_hi pi^ G (pi^, G >= 0, t <= T_hi)",
                   [p1 >= 0, g1 >= 0, t1 <= hi], p1 * t1 * g1 <= hi * p1 * g1)
    EG, X = _r("EG X")
    nq += smt.prove("(P1) X <= T_hi E^G, T_hi <= 1 + eta, E^G >= 0 => X <= (1 + eta) E^G",
                    [EG >= 0, hi <= 1 + et, X <= hi * EG], X <= (1 + et) * EG)
    q1, t2, g2, lo = _r("q_1 t_2 G_2 T_lo")
    two = [q1 >= 0, q1 <= 1, et >= 0, g1 >= 0, g2 >= 0, t1 >= lo, t2 >= lo, t1 <= hi, t2 <= hi, lo > 0,
           hi <= (1 + et) * lo, sp.Eq(q1 * t1 + (1 - q1) * t2, 1)]
    EtG, EhG = q1 * t1 * g1 + (1 - q1) * t2 * g2, q1 * g1 + (1 - q1) * g2
    nq += smt.prove("(P1) 2 keys directly: E^ t = 1, T_hi <= (1 + eta) T_lo => E^[t G] <= (1 + eta) E^G", two,
                    EtG <= (1 + et) * EhG)
    smt.refute("planted false ((1 + eta) dropped): E^[t G] <= E^G (2 keys)", two, EtG <= EhG)
    smt.refute("planted false (G >= 0 dropped): E^[t G] <= (1 + eta) E^G (2 keys)",
               [x for x in two if x not in (g1 >= 0, g2 >= 0)], EtG <= (1 + et) * EhG)
    # (P2): Var~F <= E~(F - E^F)^2 <= (1 + eta) Var^F; sd by monotone sqrt
    V, W, Vh = _r("Var_t E_t Var_h")
    nq += smt.prove("(P2) Var~ <= E~(F - E^F)^2 <= (1 + eta) Var^ => Var~ <= (1 + eta) Var^",
                    [et >= 0, Vh >= 0, V <= W, W <= (1 + et) * Vh], V <= (1 + et) * Vh)
    s, sh, sq, su = _r("sd_t sd_h s_eta s_up")
    sdh = [et >= 0, s >= 0, sh >= 0, sq >= 0, sp.Eq(sq ** 2, 1 + et), s ** 2 <= (1 + et) * sh ** 2]
    nq += smt.prove("(P2) sd~^2 <= (1 + eta) sd^^2 => sd~ <= sqrt(1 + eta) sd^", sdh, s <= sq * sh)
    smt.refute("planted false ((P2) factor dropped): sd~ <= sd^", sdh, s <= sh)
    # pi_sd / pi_second: up-rounded factors and an upper bound of the proxy moment
    B, Bu, one = _r("B B_up one")
    nq += smt.prove("pi_sd: s_up >= sqrt(1 + eta), sd_hat >= sd^ >= 0 => s_up sd_hat >= sqrt(1 + eta) sd^",
                    sdh + [su >= sq, B >= sh], s <= su * B)
    nq += smt.prove("pi_second: one >= 1 + eta, m2_up >= E^G >= 0 => E~G <= one m2_up",
                    [EG >= 0, et >= 0, one >= 1 + et, Bu >= EG, X <= (1 + et) * EG], X <= one * Bu)
    return Certificate(claim="fast-proxy-p1-p2", title="(P1) nonnegative means and (P2) variances under pi~ from pi^",
                       statement=r"G\ge0:\ \tilde EG=\hat E[tG]\le(1+\eta)\hat EG;\ \widetilde{\mathrm{Var}}F\le"
                                 r"\tilde E(F-\hat EF)^2\le(1+\eta)\widehat{\mathrm{Var}}F,\ \tilde{\mathrm{sd}}F\le"
                                 r"\sqrt{1+\eta}\,\widehat{\mathrm{sd}}F",
                       level="generic",
                       method=(f"index normal form (symbolic n) for E~G = E^[t G] and the shifted variance (with its "
                               f"explicit normalisation term); z3 ({nq} unsat queries) per key, for 2 keys directly "
                               "(with E^ t = 1 and the ratio band of fast-proxy-p0-ratio), the variance and sd chain and "
                               "the up-rounded factors of pi_sd and pi_second; planted false variants refuted (sat)"),
                       scope="any number of keys n (symbolic), any weights (normalisation terms explicit); eta >= 0",
                       result="proved", expressions={"p1": (1 + et) * EG},
                       on_paper=("summing the per-key bound over the keys gives E^[t G] <= T_hi E^G (2 keys directly by "
                                 "z3); T_hi <= 1 + eta is fast-proxy-p0-ratio",
                                 "(P2) is (P1) with G = (F - E^F)^2 >= 0 and the shifted-variance identity with "
                                 "c = E^F under pi~ (its square term (E~F - c)^2 >= 0)",
                                 "aposteriori.transfer forms one = add_up(1, eta), s = sqrt_up(one) (rounded up), and "
                                 "half = 0.5 eta (exact for normal eta)"))


@register_proof("fast-proxy-p3-means", title="(P3) |E~F - E^F| = |Cov^(t, F)| <= (eta/2) sd^F (Popoviciu)",
                paper=_paper("(P3)"))
def prove_p3() -> Certificate:
    ph, t, F = sp.IndexedBase("pih"), sp.IndexedBase("t"), sp.IndexedBase("F")   # pi~_l = pih_l t_l
    Eh, Et, S = _sum(ph[m] * F[m], m), _sum(ph[m] * t[m], m), _sum(ph[m], m)
    lhs = _sum(ph[l] * t[l] * F[l], l) - _sum(ph[l] * F[l], l)
    cov = _sum(ph[l] * (t[l] - Et) * (F[l] - Eh), l)
    _generic(lhs, cov + Eh * (Et - 1) + Eh * Et * (1 - S),
             "(P3) E~F - E^F = Cov^(t, F) + E^F (E^t - 1) + E^F E^t (1 - sum pi^)")
    p, a, b = sp.IndexedBase("p"), sp.IndexedBase("x"), sp.IndexedBase("y")
    lag_l = _sum(p[l] * a[l] ** 2, l) * _sum(p[m] * b[m] ** 2, m) - _sum(p[l] * a[l] * b[l], l) ** 2
    lag_r = sp.Rational(1, 2) * _sum(_sum(p[l] * p[m] * (a[l] * b[m] - a[m] * b[l]) ** 2, m), l)
    _generic(lag_l, lag_r, "(P3) Lagrange: (sum p x^2)(sum p y^2) - (sum p x y)^2 = 1/2 sum_l sum_m p_l p_m (x_l y_m - x_m y_l)^2")
    lo, hi, x1, x2, q1 = _r("T_lo T_hi t_1 t_2 q_1")
    nq = smt.prove("(P3) Popoviciu per key: T_lo <= t <= T_hi => (t - (T_lo+T_hi)/2)^2 <= (T_hi - T_lo)^2/4",
                   [x1 >= lo, x1 <= hi], (x1 - (lo + hi) / 2) ** 2 <= (hi - lo) ** 2 / 4)
    twok = [q1 >= 0, q1 <= 1] + [z for y in (x1, x2) for z in (y >= lo, y <= hi)]
    xb = q1 * x1 + (1 - q1) * x2
    var2 = q1 * (x1 - xb) ** 2 + (1 - q1) * (x2 - xb) ** 2
    nq += smt.prove("(P3) Popoviciu for 2 keys directly: Var^(t) <= (T_hi - T_lo)^2/4", twok, var2 <= (hi - lo) ** 2 / 4)
    et, st = _r("eta sd_t")
    band = [et >= 0, lo > 0, lo <= 1, hi >= 1, hi <= (1 + et) * lo]
    nq += smt.prove("(P3) sd^(t)^2 <= (T_hi - T_lo)^2/4, T_lo <= 1 => sd^(t) <= eta/2",
                    band + [st >= 0, st ** 2 <= (hi - lo) ** 2 / 4], st <= et / 2)
    smt.refute("planted false (Popoviciu with /4 in place of /2): sd^(t) <= eta/4",
               band + [st >= 0, st ** 2 <= (hi - lo) ** 2 / 4], st <= et / 4)
    X, Y, M, sx, sy = _r("X Y M s_x s_y")
    nq += smt.prove("(P3) Cauchy-Schwarz: M^2 <= X Y, M >= 0 => M <= sqrt(X) sqrt(Y)",
                    [X >= 0, Y >= 0, M >= 0, M ** 2 <= X * Y, sx >= 0, sy >= 0, sp.Eq(sx ** 2, X), sp.Eq(sy ** 2, Y)],
                    M <= sx * sy)
    sF, C = _r("sd_F C")
    comb = [st >= 0, sF >= 0, et >= 0, sp.Abs(C) <= st * sF, st <= et / 2]
    nq += smt.prove("(P3) |Cov^(t, F)| <= sd^(t) sd^(F), sd^(t) <= eta/2 => |E~F - E^F| <= (eta/2) sd^F", comb,
                    sp.Abs(C) <= et / 2 * sF)
    smt.refute("planted false: |E~F - E^F| <= (eta/4) sd^F", comb, sp.Abs(C) <= et / 4 * sF)
    Ft, Fh, mh, e1, sb, hf = _r("Et_F Eh_F mh e_1 sd_hat half")
    pm = [et >= 0, e1 >= 0, sF >= 0, sb >= sF, hf >= et / 2, sp.Abs(Fh - mh) <= e1, sp.Abs(Ft - Fh) <= et / 2 * sF]
    nq += smt.prove("pi_mean_err: |E~F - m^| <= e1 + half sd_hat", pm, sp.Abs(Ft - mh) <= e1 + hf * sb)
    smt.refute("planted false (the proxy's own error e1 dropped): |E~F - m^| <= half sd_hat", pm,
               sp.Abs(Ft - mh) <= hf * sb)
    return Certificate(claim="fast-proxy-p3-means", title="(P3) means under pi~ from pi^ (Popoviciu)",
                       statement=r"\tilde EF-\hat EF=\widehat{\mathrm{Cov}}(t,F),\ \widehat{\mathrm{sd}}(t)\le"
                                 r"\frac{T_{hi}-T_{lo}}{2}\le\frac\eta2,\ |\tilde EF-\hat EF|\le\frac\eta2\,"
                                 r"\widehat{\mathrm{sd}}F",
                       level="generic",
                       method=(f"index normal form at a symbolic number of keys for the covariance identity (with its "
                               f"explicit normalisation terms) and Lagrange's identity; z3 ({nq} unsat queries) for "
                               "Popoviciu per key and for 2 keys directly, sd^(t) <= eta/2 (with T_lo <= 1 <= T_hi of "
                               "fast-proxy-p0-ratio), Cauchy-Schwarz, the combination and pi_mean_err; planted false "
                               "variants refuted (sat)"),
                       scope="any number of keys n (symbolic), any weights (the normalisation terms vanish when "
                             "sum pi^ = 1 and E^ t = 1); eta >= 0",
                       result="proved", expressions={"lagrange": pt.canonical_bound(lag_r), "bound": et / 2 * sF},
                       on_paper=("Popoviciu: summing the per-key bound with c = (T_lo + T_hi)/2 and the shifted-variance "
                                 "identity of fast-proxy-p1-p2 give Var^(t) <= (T_hi - T_lo)^2/4 (z3 for 2 keys directly)",
                                 "Lagrange's right side is a sum of non-negative terms; applied to the centred t and F it "
                                 "gives Cov^(t, F)^2 <= Var^(t) Var^(F)"))


if __name__ == "__main__":
    raise SystemExit(run_main(__name__))
