"""SymPy and z3 proofs of the adapter-chain lemmas of the fast path's a-posteriori certificate.

The lemmas are stated in the docstring of ``verified_lora/fast/adapter_chain.py`` (labels (AQ), (BQ),
(AK), (BK), (AV), (BV)); they move the adapter factors inside the per-row lemmas of
``verified_lora/fast/aposteriori.py`` (certificates ``fast-gq-paper``, ``fast-gq-factored``, ``fast-gk``,
``fast-gv``, ``fast-a1-means``). Identities (the chain rule moved inside the sums) are decided by the
index normal form at symbolic sizes (query rows ``L``, keys ``n``, ``d_model``, ``d``, ``d_v``); the
inequalities by z3 per term (then summed: finite sums are monotone, stated on paper); planted false
variants, among them the former wording of (AK), are refuted.

* ``fast-chain-q`` (AQ), (BQ): ``B^T X_Q^T E = (X_Q B)^T E``, ``E A^T = sum_l (p^fac - p) (K A^T)``, ``E~[K A^T] =
  (E~K) A^T``; ``|X B| <= |fl(X B)| + gamma |X| |B|``; the moments of ``u = K A^T`` from ``u~ = fl(K A^T)``.
* ``fast-chain-k`` (AK), (BK): ``B^T X_K^T F = sum_i P_ib (sum_l (X_K B)_lr (p^fac - p)_il)``, the (BK) regrouping;
  the signed key-side sum bounded by ``sqrt(E~w^2) min(rowK, rowQ_s + zeta C1)``; ``|P^ A^T|`` from any float ``P'``.
* ``fast-chain-v`` (AV), (BV): ``E~[X_V B] = E~[X_V] B``, ``c~' - c' = E~u - E_pi u`` for ``u = V A^T``, the
  (BV) regrouping of ``Z A^T``; the bounds with ``|E~w|``, ``sd~(w)``, ``delta1 sd~(u)``.

Run: ``python -m verified_lora.proofs.fast_adapter_chain``.
"""

from __future__ import annotations

import sympy as sp

from verified_lora.symbolic import prooftools as pt
from verified_lora.symbolic import smt
from verified_lora.symbolic.certificates import Certificate, register_proof, run_main


L = sp.Symbol("L", integer=True, positive=True)          # query rows
n = sp.Symbol("n", integer=True, positive=True)          # keys
dm = sp.Symbol("d_model", integer=True, positive=True)
d = sp.Symbol("d", integer=True, positive=True)
dv = sp.Symbol("d_v", integer=True, positive=True)
i, l, a, b, j = sp.symbols("i l a b j", integer=True, nonnegative=True)
r = sp.Symbol("r", integer=True, nonnegative=True)       # a fixed adapter index (free)


_r = pt.real_symbols


_sum = pt.finite_sum


_generic = pt.require_sums_equal


def _paper(label: str) -> dict:
    return pt.a_posteriori_paper(f"verified_lora/fast/adapter_chain.py {label}")


def _per_term_product(nq_name: str) -> int:
    """``|fl(x y)| + gamma |x| |y| + e |y|`` bounds the exact ``|x' y|`` when ``|x' - x| <= e`` (one term)."""
    x, xe, y, F, g, e = _r("x x_exact y F gamma e")
    return smt.prove(nq_name, [g >= 0, e >= 0, sp.Abs(xe - x) <= e, sp.Abs(F - x * y) <= g * sp.Abs(x) * sp.Abs(y)],
                     sp.Abs(xe * y) <= sp.Abs(F) + g * sp.Abs(x) * sp.Abs(y) + e * sp.Abs(y))


def _minkowski_rms() -> int:
    """RMS under pi~ is a norm: sqrt(E~(x + y)^2) <= sqrt(E~x^2) + sqrt(E~y^2) (Cauchy-Schwarz on E~[x y])."""
    ra, rb, rs, xy = _r("rms_x rms_y rms_xy E_xy")
    hy = [ra >= 0, rb >= 0, rs >= 0, xy ** 2 <= ra ** 2 * rb ** 2, sp.Eq(rs ** 2, ra ** 2 + 2 * xy + rb ** 2)]
    return smt.prove("Minkowski for the RMS: sqrt(E~(x + y)^2) <= sqrt(E~x^2) + sqrt(E~y^2)", hy, rs <= ra + rb)


