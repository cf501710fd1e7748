"""Rows per block of the fast path's passes (the run, the planner's predictions, the proxy moments).

The block enters the certificate (the rounding depth of a blocked sum of ``n`` rows is ``block + n / block``,
:mod:`verified_lora.fast.rounding_bound`), so every pass that a certificate describes takes its block from
:func:`block_for`, the one rule for a problem on its device.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["DEFAULT_BLOCK_BYTES", "GPU_MIN_BLOCK", "SMALL_BLOCK_FLOOR", "SMALL_BLOCK_BYTES", "default_block_size",
           "block_for"]

DEFAULT_BLOCK_BYTES = 256 * 2**20
"""Bytes of the per-block feature work arrays (blocks of a few hundred rows keep the thin GEMMs efficient:
256 MiB keeps 256-row blocks up to ``k = 131072``, e.g. degree 12 at ``d = 8``; at ``k = 75582`` the factored
core took 6.7 s CPU with 256-row blocks and 8.2 s with 128, d = 8, L = 4096, on the 2-core box)."""

SMALL_BLOCK_FLOOR = 512
"""Least rows per block (rows permitting) when the feature buffer of that many rows is small: at ``d = 4`` the
per-block Python and thin-GEMM overhead dominates 256-row blocks (factored core, one thread, the 2-core box:
k = 1001, L = 65536: 0.50-0.72 s CPU with 512-row blocks against 0.57-0.75 s with 256; k = 715, L = 16384:
0.109-0.126 against 0.117-0.166), while the rounding depth ``block + L / block`` grows from 512 to 640 at
L = 65536 (the certified bounds grew by at most 0.7 % there, 0.1 % at L = 16384)."""
SMALL_BLOCK_BYTES = 16 * 2**20
"""The feature buffer (``8 k`` bytes per row for "factored") up to which :data:`SMALL_BLOCK_FLOOR` applies."""
GPU_MIN_BLOCK = 2048
"""Rows per block on a GPU (fewer only where the budget or the rows are fewer): see :func:`default_block_size`."""


def default_block_size(k: int, d_v: int, method: str, budget: int = DEFAULT_BLOCK_BYTES,
                       rows: int | None = None, gpu: bool = False) -> int:
    """Rows per block so the feature work arrays (``k`` or ``k d_v`` columns, float64) fit ``budget``.

    With ``rows`` (the longest blocked dimension, ``max(L, L_k)``) the block is also capped near
    ``sqrt(rows)`` (a power of two, at least 256): a blocked sum of ``n`` rows has rounding depth
    ``block + n / block`` (:mod:`verified_lora.fast.rounding_bound`), least at ``block = sqrt(n)``,
    but thinner blocks make the feature GEMMs slower (measured on the 2-core box, d = 8, k = 43758:
    the factored core takes 4.0-4.4 s CPU with 256-row blocks, 4.6-4.8 s with 128 or 192). The block is a
    power of two (fuller GEMM tiles). "factored" and "antiderivative" hold one ``k x block`` feature buffer; "paper" also
    the face-split ``k d_v x block`` factors. At small ranks (a ``512``-row feature buffer within
    :data:`SMALL_BLOCK_BYTES`) the floor is :data:`SMALL_BLOCK_FLOOR` rows instead of 256.

    ``gpu=True`` (CuPy arrays) uses blocks of :data:`GPU_MIN_BLOCK` rows (fewer only where the budget or the
    rows are fewer), not ``sqrt(rows)``: each block costs tens of kernel launches, which dominated on an H200 with
    256-row blocks (the factored path at L = 4096, d = 4, degree 6 took 79 ms against 10 ms for exact). The
    rounding depth grows with the block (at most ``2048 + n / 2048`` against ``2 sqrt(n)``), and the certificate
    charges it.
    """
    width = k * (2 * d_v + 2) if method == "paper" else k
    block = int(max(64, min(GPU_MIN_BLOCK if gpu else 4096, budget // (8 * width))))
    if rows is not None and rows > 0:
        if gpu:
            floor = GPU_MIN_BLOCK
        else:
            floor = SMALL_BLOCK_FLOOR if 8 * width * SMALL_BLOCK_FLOOR <= SMALL_BLOCK_BYTES else 256
        block = min(block, max(floor, 1 << math.ceil(math.log2(math.sqrt(rows)))))
    return 1 << (block.bit_length() - 1)


def block_for(problem: Any, k: int, method: str, block_size: int | None = None) -> int:
    """The rows per block every pass over ``problem`` at rank ``k`` uses: ``block_size`` when given, else
    :func:`default_block_size` for the problem's device (NumPy or CuPy)."""
    from .._xp import is_cupy_array

    if block_size:
        return block_size
    return default_block_size(k, problem.d_v, method, rows=max(problem.L, problem.L_k),
                              gpu=is_cupy_array(problem.x_q))
