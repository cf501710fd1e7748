"""Feature-dimension GEMMs in chunks, so their rounding depth is ``chunk + n / chunk``, not ``n``.

``A^T B`` with a long inner dimension ``n`` (the feature rank ``k``, up to ``10^5`` and more) has the
rigorous error bound ``gamma_n |A|^T |B|`` whatever order BLAS sums in. Summing
``sum_c A[c]^T B[c]`` over chunks of ``chunk`` rows instead gives every term at most
``chunk`` rounding factors inside its chunk's GEMM plus one per chunk added after it:
depth ``<= chunk + ceil(n / chunk)`` (:func:`depth`), which is what
:mod:`verified_lora.fast.rounding_bound` charges. Each chunk is still a large GEMM (``chunk`` x
hundreds of rows x the output width), so BLAS stays efficient: measured 1.3-1.6x an unchunked
GEMM at k = 43758 with 105-800 rows (an earlier layout measured 12x for 512-row chunks on thin row blocks).

The chunk is :func:`chunk_for` of the inner dimension: about ``sqrt(n)`` (a power of two, at least
:data:`MIN_CHUNK`), where ``chunk + n / chunk`` is least; 512-row chunks cost 5-15% over 4096-row
ones at ``k = 43758`` and ``75582`` with 110-128 rows and 81 columns (measured on the 2-core box).
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["CHUNK", "MIN_CHUNK", "chunk_for", "chunk_cuts", "add_product", "tmatmul", "tmatmul_bt", "depth"]

CHUNK = 4096
"""The largest chunk :func:`chunk_for` returns."""
MIN_CHUNK = 512
"""The smallest chunk :func:`chunk_for` returns (thinner GEMMs lose BLAS efficiency)."""


def chunk_for(n: int) -> int:
    """Chunk rows for an inner dimension ``n``: ``2^ceil(log2 sqrt(n))`` clipped to ``[MIN_CHUNK, CHUNK]``."""
    if n <= MIN_CHUNK:
        return MIN_CHUNK
    return max(MIN_CHUNK, min(CHUNK, 1 << math.ceil(math.log2(math.sqrt(n)))))


def chunk_cuts(n: int, chunk: int, start: int = 0) -> list[int]:
    """The chunk boundaries :func:`tmatmul_bt` uses over rows ``start .. start + n``: ``start``, ``start + chunk``,
    ..., ``start + n`` (``[start]`` when ``n = 0``)."""
    return list(range(start, start + n, chunk)) + [start + n]


def add_product(acc: Any, left: Any, right: Any) -> Any:
    """``left @ right`` added to ``acc`` in place (or returned when ``acc`` is ``None``): one chunk of
    :func:`tmatmul_bt` (``left = BT[:, c]``, ``right = A[c]``), so a caller that sums the chunks of
    :func:`chunk_cuts` in order forms the same sum, with the same :func:`depth`."""
    p = left @ right
    if acc is None:
        return p
    acc += p
    return acc


def tmatmul(A: Any, B: Any, chunk: int | None = None) -> Any:
    """``A^T @ B`` summed over chunks of ``chunk`` rows of ``A`` and ``B`` (NumPy or CuPy);
    ``chunk`` defaults to :func:`chunk_for` of the inner dimension."""
    n = A.shape[0]
    chunk = chunk_for(n) if chunk is None else chunk
    if n <= chunk:
        return A.T @ B
    out = A[:chunk].T @ B[:chunk]
    for c0 in range(chunk, n, chunk):
        out += A[c0:c0 + chunk].T @ B[c0:c0 + chunk]
    return out


def tmatmul_bt(A: Any, BT: Any, chunk: int | None = None) -> Any:
    """``A^T @ B`` from ``BT = B^T`` (``cols x n``, C-contiguous, transposed once by the caller):
    ``sum_c BT[:, c]  @ A[c]`` over the same chunks as :func:`tmatmul`, returned transposed (a view).

    The same chunk products summed in the same order, so :func:`depth` is unchanged; the orientation
    ``(cols x chunk) @ (chunk x rows)`` runs faster in OpenBLAS for the fast path's shapes (measured
    on the 2-core box, 256 rows, chunk 512: 32 vs 24 GFLOP/s at 121 columns, 22 vs 19 at 41,
    8 vs 6 at 9)."""
    n = A.shape[0]
    chunk = chunk_for(n) if chunk is None else chunk
    if n <= chunk:
        return (BT @ A).T
    cuts = chunk_cuts(n, chunk)
    out = None
    for c0, c1 in zip(cuts[:-1], cuts[1:]):
        out = add_product(out, BT[:, c0:c1], A[c0:c1])
    return out.T


def depth(n: int, chunk: int | None = None) -> int:
    """Rounding depth of :func:`tmatmul` over an inner dimension ``n`` (``chunk`` as there).

    For a fixed ``chunk`` it is non-decreasing in ``n``, so ``depth(k, chunk)`` also covers products
    over part of the ``k`` features summed with the same chunk."""
    chunk = chunk_for(n) if chunk is None else chunk
    return n if n <= chunk else chunk + -(-n // chunk)
