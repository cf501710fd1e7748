"""SymPy and z3 proofs of the algebraic steps of the fast path's rounding bound.

The lemmas are stated in the docstring of ``verified_lora/fast/rounding_bound.py`` (steps (1) core
rounding, (2) the score perturbation ``eps -> eps'``, (3) inputs; ``balance_scale``) and in
``verified_lora/bounds/_rigorous.py`` (the inflation constant of ``inflate``); Higham's ``gamma_n``
calculus (N. J. Higham, *Accuracy and Stability of Numerical Algorithms*, 2nd ed., Lemmas 3.1 and
3.3) is proved at symbolic ``n``. Every inequality is decided by z3 over all rounding factors
``|theta| <= u``; planted false variants must be refuted.

* ``fast-rounding-gamma``: ``gamma_n = n u / (1 - n u)`` is monotone, ``gamma_a + gamma_b + gamma_a gamma_b <= gamma_{a+b}``,
  the induction step of Lemma 3.1 (multiplication and division by ``1 + delta``), and the inflation
  constant ``(1 + 2 (m + 2) u)(1 - u) >= (1 - u)^{-m}`` for ``(m + 1) u <= 1/100`` (Bernoulli).
* ``fast-rounding-core`` (step (1)): the normaliser's ``delta_D`` and margin ``Dlo``, ``fV^ - fV`` and its bound
  ``2 delta_D / (1 - delta_D) Vmag``, the bounds of ``c^``, ``r^``, ``y^``, linear outputs, the per-row
  margin, the moment error ``e_rel`` and the output conversion ``u / (1 - u) <= u (1 + 4u)``.
* ``fast-rounding-inputs`` (steps (2), (3)): ``eps' = (1 + eps_A)(1 + 2 sigma) - 1``; the change of ``h_l``
  under ``V^ - V`` and its bound ``nV_i``; the three-step triangle inequality.
* ``fast-rounding-once``: the induction steps of ``_rigorous`` 4. (a non-negative round-to-nearest expression
  raised once: sums, products and quotients by input floats with their underflow terms) and the two-pass
  ``inflate`` of ``_rigorous`` 2.
* ``fast-balancing``: the power-of-two balancing ``P c``, ``K / c`` leaves scores, kernel magnitudes
  and the scaled-back gradient unchanged.

Run: ``python -m verified_lora.proofs.fast_rounding_bound``.
"""

from __future__ import annotations

import sympy as sp

from verified_lora.symbolic import prooftools as pt
from verified_lora.symbolic import smt
from verified_lora.symbolic.certificates import Certificate, ProofFailure, register_proof, run_main

PAPER = {"iclr2025": "no lemma of the paper: the library's rounding bound for the almost-linear gradient of "
                     "Section 3 (Theorem 3.1's algorithm)",
         "arxiv_v2": "same (not a paper claim)"}

dv = sp.Symbol("d_v", integer=True, positive=True)
j = sp.Symbol("j", integer=True, nonnegative=True)


_r = pt.real_symbols


def _paper(where: str) -> dict:
    return dict(PAPER, module=where)


def _gamma(nn, u):
    return nn * u / (1 - nn * u)


@register_proof("fast-rounding-gamma", title="gamma_n calculus (Higham 3.1, 3.3) and the inflation constant",
                paper=_paper("verified_lora/fast/rounding_bound.py (1); verified_lora/bounds/_rigorous.py (2)"))
