"""One chunk of query rows of the blocked enclosure, in python-flint ``arb_mat`` arithmetic.

Runs in the calling process or on a dask worker (see :mod:`verified_lora.parallel`). Inputs are
the problem's float64 arrays (exact binary values) and a working precision in bits; every
operation is a rigorous ball operation (``arb_mat`` products run in C), so each returned ball
contains the exact value. Per row block of ``b`` query rows, with ``m`` any exact shift (a
float64 row maximum of the scores; the softmax does not depend on it), the forms of
:func:`verified_lora.symbolic.derive.element_forms` are evaluated as::

    S - m 1^T    = [beta P W_K^T, -m] [X_K, 1]^T          score, then the shift   (b x L_k)
    u            = exp(S - m)                             entrywise: the only exp (b x L_k)
    [u X_V, alpha] = u [X_V, 1]                           alpha = u 1
    f X_V        = diag(1/alpha) u X_V                    f = diag(alpha)^-1 u is never formed
    f V = (f X_V) W_V,   c = f V - Y
    rvec_i       = <f_i, q_i> = <(f V)_i, c_i>            q = c V^T, so sum_j f_ij q_ij = (f V c^T)_ii
    q - rvec     = [c W_V^T, -rvec] [X_V, 1]^T            (b x L_k)
    w            = u * (q - rvec)                         entrywise; p = f * (q - rvec) = diag(1/alpha) w
    p X_K        = diag(1/alpha) (w X_K)                  (b x d_model)
    X_Q^T p K    = X_Q^T ((p X_K) W_K)                    summed over the blocks of the chunk
    X_K^T p^T P  = (p X_K)^T P                            summed over the blocks of the chunk
    X_V^T f^T c  = (f X_V)^T c                            summed over the blocks of the chunk

so each block costs four ``L_k``-long products (each with the exact float64 ``X_K`` or ``X_V`` as
one factor), two entrywise passes over ``b x L_k`` balls (the ``exp`` and ``u * (q - rvec)``), and
``O(b d^2)`` work for the rest; ``p X_K`` and ``f X_V`` serve both the ``Q``/``K`` and the ``V``
contractions. The chunk returns ``1/2 sum ||c||^2``, ``X_Q^T p K``, ``X_K^T p^T P`` and
``X_V^T f^T c`` over its rows (``beta``, the batch mean and the adapter chain rule are applied by
the caller). Memory is a few ``b x L_k`` ball matrices. Results travel as integers (:func:`pack`):
midpoints exactly, radii rounded up.

python-flint is imported inside the functions, so importing this module is cheap.
"""

from __future__ import annotations

import math
import operator
from typing import Any

import numpy as np

from ..numerics.intervals import scoped_precision

__all__ = ["chunk", "pack", "unpack", "effective_weights", "arb_matrix", "adapter_scale", "Payload"]

Payload = dict[str, Any]
"""The shared inputs of every chunk: float64 arrays and scalars (see ``blocked._payload``)."""

_CACHE: dict[tuple, Any] = {}
"""Per process: the last (token, item, prec)'s ball matrices K, V, [K,1]^T, [V,1], [V,1]^T."""


def arb_matrix(a: np.ndarray) -> Any:
    """A float64 array as an exact ``arb_mat`` (binary64 values are exact balls)."""
    import flint

    a = np.asarray(a, dtype=np.float64)
    return flint.arb_mat(a.shape[0], a.shape[1], a.ravel().tolist())


def adapter_scale(payload: Payload, key: str) -> Any:
    """The adapter scale ``s`` of ``key`` as a ball: ``alpha/r`` or ``alpha/sqrt(r)``."""
    import flint

    r = payload["adapters"][key][0].shape[0]
    alpha = flint.arb(payload["alpha"])
    return alpha / r if payload["scaling"] == "lora" else alpha / flint.arb(r).sqrt()


def effective_weights(payload: Payload) -> dict[str, Any]:
    """``W_mu = W*_mu + s B_mu A_mu`` as ball matrices (at the current flint precision)."""
    out = {}
    for key in ("Q", "K", "V"):
        w = arb_matrix(payload["w"][key])
        if key in payload["adapters"]:
            a, b = payload["adapters"][key]
            w = w + (arb_matrix(b) * arb_matrix(a)) * adapter_scale(payload, key)
        out[key] = w
    return out


def _exact_with_ones(a: np.ndarray, transpose: bool) -> Any:
    """``[a, 1]`` (a column of ones appended) as an exact ball matrix, or its transpose."""
    full = np.hstack([np.asarray(a, dtype=np.float64), np.ones((a.shape[0], 1))])
    return arb_matrix(full.T if transpose else full)


def _item_state(payload: Payload, item: int, prec: int) -> tuple[Any, ...]:
    """``(W, W_K^T, W_V^T, [X_K,1]^T, X_K, [X_V,1], [X_V,1]^T)`` for one batch item, cached per process.

    Only the weights are (possibly) inexact balls; the ``L_k``-row matrices are the exact float64
    inputs, so every ``L_k``-long product below has one exact factor.
    """
    key = (payload["token"], item, prec)
    if key not in _CACHE:
        _CACHE.clear()
        W = effective_weights(payload)
        x_k, x_v = payload["x_k"][item], payload["x_v"][item]
        _CACHE[key] = (W, W["K"].transpose(), W["V"].transpose(), _exact_with_ones(x_k, True), arb_matrix(x_k),
                       _exact_with_ones(x_v, False), _exact_with_ones(x_v, True))
    return _CACHE[key]


def _row_scale(m: Any, factors: list[Any]) -> Any:
    """``diag(factors) m`` (one ball per row)."""
    import flint

    return flint.arb_mat([[x * s for x in row] for row, s in zip(m.tolist(), factors)])


