"""Exact proofs for the symmetric-monomial feature maps of verified_lora.features.

Claims (small scope: every d <= 3 and g <= 4, fully symbolic u, v, beta and coefficients a_t):

* ``feature-map-identity``: ``sum_t a_t (beta <u, v>)^t = <phi_U(u), phi_V(v)>`` where phi_U and
  phi_V are produced by *the numeric code's own construction program* (``feature_layout(d, g).steps``,
  replayed on SymPy symbols) and its weights ``a_|m| beta^|m| multinomial(|m|; m)``
  (``multinomials``); also ``k = C(d+g, g)`` and the columns are distinct monomials of degree <= g.
* ``feature-map-derivative``: the derivative-coefficient tables used by the fast path's feature VJP
  (``derivative_table``) satisfy ``d/dx_j sum_m C_m x^m = sum_{m'} (m'_j + 1) C_{succ_j(m')} x^{m'}``
  for symbolic ``C``.

Run: ``python -m verified_lora.proofs.feature_map_identity`` (or ``verified-lora prove feature-map``).
"""

from __future__ import annotations

import math

import sympy

from verified_lora import features as F
from verified_lora.symbolic import prooftools as pt
from verified_lora.symbolic.certificates import Certificate, ProofFailure, register_proof, run_main

SCOPE = [(d, g) for d in (1, 2, 3) for g in range(0, 5)]


def _replay(xs: list[sympy.Symbol], d: int, g: int) -> list[sympy.Expr]:
    """The construction program of ``feature_layout(d, g)`` executed on symbols."""
    lay = F.feature_layout(d, g)
    out: list[sympy.Expr | None] = [None] * lay.k
    out[0] = sympy.Integer(1)
    for (_t, i, dst0, dst1, src0, src1) in lay.steps:
        if dst1 - dst0 != src1 - src0:
            raise ProofFailure(f"step width mismatch at d={d}, g={g}")
        for off in range(dst1 - dst0):
            src = out[src0 + off]
            if src is None:
                raise ProofFailure(f"column {src0 + off} read before written (d={d}, g={g})")
            out[dst0 + off] = xs[i] * src
    if any(o is None for o in out):
        raise ProofFailure(f"unwritten columns at d={d}, g={g}")
    return out  # type: ignore[return-value]


@register_proof("feature-map-identity", title="P(beta<u,v>) = <phi_U(u), phi_V(v)> (symmetric monomials)",
                paper={"iclr2025": "Lemma 3.3 (polynomial-method factorisation, symmetric-monomial form)",
                       "arxiv_v2": "Lemma 3.3"})
def prove_identity() -> Certificate:
    beta = sympy.Symbol("beta")
    lhs_all, rhs_all, ranks = [], [], {}
    for d, g in SCOPE:
        u = list(sympy.symbols(f"u1:{d + 1}"))
        v = list(sympy.symbols(f"v1:{d + 1}"))
        a = list(sympy.symbols(f"a0:{g + 1}"))
        mono_u = _replay(u, d, g)
        mono_v = _replay(v, d, g)
        lay = F.feature_layout(d, g)
        if lay.k != math.comb(d + g, g):
            raise ProofFailure(f"rank {lay.k} != C({d}+{g},{g})")
        exps = F.feature_layout(d, g).exponents().tolist()
        expected = [sympy.Mul(*[ui ** e for ui, e in zip(u, row)]) for row in exps]
        pt.check_equal(sympy.Matrix(mono_u), sympy.Matrix(expected),
                       f"construction program = exponent table (d={d}, g={g})")
        if len({tuple(r) for r in exps}) != lay.k or max(sum(r) for r in exps) > g:
            raise ProofFailure(f"columns are not distinct monomials of degree <= {g}")
        multi = F.multinomials(d, g)
        degs = [sum(r) for r in exps]
        phi_u = [a[t] * beta ** t * m * mu for t, m, mu in zip(degs, multi, mono_u)]
        lhs = sum(a[t] * (beta * sum(ui * vi for ui, vi in zip(u, v))) ** t for t in range(g + 1))
        rhs = sum(pu * pv for pu, pv in zip(phi_u, mono_v))
        pt.check_equal(lhs, rhs, f"P(beta<u,v>) = <phi_U(u), phi_V(v)> at d={d}, g={g}")
        # the float weights the fast path uses are the roundings of these exact weights
        ranks[f"d={d},g={g}"] = {"k": lay.k, "paper_bound": F.paper_rank_bound(d, g)}
        lhs_all.append(sympy.expand(lhs))
        rhs_all.append(sympy.expand(rhs))
    return Certificate(
        claim="feature-map-identity",
        title="P(beta<u,v>) = <phi_U(u), phi_V(v)> (symmetric monomials)",
        statement=r"\sum_{t=0}^{g} a_t (\beta\langle u,v\rangle)^t = \sum_{|m|\le g} "
                  r"\Big[a_{|m|}\beta^{|m|}\binom{|m|}{m} u^m\Big] v^m,\quad k=\binom{d+g}{g}",
        level="small-scope",
        method="SymPy expand of lhs - rhs with symbolic u, v, beta, a_0..a_g; phi_U, phi_V built by replaying "
               "the numeric construction program (feature_layout steps) and weights (multinomials) on symbols",
        scope="d in {1,2,3}, g in {0,...,4}; entries, beta and coefficients fully symbolic",
        result="proved",
        expressions={"lhs": lhs_all, "rhs": rhs_all},
        data={"ranks": ranks},
    )


@register_proof("feature-map-derivative", title="derivative tables of the monomial features (fast-path VJP)",
                paper={"iclr2025": "not in the paper (factored backward)"})
def prove_derivative() -> Certificate:
    exprs = []
    for d, g in SCOPE:
        if g == 0:
            continue
        x = list(sympy.symbols(f"x1:{d + 1}"))
        lay = F.feature_layout(d, g)
        C = list(sympy.symbols(f"C0:{lay.k}"))
        mono = _replay(x, d, g)
        poly = sum(c * m for c, m in zip(C, mono))
        succ, mult = F.derivative_table(d, g)
        kp = math.comb(d + g - 1, g - 1)
        if succ.shape != (kp, d):
            raise ProofFailure(f"derivative table shape {succ.shape} != ({kp}, {d})")
        for j in range(d):
            claimed = sum(sympy.Integer(int(mult[m, j])) * C[int(succ[m, j])] * mono[m] for m in range(kp))
            pt.check_derivative(poly, x[j], claimed, f"derivative table at d={d}, g={g}, j={j}")
            exprs.append(sympy.expand(claimed))
    return Certificate(
        claim="feature-map-derivative",
        title="derivative tables of the monomial features (fast-path VJP)",
        statement=r"\partial_{x_j}\sum_{|m|\le g} C_m x^m = \sum_{|m'|\le g-1} (m'_j+1)\, C_{m'+e_j}\, x^{m'}",
        level="small-scope",
        method="SymPy diff against the table-driven formula, symbolic x and C",
        scope="d in {1,2,3}, g in {1,...,4}",
        result="proved",
        expressions={"derivatives": exprs},
    )


if __name__ == "__main__":
    raise SystemExit(run_main(__name__))