def prove_gamma() -> Certificate:
    u, a, b, th, d, y = _r("u a b theta delta y")
    base = [u > 0, a >= 0, b >= 0, (a + b) * u < 1]
    nq = smt.prove("(1) gamma monotone: a <= b => gamma_a <= gamma_b", base + [a <= b], _gamma(a, u) <= _gamma(b, u))
    ga, gb = _gamma(a, u), _gamma(b, u)
    nq += smt.prove("(1) Higham 3.3: gamma_a + gamma_b + gamma_a gamma_b <= gamma_{a+b}", base, ga + gb + ga * gb <= _gamma(a + b, u))
    step = [u > 0, a >= 0, (a + 1) * u < 1, sp.Abs(th) * (1 - a * u) <= a * u, sp.Abs(d) <= u]   # |theta| <= gamma_a
    nq += smt.prove("(1) Higham 3.1 step: |(1 + theta_n)(1 + delta) - 1| <= gamma_{n+1}", step,
                    sp.Abs((1 + th) * (1 + d) - 1) <= _gamma(a + 1, u))
    nq += smt.prove("(1) Higham 3.1 step: |(1 + theta_n)/(1 + delta) - 1| <= gamma_{n+1}", step,
                    sp.Abs((1 + th) / (1 + d) - 1) <= _gamma(a + 1, u))
    t = sp.Symbol("t_k", real=True)
    nq += smt.prove("(1) per term: |t (1 + theta) - t| <= gamma_n |t|", [u > 0, a >= 0, a * u < 1, sp.Abs(th) * (1 - a * u) <= a * u],
                    sp.Abs(t * (1 + th) - t) <= _gamma(a, u) * sp.Abs(t))
    smt.refute("planted false: |(1 + theta_n)/(1 + delta) - 1| <= gamma_n + u", step + [a >= 1],
               sp.Abs((1 + th) / (1 + d) - 1) <= _gamma(a, u) + u)
    # the inflation constant of bounds/_rigorous.inflate: (1-u)^m >= 1 - m u (Bernoulli, by induction on m)
    m = sp.Symbol("m", real=True)
    nq += smt.prove("(1) Bernoulli step: y >= 1 - m u >= 0 => y (1 - u) >= 1 - (m + 1) u",
                    [u > 0, u < 1, m >= 0, y >= 1 - m * u, 1 - m * u >= 0], y * (1 - u) >= 1 - (m + 1) * u)
    cst = 1 + 2 * (m + 2) * u
    infl = [u > 0, m >= 0, (m + 1) * u <= sp.Rational(1, 100), y >= 1 - m * u, y > 0]
    nq += smt.prove("(1) inflate: (1 + 2 (m + 2) u)(1 - u) (1 - u)^m >= 1 when (m + 1) u <= 1/100", infl,
                    cst * (1 - u) * y >= 1)
    smt.refute("planted false: (1 + (m + 2) u)(1 - u)(1 - m u) >= 1", infl + [sp.Eq(y, 1 - m * u)],
               (1 + (m + 2) * u) * (1 - u) * y >= 1)
    return Certificate(claim="fast-rounding-gamma", title="Higham's gamma_n calculus and the inflation constant",
                       statement=r"\gamma_a+\gamma_b+\gamma_a\gamma_b\le\gamma_{a+b},\ |\theta_n|\le\gamma_n\Rightarrow"
                                 r"|(1+\theta_n)(1+\delta)^{\pm1}-1|\le\gamma_{n+1},\ (1+2(m+2)u)(1-u)\ge(1-u)^{-m}",
                       level="generic",
                       method=(f"z3 (QF_NRA, {nq} unsat queries incl. denominators) with n, a, b, m real symbols; planted "
                               "false variants refuted"),
                       scope="u > 0, any a, b >= 0 with (a + b) u < 1; m >= 0 with (m + 1) u <= 1/100",
                       result="proved", expressions={"gamma": _gamma(a, u), "inflate": cst},
                       on_paper=("Lemma 3.1 by induction on n from the step (1 + theta_0 = 1); a computed sum of "
                                 "products carries one (1 + theta_n) per term (the summation tree), so "
                                 "|fl - exact| <= gamma_n sum |terms| follows from the per-term bound",
                                 "Bernoulli (1 - u)^m >= 1 - m u by induction on integer m from the step"))


@register_proof("fast-rounding-core", title="(1) core rounding: normaliser, fV, c, r, y, outputs, conversion",
                paper=_paper("verified_lora/fast/rounding_bound.py (1)"))
