"""SymPy and z3 proofs of the two lemmas behind ``method="antiderivative"`` of the fast path.

The lemmas are stated in ``verified_lora/fast/aposteriori.py`` ((GQ, antiderivative)) and
``verified_lora/fast/rounding_bound.py`` (the "antiderivative" item of (1)): the fast path back-propagates
through the features of ``Q``, the antiderivative of ``P`` with ``Q(0) = 0`` (``q_{t+1} = p_t / (t + 1)``,
``verified_lora.features.antiderivative_coefficients``), while its forward keeps ``P``.

* ``fast-antiderivative-gradient``: ``Q' = P``, hence
  ``grad_u sum_l Q(beta <u, k_l>) w_l = beta sum_l P(beta <u, k_l>) w_l k_l`` and
  ``grad_{k_l} sum_l Q(beta <u, k_l>) w_l = beta P(beta <u, k_l>) w_l u``: the backward's ``dL/dS`` carries
  ``P(S)``, the paper chain's ``p~``, so the certificate's ``zeta`` (the ``P'`` vs ``P`` factor of
  (GQ, factored)) is 0. Checked also through the library's feature maps: the derivative of
  ``<phi_U^Q(u), sum_l w_l phi_V(k_l)>`` (exact weights of ``Q``) equals the right side.
* ``fast-antiderivative-magnitude``: ``Qabs'(x) = sum_t (t + 1) |q_{t+1}| x^t = Pabs(x)`` (so the rounding
  bound's derivative magnitude is ``A0_i``, not ``A1_i``), and the features' derivative magnitude
  ``sum_m |w^Q_m| m_j |u|^{m - e_j} |v|^m = |beta| |v_j| Qabs'(|beta| <|u|, |v|>)``.

Run: ``python -m verified_lora.proofs.fast_antiderivative``.
"""

from __future__ import annotations

from fractions import Fraction

import sympy as sp

from verified_lora import features as F
from verified_lora.symbolic import prooftools as pt
from verified_lora.symbolic import smt
from verified_lora.symbolic.certificates import Certificate, ProofFailure, register_proof, run_main

SCOPE = [(d, g) for d in (1, 2, 3) for g in range(0, 4)]
"""(d, g) of the small-scope checks through the feature maps (the chain rule itself is generic in g below)."""


def _paper(where: str) -> dict:
    return {"iclr2025": "no lemma of the paper: the library's antiderivative backward for the gradient of Section 3 "
                        "(Lemmas 3.3-3.7's p~ at the factored path's cost)",
            "arxiv_v2": "same (not a paper claim)", "module": where}


def _poly(cs, x):
    return sum(c * x ** t for t, c in enumerate(cs))


def _antiderivative(ps):
    """``q_0 = 0``, ``q_{t+1} = p_t / (t + 1)`` on symbols (the formula of ``antiderivative_coefficients``)."""
    return [sp.Integer(0)] + [p / (t + 1) for t, p in enumerate(ps)]


def _library_coefficients() -> None:
    """``antiderivative_coefficients`` returns the formula's exact values on rational inputs (several degrees)."""
    for cs in ([Fraction(3, 7)], [Fraction(1), Fraction(-2, 3), Fraction(5, 11)], [1, 0.5, -0.25, 0.125, 3]):
        got = F.antiderivative_coefficients(cs)
        want = _antiderivative([sp.Rational(Fraction(c).numerator, Fraction(c).denominator) for c in cs])
        pt.check_equal(sp.Matrix([sp.Rational(q.numerator, q.denominator) for q in got]), sp.Matrix(want),
                       f"antiderivative_coefficients at degree {len(cs) - 1}")


@register_proof("fast-antiderivative-gradient",
                title="(GQ, antiderivative) grad_u sum_l Q(beta<u,k_l>) w_l = beta sum_l P(beta<u,k_l>) w_l k_l, Q' = P",
                paper=_paper("verified_lora/fast/aposteriori.py (GQ, antiderivative); verified_lora/fast/_cores.py"))
