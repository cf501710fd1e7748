"""SymPy and z3 proofs of the per-gradient lemmas of the fast path's a-posteriori certificate.

The lemmas are stated in the docstring of ``verified_lora/fast/aposteriori.py`` (labels (GQ, paper),
(C1), (GQ, factored), (GK), (GV)); they build on the moment lemmas (A0)-(A2) of
``fast_aposteriori_moments.py``. Identities are decided by the index normal form at symbolic sizes
(number of keys ``n``, value width ``d_v``, query rows ``L``), with the normalisation ``sum pi = 1``
carried as an explicit term; inequalities by z3, per key / per column (then summed: finite sums are
monotone, stated on paper) and for small fixed sizes directly; planted false variants are refuted.

* ``fast-gq-paper``: ``sum_l p_l K_l = Cov_pi(<c, V>, K)``; the split of ``Cov~(<c~, V>, K) - Cov_pi(<c, V>, K)``;
  ``Var~(<a, V>) = sum_jk a_j a_k Cov~(V_j, V_k) <= (sum_j |a_j| sd_j)^2``; ``sd~`` a seminorm; the bound
  ``sk_b rowQ_s`` with ``rowQ_s = delta1 S2 + (delta + delta1^2)(C1 + delta1 S2)``.
* ``fast-c1-spread`` (C1): ``Var~(<a, V>) = a^T E~[V V^T] a - (a . E~V)^2`` and the float bound of ``_sd_quadratic``.
* ``fast-gq-factored``: ``P'/P - 1 = (eta_D - eta_A)/(1 + eta_A)``, ``|zeta_l| <= (eps_A + eps_D)/(1 - eps_A)``,
  ``|sum_l pi~_l zeta_l h~_l K_lb| <= zeta C1 sqrt(E~[K_b^2])`` (and not with ``sd~(K_b)``: refuted).
* ``fast-gk``: ``h~_l - h_l = <Delta, V_l - E~V> - <c, Delta>``, ``|p~_l - p_l| <= pi~_l (|h~_l - h_l| + delta |h_l|)``,
  the per-column bound of ``rowK``, its factored term, and its min with the (GQ) form ``rowQ_s + zeta C1``.
* ``fast-gv``: ``sum_l X_V,la (f~^T c~ - f^T c)_lj = sum_i [Delta_ij E~_i X_V,a + c_ij (E~_i - E_pi,i) X_V,a]`` and
  the bound with ``|E~X_V|`` and ``delta1 sd~(X_V)``.

Run: ``python -m verified_lora.proofs.fast_aposteriori_gradients``.
"""

from __future__ import annotations

import sympy as sp

from verified_lora.symbolic import prooftools as pt
from verified_lora.symbolic import smt
from verified_lora.symbolic.certificates import Certificate, register_proof, run_main


n = sp.Symbol("n", integer=True, positive=True)          # number of keys
dv = sp.Symbol("d_v", integer=True, positive=True)
L = sp.Symbol("L", integer=True, positive=True)
l, m, j, k, i = sp.symbols("l m j k i", integer=True, nonnegative=True)


_r = pt.real_symbols


def _sum(expr, var, size=n):
    return pt.finite_sum(expr, var, size)


_generic = pt.require_sums_equal


def _paper(label: str) -> dict:
    return pt.a_posteriori_paper(f"verified_lora/fast/aposteriori.py {label}")


def _cov(w, x, y):
    """Cov_w(x, y) = sum_l w_l (x_l - E_w x)(y_l - E_w y); x, y: functions of the key index."""
    ex, ey = _sum(w[m] * x(m), m), _sum(w[m] * y(m), m)
    return _sum(w[l] * (x(l) - ex) * (y(l) - ey), l)