def prove_core() -> Certificate:
    D, Dh, N, Nh, dD, A0, amin, Lk, gF, Vm = _r("D Dh N Nh delta_D A_0 a_min L_k gamma_F Vmag")
    pos = [amin > 0, A0 >= amin, Lk >= 1, gF >= 0, D >= Lk * amin]
    norm = pos + [sp.Abs(Dh - D) <= gF * Lk * A0, sp.Eq(dD * amin, gF * A0)]
    nq = smt.prove("(1) normaliser: |D^ - D| <= delta_D D", norm, sp.Abs(Dh - D) <= dD * D)
    nq += smt.prove("(1) margin: delta_D <= 1/2 => min(D, D^) >= L_k a_min (1 - delta_D) > 0", norm + [dD <= sp.Rational(1, 2)],
                    sp.And(Dh >= Lk * amin * (1 - dD), D >= Lk * amin * (1 - dD), Lk * amin * (1 - dD) > 0))
    pt.check_equal(Nh / Dh - N / D, (Nh - N) / Dh - (N / D) * (Dh - D) / Dh, "(1) fV^ - fV = (N^ - N)/D^ - fV (D^ - D)/D^",
                   method="cancel")
    fv = [D > 0, dD >= 0, dD <= sp.Rational(1, 2), Vm >= 0, sp.Abs(Dh - D) <= dD * D, sp.Abs(Nh - N) <= dD * D * Vm,
          sp.Abs(N) <= D * Vm]
    efv = 2 * dD / (1 - dD) * Vm
    nq += smt.prove("(1) |fV^ - fV| <= 2 delta_D / (1 - delta_D) Vmag", fv, sp.Abs(Nh / Dh - N / D) <= efv)
    smt.refute("planted false: |fV^ - fV| <= delta_D / (1 - delta_D) Vmag", fv, sp.Abs(Nh / Dh - N / D) <= dD / (1 - dD) * Vm)
    u, th, f, fh, Y, Cb, ef = _r("u theta f fh Y C_b e_fV")
    cc = [u > 0, u <= sp.Rational(1, 8), sp.Abs(th) <= u, sp.Abs(fh - f) <= ef, sp.Abs(f - Y) <= Cb]
    nq += smt.prove("(1) c^ = fl(fV^ - Y): |c^ - c| <= (1 + u) e_fV + u Cb", cc,
                    sp.Abs((fh - Y) * (1 + th) - (f - Y)) <= (1 + u) * ef + u * Cb)
    c, ch, ec = _r("c ch e_c")
    rr = [ef >= 0, ec >= 0, Vm >= 0, Cb >= 0, sp.Abs(ch - c) <= ec, sp.Abs(fh - f) <= ef, sp.Abs(f) <= Vm, sp.Abs(c) <= Cb]
    nq += smt.prove("(1) r^ per column: |c^ fV^ - c fV| <= e_c (Vmag + e_fV) + Cb e_fV", rr,
                    sp.Abs(ch * fh - c * f) <= ec * (Vm + ef) + Cb * ef)
    nq += smt.prove("(1) r^ per column: |c^ fV^| <= (Cb + e_c)(Vmag + e_fV)", rr, sp.Abs(ch * fh) <= (Cb + ec) * (Vm + ef))
    Dlo = sp.Symbol("Dlo", real=True)
    yy = [D > 0, Dlo > 0, Dh >= Dlo, dD >= 0, ec >= 0, Cb >= 0, sp.Abs(Dh - D) <= dD * D, sp.Abs(ch - c) <= ec, sp.Abs(c) <= Cb]
    nq += smt.prove("(1) y: |c^/D^ - c/D| <= (e_c + Cb delta_D)/Dlo", yy, sp.Abs(ch / Dh - c / D) <= (ec + Cb * dD) / Dlo)
    nq += smt.prove("(1) y: |c^/D^| <= (Cb + e_c)/Dlo", yy, sp.Abs(ch / Dh) <= (Cb + ec) / Dlo)
    smt.refute("planted false (delta_D term dropped): |c^/D^ - c/D| <= e_c/Dlo", yy, sp.Abs(ch / Dh - c / D) <= ec / Dlo)
    T, Th, g = _r("T Th gamma_n")
    nq += smt.prove("(1) linear outputs: |fl(t(y^)) - t(y)| <= |t(y^ - y)| + gamma_n |t(y^)|", [g >= 0, sp.Abs(th) <= g],
                    sp.Abs(Th * (1 + th) - T) <= sp.Abs(Th - T) + g * sp.Abs(Th))
    Dm, s = _r("Dm slack")
    nq += smt.prove("(1) per row: Dlo_i = D^mom_i - 2 gamma_F L_k A0 <= min(D_i, D^_i)",
                    [s >= 0, sp.Abs(Dm - D) <= s, sp.Abs(Dh - D) <= s], sp.And(Dm - 2 * s <= D, Dm - 2 * s <= Dh))
    dl, a0i, di = _r("dl_i A0_i delta_i")
    prow = [dl > 0, a0i >= dl, Lk >= 1, gF >= 0, D >= Lk * dl, sp.Abs(Dh - D) <= gF * Lk * a0i, di * dl >= gF * a0i]
    nq += smt.prove("(1) per row: |D^_i - D_i| <= delta_i D_i with delta_i >= gamma_F A0_i / dl_i", prow,
                    sp.Abs(Dh - D) <= di * D)
    nq += smt.prove("(1) per row: min(D_i, D^_i) >= L_k (dl_i - gamma_F A0_i)", prow,
                    sp.And(Dh >= Lk * (dl - gF * a0i), D >= Lk * (dl - gF * a0i)))
    smt.refute("planted false (per row): |D^_i - D_i| <= delta_i D_i with delta_i = gamma_F A0_i / (2 dl_i)",
               prow[:-1] + [sp.Eq(2 * di * dl, gF * a0i), sp.Eq(dl, 1), sp.Eq(a0i, 2), sp.Eq(Lk, 1), sp.Eq(gF, sp.Rational(1, 8))],
               sp.Abs(Dh - D) <= di * D)
    mm = sp.Symbol("m", real=True)
    mo = [u > 0, u <= sp.Rational(1, 8), Vm >= 0, dD >= 0, dD <= sp.Rational(1, 2), sp.Abs(th) <= u,
          sp.Abs(mm) <= Vm, sp.Abs(f - mm) * (1 - dD) <= 2 * dD * Vm]
    nq += smt.prove("(1) moments: |fl(N^/D^) - m| <= (2 delta_D/(1 - delta_D) + 4u) Vmag", mo,
                    sp.Abs(f * (1 + th) - mm) <= (2 * dD / (1 - dD) + 4 * u) * Vm)
    smt.refute("planted false: e_rel = 2 delta_D/(1 - delta_D) + 2u (enough only for delta_D <= 1/3)", mo,
               sp.Abs(f * (1 + th) - mm) <= (2 * dD / (1 - dD) + 2 * u) * Vm)
    x = sp.Symbol("x", real=True)
    cv = [u > 0, u <= sp.Rational(1, 4), sp.Abs(th) <= u]
    nq += smt.prove("output conversion: |fl(x) - x| <= u (1 + 4u) |fl(x)|", cv, sp.Abs(x * (1 + th) - x) <= u * (1 + 4 * u) * sp.Abs(x * (1 + th)))
    smt.refute("planted false: |fl(x) - x| <= u |fl(x)|", cv, sp.Abs(x * (1 + th) - x) <= u * sp.Abs(x * (1 + th)))
    return Certificate(claim="fast-rounding-core", title="(1) the core's running-error bound, algebraic steps",
                       statement=r"|\hat D-D|\le\delta_D D,\ |\widehat{fV}-fV|\le\frac{2\delta_D}{1-\delta_D}V_{mag},\ "
                                 r"|\hat y-y|\le\frac{e_c+C_b\delta_D}{D_{lo}},\ |\mathrm{fl}(x)-x|\le u(1+4u)|\mathrm{fl}(x)|",
                       level="generic",
                       method=(f"z3 (QF_NRA, {nq} unsat queries incl. denominators) over every rounding factor and "
                               "every quantity within its stated bound; SymPy cancel for the fV identity; planted "
                               "false variants refuted, among them e_rel with 2u"),
                       scope="0 < u <= 1/8 (1/4 for the conversion), delta_D <= 1/2, any magnitudes",
                       result="proved", expressions={"e_fV": efv},
                       on_paper=("|N^ - N| <= gamma_F sum_l abar_il |V_lj| <= gamma_F L_k A0 Vmag_j = delta_D a_min L_k Vmag_j "
                                 "<= delta_D D_i Vmag_j (fast-rounding-gamma; D_i >= L_k a_min)",
                                 "per row: the same steps with A0 -> A0_i = min(A0, Pabs(R_i)) >= abar_il (|S^_il| <= x_il <= R_i, "
                                 "Pabs non-decreasing on [0, inf)) and a_min -> dl_i <= D_i / L_k, so delta_D -> delta_i",
                                 "r^ and the outputs: the per-column / per-term bounds summed, with gamma_n of the sum "
                                 "of magnitudes (fast-rounding-gamma)"))


