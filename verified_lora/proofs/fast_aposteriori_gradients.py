"""SymPy and z3 proofs of the per-gradient lemmas of the fast path's a-posteriori certificate.

The lemmas are stated in the docstring of ``verified_lora/fast/aposteriori.py`` (labels (GQ, paper),
(GQ, factored), (GK), (GV)); they build on the moment lemmas (A0)-(A2) of
``fast_aposteriori_moments.py``. Identities are decided by the index normal form at symbolic sizes
(number of keys ``n``, value width ``d_v``, query rows ``L``), with the normalisation ``sum pi = 1``
carried as an explicit term; inequalities by z3, per key / per column (then summed: finite sums are
monotone, stated on paper) and for small fixed sizes directly; planted false variants are refuted.

* ``fast-gq-paper``: ``sum_l p_l K_l = Cov_pi(<c, V>, K)``; the split of ``Cov~(<c~, V>, K) - Cov_pi(<c, V>, K)``;
  ``Var~(<a, V>) = sum_jk a_j a_k Cov~(V_j, V_k) <= (sum_j |a_j| sd_j)^2``; the bound ``rowQ``.
* ``fast-gq-factored``: ``P'/P - 1 = (eta_D - eta_A)/(1 + eta_A)``, ``|zeta_l| <= (eps_A + eps_D)/(1 - eps_A)``,
  ``|sum_l pi~_l zeta_l h~_l K_lb| <= zeta C1 sqrt(E~[K_b^2])`` (and not with ``sd~(K_b)``: refuted).
* ``fast-gk``: ``h~_l - h_l = <Delta, V_l - E~V> - <c, Delta>``, ``|p~_l - p_l| <= pi~_l (|h~_l - h_l| + delta |h_l|)``,
  the per-column bound of ``rowK`` and its factored term.
* ``fast-gv``: ``f~^T c~ - f^T c = sum_i pi~_il (Delta_i + (1 - pi_il/pi~_il) c_i)`` and its bound.

Run: ``python -m verified_lora.proofs.fast_aposteriori_gradients``.
"""

from __future__ import annotations

import sympy as sp

from verified_lora.symbolic import prooftools as pt
from verified_lora.symbolic import smt
from verified_lora.symbolic.certificates import Certificate, ProofFailure, register_proof, run_main

PAPER = {"iclr2025": "no lemma of the paper: the library's a-posteriori certificate of the almost-linear "
                     "gradient of Section 3 (Theorem 3.1's algorithm); docs/math.md section 4",
         "arxiv_v2": "same (not a paper claim)"}

n = sp.Symbol("n", integer=True, positive=True)          # number of keys
dv = sp.Symbol("d_v", integer=True, positive=True)
L = sp.Symbol("L", integer=True, positive=True)
l, m, j, k, i = sp.symbols("l m j k i", integer=True, nonnegative=True)


def _r(names: str):
    return sp.symbols(names, real=True)


def _sum(expr, var, size=n):
    return sp.Sum(expr, (var, 0, size - 1))


def _generic(lhs, rhs, what: str) -> None:
    if not pt.sums_equal(lhs, rhs, what):
        raise ProofFailure(f"{what}: not shown at symbolic size")


def _paper(label: str) -> dict:
    return dict(PAPER, module=f"verified_lora/fast/aposteriori.py {label}")


def _cov(w, x, y):
    """Cov_w(x, y) = sum_l w_l (x_l - E_w x)(y_l - E_w y); x, y: functions of the key index."""
    ex, ey = _sum(w[m] * x(m), m), _sum(w[m] * y(m), m)
    return _sum(w[l] * (x(l) - ex) * (y(l) - ey), l)