@register_proof("fast-gq-paper", title="(GQ, paper) |sum_l (p~_l - p_l) K_lb| <= sk_b rowQ_s", paper=_paper("(GQ, paper)"))
def prove_gq_paper() -> Certificate:
    w, c, V, K, D = (sp.IndexedBase(s) for s in ("pi", "c", "V", "K", "Delta"))

    def cv(vec):
        return lambda ll: _sum(vec[j] * V[ll, j], j, dv)

    Ex, EK, S = _sum(w[m] * cv(c)(m), m), _sum(w[m] * K[m], m), _sum(w[m], m)
    _generic(Ex, _sum(c[j] * _sum(w[m] * V[m, j], m), j, dv), "(GQ) <c, pi V> = sum_m pi_m <c, V_m>")
    p_sum = _sum(w[l] * (cv(c)(l) - Ex) * K[l], l)
    _generic(p_sum, _cov(w, cv(c), lambda ll: K[ll]) + Ex * EK * (1 - S),
             "(GQ) sum_l p_l K_l = Cov_pi(<c, V>, K) + E<c,V> E K (1 - sum pi)")
    ctv = lambda ll: _sum((c[j] + D[j]) * V[ll, j], j, dv)    # noqa: E731
    _generic(_cov(w, ctv, lambda ll: K[ll]),
             _cov(w, cv(D), lambda ll: K[ll]) + _cov(w, cv(c), lambda ll: K[ll]),
             "(GQ) Cov~(<c + Delta, V>, K) = Cov~(<Delta, V>, K) + Cov~(<c, V>, K)")
    a = sp.IndexedBase("a")
    covjk = _cov(w, lambda ll: V[ll, j], lambda ll: V[ll, k])
    _generic(_cov(w, cv(a), cv(a)), _sum(_sum(a[j] * a[k] * covjk, k, dv), j, dv),
             "(GQ) Var~(<a, V>) = sum_j sum_k a_j a_k Cov~(V_j, V_k)")
    # d_v = 2 directly: |Cov(V_j, V_k)| <= sd_j sd_k (Cauchy-Schwarz) => Var <= (sum |a_j| sd_j)^2
    a1, a2, s1, s2, c12, sv = _r("a_1 a_2 sd_1 sd_2 C_12 s_v")
    mink = [s1 >= 0, s2 >= 0, c12 ** 2 <= s1 ** 2 * s2 ** 2, sv >= 0,
            sp.Eq(sv ** 2, a1 ** 2 * s1 ** 2 + 2 * a1 * a2 * c12 + a2 ** 2 * s2 ** 2)]
    nq = smt.prove("(GQ) Minkowski (d_v = 2): sd~(<a, V>) <= |a_1| sd_1 + |a_2| sd_2", mink,
                   sv <= sp.Abs(a1) * s1 + sp.Abs(a2) * s2)
    d1, sd, dj, cj, caj = _r("delta_1 sd_j Delta_j c_j ct_j")
    col = [d1 >= 0, sd >= 0, sp.Abs(dj) <= d1 * sd, sp.Abs(cj) <= sp.Abs(caj) + sp.Abs(dj)]
    nq += smt.prove("(GQ) per column: |Delta_j| sd_j <= delta1 sd_j^2 (fast-a1-means)", col, sp.Abs(dj) * sd <= d1 * sd ** 2)
    sA, sB, sC, cAB = _r("sd_X sd_Y sd_XY C_XY")
    semi = [sA >= 0, sB >= 0, sC >= 0, cAB ** 2 <= sA ** 2 * sB ** 2, sp.Eq(sC ** 2, sA ** 2 - 2 * cAB + sB ** 2)]
    nq += smt.prove("(GQ) sd~ is a seminorm: sd~(X - Y) <= sd~(X) + sd~(Y) (so sd~(<c,V>) <= C1 + sd~(<Delta,V>))",
                    semi, sC <= sA + sB)
    delta, T1, T2, A, B, sk, S2, C1 = _r("delta T_1 T_2 A B sk_b S_2 C_1")
    fin = [delta >= 0, d1 >= 0, sk >= 0, S2 >= 0, C1 >= 0, A >= 0, B >= 0, sp.Abs(T1) <= sk * A, A <= d1 * S2,
           sp.Abs(T2) <= (delta + d1 ** 2) * B * sk, B <= C1 + A]
    rowQ_s = d1 * S2 + (delta + d1 ** 2) * (C1 + d1 * S2)
    nq += smt.prove("(GQ) |T1 + T2| <= sk_b [delta1 S2 + (delta + delta1^2)(C1 + delta1 S2)] = sk_b rowQ_s", fin,
                    sp.Abs(T1 + T2) <= sk * rowQ_s)
    smt.refute("planted false (delta1^2 dropped): rowQ_s with delta (C1 + delta1 S2)", fin,
               sp.Abs(T1 + T2) <= sk * (d1 * S2 + delta * (C1 + d1 * S2)))
    smt.refute("planted false (sd~(<c,V>) <= sd~(<c~,V>) used): rowQ_s with (delta + delta1^2) C1", fin,
               sp.Abs(T1 + T2) <= sk * (d1 * S2 + (delta + d1 ** 2) * C1))
    smt.refute("planted false: sd~(<a, V>) <= max(|a_1| sd_1, |a_2| sd_2)", mink,
               sv <= sp.Max(sp.Abs(a1) * s1, sp.Abs(a2) * s2))
    return Certificate(claim="fast-gq-paper", title="(GQ, paper) the Q-gradient error through covariances",
                       statement=r"\sum_l p_lK_l=\mathrm{Cov}_\pi(\langle c,V\rangle,K),\ "
                                 r"\Big|\sum_l(\tilde p_l-p_l)K_{lb}\Big|\le \mathrm{sk}_b\big[\delta_1 S_2+(\delta+\delta_1^2)"
                                 r"(C_1+\delta_1 S_2)\big]",
                       level="generic",
                       method=(f"index normal form at symbolic n and d_v for the covariance identity, the split by "
                               f"bilinearity and the variance of <a, V>; z3 ({nq} unsat queries incl. denominators) for "
                               "Minkowski at d_v = 2, the per-column step, the seminorm step and the final combination "
                               "(|T1| = |Cov~(<Delta,V>,K_b)| <= sk_b sum |Delta_j| sd_j, |T2| by fast-a2-covariances, "
                               "B = sd~(<c,V>) <= C1 + A with C1 >= sd~(<c~,V>) from fast-c1-spread); "
                               "planted false variants refuted"),
                       scope="any n, d_v (symbolic) for the identities; Minkowski at d_v = 2 by z3",
                       result="proved", expressions={"rowQ_s": rowQ_s},
                       on_paper=("Minkowski for any d_v: Var~(<a,V>) = sum_jk a_j a_k Cov~(V_j,V_k) (proved at symbolic "
                                 "d_v) and |Cov~(V_j,V_k)| <= sd_j sd_k (fast-a1-means) give (sum_j |a_j| sd_j)^2",
                                 "summing the per-column inequalities over j gives A = sd~(<Delta,V>) <= delta1 S2",
                                 "the identities hold for any key-side column in place of K_b (K is an arbitrary "
                                 "IndexedBase): used by (GK) with X_K,a and by fast/adapter_chain.py with K A^T"))