@register_proof("fast-rounding-inputs", title="(2) eps' = (1+eps_A)(1+2 sigma) - 1; (3) the change of h under V^ - V",
                paper=_paper("verified_lora/fast/rounding_bound.py (2), (3)"))
def prove_inputs() -> Certificate:
    s, eA, eta, w, ep = _r("sigma e_A eta w e_p")
    nq = smt.prove("(2) 1/(1 - sigma) <= 1 + 2 sigma for 0 <= sigma <= 1/2", [s >= 0, s <= sp.Rational(1, 2)],
                   1 / (1 - s) <= 1 + 2 * s)
    smt.refute("planted false: 1/(1 - sigma) <= 1 + sigma", [s >= 0, s <= sp.Rational(1, 2)], 1 / (1 - s) <= 1 + s)
    hy = [s >= 0, s <= sp.Rational(1, 2), eA >= 0, sp.Abs(eta) <= eA, w >= 1 - s, w * (1 - s) <= 1,
          sp.Eq(ep, (1 + eA) * (1 + 2 * s) - 1)]
    nq += smt.prove("(2) a = (1 + eta) e^{S^ - S} in [1 - eps', 1 + eps']", hy,
                    sp.And((1 + eta) * w >= 1 - ep, (1 + eta) * w <= 1 + ep))
    # (3): h^_l - h_l with c^ = c + dc, V^_l = V_l + dV_l, fV^ = fV + f dV (m_j = fV_j, md_j = (f dV)_j)
    c, dc, V, dV, mv, md = (sp.IndexedBase(x) for x in ("c", "dc", "V_l", "dV_l", "m", "md"))
    lhs = sp.Sum((c[j] + dc[j]) * (V[j] + dV[j] - mv[j] - md[j]), (j, 0, dv - 1)) - sp.Sum(c[j] * (V[j] - mv[j]), (j, 0, dv - 1))
    rhs = sp.Sum(dc[j] * (V[j] - mv[j]), (j, 0, dv - 1)) + sp.Sum((c[j] + dc[j]) * (dV[j] - md[j]), (j, 0, dv - 1))
    if not pt.sums_equal(lhs, rhs, "(3) h^_l - h_l = <dc, V_l - fV> + <c^, dV_l - f dV>"):
        raise ProofFailure("(3) h identity not shown at symbolic d_v")
    dcj, wj, chj, ddj, dVj, rho, Cb = _r("dc_j W_lj ch_j dd_j dV_j rho_j C_b")
    col = [dVj >= 0, rho >= 0, Cb >= 0, sp.Abs(dcj) <= dVj, sp.Abs(wj) <= 2 * rho, sp.Abs(chj) <= Cb, sp.Abs(ddj) <= 2 * dVj]
    nq += smt.prove("(3) per column: |dc_j W_lj + c^_j (dV_lj - (f dV)_j)| <= 2 dV_j (rho_j + Cb_ij)", col,
                    sp.Abs(dcj * wj + chj * ddj) <= 2 * dVj * (rho + Cb))
    cj = sp.Symbol("c_j", real=True)
    nq += smt.prove("(3) per column: |c_j (V_lj - fV_j)| <= 2 Cb_ij rho_j", [rho >= 0, Cb >= 0, sp.Abs(cj) <= Cb, sp.Abs(wj) <= 2 * rho],
                    sp.Abs(cj * wj) <= 2 * Cb * rho)
    smt.refute("planted false: |h^ - h| per column <= dV_j (rho_j + Cb_ij)", col, sp.Abs(dcj * wj + chj * ddj) <= dVj * (rho + Cb))
    # G_Q = beta X^T p K: p^ K^ - p K = (p^ - p) K^ + p (K^ - K), per key
    p1, q1, k1, K1, km, ek = _r("p_l ph_l K_l Kh_l Kmag E_K")
    gq = [km >= 0, ek >= 0, sp.Abs(K1) <= km, sp.Abs(K1 - k1) <= ek]
    nq += smt.prove("(3) G_Q per key: |p^_l K^_l - p_l K_l| <= |p^_l - p_l| Kmag + |p_l| E_K", gq,
                    sp.Abs(q1 * K1 - p1 * k1) <= sp.Abs(q1 - p1) * km + sp.Abs(p1) * ek)
    G, Gh, Gf, Gy, b1, b2, b3 = _r("G Gh G_fac G_hyb b_1 b_2 b_3")
    nq += smt.prove("(1)-(3): |G^ - G| <= b1 + b2 + b3", [sp.Abs(Gh - Gf) <= b1, sp.Abs(Gf - Gy) <= b2, sp.Abs(Gy - G) <= b3],
                    sp.Abs(Gh - G) <= b1 + b2 + b3)
    return Certificate(claim="fast-rounding-inputs", title="(2) the score perturbation and (3) the input perturbation",
                       statement=r"a_l\in[1-\epsilon',1+\epsilon'],\ \epsilon'=(1+\epsilon_A)(1+2\sigma)-1;\ "
                                 r"\hat h_l-h_l=\langle\delta c,V_l-fV\rangle+\langle\hat c,\delta V_l-f\delta V\rangle",
                       level="generic",
                       method=(f"index normal form (symbolic d_v) for the h identity; z3 ({nq} unsat queries incl. "
                               "denominators) for the rest; planted false variants refuted"),
                       scope="0 <= sigma <= 1/2, any d_v",
                       result="proved", expressions={"eps_prime": (1 + eA) * (1 + 2 * s) - 1},
                       on_paper=("e^{-sigma} >= 1 - sigma and e^{sigma} <= 1/(1 - sigma) for 0 <= sigma < 1 "
                                 "(convexity of exp), so w = e^{S^ - S} lies in [1 - sigma, 1/(1 - sigma)]",
                                 "summing the per-column bounds gives |h^_l - h_l| <= nV_i, |h_l| <= 2 s1_i; "
                                 "sum_l f_il = 1 gives the row L1 of the change of p, sum_l |p^_l - p_l| <= nV_i and sum_l |p_l| <= 2 s1_i; "
                                 "summing the per-key G_Q bound gives nV_i Kmag_b + 2 s1_i E_K,b (G_K, G_V alike)"))


