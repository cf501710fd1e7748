"""The mpmath reference: loss and gradients straight from the definitions, at any precision.

The computation is written once, in :func:`evaluate`, against an *arithmetic context* ``ctx``
(``mpmath.mp``, ``mpmath.iv``, or the python-flint ball context of
:mod:`verified_lora.reference.enclose`). It uses only ``ctx.mpf``, ``ctx.exp``, ``ctx.sqrt``,
``ctx.fdot``, ``ctx.fsum`` and the four operations, so the same body yields point values at
``dps`` digits (``mp``) and rigorous enclosures (``iv``, arb). Precision is scoped with
``mp.workdps``; it is never set globally.

It shares no code path with :mod:`verified_lora.exact` (which fuses the backward pass into
``p = f * (q - rowsum(f * q))``). Here, for one problem and each query row ``j``:

1. the effective weights ``W_mu = W*_mu + s B_mu A_mu`` are rebuilt from the stored ``W*``, ``A``,
   ``B``, ``alpha`` in the context's arithmetic, with ``s = alpha/r`` or ``alpha/sqrt(r)``
   (never from the float64 ``problem.weight``);
2. ``S_j = beta P_j K^T`` and ``f_j = exp(S_j) / sum exp(S_j)`` (no shift: mpmath exponents do not
   overflow), ``c_j = f_j V - Y_j``, loss ``1/2 sum_j ||c_j||^2``;
3. Lemma 3.1: ``dL/df_j = V c_j``, and the row Jacobian of the softmax is formed explicitly,
   ``J_j = diag(f_j) - f_j f_j^T``, so that ``dL/dS_j = J_j (V c_j)``. Its diagonal
   ``f_l (1 - f_l)`` is evaluated as ``f_l sum_{m != l} f_m``: ``1 - f_l`` would cancel to zero
   at any finite precision once the softmax saturates (and would blow up interval widths);
4. ``dL/dW_Q = beta X_Q^T dS K``, ``dL/dW_K = beta X_K^T dS^T P``, ``dL/dW_V = X_V^T f^T c``,
   each as explicit index sums;
5. the chain rule to the adapters (Lemma 3.2, corrected): ``dL/dA = s B^T dL/dW``,
   ``dL/dB = s dL/dW A^T``, again in the context's arithmetic.

A batch of ``N`` items is averaged: loss ``1/(2N) sum``, gradients ``1/N sum``.
Float inputs are converted exactly (a binary64 value is an mpf at any precision >= 53 bits).
The cost is ``O(L L_k (L_k + d))`` scalar operations in Python: meant for small problems.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import InputError, OverflowInputError
from ..problem import ADAPTER_KEYS, LoraAttention
from ..progress import task
from ..result import GradientResult

__all__ = ["evaluate", "loss_and_grads", "to_float", "check_dps", "MIN_DPS"]

SECONDS_PER_ROW_UNIT = 1e-5
"""Rough pure-Python cost of the reference per unit of ``L * L_k * (L_k + d)`` (measured 6e-6 to 2e-5 s
on a shared 2-core machine); used only for the up-front time estimate of long runs."""

MIN_DPS = 16
"""Smallest accepted precision: 16 digits (56 bits) still hold every binary64 input exactly."""

Matrix = list[list[Any]]


def check_dps(dps: Any, name: str = "dps") -> int:
    """Validate a decimal precision (an int >= :data:`MIN_DPS`)."""
    if isinstance(dps, bool) or not isinstance(dps, (int, np.integer)) or int(dps) < MIN_DPS:
        raise InputError(name, f"an int >= {MIN_DPS} (decimal digits)", repr(dps),
                         "binary64 inputs need at least 16 digits to be represented exactly")
    return int(dps)


# ---------------------------------------------------------------------------- the generic body
def _matrix(ctx, array: Any) -> Matrix:
    """A 2-D float array as a list of rows of exact context numbers."""
    return [[ctx.mpf(v) for v in row] for row in np.asarray(array).tolist()]


def _transpose(m: Matrix) -> Matrix:
    return [list(col) for col in zip(*m)]


def _matmul(ctx, a: Matrix, b: Matrix) -> Matrix:
    """``(a b)[i][k] = sum_j a[i][j] b[j][k]`` as explicit dot products."""
    cols = _transpose(b)
    return [[ctx.fdot(row, col) for col in cols] for row in a]


def _scale(ctx, alpha: float, r: int, scaling: str) -> Any:
    """``s = alpha / r`` ("lora") or ``alpha / sqrt(r)`` ("rslora"), in the context's arithmetic."""
    if scaling == "lora":
        return ctx.mpf(alpha) / r
    return ctx.mpf(alpha) / ctx.sqrt(ctx.mpf(r))