@register_proof("fast-chain-q", title="(AQ), (BQ) the Q adapter chain through |X_Q B| and the key column K A^T",
                paper=_paper("(AQ), (BQ)"))
def prove_chain_q() -> Certificate:
    B, X, E, K, A, p = (sp.IndexedBase(s) for s in ("B", "X", "E", "K", "A", "p"))
    _generic(_sum(B[a, r] * _sum(X[i, a] * E[i, b], i, L), a, dm), _sum(_sum(X[i, a] * B[a, r], a, dm) * E[i, b], i, L),
             "(AQ) (B^T X_Q^T E)_rb = ((X_Q B)^T E)_rb")
    _generic(_sum(_sum(p[l] * K[l, b], l, n) * A[r, b], b, d), _sum(p[l] * _sum(K[l, b] * A[r, b], b, d), l, n),
             "(BQ) (E A^T)_ir = sum_l (p^fac_il - p_il) (K A^T)_lr (and E~[K A^T] = (E~K) A^T, p = pi~)")
    x, y, w, F, g, s, be, Ei, W, rQ = _r("x y w F gamma s beta E_ib W rowQ_ib")
    nq = smt.prove("(AQ) |X B| <= |fl(X B)| + gamma |X| |B|", [g >= 0, sp.Abs(F - w) <= g * W], sp.Abs(w) <= sp.Abs(F) + g * W)
    nq += smt.prove("(AQ) per term |x y| <= |x| |y| (so never above |s| |B|^T |dG_Q| up to the gamma term)", [],
                    sp.Abs(x * y) <= sp.Abs(x) * sp.Abs(y))
    nq += smt.prove("(AQ) per term: |s beta w E_ib| <= |s| |beta| W rowQ_ib", [sp.Abs(w) <= W, sp.Abs(Ei) <= rQ],
                    sp.Abs(s * be * w * Ei) <= sp.Abs(s) * sp.Abs(be) * W * rQ)
    smt.refute("planted false (the float product taken as exact): |X B| <= |fl(X B)|", [g >= 0, sp.Abs(F - w) <= g * W],
               sp.Abs(w) <= sp.Abs(F))
    # (BQ): moments of u = K A^T from the computed u~ = fl(K A^T)
    sA, sB, sC, cAB = _r("sd_x sd_y sd_xy C_xy")
    nq += smt.prove("(BQ) sd~ is a seminorm: sd~(u) <= sd~(u~) + sd~(u - u~)",
                    [sA >= 0, sB >= 0, sC >= 0, cAB ** 2 <= sA ** 2 * sB ** 2, sp.Eq(sC ** 2, sA ** 2 + 2 * cAB + sB ** 2)],
                    sC <= sA + sB)
    q, x1, x2, M = _r("q x_1 x_2 M")
    nq += smt.prove("(BQ) sd~ <= rms <= max: q x1^2 + (1 - q) x2^2 <= M^2 for |x| <= M (2 keys)",
                    [q >= 0, q <= 1, sp.Abs(x1) <= M, sp.Abs(x2) <= M], q * x1 ** 2 + (1 - q) * x2 ** 2 <= M ** 2)
    nq += _minkowski_rms()
    nq += _per_term_product("(BQ) E~u = (E~K) A^T: |E~u~ - fl(k1 A^T)| <= e_k |A| + gamma |k1| |A| + e_u (one term, e_u = 0)")
    C, z, su, ru, T = _r("C_1 zeta sd_u rms_u T_ir")
    nq += smt.prove("(BQ) |(E A^T)_ir| <= rowQ_s sd~(u_r) + zeta C1 sqrt(E~u_r^2) (fast-gq-paper/-factored with K A^T)",
                    [z >= 0, C >= 0, rQ >= 0, su >= 0, ru >= 0, sp.Abs(T) <= rQ * su + z * C * ru],
                    sp.Abs(s * be * x * T) <= sp.Abs(s) * sp.Abs(be) * sp.Abs(x) * (rQ * su + z * C * ru))
    return Certificate(claim="fast-chain-q", title="(AQ), (BQ) the Q adapter chain row by row",
                       statement=r"B^\top X_Q^\top E=(X_QB)^\top E,\ (EA^\top)_{ir}=\sum_l(p^{fac}_{il}-p_{il})(KA^\top)_{lr},"
                                 r"\ |(EA^\top)_{ir}|\le\mathrm{rowQ}_{s,i}\tilde{\mathrm{sd}}_i(u_r)+\zeta C_{1,i}\sqrt{\tilde E_i[u_r^2]}",
                       level="generic",
                       method=(f"index normal form at symbolic L, n, d_model, d for the chain rule moved inside the sums; "
                               f"z3 ({nq} unsat queries) per term, for the seminorm, RMS Minkowski and RMS <= max steps; "
                               "a planted false variant refuted"),
                       scope="any L, n, d_model, d (symbolic); per term for the inequalities",
                       result="proved", expressions={"bq": rQ * su + z * C * ru},
                       on_paper=("(GQ) holds for any key-side column in place of K_b (fast-gq-paper's identities are for "
                                 "an arbitrary K), here u_r = (K A^T)_r",
                                 "summing the per-term bounds over i (finite sums are monotone); Higham's gamma_n for "
                                 "the products (fast-rounding-gamma)",
                                 "sd~(u - u~) <= sqrt(E~(u - u~)^2) <= max_l |u_l - u~_l| <= e_u; the caps "
                                 "sum_b |A_rb| sk_b and sum_b |A_rb| sqrt(E~K_b^2) by the seminorm / Minkowski steps"))