@register_proof("fast-balancing", title="power-of-two balancing P c, K/c leaves scores and gradients unchanged",
                paper=_paper("verified_lora/fast/rounding_bound.py balance_scale"))
def prove_balancing() -> Certificate:
    cs = sp.Symbol("c", positive=True)
    beta = sp.Symbol("beta", real=True)
    P = sp.Matrix(1, 2, lambda i, b: sp.Symbol(f"P_{b}", real=True))
    K = sp.Matrix(2, 2, lambda l, b: sp.Symbol(f"K_{l}{b}", real=True))
    Vv = [sp.Symbol(f"y_{l}", real=True) for l in range(2)]
    w = [sp.Symbol(f"w_{t}", real=True) for t in range(4)]

    def loss(Pm, Km):        # sum_l Poly(beta <P, K_l>) y_l with a degree-3 kernel of symbolic coefficients
        return sum(sum(w[t] * (beta * (Pm * Km[l, :].T)[0, 0]) ** t for t in range(4)) * Vv[l] for l in range(2))

    pt.check_equal(loss(P * cs, K / cs), loss(P, K), "balancing: L(P c, K/c) = L(P, K) (degree 3, 2 keys)", method="expand")
    Pp = sp.Matrix(1, 2, lambda i, b: sp.Symbol(f"Pp_{b}", real=True))
    Kp = sp.Matrix(2, 2, lambda l, b: sp.Symbol(f"Kp_{l}{b}", real=True))
    sub = {**{Pp[b]: cs * P[b] for b in range(2)}, **{Kp[q]: K[q] / cs for q in range(4)}}
    for b in range(2):
        dP = sp.diff(loss(Pp, Kp), Pp[b]).xreplace(sub)
        pt.check_equal(cs * dP, sp.diff(loss(P, K), P[b]), f"balancing: dL/dP_{b} = c (dL/dP')_{b} at (P c, K/c)", method="cancel")
        dK = sp.diff(loss(Pp, Kp), Kp[0, b]).xreplace(sub)
        pt.check_equal(dK / cs, sp.diff(loss(P, K), K[0, b]), f"balancing: dL/dK_0{b} = (dL/dK')_0{b} / c", method="cancel")
    p, k, A = sp.symbols("p k A", nonnegative=True)
    mm = sp.Symbol("m", integer=True, nonnegative=True)
    pt.check_equal((cs * p) ** mm * (k / cs) ** mm, p ** mm * k ** mm, "balancing: |P c|^m |K/c|^m = |P|^m |K|^m",
                   method="cancel")
    pt.check_equal(cs * (A * k / cs), A * k, "balancing: the dP bound scaled back, c (A |K|/c) = A |K|", method="cancel")
    return Certificate(claim="fast-balancing", title="balancing by a power of two is exact for the loss and the bound",
                       statement=r"L(Pc,K/c)=L(P,K),\ \partial_PL=c\,\partial_{P'}L|_{(Pc,K/c)},\ "
                                 r"\partial_KL=c^{-1}\partial_{K'}L|_{(Pc,K/c)}",
                       level="small-scope",
                       method="SymPy expand / cancel on the loss of a degree-3 kernel with symbolic coefficients and its "
                              "derivatives; magnitudes at symbolic degree m",
                       scope="one query row, 2 keys, d = 2, kernel degree 3 (symbolic coefficients); magnitudes any m",
                       result="proved", expressions={"loss": loss(P, K)},
                       on_paper=("the scores beta <P_i c, K_l / c> = beta <P_i, K_l> for every d and kernel, so the "
                                 "loss is unchanged for any size; the scaling by a power of two is exact in binary "
                                 "floating point barring under/overflow",))


