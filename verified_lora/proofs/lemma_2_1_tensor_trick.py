"""Lemma 2.1 (ICLR 2025, tensor trick) in the paper's row-major vec (Definition 2.1):
vec(A X B^T) = (A (x) B) vec(X), with (A (x) B) as in Definition 2.3.

Small-scope proof: exact identity with fully symbolic A, X, B for every shape with all four sizes
in 1..3 (81 shapes); the Kronecker product is built from Definition 2.3's index rule.
"""

from __future__ import annotations

import sympy as sp

from verified_lora.symbolic import derive
from verified_lora.symbolic import prooftools as pt
from verified_lora.symbolic.certificates import Certificate, ProofFailure, register_proof, run_main

PAPER = {"iclr2025": "Lemma 2.1, Definitions 2.1-2.3 (Section 2)", "arxiv_v2": "Section 2, Lemma 2.1"}
MAX = 3


def kron_def_2_3(A: sp.Matrix, B: sp.Matrix) -> sp.Matrix:
    """(A (x) B)_{(ia-1) Lb + ib, (ja-1) db + jb} = A_{ia ja} B_{ib jb} (1-based, Definition 2.3)."""
    La, da = A.shape
    Lb, db = B.shape
    return sp.Matrix(La * Lb, da * db, lambda r, c: A[r // Lb, c // db] * B[r % Lb, c % db])


def vec_row_major(X: sp.Matrix) -> sp.Matrix:
    """X_{i,j} = vec(X)_{(i-1) d + j} (Definition 2.1)."""
    return sp.Matrix([X[i, j] for i in range(X.rows) for j in range(X.cols)])


@register_proof("lemma-2.1", title="vec(A X B^T) = (A (x) B) vec(X), row-major vec", paper=PAPER)
def prove_tensor_trick() -> Certificate:
    n = 0
    for sh in pt.shapes_up_to(La=MAX, da=MAX, Lb=MAX, db=MAX):
        A = derive.matrix_symbols("a", sh["La"], sh["da"])
        X = derive.matrix_symbols("x", sh["da"], sh["db"])
        B = derive.matrix_symbols("b", sh["Lb"], sh["db"])
        lhs = vec_row_major(A * X * B.T)
        rhs = kron_def_2_3(A, B) * vec_row_major(X)
        pt.check_equal(lhs, rhs, f"vec(A X B^T) = (A (x) B) vec(X) at {sh}")
        pt.check_equal(kron_def_2_3(A, B), sp.kronecker_product(A, B), f"Definition 2.3 = kronecker_product at {sh}")
        n += 1
    A, X, B = derive.matrix_symbols("a", 2, 2), derive.matrix_symbols("x", 2, 2), derive.matrix_symbols("b", 2, 2)
    return Certificate(
        claim="lemma-2.1", title="Lemma 2.1: tensor trick, row-major vec",
        statement=r"\mathrm{vec}(A X B^\top) = (A\otimes B)\,\underline X,\quad X_{i,j} = \underline X_{(i-1)d+j}",
        level="small-scope",
        method=("exact polynomial identity with fully symbolic entries (sympy expand), Kronecker product from the "
                "index rule of Definition 2.3 (also checked equal to sympy.kronecker_product)"),
        scope=f"every A (L_a x d_a), X (d_a x d_b), B (L_b x d_b) with L_a, d_a, L_b, d_b in 1..{MAX} ({n} shapes)",
        result="proved",
        expressions={"lhs_2x2": vec_row_major(A * X * B.T), "rhs_2x2": kron_def_2_3(A, B) * vec_row_major(X)},
        data={"shapes_checked": n}, paper=PAPER)


if __name__ == "__main__":
    raise SystemExit(run_main(__name__))