@register_proof("fast-chain-k", title="(AK), (BK) the K adapter chain through (X_K B) and P A^T",
                paper=_paper("(AK), (BK)"))
def prove_chain_k() -> Certificate:
    B, X, p, P, A = (sp.IndexedBase(s) for s in ("B", "X", "p", "P", "A"))
    F = lambda ll, bb: _sum(p[i, ll] * P[i, bb], i, L)                     # noqa: E731
    _generic(_sum(B[a, r] * _sum(X[l, a] * F(l, b), l, n), a, dm),
             _sum(P[i, b] * _sum(_sum(X[l, a] * B[a, r], a, dm) * p[i, l], l, n), i, L),
             "(AK) (B^T X_K^T F)_rb = sum_i P_ib sum_l (X_K B)_lr (p^fac_il - p_il)")
    _generic(_sum(_sum(X[l, a] * F(l, b), l, n) * A[r, b], b, d),
             _sum(_sum(P[i, b] * A[r, b], b, d) * _sum(X[l, a] * p[i, l], l, n), i, L),
             "(BK) (X_K^T F A^T)_ar = sum_i (P A^T)_ir sum_l X_K,la (p^fac_il - p_il)")
    S, Sabs, rw, sw, Kp, Q, C, z, Pb = _r("S_i Sabs_i rms_w sd_w rowK_i rowQ_s C_1 zeta P_ib")
    hy = [rw >= 0, sw >= 0, sw <= rw, Kp >= 0, Q >= 0, C >= 0, z >= 0, sp.Abs(S) <= Sabs, Sabs <= rw * (Kp + z * C),
          sp.Abs(S) <= Q * sw + z * C * rw]
    nq = smt.prove("(AK) |P_ib sum_l w_l (p^fac - p)_il| <= |P_ib| sqrt(E~w^2) (min(rowK_i, rowQ_s,i) + zeta C1_i)", hy,
                   sp.Abs(Pb * S) <= sp.Abs(Pb) * rw * (sp.Min(Kp, Q) + z * C))
    smt.refute("planted false (adapter_chain (AK)'s former wording): the absolute sum sum_l |w_l| |p^fac - p| <= "
               "sqrt(E~w^2) min(rowK_i, rowQ_s,i + zeta C1_i)", hy, Sabs <= rw * (sp.Min(Kp, Q) + z * C))
    nq += _minkowski_rms()
    Pp, Ph, Pe, av, Fp, g, E = _r("Pp_ib Ph_ib P_ib A_rb F gamma E_P")
    nq += smt.prove("(BK) one term: |P^ A| <= |fl(P' A)| + gamma |P'| |A| + 2 E_P |A| (|P' - P|, |P^ - P| <= E_P)",
                    [g >= 0, E >= 0, sp.Abs(Pp - Pe) <= E, sp.Abs(Ph - Pe) <= E, sp.Abs(Fp - Pp * av) <= g * sp.Abs(Pp) * sp.Abs(av)],
                    sp.Abs(Ph * av) <= sp.Abs(Fp) + g * sp.Abs(Pp) * sp.Abs(av) + 2 * E * sp.Abs(av))
    smt.refute("planted false (E_P once): |P^ A| <= |fl(P' A)| + gamma |P'| |A| + E_P |A|",
               [g >= 0, E >= 0, sp.Abs(Pp - Pe) <= E, sp.Abs(Ph - Pe) <= E, sp.Abs(Fp - Pp * av) <= g * sp.Abs(Pp) * sp.Abs(av)],
               sp.Abs(Ph * av) <= sp.Abs(Fp) + g * sp.Abs(Pp) * sp.Abs(av) + E * sp.Abs(av))
    xk, T, PA = _r("xk_ia T_ia PA_ir")
    nq += smt.prove("(BK) per row: |(P A^T)_ir T_ia| <= PA_ir xk_ia rowK_i",
                    [xk >= 0, Kp >= 0, sp.Abs(T) <= xk * Kp, sp.Abs(Pb) <= PA], sp.Abs(Pb * T) <= PA * xk * Kp)
    return Certificate(claim="fast-chain-k", title="(AK), (BK) the K adapter chain row by row",
                       statement=r"(B^\top X_K^\top F)_{rb}=\sum_iP_{ib}\sum_l(X_KB)_{lr}(p^{fac}-p)_{il},\ "
                                 r"\Big|\sum_lw_l(p^{fac}-p)_{il}\Big|\le\sqrt{\tilde E_i[w^2]}\,"
                                 r"\big(\min(\mathrm{rowK}_i,\mathrm{rowQ}_{s,i})+\zeta C_{1,i}\big)",
                       level="generic",
                       method=(f"index normal form at symbolic L, n, d_model, d for the regroupings; z3 ({nq} unsat "
                               "queries) for the signed key-side sum (GK's absolute sum and GQ's covariance form), RMS "
                               "Minkowski, |P^ A^T| from any float P' and the per-row terms; planted false variants "
                               "refuted, among them the absolute sum under the min"),
                       scope="any L, n, d_model, d (symbolic); per term for the inequalities",
                       result="proved", expressions={"ak": rw * (sp.Min(Kp, Q) + z * C)},
                       on_paper=("(GK) weighted by |w_l| (Cauchy-Schwarz under pi~_i, fast-gk) gives the absolute sum "
                                 "<= sqrt(E~w^2) (rowK_i + zeta C1_i); (GQ) with the key-side column w gives the signed sum "
                                 "<= rowQ_s sd~(w) + zeta C1 sqrt(E~w^2) (fast-gq-paper, fast-gq-factored)",
                                 "rms(X B) <= rms(fl(X B)) + e_u (Minkowski), <= sum_a |B_ar| rms(X_a) and <= max_l "
                                 "(|X| |B|)_lr; summing per-term bounds over i, b (finite sums are monotone)"))