@register_proof("fast-rounding-once", title="one inflation of a round-to-nearest non-negative expression (_rigorous 2., 4.)",
                paper=_paper("verified_lora/bounds/_rigorous.py (2., 4.); verified_lora/fast/*.py"))
def prove_once() -> Certificate:
    u, Y, a, b, A, B, al, be, s, f, p, e = _r("u Y a b A B alpha beta s f p eta")
    y = 1 / (1 - u)                                 # one more rounding factor: (1 - u)^{-(m + 1)} = Y y
    base = [u > 0, u <= sp.Rational(1, 8), Y >= 1, a >= 0, b >= 0, al >= 0, be >= 0, e >= 0]
    hs = base + [A <= a * Y + al, B <= b * Y + be, s >= (a + b) * (1 - u)]
    nq = smt.prove("(4) sum step: A + B <= fl(a + b) Y / (1 - u) + alpha + beta", hs, A + B <= s * Y * y + al + be)
    hp = base + [A <= a * Y + al, f >= 0, p >= a * f * (1 - u) - e]
    nq += smt.prove("(4) product by an input float f: A f <= (fl(a f) + eta) Y / (1 - u) + alpha f", hp,
                    A * f <= (p + e) * Y * y + al * f)
    nq += smt.prove("(4) ... and by f <= 1: A f <= (fl(a f) + eta) Y / (1 - u) + alpha", hp + [f <= 1],
                    A * f <= (p + e) * Y * y + al)
    w = sp.Symbol("w", real=True)                  # the exact quotient a / f
    hd = base + [A <= a * Y + al, f > 0, w >= 0, sp.Eq(a, w * f), p >= w * (1 - u) - e]
    nq += smt.prove("(4) division by an input float f > 0 (a = w f): A <= ((fl(w) + eta) Y / (1 - u)) f + alpha", hd,
                    A <= (p + e) * Y * y * f + al)
    smt.refute("planted false: the product step without the underflow term eta", hp + [sp.Eq(al, 0)],
               A * f <= p * Y * y)
    # inflate in two passes: r1 = fl(x c') >= x c' (1 - u) - h (h = 2^-1075, half the subnormal spacing tau),
    # r = fl(r1 + t) with t = (n + 2) tau is >= (r1 + t)(1 - u) (normal) or = r1 + t (exact, subnormal);
    # c' (1 - u)^2 >= Y = (1 - u)^{-m} is the inflation constant at depth m + 1 (fast-rounding-gamma), Y <= 1.02
    x, c, h, n, k, r1, r = _r("x c h n k r1 r")
    hi = [u > 0, u <= sp.Rational(1, 8), Y >= 1, Y <= sp.Rational(102, 100), x >= 0, h > 0, k >= 0, n >= k,
          c * (1 - u) ** 2 >= Y, r1 >= x * c * (1 - u) - h]
    t = (n + 2) * 2 * h
    goal = r >= x * Y + k * h * Y
    nq += smt.prove("(2) inflate, normal sum: fl(r1 + t) >= x (1 - u)^{-m} + k 2^-1075 (1 - u)^{-m}",
                    hi + [r >= (r1 + t) * (1 - u)], goal)
    nq += smt.prove("(2) inflate, subnormal sum (exact): r1 + t >= x (1 - u)^{-m} + k 2^-1075 (1 - u)^{-m}",
                    hi + [sp.Eq(r, r1 + t)], goal)
    smt.refute("planted false: t = n tau (one tau short) in the normal case", hi + [r >= (r1 + n * 2 * h) * (1 - u)],
               r >= x * Y + (k + 2) * 2 * h * Y)
    return Certificate(claim="fast-rounding-once", title="one inflation of a round-to-nearest non-negative expression",
                       statement=r"A\le aY+\alpha,\ B\le bY+\beta\Rightarrow A+B\le\mathrm{fl}(a+b)\frac{Y}{1-u}+\alpha+\beta,\ "
                                 r"Af\le(\mathrm{fl}(af)+\eta)\frac{Y}{1-u}+\alpha f;\ "
                                 r"\mathrm{fl}(\mathrm{fl}(xc')+(n+2)\tau)\ge xY+k\tau Y/2",
                       level="generic",
                       method=(f"z3 (QF_NRA, {nq} unsat queries incl. denominators); Y = (1 - u)^(-m) as a symbol >= 1; "
                               "planted false variants refuted"),
                       scope="0 < u <= 1/8, every operand >= 0; the inflation step with 1 <= Y <= 1.02 "
                             "((m + 2) u <= 1/100) and c' (1 - u)^2 >= Y (fast-rounding-gamma at depth m + 1)",
                       result="proved", expressions={"sum": s * Y * y + al + be, "inflate": t},
                       on_paper=("induction over the expression: a sum of two bounded subexpressions, a product or a "
                                 "quotient with an input float (its underflow eta afterwards only added or scaled by "
                                 "floats <= 1) keep the form E <= fl(E) Y + (k eta) Y with Y = (1 - u)^{-m}; the "
                                 "two-pass inflate then covers both terms with n >= k",))


if __name__ == "__main__":
    raise SystemExit(run_main(__name__))
