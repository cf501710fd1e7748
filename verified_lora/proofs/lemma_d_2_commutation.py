"""Lemma D.2 (ICLR 2025, "Sparse Matrix T"): the commutation matrix T(m, n) with vec(W^T) = T(m, n) vec(W).

Small-scope proof in the row-major vec of Definition 2.1: for every m, n in 1..5, the matrix with
T[(k-1) m + p, (p-1) n + k] = 1 is a permutation (one 1 per row and column) and maps vec(W) to
vec(W^T) for a fully symbolic W; T(d, d) is an involution (T^2 = I, T = T^T). The printed index
rule (row (p-1) n + k, column (k-1) m + p) is the transpose; it coincides with it exactly when
m = n, i.e. for the T(d, d) that the K-adapter gradient needs.
"""

from __future__ import annotations

import sympy as sp

from verified_lora.symbolic import derive
from verified_lora.symbolic import prooftools as pt
from verified_lora.symbolic.certificates import Certificate, ProofFailure, register_proof, run_main

PAPER = {"iclr2025": "Lemma D.2 (Appendix D)", "arxiv_v2": "Section 4 / appendix (v1: Lemma C.2 'Sparse Matrix T')"}
MAX = 5


def commutation(m: int, n: int) -> sp.Matrix:
    T = sp.zeros(m * n, m * n)
    for p in range(m):
        for k in range(n):
            T[k * m + p, p * n + k] = 1
    return T


def printed_rule(m: int, n: int) -> sp.Matrix:
    """The printed rule: T[i, j] = 1 iff i = (p-1) n + k and j = (k-1) m + p."""
    T = sp.zeros(m * n, m * n)
    for p in range(m):
        for k in range(n):
            T[p * n + k, k * m + p] = 1
    return T


def _vec(M: sp.Matrix) -> sp.Matrix:
    return sp.Matrix([M[i, j] for i in range(M.rows) for j in range(M.cols)])


@register_proof("lemma-d.2", title="vec(W^T) = T(m, n) vec(W), T a permutation; T(d, d) = T(d, d)^T", paper=PAPER)
def prove_commutation() -> Certificate:
    n_shapes = 0
    mismatch_printed = []
    for sh in pt.shapes_up_to(m=MAX, n=MAX):
        m, n = sh["m"], sh["n"]
        W = derive.matrix_symbols("w", m, n)
        T = commutation(m, n)
        pt.check_equal(T * _vec(W), _vec(W.T), f"T({m},{n}) vec(W) = vec(W^T)")
        pt.check_equal(T * T.T, sp.eye(m * n), f"T({m},{n}) T({m},{n})^T = I")
        pt.check_equal(T * sp.ones(m * n, 1), sp.ones(m * n, 1), f"T({m},{n}) rows sum to 1 (a permutation)")
        pt.check_equal(commutation(n, m) * T, sp.eye(m * n), f"T({n},{m}) T({m},{n}) = I")
        if m == n:
            pt.check_equal(T, T.T, f"T({m},{m}) = T({m},{m})^T")
            pt.check_equal(T * T, sp.eye(m * n), f"T({m},{m})^2 = I")
        if (printed_rule(m, n) == T) != (m == n or 1 in (m, n)):
            raise ProofFailure(f"printed rule agrees/disagrees unexpectedly at ({m},{n})")
        pt.check_equal(printed_rule(m, n), T.T, f"printed rule = T({m},{n})^T")
        if printed_rule(m, n) != T:
            mismatch_printed.append([m, n])
        n_shapes += 1
    return Certificate(
        claim="lemma-d.2", title="Lemma D.2: commutation matrix T(m, n)",
        statement=(r"\underline{W^\top} = T(m,n)\,\underline W,\quad T(m,n)_{(k-1)m+p,\,(p-1)n+k} = 1;\quad "
                   r"T(n,m)T(m,n) = I,\quad T(d,d) = T(d,d)^\top = T(d,d)^{-1}"),
        level="small-scope",
        method=("explicit T(m, n) from the index rule, exact check of T vec(W) = vec(W^T) with symbolic W, "
                "permutation and involution properties; the printed rule equals T^T (so it agrees exactly when m = n or the matrix is a vector)"),
        scope=f"every m, n in 1..{MAX} ({n_shapes} shapes)", result="proved",
        expressions={"T_2_3": commutation(2, 3), "T_3_3": commutation(3, 3)},
        data={"shapes_checked": n_shapes, "shapes_where_printed_rule_differs": mismatch_printed},
        paper=PAPER, errata=("t-d2-d2",))


if __name__ == "__main__":
    raise SystemExit(run_main(__name__))