@register_proof("fast-c1-spread", title="(C1) sd~(<c~,V>) from the per-row covariance of V and its float errors",
                paper=_paper("(C1), _sd_quadratic"))
def prove_c1() -> Certificate:
    w, a, V = sp.IndexedBase("pit"), sp.IndexedBase("a"), sp.IndexedBase("V")
    x = lambda ll: _sum(a[j] * V[ll, j], j, dv)               # noqa: E731
    S = _sum(w[m], m)
    mu = _sum(a[j] * _sum(w[m] * V[m, j], m), j, dv)
    M2 = _sum(_sum(a[j] * a[k] * _sum(w[m] * V[m, j] * V[m, k], m), k, dv), j, dv)
    _generic(_cov(w, x, x), M2 - mu ** 2 - mu ** 2 * (1 - S),
             "(C1) Var~(<a, V>) = a^T E~[V V^T] a - (a . E~V)^2 (- (1 - sum pi~) term)")
    u, th, ct, v1, y, ev, ch = _r("u theta ct_j v1_j Y_j e_v ch_j")
    nq = smt.prove("(C1) c^ = fl(v1 - Y): |c~ - c^| <= e_v + 2u |c^|",
                   [u > 0, u <= sp.Rational(1, 8), sp.Abs(th) <= u, ev >= 0, sp.Abs(ct - (v1 - y)) <= ev,
                    sp.Eq(ch, (v1 - y) * (1 + th))], sp.Abs(ct - ch) <= ev + 2 * u * sp.Abs(ch))
    aj, ak, Mx, Mh, Ee = _r("a_j a_k M_jk Mh_jk E_jk")
    nq += smt.prove("(C1) per entry: |a_j a_k (M_jk - M^_jk)| <= |a_j| |a_k| E_jk", [sp.Abs(Mx - Mh) <= Ee],
                    sp.Abs(aj * ak * (Mx - Mh)) <= sp.Abs(aj) * sp.Abs(ak) * Ee)
    F, P, Q, er, vv = _r("F P Q e_rel vv")
    cross = [u > 0, u <= sp.Rational(1, 8), er >= 0, Q <= vv, sp.Abs(F - P) <= u * Q, sp.Abs(Mh - F) <= er * (1 + u) * vv]
    nq += smt.prove("(C1) cross moment of fl(V_j V_k): |M^ - E~[V_j V_k]| <= (e_rel (1 + 4u) + 2u) vmax_j vmax_k", cross,
                    sp.Abs(Mh - P) <= (er * (1 + 4 * u) + 2 * u) * vv)
    q, qh, Fq, g, qa, qe = _r("q qh Fq gamma qa qe")
    nq += smt.prove("(C1) c^T M2 c^ <= fl(c^T M2^ c^) + gamma |c^|^T |M2^| |c^| + |c^|^T E2 |c^|",
                    [sp.Abs(q - qh) <= qe, sp.Abs(Fq - qh) <= g * qa], q <= Fq + g * qa + qe)
    Fm, xd, mu_, A, ee = _r("Fm xd mu A ee")
    mean = [g >= 0, ee >= 0, sp.Abs(Fm - xd) <= g * A, sp.Abs(xd - mu_) <= ee]
    low = sp.Max(0, sp.Abs(Fm) - g * A - ee)
    nq += smt.prove("(C1) low = max(0, |fl(c^ . v1)| - gamma_dv |c^| . |v1| - |c^| . e_v) <= |c^ . E~V|", mean,
                    low <= sp.Abs(mu_))
    smt.refute("planted false (_sd_quadratic's former docstring): max(0, |fl(c^ . v1)| (1 - gamma_dv) - |c^| . e_v) "
               "<= |c^ . E~V|", mean + [g <= sp.Rational(1, 2), A >= sp.Abs(xd)],
               sp.Max(0, sp.Abs(Fm) * (1 - g) - ee) <= sp.Abs(mu_))
    var, Qu, lw = _r("var Q_up low")
    nq += smt.prove("(C1) Var = q - mu^2, q <= Q, 0 <= low <= |mu| => Var <= Q - low^2",
                    [sp.Eq(var, q - mu_ ** 2), q <= Qu, lw >= 0, lw <= sp.Abs(mu_)], var <= Qu - lw ** 2)
    smt.refute("planted false (the moment errors |c^|^T E2 |c^| dropped)", [sp.Abs(q - qh) <= qe, sp.Abs(Fq - qh) <= g * qa],
               q <= Fq + g * qa)
    sd_, b1, b2 = _r("sd b_1 b_2")
    nq += smt.prove("(C1) the smaller of two upper bounds is one", [sd_ <= b1, sd_ <= b2], sd_ <= sp.Min(b1, b2))
    return Certificate(claim="fast-c1-spread", title="(C1) the spread of <c~, V> from the covariance of V",
                       statement=r"\widetilde{\mathrm{Var}}(\langle a,V\rangle)=a^\top\tilde E[VV^\top]a-(a\cdot\tilde EV)^2,"
                                 r"\ \tilde{\mathrm{sd}}(\langle\tilde c,V\rangle)\le\tilde{\mathrm{sd}}(\langle\hat c,V\rangle)"
                                 r"+\sum_j|\tilde c_j-\hat c_j|\,\mathrm{sd}_j",
                       level="generic",
                       method=(f"index normal form (symbolic n, d_v) for the variance of <a, V>; z3 ({nq} unsat queries) "
                               "over every rounding factor for c^, the quadratic form's entries, the cross moments, the "
                               "float evaluation, the lower bound of the mean and the final combination; planted false "
                               "variants refuted, among them the (1 - gamma) |fl(c^ . v1)| form"),
                       scope="any n, d_v (symbolic) for the identity; 0 < u <= 1/8",
                       result="proved", expressions={"var": M2 - mu ** 2, "low": low},
                       on_paper=("sd~(<c~,V>) <= sd~(<c^,V>) + sd~(<c~ - c^, V>) (seminorm, fast-gq-paper) and "
                                 "sd~(<c~ - c^, V>) <= sum_j |c~_j - c^_j| sd_j (Minkowski, fast-gq-paper)",
                                 "summing the per-entry bound over j, k gives |c^T (M2 - M2^) c^| <= |c^|^T E2 |c^|; a "
                                 "computed sum of d_v^2 products of three factors carries gamma_{d_v^2 + 2} "
                                 "(fast-rounding-gamma), a dot product of length d_v gamma_{d_v}",
                                 "|c^ . v1 - c^ . E~V| <= |c^| . e_v (each moment within e_v of the exact one); "
                                 "fl(V_j V_k) = V_j V_k (1 + theta) with column max <= (1 + u) vmax_j vmax_k"))