def _softmax(ctx, scores: Sequence[Any]) -> list[Any]:
    """``f_l = exp(S_l) / sum_m exp(S_m)``; a single score gives exactly ``[1]``."""
    if len(scores) == 1:
        return [ctx.mpf(1)]
    e = [ctx.exp(s) for s in scores]
    total = ctx.fsum(e)
    return [x / total for x in e]


def evaluate(ctx, problem: LoraAttention) -> tuple[Any, dict[str, Matrix], dict[str, Matrix]]:
    """Loss, adapter gradients and ``dL/dW_mu`` of ``problem`` in the arithmetic of ``ctx``.

    ``ctx`` provides ``mpf`` (exact conversion of a Python float or int), ``exp``, ``sqrt``,
    ``fdot`` and ``fsum``. The caller scopes the precision. Returns ``(loss, grads,
    weight_grads)`` with nested lists of context numbers (see the module docstring for the route).
    """
    problem = problem.to_numpy()
    beta = ctx.mpf(problem.beta)
    scales: dict[str, Any] = {}
    adapters: dict[str, tuple[Matrix, Matrix]] = {}
    weights: dict[str, Matrix] = {}
    for key in ADAPTER_KEYS:
        w = _matrix(ctx, problem.frozen_weight(key))
        if key in problem.adapters:
            ad = problem.adapters[key]
            a, b = _matrix(ctx, ad.a), _matrix(ctx, ad.b)
            s = _scale(ctx, problem.alpha, ad.r, problem.scaling)
            ba = _matmul(ctx, b, a)
            w = [[w_ij + s * ba_ij for w_ij, ba_ij in zip(w_row, ba_row)] for w_row, ba_row in zip(w, ba)]
            scales[key], adapters[key] = s, (a, b)
        weights[key] = w

    n = problem.n_batch
    loss_sum = ctx.mpf(0)
    sums: dict[str, Matrix] = {}
    kind = getattr(ctx, "name", None) or ("mpmath.iv" if type(ctx).__name__ == "MPIntervalContext" else "mpmath")
    advice = ("backend='arb' (python-flint), or a smaller problem" if kind == "mpmath.iv" else
              "a smaller problem" if kind != "mpmath" else
              "reference.enclose(problem, backend='arb') (verified-lora enclose) runs the same body several "
              "times faster with rigorous intervals, or use a smaller problem")
    # a-priori cost: each row forms an L_k x L_k Jacobian and L_k dot products of length d
    estimate = SECONDS_PER_ROW_UNIT * n * problem.L * problem.L_k * (problem.L_k + problem.d_model + problem.d_v)
    with task(n * problem.L, f"reference rows ({kind})", advice=advice, estimate_s=estimate) as bar:
        for x_q, x_k, x_v, y in problem.items():
            item_loss, item_grads = _single(ctx, _matrix(ctx, x_q), _matrix(ctx, x_k), _matrix(ctx, x_v),
                                            _matrix(ctx, y), weights, beta, bar)
            loss_sum += item_loss
            if not sums:
                sums = item_grads
            else:
                sums = {k: [[u + v for u, v in zip(ur, vr)] for ur, vr in zip(sums[k], item_grads[k])]
                        for k in sums}
    loss = loss_sum / n  # each item's loss is already halved
    weight_grads = {k: [[v / n for v in row] for row in g] for k, g in sums.items()} if n > 1 else sums

    grads: dict[str, Matrix] = {}
    for key in problem.adapted:
        a, b = adapters[key]
        s, g = scales[key], weight_grads[key]
        grads[f"A_{key}"] = [[s * v for v in row] for row in _matmul(ctx, _transpose(b), g)]
        grads[f"B_{key}"] = [[s * v for v in row] for row in _matmul(ctx, g, _transpose(a))]
    return loss, grads, weight_grads