def _shifts(payload: Payload, item: int, r0: int, r1: int) -> list[float]:
    """Float64 row maxima of ``beta P K^T`` for rows ``r0:r1``: exact shifts (any finite value works)."""
    scores = payload["beta"] * ((payload["x_q"][item][r0:r1] @ payload["w_float"]["Q"]) @ payload["k_float"][item].T)
    with np.errstate(all="ignore"):
        m = scores.max(axis=1)
    return [float(v) if math.isfinite(v) else 0.0 for v in m]


def chunk(payload: Payload, item: int, r0: int, r1: int, block: int, prec: int) -> dict[str, Any]:
    """Loss and the three weight-gradient contractions over query rows ``r0:r1`` of batch ``item``.

    Returns :func:`pack`-ed balls: ``loss`` (``1/2 sum ||c_i||^2``), ``GQ`` (``X_Q^T p K``),
    ``GK`` (``X_K^T p^T P``), ``GV`` (``X_V^T f^T c``), each summed over the rows in block order,
    and ``cpu_s``, the CPU seconds the chunk took in its process.
    """
    import time

    import flint

    cpu0 = time.process_time()
    with scoped_precision(prec=prec, backend="arb"):
        W, WKt, WVt, Xk1t, Xk, Xv1, Xv1t = _item_state(payload, item, prec)
        beta = flint.arb(payload["beta"])
        d_m = Xv1.ncols() - 1
        L_k = Xk.nrows()
        loss = flint.arb(0)
        GQ = GK = GV = None
        for b0 in range(r0, r1, block):
            b1 = min(r1, b0 + block)
            nb = b1 - b0
            Xq = arb_matrix(payload["x_q"][item][b0:b1])
            P = Xq * W["Q"]
            A = (P * WKt).tolist()                                          # P W_K^T, b x d_model
            shifted = flint.arb_mat([[beta * x for x in row] + [flint.arb(-m)]
                                     for row, m in zip(A, _shifts(payload, item, b0, b1))])
            u = list(map(flint.arb.exp, (shifted * Xk1t).entries()))        # exp(S - m), S = beta P W_K^T X_K^T
            U = flint.arb_mat(nb, L_k, u)
            ux = (U * Xv1).tolist()                                         # [u X_V, alpha]
            del U  # each b x L_k matrix is freed once used: lower peak memory
            inv_alpha = [1 / row[d_m] for row in ux]
            fx = _row_scale(flint.arb_mat([row[:d_m] for row in ux]), inv_alpha)  # f X_V
            fv = (fx * W["V"]).tolist()                                     # f V
            y = payload["y"][item][b0:b1].tolist()
            c_rows, rvecs = [], []
            for fv_row, y_row in zip(fv, y):
                c = [x - t for x, t in zip(fv_row, y_row)]                  # c = f V - Y
                rvec = sum((a * b for a, b in zip(fv_row, c)), flint.arb(0))  # <f_i, q_i> = <(f V)_i, c_i>
                loss += sum((a * a for a in c), flint.arb(0))
                c_rows.append(c)
                rvecs.append(-rvec)
            C = flint.arb_mat(c_rows)
            cw = (C * WVt).tolist()                                         # c W_V^T, b x d_model
            q_shift = flint.arb_mat([row + [r] for row, r in zip(cw, rvecs)]) * Xv1t  # q - rvec 1^T
            if L_k == 1:  # f = 1 and q = rvec exactly: p = 0 (balls would only bound it by rounding)
                Wm = flint.arb_mat(nb, 1)
            else:
                Wm = flint.arb_mat(nb, L_k, list(map(operator.mul, u, q_shift.entries())))  # alpha * p
            del u, q_shift
            px = _row_scale(Wm * Xk, inv_alpha)                             # p X_K, b x d_model
            del Wm
            gq = Xq.transpose() * (px * W["K"])                             # X_Q^T p K
            gk = px.transpose() * P                                         # X_K^T p^T P = (p X_K)^T P
            gv = fx.transpose() * C                                         # X_V^T f^T c = (f X_V)^T c
            GQ = gq if GQ is None else GQ + gq
            GK = gk if GK is None else GK + gk
            GV = gv if GV is None else GV + gv
        out = {"loss": pack(loss / 2), "GQ": pack(GQ), "GK": pack(GK), "GV": pack(GV)}
    out["cpu_s"] = time.process_time() - cpu0
    return out


# ---------------------------------------------------------------------------- exact transport
def _ball_ints(x: Any) -> tuple[int, int, int, int]:
    if not x.is_finite():
        raise ArithmeticError(f"non-finite ball {x}")
    mm, me = x.mid().man_exp()
    rm, re = x.rad().man_exp()
    return int(mm), int(me), int(rm), int(re)


def pack(x: Any) -> Any:
    """A ball or ball matrix as exact integers: ``(mid_man, mid_exp, rad_man, rad_exp)`` per entry."""
    if hasattr(x, "entries"):
        return {"shape": (x.nrows(), x.ncols()), "entries": [_ball_ints(v) for v in x.entries()]}
    return _ball_ints(x)


def _ball(t: tuple[int, int, int, int]) -> Any:
    import flint

    mm, me, rm, re = t
    return flint.arb(flint.arb((mm, me)), flint.arb((rm, re)))


def unpack(x: Any) -> Any:
    """Inverse of :func:`pack`: the same midpoints; a radius may grow by one 30-bit ulp (rounded up).

    Deterministic, and applied to every chunk result whichever runner produced it, so the
    reduction sees the same balls on every runner.
    """
    import flint

    if isinstance(x, dict):
        rows, cols = x["shape"]
        return flint.arb_mat(rows, cols, [_ball(t) for t in x["entries"]])
    return _ball(x)