@register_proof("fast-gq-factored", title="(GQ, factored) |sum pi~ zeta h~ K_b| <= zeta C1 sqrt(E~K_b^2)",
                paper=_paper("(GQ, factored)"))
def prove_gq_factored() -> Certificate:
    Eb, eta, zeta, eA, eD = _r("E eta_A eta_D e_A e_D")
    P, dP = Eb * (1 + eta), Eb * (1 + zeta)                   # P(x) = e^x (1 + eta_A), P'(x) = e^x (1 + eta_D)
    pt.check_equal(dP / P - 1, (zeta - eta) / (1 + eta), "(GQ, factored) P'/P - 1 = (eta_D - eta_A)/(1 + eta_A)",
                   method="cancel")
    hyps = [eA >= 0, eA < 1, eD >= 0, sp.Abs(zeta) <= eD, sp.Abs(eta) <= eA]
    zb = (eA + eD) / (1 - eA)
    nq = smt.prove("(GQ, factored) |zeta_l| = |(1 + eta_D)/(1 + eta_A) - 1| <= (e_A + e_D)/(1 - e_A)", hyps,
                   sp.Abs((1 + zeta) / (1 + eta) - 1) <= zb)
    smt.refute("planted false: |zeta_l| <= (e_A + e_D)/(1 + e_A)", hyps, sp.Abs((1 + zeta) / (1 + eta) - 1) <= (eA + eD) / (1 + eA))
    smt.refute("planted false (e_D dropped, the paper kernel's error only): |zeta_l| <= e_A/(1 - e_A)", hyps,
               sp.Abs((1 + zeta) / (1 + eta) - 1) <= eA / (1 - eA))
    w, c, V = sp.IndexedBase("pit"), sp.IndexedBase("ct"), sp.IndexedBase("V")
    x = lambda ll: _sum(c[j] * V[ll, j], j, dv)              # noqa: E731
    Ex, S = _sum(w[m] * x(m), m), _sum(w[m], m)
    _generic(_sum(w[l] * (x(l) - Ex), l), Ex * (1 - S), "(GQ, factored) E~[h~] = E~<c~,V>(1 - sum pi~) (= 0)")
    z, zt, p1, h1, k1 = _r("zeta zeta_l pit_l h_l K_l")
    nq += smt.prove("(GQ, factored) per key: |pi~ zeta_l h~ K| <= zeta pi~ |h~ K|", [z >= 0, p1 >= 0, sp.Abs(zt) <= z],
                    sp.Abs(p1 * zt * h1 * k1) <= z * p1 * sp.Abs(h1 * k1))
    X, M, sh, sK, C1 = _r("X M s_h s_K C_1")
    fin = [z >= 0, sK >= 0, C1 >= 0, sh >= 0, sp.Abs(X) <= z * M, M <= sh * sK, sh <= C1]
    nq += smt.prove("(GQ, factored) |X| <= zeta E~|h~ K_b| <= zeta sd~(<c~,V>) sqrt(E~K_b^2) <= zeta C1 sqrt(mk2_b)",
                    fin, sp.Abs(X) <= z * C1 * sK)
    # 2 keys directly, with the RMS of K (true) and with its sd (false: zeta_l changes sign)
    q, h2, k2, z1, z2, sH, sKr, sKd = _r("q h_2 K_2 zeta_1 zeta_2 s_H s_Krms s_Ksd")
    hb = q * h1 + (1 - q) * h2
    kb = q * k1 + (1 - q) * k2
    two = [z >= 0, q >= 0, q <= 1, sp.Abs(z1) <= z, sp.Abs(z2) <= z, sp.Eq(hb, 0), sH >= 0, sKr >= 0, sKd >= 0,
           sp.Eq(sH ** 2, q * h1 ** 2 + (1 - q) * h2 ** 2), sp.Eq(sKr ** 2, q * k1 ** 2 + (1 - q) * k2 ** 2),
           sp.Eq(sKd ** 2, q * (k1 - kb) ** 2 + (1 - q) * (k2 - kb) ** 2)]
    Xs = q * z1 * h1 * k1 + (1 - q) * z2 * h2 * k2
    nq += smt.prove("(GQ, factored) 2 keys directly: |sum pi~ zeta_l h~_l K_l| <= zeta sd~(h~) sqrt(E~K^2)", two,
                    sp.Abs(Xs) <= z * sH * sKr)
    smt.refute("planted false (sd~(K_b) in place of sqrt(E~K_b^2)), 2 keys", two, sp.Abs(Xs) <= z * sH * sKd)
    return Certificate(claim="fast-gq-factored", title="(GQ, factored) the P'/P factor zeta and its contraction with K",
                       statement=r"\Big|\frac{P'}{P}-1\Big|\le\zeta=\frac{\epsilon_A+\epsilon_D}{1-\epsilon_A},\ "
                                 r"\Big|\sum_l\tilde\pi_l\zeta_l\tilde h_lK_{lb}\Big|\le\zeta\,C_1\sqrt{\tilde E[K_b^2]}",
                       level="generic",
                       method=(f"SymPy cancel for P'/P; index normal form (symbolic n, d_v) for E~h~ = 0; z3 ({nq} "
                               "unsat queries incl. denominators) for the zeta bound, per key, the combination with "
                               "Cauchy-Schwarz (fast-a1-means) and Minkowski (fast-gq-paper), and 2 keys directly; "
                               "planted false variants refuted, among them sd~(K_b) in place of the RMS"),
                       scope="|eta_A| <= e_A < 1, |eta_D| <= e_D at the same point S^; any n, d_v",
                       result="proved", expressions={"zeta": zb},
                       on_paper=("summing the per-key bound gives |X| <= zeta E~|h~ K_b|; E~|h~K_b| <= sqrt(E~h~^2) "
                                 "sqrt(E~K_b^2) (fast-a1-means) and E~h~^2 = Var~(<c~,V>) <= C1^2 (fast-c1-spread)",))


