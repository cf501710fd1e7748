"""Lemma 3.1 (ICLR 2025), equation (3.5): the low-rank decomposition of the LoRA gradient,
dL/dvec(W) = sum_j sum_i c_ji C_j^T (diag(f_j) - f_j f_j^T) C3[:, i], with C = C1 (x) C2 and C_j its
j-th block of L rows (Definition 2.4), in the row-major vec of Definition 2.1.

Small-scope proof: the literal right side of (3.5), assembled from Kronecker blocks, equals
sympy.diff of the loss (3.3) with respect to each entry of W, with every entry of C1, C2, C3, Y, W
symbolic, for every shape in scope. (The generic route is definition-3.6 + lemma-2.1.)
"""

from __future__ import annotations

import sympy as sp

from verified_lora.symbolic import derive
from verified_lora.symbolic import prooftools as pt
from verified_lora.symbolic.certificates import Certificate, register_proof, run_main

PAPER = {"iclr2025": "Lemma 3.1, equation (3.5), proof in Appendix C.1", "arxiv_v2": "Section 3, Lemma 3.1"}
SCOPE = [(1, 1), (1, 2), (1, 3), (2, 1), (2, 2), (3, 1), (3, 2)]   # (L, d)


def rhs_3_5(C1, C2, C3, f, c):
    L, d = C1.shape
    big = sp.kronecker_product(C1, C2)
    out = sp.zeros(d * d, 1)
    for j in range(L):
        Cj = big[j * L:(j + 1) * L, :]
        fj = f.row(j).T
        jac = sp.diag(*fj) - fj * fj.T
        for i in range(C3.cols):
            out += c[j, i] * (Cj.T * jac * C3[:, i])
    return out


@register_proof("lemma-3.1", title="(3.5): dL/dvec(W) = sum_ji c_ji C_j^T (diag f_j - f_j f_j^T) C3[:, i]",
                paper=PAPER)
def prove_lemma_3_1() -> Certificate:
    n = 0
    for L, d in SCOPE:
        C1, C2, C3 = (derive.matrix_symbols(nm, L, d) for nm in ("c1", "c2", "c3"))
        Y, W = derive.matrix_symbols("y", L, d), derive.matrix_symbols("w", d, d)
        _, _, f = derive.softmax_rows(C1 * W * C2.T, derive.FormalExp)
        c = f * C3 - Y
        loss = sp.Rational(1, 2) * sum((x**2 for x in c), sp.Integer(0))
        vecW = sp.Matrix([W[a, b] for a in range(d) for b in range(d)])
        auto = vecW.applyfunc(lambda x: sp.diff(loss, x))
        rhs = rhs_3_5(C1, C2, C3, f, c)
        n += pt.assert_identity(auto, rhs, f"(3.5) at L={L}, d={d}")
        if (L, d) == (2, 2):
            kept = rhs
    return Certificate(
        claim="lemma-3.1", title="Lemma 3.1: gradient decomposition (3.5)",
        statement=(r"\frac{d\mathcal L}{d\underline W} = \sum_{j=1}^{L}\sum_{i=1}^{d} c_{j,i}\,\mathsf C_j^\top"
                   r"\big(\mathrm{diag}(f_j) - f_jf_j^\top\big)C^{(3)}[\cdot,i],\quad \mathsf C = C^{(1)}\otimes C^{(2)}"),
        level="small-scope",
        method=("sympy.diff of the loss (3.3) (formal exp) against the literal right side of (3.5) built from the "
                "L-row blocks of C1 (x) C2; identities decided as polynomials in the entries, e = exp(S_ij) and "
                f"z = 1/alpha_j ({n} entry identities)"),
        scope="every (L, d) in {" + ", ".join(f"({L},{d})" for L, d in SCOPE) + "}, all entries symbolic, square W (d x d)",
        result="proved", expressions={"rhs_3_5_L2_d2": kept},
        data={"shapes_L_d": [list(s) for s in SCOPE], "identities": n}, paper=PAPER)


if __name__ == "__main__":
    raise SystemExit(run_main(__name__))
