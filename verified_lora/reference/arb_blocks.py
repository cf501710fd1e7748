"""One chunk of query rows of the blocked enclosure, in python-flint ``arb_mat`` arithmetic.

Runs in the calling process or on a dask worker (see :mod:`verified_lora.parallel`). Inputs are
the problem's float64 arrays (exact binary values) and a working precision in bits; every
operation is a rigorous ball operation (``arb_mat`` products run in C), so each returned ball
contains the exact value. Per row block of ``b`` query rows, with ``m`` any exact shift (a
float64 row maximum of the scores; the softmax does not depend on it), the forms of
:func:`verified_lora.symbolic.derive.element_forms` are evaluated as::

    S - m 1^T   = [beta P_b, -m] [K, 1]^T               score, then the shift   (b x L_k)
    u           = exp(S - m)                            entrywise: the only exp (b x L_k)
    [u V, alpha]= u [V, 1]                              alpha = u 1
    f V         = diag(1/alpha) u V,   c = f V - Y      f = diag(alpha)^-1 u is never formed
    rvec_i      = <f_i, q_i> = <(f V)_i, c_i>           q = c V^T, so sum_j f_ij q_ij = (f V c^T)_ii
    q - rvec    = [c, -rvec] [V, 1]^T                   (b x L_k)
    w           = u * (q - rvec)                        entrywise; p = f * (q - rvec) = diag(1/alpha) w
    p K         = diag(1/alpha) (w K)                   rows of dL/dP / beta
    p^T P_b     = w^T diag(1/alpha) P_b                 summed over the blocks of the chunk
    f^T c       = u^T diag(1/alpha) c                   summed over the blocks of the chunk

and the chunk returns ``1/2 sum ||c||^2``, ``X_Q^T p K``, ``X_K^T p^T P`` and ``X_V^T f^T c`` over
its rows (``beta``, the batch mean and the adapter chain rule are applied by the caller). Memory is
a few ``b x L_k`` ball matrices. Results travel as integers (:func:`pack`): midpoints exactly,
radii rounded up.

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


def _with_ones(m: Any, transpose: bool) -> Any:
    """``[m, 1]`` (a column of ones appended), or its transpose."""
    import flint

    rows = [row + [flint.arb(1)] for row in m.tolist()]
    full = flint.arb_mat(rows)
    return full.transpose() if transpose else full


def _item_state(payload: Payload, item: int, prec: int) -> tuple[Any, ...]:
    """``(W, K, V, [K,1]^T, [V,1], [V,1]^T)`` for one batch item, cached per process."""
    key = (payload["token"], item, prec)
    if key not in _CACHE:
        _CACHE.clear()
        W = effective_weights(payload)
        K = arb_matrix(payload["x_k"][item]) * W["K"]
        V = arb_matrix(payload["x_v"][item]) * W["V"]
        _CACHE[key] = (W, K, V, _with_ones(K, True), _with_ones(V, False), _with_ones(V, True))
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
        W, K, V, Kt1, V1, Vt1 = _item_state(payload, item, prec)
        beta = flint.arb(payload["beta"])
        d_v = V.ncols()
        loss = flint.arb(0)
        GQ = dKt = dVt = None
        for b0 in range(r0, r1, block):
            b1 = min(r1, b0 + block)
            x_q = payload["x_q"][item][b0:b1]
            Xq = arb_matrix(x_q)
            P = Xq * W["Q"]
            shifted = flint.arb_mat([[beta * x for x in row] + [flint.arb(-m)]
                                     for row, m in zip(P.tolist(), _shifts(payload, item, b0, b1))])
            nb, L_k = b1 - b0, K.nrows()
            u = list(map(flint.arb.exp, (shifted * Kt1).entries()))          # exp(S - m)
            U = flint.arb_mat(nb, L_k, u)
            uv = (U * V1).tolist()                                          # [u V, alpha]
            inv_alpha = [1 / row[d_v] for row in uv]
            y = payload["y"][item][b0:b1].tolist()
            c_rows, aug = [], []
            for row, ia, y_row in zip(uv, inv_alpha, y):
                fv = [x * ia for x in row[:d_v]]                            # f V
                c = [x - t for x, t in zip(fv, y_row)]                      # c = f V - Y
                rvec = sum((a * b for a, b in zip(fv, c)), flint.arb(0))    # <f_i, q_i> = <(f V)_i, c_i>
                loss += sum((a * a for a in c), flint.arb(0))
                c_rows.append(c)
                aug.append(c + [-rvec])
            q_shift = flint.arb_mat(aug) * Vt1                              # q - rvec 1^T
            if L_k == 1:  # f = 1 and q = rvec exactly: p = 0 (balls would only bound it by rounding)
                Wm = flint.arb_mat(nb, 1)
            else:
                Wm = flint.arb_mat(nb, L_k, list(map(operator.mul, u, q_shift.entries())))  # alpha * p
            dP = _row_scale(Wm * K, inv_alpha)                              # p K
            gq = Xq.transpose() * dP
            kt = _row_scale(P, inv_alpha).transpose() * Wm                  # (p^T P)^T, d_head x L_k
            vt = _row_scale(flint.arb_mat(c_rows), inv_alpha).transpose() * U  # (f^T c)^T, d_v x L_k
            GQ = gq if GQ is None else GQ + gq
            dKt = kt if dKt is None else dKt + kt
            dVt = vt if dVt is None else dVt + vt
        GK = (dKt * arb_matrix(payload["x_k"][item])).transpose()
        GV = (dVt * arb_matrix(payload["x_v"][item])).transpose()
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