@register_proof("fast-gk", title="(GK) |sum_l X_K,la (p~_l - p_l)| <= xk_ia min(rowK_i, rowQ_s,i + zeta C1_i)", paper=_paper("(GK)"))
def prove_gk() -> Certificate:
    c, D, V, Et = (sp.IndexedBase(s) for s in ("c", "Delta", "V_l", "Et"))   # Et_j = E~V_j, E_pi V = E~V - Delta
    ht = _sum((c[j] + D[j]) * (V[j] - Et[j]), j, dv)
    h = _sum(c[j] * (V[j] - (Et[j] - D[j])), j, dv)
    _generic(ht - h, _sum(D[j] * (V[j] - Et[j]), j, dv) - _sum(c[j] * D[j], j, dv),
             "(GK) h~_l - h_l = <Delta, V_l - E~V> - <c, Delta>")
    _generic(h, _sum(c[j] * ((V[j] - Et[j]) + D[j]), j, dv), "(GK) h_l = <c, (V_l - E~V) + Delta>")
    p1, r1, h1, hh, delta = _r("pit_l r_l h_l ht_l delta")
    pt.check_equal(p1 * hh - (p1 * r1) * h1, p1 * (hh - r1 * h1), "(GK) p~_l - p_l = pi~_l (h~_l - (pi_l/pi~_l) h_l)")
    nq = smt.prove("(GK) per key: |pi~ (h~ - r h)| <= pi~ (|h~ - h| + delta |h|)",
                   [delta >= 0, p1 >= 0, sp.Abs(r1 - 1) <= delta], sp.Abs(p1 * (hh - r1 * h1)) <= p1 * (sp.Abs(hh - h1) + delta * sp.Abs(h1)))
    cj, dj, wj = _r("c_j Delta_j W_lj")
    nq += smt.prove("(GK) per column: |Delta_j W_lj - c_j Delta_j| <= |Delta_j| |W_lj| + |c_j| |Delta_j|", [],
                    sp.Abs(dj * wj - cj * dj) <= sp.Abs(dj) * sp.Abs(wj) + sp.Abs(cj) * sp.Abs(dj))
    nq += smt.prove("(GK) per column: |c_j (W_lj + Delta_j)| <= |c_j| (|W_lj| + |Delta_j|)", [],
                    sp.Abs(cj * (wj + dj)) <= sp.Abs(cj) * (sp.Abs(wj) + sp.Abs(dj)))
    # weighted by |X_K,la| pi~_l and summed over l: A_j = sum pi~|X||W_j| <= xk sd_j, B = sum pi~|X| <= xk
    Aj, B, xk, sd, Dl, cx, ca, z = _r("A_j B xk sd_j Dl_j cx_j ct_j zeta")
    col = [delta >= 0, xk >= 0, sd >= 0, Aj >= 0, B >= 0, Aj <= xk * sd, B <= xk, sp.Abs(dj) <= Dl, sp.Abs(cj) <= cx]
    lhs = sp.Abs(dj) * Aj + sp.Abs(cj) * sp.Abs(dj) * B + delta * sp.Abs(cj) * (Aj + sp.Abs(dj) * B)
    term = Dl * (sd + cx) + delta * cx * (sd + Dl)
    nq += smt.prove("(GK) per column j: |D_j| A_j + |c_j||D_j| B + delta |c_j| (A_j + |D_j| B) <= xk rowK_ij", col,
                    lhs <= xk * term)
    nq += smt.prove("(GK, factored) per column j: zeta |c~_j| A_j <= zeta xk |c~_j| sd_j", col + [z >= 0],
                    z * sp.Abs(ca) * Aj <= z * xk * sp.Abs(ca) * sd)
    # the signed sum T_ia = sum_l X_K,la (p~_il - p_il) is a (GQ) sum with X_K,a in place of K_b
    m1, m2, sX, rX, T, Q, C, Kp, Pb = _r("m_1 m_2 sd_X rms_X T_ia rowQ_s C_1 rowK_i P_ib")
    nq += smt.prove("(GK) sd~(X) <= sqrt(E~[X^2]) (Var = E~X^2 - (E~X)^2)",
                    [sX >= 0, rX >= 0, sp.Eq(sX ** 2, m2 - m1 ** 2), sp.Eq(rX ** 2, m2)], sX <= rX)
    tq = [z >= 0, Q >= 0, C >= 0, sX >= 0, sX <= rX, rX <= xk, sp.Abs(T) <= Q * sX + z * C * rX]
    nq += smt.prove("(GK) |T_ia| <= rowQ_s sd~(X_K,a) + zeta C1 sqrt(E~X_K,a^2) <= xk_ia (rowQ_s + zeta C1)", tq,
                    sp.Abs(T) <= xk * (Q + z * C))
    both = [z >= 0, Q >= 0, C >= 0, Kp >= 0, xk >= 0, sp.Abs(T) <= xk * (Kp + z * C), sp.Abs(T) <= xk * (Q + z * C)]
    nq += smt.prove("(GK) |P_ib T_ia| <= |P_ib| xk_ia (min(rowK_i, rowQ_s,i) + zeta C1_i)", both,
                    sp.Abs(Pb * T) <= sp.Abs(Pb) * xk * (sp.Min(Kp, Q) + z * C))
    smt.refute("planted false (factored: zeta C1 dropped from the min): |T_ia| <= xk_ia min(rowK_i + zeta C1_i, rowQ_s,i)",
               both, sp.Abs(T) <= xk * sp.Min(Kp + z * C, Q))
    smt.refute("planted false (|Delta_j| dropped from delta |c_j| (sd_j + |Delta_j|))", col,
               lhs <= xk * (Dl * (sd + cx) + delta * cx * sd))
    smt.refute("planted false (the |c_j||Delta_j| term dropped)", col, lhs <= xk * (Dl * sd + delta * cx * (sd + Dl)))
    return Certificate(claim="fast-gk", title="(GK) the K-gradient error row by row",
                       statement=r"\tilde h_l-h_l=\langle\Delta,V_l-\tilde EV\rangle-\langle c,\Delta\rangle,\ "
                                 r"\sum_l|X_{K,la}||\tilde p_l-p_l|\le \mathrm{xk}_{ia}\sum_j\big[|\Delta_j|(\mathrm{sd}_j+|c_j|)"
                                 r"+\delta|c_j|(\mathrm{sd}_j+|\Delta_j|)\big]",
                       level="generic",
                       method=(f"index normal form (symbolic d_v) for the h identities; SymPy for p~ - p; z3 ({nq} unsat "
                               "queries) per key and per column (A_j <= xk sd_j and B <= xk by fast-a1-means' "
                               "Cauchy-Schwarz), and for the signed sum T_ia as a (GQ) sum and the min; planted false "
                               "variants (terms dropped) refuted"),
                       scope="any d_v (symbolic), any number of keys",
                       result="proved", expressions={"rowK_j": term},
                       on_paper=("summing over the keys and columns (finite sums are monotone) and over the query rows "
                                 "with |P_ib| gives sum_i xk_ia |P_ib| rowK_i",
                                 "|T_ia| <= sum_l |X_K,la| |p~_il - p_il| <= xk_ia rowK_i, and T_ia is a (GQ) sum "
                                 "(fast-gq-paper, fast-gq-factored with the key-side column X_K,a); dG_K,ab = beta "
                                 "sum_i P_ib T_ia, so each row may take the smaller bound"))