def prove_gradient() -> Certificate:
    x = sp.Symbol("x")
    exprs = []
    for g in range(0, 7):                                  # Q' = P with symbolic coefficients
        ps = list(sp.symbols(f"p0:{g + 1}"))
        pt.check_derivative(_poly(_antiderivative(ps), x), x, _poly(ps, x), f"Q' = P at degree {g}")
    _library_coefficients()
    for d, g in SCOPE:
        ps = list(sp.symbols(f"p0:{g + 1}"))
        qs = _antiderivative(ps)
        beta = sp.Symbol("beta")
        u = list(sp.symbols(f"u1:{d + 1}"))
        keys = [list(sp.symbols(f"k{l}_1:{d + 1}")) for l in (1, 2)]
        ws = list(sp.symbols("w1:3"))
        dots = [sum(ui * ki for ui, ki in zip(u, kl)) for kl in keys]
        lhs = sum(_poly(qs, beta * s) * w for s, w in zip(dots, ws))
        # the library's features of Q (exact weights) against the key side sum_l w_l phi_V(k_l)
        wq = F.query_weights(qs, beta, d, exact=True)
        exps = F.feature_layout(d, g + 1).exponents().tolist()

        def mono(v, e):
            return sp.Mul(*[vi ** ei for vi, ei in zip(v, e)])

        feat = sum(wm * mono(u, e) * sum(w * mono(kl, e) for w, kl in zip(ws, keys)) for wm, e in zip(wq, exps))
        pt.check_equal(feat, lhs, f"<phi_U^Q(u), sum_l w_l phi_V(k_l)> = sum_l Q(beta<u,k_l>) w_l (d={d}, g={g})")
        for j in range(d):
            claimed = beta * sum(_poly(ps, beta * s) * w * kl[j] for s, w, kl in zip(dots, ws, keys))
            pt.check_derivative(feat, u[j], claimed, f"d/du_{j} through Q's features = beta sum_l P w_l k_lj (d={d}, g={g})")
            claimed_k = beta * _poly(ps, beta * dots[0]) * ws[0] * u[j]
            pt.check_derivative(feat, keys[0][j], claimed_k, f"d/dk_1{j} = beta P(beta<u,k_1>) w_1 u_j (d={d}, g={g})")
            exprs.append(sp.expand(claimed))
    # zeta = 0: the factored lemma's (1 + zeta_l) = (backward kernel) / P(S^_l) is exactly 1 here
    s, z, pS = pt.real_symbols("S zeta PS")
    nq = smt.prove("(GQ, antiderivative) backward kernel Q'(S) = P(S) => |zeta_l| = |Q'(S)/P(S) - 1| <= 0 (P(S) > 0)",
                   [pS > 0, sp.Eq(pS * (1 + z), pS)], sp.Abs(z) <= 0)
    smt.refute("planted false (the factored kernel P' = P + s, s > 0, has |zeta_l| <= 0)",
               [pS > 0, sp.Eq(pS * (1 + z), pS + s), s > 0], sp.Abs(z) <= 0)
    return Certificate(claim="fast-antiderivative-gradient", title="the antiderivative backward gives the paper's p~",
                       statement=r"Q'=P\Rightarrow\nabla_u\sum_l Q(\beta\langle u,k_l\rangle)w_l="
                                 r"\beta\sum_l P(\beta\langle u,k_l\rangle)w_l k_l",
                       level="small-scope",
                       method=("SymPy: Q' = P with symbolic coefficients (degrees 0-6); the library's "
                               "antiderivative_coefficients on rational inputs; the library's exact weights of Q and "
                               f"monomial exponents replayed on symbols, then diff in u and k_1; z3 ({nq} unsat queries) "
                               "for zeta = 0, a planted false variant refuted"),
                       scope="d in {1,2,3}, g in {0,...,3}, two keys, symbolic u, k, w, beta and coefficients",
                       result="proved", expressions={"gradients": exprs},
                       on_paper=("for any d, g and number of keys: the chain rule gives grad_u Q(beta<u,k>) = "
                                 "beta Q'(beta<u,k>) k = beta P(beta<u,k>) k, and the features are exact "
                                 "(feature-map-identity) with exact derivative tables (feature-map-derivative)",
                                 "so dL/dS_il of the backward is P(S^_il) (q~_il - rvec~_i) / D~_i = p~_il: (GQ, paper), "
                                 "(GK) and the adapter chain hold with zeta = 0"))


@register_proof("fast-antiderivative-magnitude",
                title="(rounding, antiderivative) Qabs'(x) = Pabs(x): the derivative magnitude is A0_i",
                paper=_paper("verified_lora/fast/rounding_bound.py (1), antiderivative"))