@register_proof("fast-gq-paper", title="(GQ, paper) sum_l (p~_l - p_l) K_lb <= rowQ_ib", paper=_paper("(GQ, paper)"))
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
    delta, sd, dj, cj, caj = _r("delta sd_j Delta_j c_j ct_j")
    col = [delta >= 0, sd >= 0, sp.Abs(dj) <= delta * sd, sp.Abs(cj) <= sp.Abs(caj) + sp.Abs(dj)]
    nq += smt.prove("(GQ) per column: |Delta_j| sd_j <= delta sd_j^2", col, sp.Abs(dj) * sd <= delta * sd ** 2)
    nq += smt.prove("(GQ) per column: |c_j| sd_j <= |c~_j| sd_j + delta sd_j^2", col,
                    sp.Abs(cj) * sd <= sp.Abs(caj) * sd + delta * sd ** 2)
    T1, T2, A, B, sk, S2, C1 = _r("T_1 T_2 A B sk_b S_2 C_1")
    fin = [delta >= 0, sk >= 0, S2 >= 0, C1 >= 0, A >= 0, B >= 0, sp.Abs(T1) <= sk * A, A <= delta * S2,
           sp.Abs(T2) <= delta * (1 + delta) * B * sk, B <= C1 + delta * S2]
    rowQ = sk * (delta * S2 + delta * (1 + delta) * (C1 + delta * S2))
    nq += smt.prove("(GQ) |T1 + T2| <= sk_b [delta S2 + delta (1 + delta)(C1 + delta S2)]", fin, sp.Abs(T1 + T2) <= rowQ)
    smt.refute("planted false ((1 + delta) dropped): rowQ with delta (C1 + delta S2)", fin,
               sp.Abs(T1 + T2) <= sk * (delta * S2 + delta * (C1 + delta * S2)))
    smt.refute("planted false (|c_j| <= |c~_j| used without + |Delta_j|): rowQ with delta (1 + delta) C1", fin,
               sp.Abs(T1 + T2) <= sk * (delta * S2 + delta * (1 + delta) * C1))
    smt.refute("planted false: sd~(<a, V>) <= max(|a_1| sd_1, |a_2| sd_2)", mink,
               sv <= sp.Max(sp.Abs(a1) * s1, sp.Abs(a2) * s2))
    return Certificate(claim="fast-gq-paper", title="(GQ, paper) the Q-gradient error through covariances",
                       statement=r"\sum_l p_lK_l=\mathrm{Cov}_\pi(\langle c,V\rangle,K),\ "
                                 r"\Big|\sum_l(\tilde p_l-p_l)K_{lb}\Big|\le \mathrm{sk}_b\big[\delta S_2+\delta(1+\delta)"
                                 r"(C_1+\delta S_2)\big]",
                       level="generic",
                       method=(f"index normal form at symbolic n and d_v for the covariance identity, the split by "
                               f"bilinearity and the variance of <a, V>; z3 ({nq} unsat queries incl. denominators) for "
                               "Minkowski at d_v = 2, the per-column steps and the final combination "
                               "(|T1| = |Cov~(<Delta,V>,K_b)| <= sk_b sum |Delta_j| sd_j, |T2| by fast-a2-covariances); "
                               "planted false variants refuted"),
                       scope="any n, d_v (symbolic) for the identities; Minkowski at d_v = 2 by z3",
                       result="proved", expressions={"rowQ": rowQ},
                       on_paper=("Minkowski for any d_v: Var~(<a,V>) = sum_jk a_j a_k Cov~(V_j,V_k) (proved at symbolic "
                                 "d_v) and |Cov~(V_j,V_k)| <= sd_j sd_k (fast-a1-means) give (sum_j |a_j| sd_j)^2",
                                 "summing the per-column inequalities over j gives A <= delta S2 and B <= C1 + delta S2"))


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
                                 "sqrt(E~K_b^2) (fast-a1-means) and E~h~^2 = Var~(<c~,V>) <= C1^2 (fast-gq-paper)",))


@register_proof("fast-gk", title="(GK) sum_l |X_K,la| |p~_l - p_l| <= xk_ia rowK_i", paper=_paper("(GK)"))
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
                               "Cauchy-Schwarz); planted false variants (terms dropped) refuted"),
                       scope="any d_v (symbolic), any number of keys",
                       result="proved", expressions={"rowK_j": term},
                       on_paper=("summing over the keys and columns (finite sums are monotone) and over the query rows "
                                 "with |P_ib| gives sum_i xk_ia |P_ib| rowK_i",))


@register_proof("fast-gv", title="(GV) f~^T c~ - f^T c = sum_i pi~_il (Delta_i + (1 - pi_il/pi~_il) c_i)",
                paper=_paper("(GV)"))
def prove_gv() -> Certificate:
    w, r, c, D = (sp.IndexedBase(s) for s in ("pit", "r", "c", "Delta"))      # pi_il = pit_il r_il, c~ = c + Delta
    _generic(_sum(w[i] * (c[i] + D[i]) - w[i] * r[i] * c[i], i, L),
             _sum(w[i] * (D[i] + (1 - r[i]) * c[i]), i, L),
             "(GV) sum_i (pi~_il c~_ij - pi_il c_ij) = sum_i pi~_il (Delta_ij + (1 - r_il) c_ij)")
    p1, r1, dj, cj, delta, x, Q, xv, B = _r("pit_il r_il Delta_ij c_ij delta X_la Q_i xv_ia B")
    key = [delta >= 0, p1 >= 0, sp.Abs(r1 - 1) <= delta]
    nq = smt.prove("(GV) per (i, l): |pi~ (Delta + (1 - r) c)| <= pi~ (|Delta| + delta |c|)", key,
                   sp.Abs(p1 * (dj + (1 - r1) * cj)) <= p1 * (sp.Abs(dj) + delta * sp.Abs(cj)))
    nq += smt.prove("(GV) weighted by |X_V,la| and summed (B = sum_l pi~ |X| <= xv): B Q <= xv Q",
                    [Q >= 0, B >= 0, B <= xv], B * Q <= xv * Q)
    smt.refute("planted false ((1 - r) c dropped): |pi~ (Delta + (1 - r) c)| <= pi~ |Delta|", key,
               sp.Abs(p1 * (dj + (1 - r1) * cj)) <= p1 * sp.Abs(dj))
    return Certificate(claim="fast-gv", title="(GV) the V-gradient error",
                       statement=r"\tilde f^\top\tilde c-f^\top c=\sum_i\tilde\pi_{il}\big(\Delta_i+(1-\pi_{il}/\tilde\pi_{il})c_i\big),\ "
                                 r"|dG_{V,aj}|\le\sum_i\mathrm{xv}_{ia}(|\Delta_{ij}|+\delta|c_{ij}|)",
                       level="generic",
                       method=(f"index normal form over a symbolic number of query rows L; z3 ({nq} unsat queries) per "
                               "(i, l) and for the weighted sum (sum_l pi~_il |X_V,la| <= xv_ia by fast-a1-means); a "
                               "planted false variant refuted"),
                       scope="any L (symbolic), any number of keys",
                       result="proved", expressions={"bound": p1 * (sp.Abs(dj) + delta * sp.Abs(cj))},
                       on_paper=("summing the per-(i, l) bound over l with weights |X_V,la| and over i (finite sums "
                                 "are monotone)",))


if __name__ == "__main__":
    raise SystemExit(run_main(__name__))