@register_proof("fast-chain-v", title="(AV), (BV) the V adapter chain through (X_V B) and V A^T",
                paper=_paper("(AV), (BV)"))
def prove_chain_v() -> Certificate:
    X, B, w, pit, pi, V, A, Y = (sp.IndexedBase(s) for s in ("X", "B", "pit", "pit", "pi", "V", "A", "Y"))
    _generic(_sum(w[l] * _sum(X[l, a] * B[a, r], a, dm), l, n), _sum(_sum(w[l] * X[l, a], l, n) * B[a, r], a, dm),
             "(AV) E~[(X_V B)_r] = sum_a E~[X_V,a] B_ar")
    ct = _sum((_sum(pit[l] * V[l, j], l, n) - Y[j]) * A[r, j], j, dv)
    cx = _sum((_sum(pi[l] * V[l, j], l, n) - Y[j]) * A[r, j], j, dv)
    u = lambda ll: _sum(V[ll, j] * A[r, j], j, dv)                          # noqa: E731
    _generic(ct - cx, _sum(pit[l] * u(l), l, n) - _sum(pi[l] * u(l), l, n),
             "(BV) c~'_r - c'_r = ((E~V - Y) - (E_pi V - Y)) A^T = E~u_r - E_pi u_r, u = V A^T")
    W, P, C, Cx = (sp.IndexedBase(s) for s in ("pit", "pi", "ct", "c"))
    _generic(_sum(_sum(W[i, l] * C[i, j] - P[i, l] * Cx[i, j], i, L) * A[r, j], j, dv),
             _sum(W[i, l] * _sum(C[i, j] * A[r, j], j, dv) - P[i, l] * _sum(Cx[i, j] * A[r, j], j, dv), i, L),
             "(BV) (Z A^T)_lr = sum_i (pi~_il c~'_ir - pi_il c'_ir), c' = c A^T")
    nq = _per_term_product("(AV) |E~w| <= |fl(x1 B)| + gamma |x1| |B| + e1 |B| (one term)")
    d1, Dl, cj, et, ee, sX, su, cta, xv = _r("delta_1 Deltap_ir cp_ir Et_i dE_i sd_X sd_u ctp_ir xv")
    bv = [d1 >= 0, sX >= 0, su >= 0, cta >= 0, sp.Abs(Dl) <= d1 * su, sp.Abs(cj) <= cta + d1 * su, sp.Abs(ee) <= d1 * sX]
    bound = sp.Abs(et) * d1 * su + sX * d1 * (cta + d1 * su)
    nq += smt.prove("(BV) per row: |Delta' E~X + c' (E~X - E_pi X)| <= |E~X| delta1 sd~(u) + sd~(X) delta1 (|c~'| + delta1 sd~(u))",
                    bv, sp.Abs(Dl * et + cj * ee) <= bound)
    smt.refute("planted false (|c'| <= |c~'| used): the delta1^2 sd~(u) term dropped", bv,
               sp.Abs(Dl * et + cj * ee) <= sp.Abs(et) * d1 * su + sX * d1 * cta)
    nq += smt.prove("(AV), (BV) both factors <= xv: |E~X| t1 + sd~(X) t2 <= xv (t1 + t2)",
                    [sp.Abs(et) <= xv, sX <= xv, su >= 0, d1 >= 0, sX >= 0, cta >= 0],
                    sp.Abs(et) * d1 * su + sX * d1 * (cta + d1 * su) <= xv * (d1 * su + d1 * (cta + d1 * su)))
    nq += _per_term_product("(BV) |c~ A^T| <= |fl(fl(v1 - Y) A^T)| + gamma |fl(v1 - Y)| |A| + e_c |A| (one term)")
    return Certificate(claim="fast-chain-v", title="(AV), (BV) the V adapter chain row by row",
                       statement=r"\tilde E[X_VB]=\tilde E[X_V]B,\ \tilde c'-c'=\tilde Eu-E_\pi u\ (u=VA^\top),\ "
                                 r"|d(dB_V)_{ar}|\le|s|\sum_i\big(|\tilde E_iX_{V,a}|\delta_1\tilde{\mathrm{sd}}_i(u_r)+"
                                 r"\tilde{\mathrm{sd}}_i(X_{V,a})\delta_1(|\tilde c'_{ir}|+\delta_1\tilde{\mathrm{sd}}_i(u_r))\big)",
                       level="generic",
                       method=(f"index normal form at symbolic L, n, d_model, d_v for the linearity steps; z3 ({nq} unsat "
                               "queries) per row and per term; a planted false variant refuted"),
                       scope="any L, n, d_model, d_v (symbolic); per term for the inequalities",
                       result="proved", expressions={"bv": bound},
                       on_paper=("(AV) is fast-gv with the key-side column w = (X_V B)_r in place of X_V,a (its identity "
                                 "holds for any X); sd~(w) <= sum_a |B_ar| sd~(X_V,a) (seminorm, fast-gq-paper)",
                                 "(BV): |Delta'_ir| <= delta1 sd~_i(u_r) is fast-a1-means with F = u_r; the regrouping "
                                 "then is fast-gv's identity with c' in place of c",
                                 "summing per-term bounds over i (finite sums are monotone)"))


if __name__ == "__main__":
    raise SystemExit(run_main(__name__))