def _single(ctx, x_q: Matrix, x_k: Matrix, x_v: Matrix, y: Matrix, weights: dict[str, Matrix],
            beta: Any, bar: Any = None) -> tuple[Any, dict[str, Matrix]]:
    """``1/2 ||f V - Y||_F^2`` (not halved over a batch) and ``dL/dW_mu`` for one item."""
    P = _matmul(ctx, x_q, weights["Q"])      # L x d_head
    K = _matmul(ctx, x_k, weights["K"])      # L_k x d_head
    V = _matmul(ctx, x_v, weights["V"])      # L_k x d_v
    V_cols = _transpose(V)
    L_k = len(K)
    f_rows: Matrix = []
    c_rows: Matrix = []
    dS: Matrix = []
    total = ctx.mpf(0)
    for P_j, Y_j in zip(P, y):
        f_j = _softmax(ctx, [beta * ctx.fdot(P_j, K_l) for K_l in K])
        c_j = [ctx.fdot(f_j, col) - y_ji for col, y_ji in zip(V_cols, Y_j)]
        total += ctx.fdot(c_j, c_j)
        g_j = [ctx.fdot(V_l, c_j) for V_l in V]                  # dL/df_j = V c_j
        # J_j = diag(f_j) - f_j f_j^T, with the diagonal f_l - f_l^2 written as f_l * sum_{m != l} f_m
        # (rows of f sum to 1): the direct form cancels to 0 when the softmax saturates (f_l ~ 1).
        rest = [ctx.fsum(f_j[:l] + f_j[l + 1:]) for l in range(L_k)]
        J_j = [[f_j[l] * rest[l] if l == m else -(f_j[l] * f_j[m]) for m in range(L_k)] for l in range(L_k)]
        dS.append([ctx.fdot(J_row, g_j) for J_row in J_j])       # dL/dS_j = J_j (V c_j), Lemma 3.1
        f_rows.append(f_j)
        c_rows.append(c_j)
        if bar is not None:
            bar.update()
    dS_T = _transpose(dS)
    dP = [[beta * v for v in row] for row in _matmul(ctx, dS, K)]      # dL/dP = beta dS K
    dK = [[beta * v for v in row] for row in _matmul(ctx, dS_T, P)]    # dL/dK = beta dS^T P
    dV = _matmul(ctx, _transpose(f_rows), c_rows)                      # dL/dV = f^T c
    grads = {"Q": _matmul(ctx, _transpose(x_q), dP),
             "K": _matmul(ctx, _transpose(x_k), dK),
             "V": _matmul(ctx, _transpose(x_v), dV)}
    return total / 2, grads


# ---------------------------------------------------------------------------- public API
def _object_array(rows: Matrix) -> np.ndarray:
    out = np.empty((len(rows), len(rows[0])), dtype=object)
    for i, row in enumerate(rows):
        for j, v in enumerate(row):
            out[i, j] = v
    return out


def loss_and_grads(problem: LoraAttention, dps: int = 50) -> GradientResult:
    """Loss and gradients of ``problem`` in mpmath at ``dps`` decimal digits.

    Returns a :class:`~verified_lora.GradientResult` with ``method="reference"``: ``loss`` is an
    ``mpmath.mpf``; ``grads`` ("A_Q", "B_Q", ...) and ``weight_grads`` ("Q", "K", "V") are NumPy
    object arrays of ``mpf`` with the same keys and shapes as :func:`verified_lora.exact.loss_and_grads`.
    Each value carries about ``dps`` correct digits (it is a floating-point result, not an
    enclosure: see :func:`verified_lora.reference.enclose`). Use :func:`to_float` for float64 arrays.
    """
    import mpmath

    if not isinstance(problem, LoraAttention):
        raise InputError("problem", "a verified_lora.LoraAttention", type(problem).__name__)
    dps = check_dps(dps)
    with mpmath.mp.workdps(dps):
        loss, grads, weight_grads = evaluate(mpmath.mp, problem)
    return GradientResult(loss=loss, grads={k: _object_array(v) for k, v in grads.items()},
                          weight_grads={k: _object_array(v) for k, v in weight_grads.items()},
                          method="reference", info={"dps": dps, "backend": "mpmath.mp"})


def _round_to_float(x: Any, name: str = "value") -> float:
    """``x`` (an mpf, or anything ``float()`` accepts) rounded to the nearest binary64."""
    import mpmath

    if isinstance(x, mpmath.mpf):
        value = mpmath.libmp.to_float(x._mpf_, rnd=mpmath.libmp.round_nearest)
    else:
        value = float(x)
    if not np.isfinite(value):
        raise OverflowInputError(name, "a value within the float64 range (|x| <= 1.8e308)",
                                 f"{mpmath.nstr(x, 5) if isinstance(x, mpmath.mpf) else x!r}",
                                 "keep the mpf result of reference.loss_and_grads, or rescale the inputs")
    return value


def to_float(result: GradientResult) -> GradientResult:
    """The same result with float64 values: each mpf is rounded to the *nearest* binary64.

    (``float(mpf)`` alone truncates towards zero in mpmath 1.3; this helper does not.) The loss
    becomes a Python float, every gradient a float64 array of the same shape.
    """
    def conv(a: Any, name: str) -> np.ndarray:
        a = np.asarray(a, dtype=object)
        return np.array([_round_to_float(v, name) for v in a.ravel()], dtype=np.float64).reshape(a.shape)

    return GradientResult(loss=_round_to_float(result.loss, "loss"),
                          grads={k: conv(v, k) for k, v in result.grads.items()},
                          weight_grads={k: conv(v, f"dL/dW_{k}") for k, v in result.weight_grads.items()},
                          method=result.method, info={**result.info, "converted": "round-to-nearest float64"})