@register_proof("fast-gv", title="(GV) |dG_V,aj| <= sum_i (|E~_i X_V,a| |Delta_ij| + delta1 sd~_i(X_V,a) |c_ij|)",
                paper=_paper("(GV)"))
def prove_gv() -> Certificate:
    w, r, c, D = (sp.IndexedBase(s) for s in ("pit", "r", "c", "Delta"))      # pi_il = pit_il r_il, c~ = c + Delta
    _generic(_sum(w[i] * (c[i] + D[i]) - w[i] * r[i] * c[i], i, L),
             _sum(w[i] * (D[i] + (1 - r[i]) * c[i]), i, L),
             "(GV) sum_i (pi~_il c~_ij - pi_il c_ij) = sum_i pi~_il (Delta_ij + (1 - r_il) c_ij)")
    W, X = sp.IndexedBase("pit"), sp.IndexedBase("X")                        # W[i, l] = pi~_il, X_l = X_V,la
    R = sp.IndexedBase("r")
    lhs = _sum(X[l] * _sum(W[i, l] * (c[i] + D[i]) - W[i, l] * R[i, l] * c[i], i, L), l)
    Et = lambda ii: _sum(W[ii, l] * X[l], l)                                  # noqa: E731
    Ep = lambda ii: _sum(W[ii, l] * R[ii, l] * X[l], l)                      # noqa: E731
    _generic(lhs, _sum(D[i] * Et(i) + c[i] * (Et(i) - Ep(i)), i, L),
             "(GV) sum_l X_l (f~^T c~ - f^T c)_l = sum_i [Delta_i E~_i X + c_i (E~_i X - E_pi,i X)]")
    d1, dj, cj, et, ep, sX, m1, m2, xv = _r("delta_1 Delta_ij c_ij Et_i Ep_i sd_X m_1 m_2 xv_ia")
    row = [d1 >= 0, sX >= 0, sp.Abs(et - ep) <= d1 * sX]
    nq = smt.prove("(GV) per row: |Delta E~X + c (E~X - E_pi X)| <= |E~X| |Delta| + delta1 sd~(X) |c| (fast-a1-means)",
                   row, sp.Abs(dj * et + cj * (et - ep)) <= sp.Abs(et) * sp.Abs(dj) + d1 * sX * sp.Abs(cj))
    nq += smt.prove("(GV) |E~X| <= sqrt(E~X^2) (Var >= 0)", [xv >= 0, sp.Eq(xv ** 2, m2), m2 - m1 ** 2 >= 0],
                    sp.Abs(m1) <= xv)
    nq += smt.prove("(GV) both factors <= xv: |E~X| |Delta| + delta1 sd |c| <= xv (|Delta| + delta1 |c|)",
                    [d1 >= 0, sX >= 0, sp.Abs(et) <= xv, sX <= xv],
                    sp.Abs(et) * sp.Abs(dj) + d1 * sX * sp.Abs(cj) <= xv * (sp.Abs(dj) + d1 * sp.Abs(cj)))
    smt.refute("planted false (sd~(X) in place of |E~X| on Delta)", row,
               sp.Abs(dj * et + cj * (et - ep)) <= sX * sp.Abs(dj) + d1 * sX * sp.Abs(cj))
    smt.refute("planted false (the residual term dropped): |Delta E~X + c (E~X - E_pi X)| <= |E~X| |Delta|", row,
               sp.Abs(dj * et + cj * (et - ep)) <= sp.Abs(et) * sp.Abs(dj))
    return Certificate(claim="fast-gv", title="(GV) the V-gradient error",
                       statement=r"\sum_lX_{la}(\tilde f^\top\tilde c-f^\top c)_{lj}=\sum_i\big[\Delta_{ij}\tilde E_iX_a+"
                                 r"c_{ij}(\tilde E_iX_a-E_{\pi,i}X_a)\big],\ |dG_{V,aj}|\le\sum_i\big(|\tilde E_iX_a||\Delta_{ij}|"
                                 r"+\delta_1\tilde{\mathrm{sd}}_i(X_a)|c_{ij}|\big)",
                       level="generic",
                       method=(f"index normal form over symbolic numbers of query rows L and keys n; z3 ({nq} unsat "
                               "queries) per row (|E~X - E_pi X| <= delta1 sd~(X) by fast-a1-means) and for the "
                               "factors' common bound xv; planted false variants refuted"),
                       scope="any L, n (symbolic)",
                       result="proved", expressions={"bound": sp.Abs(et) * sp.Abs(dj) + d1 * sX * sp.Abs(cj)},
                       on_paper=("summing the per-row bound over i (finite sums are monotone)",
                                 "sd~(X) <= sqrt(E~X^2) by fast-gk"))


if __name__ == "__main__":
    raise SystemExit(run_main(__name__))