def prove_magnitude() -> Certificate:
    x = sp.Symbol("x", nonnegative=True)
    for g in range(0, 11):
        ps = list(sp.symbols(f"p0:{g + 1}", real=True))
        qs = _antiderivative(ps)
        qabs_d = sum(t * sp.Abs(q) * x ** (t - 1) for t, q in enumerate(qs) if t > 0)
        pt.check_equal(qabs_d, _poly([sp.Abs(p) for p in ps], x), f"Qabs'(x) = Pabs(x) at degree {g}", method="cancel")
    exprs = []
    for d, g in SCOPE:
        cs = list(sp.symbols(f"c0:{g + 2}", nonnegative=True))        # |q_t|
        beta = sp.Symbol("beta", positive=True)                        # |beta|
        u = list(sp.symbols(f"u1:{d + 1}", nonnegative=True))          # |u|
        v = list(sp.symbols(f"v1:{d + 1}", nonnegative=True))          # |v|
        wq = F.query_weights(cs, beta, d, exact=True)                  # |w^Q_m| (multinomials are positive)
        exps = F.feature_layout(d, g + 1).exponents().tolist()
        s = sum(ui * vi for ui, vi in zip(u, v))
        for j in range(d):
            lhs = sum(wm * e[j] * sp.Mul(*[ui ** (ei - (1 if i == j else 0)) for i, (ui, ei) in enumerate(zip(u, e))])
                      * sp.Mul(*[vi ** ei for vi, ei in zip(v, e)]) for wm, e in zip(wq, exps) if e[j] > 0)
            rhs = beta * v[j] * sum(t * c * (beta * s) ** (t - 1) for t, c in enumerate(cs) if t > 0)
            pt.check_equal(lhs, rhs, f"sum_m |w_m| m_j |u|^(m - e_j) |v|^m = |beta| |v_j| Qabs'(|beta|<|u|,|v|>) "
                                     f"(d={d}, g={g}, j={j})")
            exprs.append(sp.expand(rhs))
    p0, p1, p2, q1, q2, q3, y = pt.real_symbols("p_0 p_1 p_2 q_1 q_2 q_3 x")
    hyps = [y >= 0, sp.Eq(q1, p0), sp.Eq(2 * q2, p1), sp.Eq(3 * q3, p2)]
    nq = smt.prove("Qabs'(x) <= Pabs(x), degree 2, x >= 0", hyps,
                   sp.Abs(q1) + 2 * sp.Abs(q2) * y + 3 * sp.Abs(q3) * y ** 2
                   <= sp.Abs(p0) + sp.Abs(p1) * y + sp.Abs(p2) * y ** 2)
    smt.refute("planted false (the factored magnitude Pabs'(x) bounds Qabs'(x))", hyps,
               sp.Abs(q1) + 2 * sp.Abs(q2) * y + 3 * sp.Abs(q3) * y ** 2 <= sp.Abs(p1) + 2 * sp.Abs(p2) * y)
    if nq < 1:
        raise ProofFailure("no z3 query was decided")
    return Certificate(claim="fast-antiderivative-magnitude", title="the antiderivative's derivative magnitude is Pabs",
                       statement=r"Q_{abs}'(x)=\sum_t (t+1)|q_{t+1}|x^t=P_{abs}(x),\ \sum_m|w^Q_m|m_j|u|^{m-e_j}|v|^m="
                                 r"|\beta||v_j|Q_{abs}'(|\beta|\langle|u|,|v|\rangle)",
                       level="small-scope",
                       method=("SymPy cancel of Qabs' - Pabs with symbolic real coefficients (degrees 0-10); the library's "
                               "exact weights and exponents replayed on non-negative symbols for the feature magnitude; "
                               f"z3 ({nq} unsat queries) at degree 2, a planted false variant refuted"),
                       scope="Qabs' = Pabs for g <= 10; the feature magnitude for d in {1,2,3}, g in {0,...,3}",
                       result="proved", expressions={"magnitudes": exprs},
                       on_paper=("(t + 1) |q_{t+1}| = (t + 1) |p_t| / (t + 1) = |p_t| for every t, any degree",
                                 "the feature magnitude is d/du_j of sum_m |w_m| u^m v^m = Qabs(|beta|<u, v>) for u, v >= 0 "
                                 "(feature-map-identity with the coefficients |q_t|), so the rounding bound's derivative "
                                 "magnitude |beta| |K^_lb| Qabs'(x_il) = |beta| |K^_lb| Pabs(x_il) <= |beta| |K^_lb| A0_i"))


if __name__ == "__main__":
    raise SystemExit(run_main(__name__))
