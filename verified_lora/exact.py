"""Exact loss and gradients in the problem's floating dtype, blocked over query rows.

For one problem (docs/design.md section 3, corrected forms; see ERRATA.md):

* ``P = X_Q W_Q``, ``K = X_K W_K``, ``V = X_V W_V``, ``S = beta P K^T``, ``f = softmax_rows(S)``;
* ``c = f V - Y``, ``q = c V^T``, ``p1 = f * q``, ``rvec = p1 1``, ``p2 = diag(rvec) f``,
  ``p = p1 - p2 = dL/dS``;
* ``dL/dW_Q = beta X_Q^T p K``, ``dL/dW_K = beta X_K^T p^T P``, ``dL/dW_V = X_V^T f^T c``;
* ``dL/dA_mu = s B_mu^T dL/dW_mu``, ``dL/dB_mu = s dL/dW_mu A_mu^T``.

Query rows are processed in blocks, so only two ``(block x L_k)`` matrices are alive at a time:
memory is ``O(block * L_k + (L + L_k) d)`` and time ``O(L L_k d)``. Softmax subtracts the row max
before exponentiating. GEMMs use ``@`` (cuBLAS for CuPy); the other steps run on a steps object
(:func:`verified_lora.steps.steps_for`): array expressions for NumPy, the generated kernels for CuPy.
"""

from __future__ import annotations

from typing import Any

from .errors import InputError
from .overflow import check_problem, check_result
from .problem import LoraAttention
from .result import GradientResult, adapter_grads
from . import steps as _steps

__all__ = ["loss_and_grads", "default_block_size", "DEFAULT_MEMORY_BUDGET"]

DEFAULT_MEMORY_BUDGET = 512 * 2**20
"""Bytes allowed for the two (block x L_k) work matrices."""


def default_block_size(L: int, L_k: int, itemsize: int, memory_budget: int = DEFAULT_MEMORY_BUDGET) -> int:
    """Largest row block whose two ``(block x L_k)`` work matrices fit in ``memory_budget`` bytes."""
    return max(1, min(L, memory_budget // (2 * itemsize * L_k)))


def _single(x_q: Any, x_k: Any, x_v: Any, y: Any, w_q: Any, w_k: Any, w_v: Any, beta: float,
            block: int, xp: Any, steps: Any) -> tuple[float, Any, Any, Any]:
    """Loss and ``dL/dW_{Q,K,V}`` of one (unbatched) problem; ``steps`` runs the non-GEMM steps."""
    P = x_q @ w_q
    K = x_k @ w_k
    V = x_v @ w_v
    dP = xp.zeros_like(P)
    dK = xp.zeros_like(K)
    dV = xp.zeros_like(V)
    loss = 0.0
    L = P.shape[0]
    # Two (block x L_k) work buffers, reused by every block (fresh allocations per block cost
    # page faults comparable to the arithmetic on large L_k).
    f_buf = xp.empty((min(block, L), K.shape[0]), dtype=P.dtype)
    q_buf = xp.empty_like(f_buf)
    for i0 in range(0, L, block):
        i1 = min(L, i0 + block)
        f = f_buf[: i1 - i0]
        xp.matmul(P[i0:i1], K.T, out=f)          # S / beta
        f, top = steps.softmax_rows(f, beta)     # max-stabilised softmax; top = each row's arg max
        c = steps.residual(f @ V, y[i0:i1])      # residual
        loss += 0.5 * float((c * c).sum())
        dV += f.T @ c
        q = q_buf[: i1 - i0]
        xp.matmul(c, V.T, out=q)                 # q = c V^T (row j paired with row j of f)
        # q - rvec, with rvec = sum_m f_m q_m, is evaluated as (q - q_top) - sum_m f_m (q_m - q_top).
        # Equal in exact arithmetic (rows of f sum to 1); when the softmax saturates (f_top ~ 1) the
        # plain form cancels catastrophically (relative error ~ u / (1 - f_top), seen at 4e-10).
        q -= xp.take_along_axis(q, top, axis=1)
        q = steps.softmax_grad_rows(f, q)        # p = f*(q - rvec) = f*q - diag(rvec) f
        dP[i0:i1] = q @ K
        dK += q.T @ P[i0:i1]
    dP *= beta
    dK *= beta
    return loss, x_q.T @ dP, x_k.T @ dK, x_v.T @ dV


def loss_and_grads(problem: LoraAttention, *, block_size: int | None = None,
                   memory_budget: int = DEFAULT_MEMORY_BUDGET) -> GradientResult:
    """Exact loss, adapter gradients and effective-weight gradients of ``problem``.

    Parameters
    ----------
    problem:
        A validated :class:`~verified_lora.LoraAttention` (NumPy or CuPy arrays). Arithmetic is
        done in the problem's dtype; use float64 for reference-grade results.
    block_size:
        Query rows per block; default: the largest block whose work matrices fit in
        ``memory_budget`` bytes.
    """
    if not isinstance(problem, LoraAttention):
        raise InputError("problem", "a verified_lora.LoraAttention", type(problem).__name__)
    if block_size is None:
        block_size = default_block_size(problem.L, problem.L_k, problem.dtype.itemsize, memory_budget)
    elif isinstance(block_size, bool) or not isinstance(block_size, int) or block_size < 1:
        raise InputError("block_size", "a positive int", repr(block_size))
    check_problem(problem, "exact")              # OverflowInputError before any work
    w_q, w_k, w_v = (problem.weight(k) for k in ("Q", "K", "V"))
    n = problem.n_batch
    loss = 0.0
    totals: list[Any] = []
    steps = _steps.steps_for(problem.xp)         # NumPy steps, or the generated kernels for CuPy
    for x_q, x_k, x_v, y in problem.items():
        item_loss, *item_grads = _single(x_q, x_k, x_v, y, w_q, w_k, w_v, problem.beta, block_size, problem.xp,
                                      steps)
        loss += item_loss
        totals = item_grads if not totals else [t + g for t, g in zip(totals, item_grads)]
    if n > 1:
        loss /= n
        totals = [t / n for t in totals]
    weight_grads = dict(zip(("Q", "K", "V"), totals))
    return check_result(GradientResult(loss=loss, grads=adapter_grads(problem, weight_grads),
                                       weight_grads=weight_grads, method="exact",
                                       info={"block_size": block_size, "dtype": str(problem.dtype)}), problem, "exact")
