"""Overflow checks: never return ``inf``/``NaN`` in silence for finite inputs.

Two cheap checks, shared by :mod:`verified_lora.exact`, :mod:`verified_lora.fast` and
:mod:`verified_lora.reference`:

* :func:`check_problem` (before any work, ``O(size of the inputs)``): certified upper bounds, in
  ``log2``, on the entries of every intermediate the float engines form -- the effective weights
  ``W = W* + s B A``, ``Q = X_Q W_Q``, ``K``, ``V``, ``Q K^T`` and the scores ``S = beta Q K^T``
  (the max-stabilised softmax also forms ``S - max S``) and the loss ``1/2 ||f V - Y||^2``. Each
  bound is an entry bound (``|sum_i x_i w_i| <= n max|x| max|w|``, ``|f V| <= max|V|`` since softmax
  rows are convex weights), with one extra bit per stage for float rounding (``n u < 1``). When a
  bound leaves the dtype's range, :class:`~verified_lora.errors.OverflowInputError` is raised, naming
  the input that drives the magnitude and how to rescale.
* :func:`check_result` (after the work): every loss and gradient entry is finite, else the same
  error (gradients are bounded only a posteriori: their a-priori entry bounds carry factors
  ``L L_k d`` that would refuse sensible float32 problems).

Everything is computed from ``max |entry|`` of each input in ``log2``, so the checks themselves
never overflow.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ._xp import to_numpy
from .errors import OverflowInputError

__all__ = ["Magnitudes", "magnitudes", "check_problem", "check_result", "RESCALE_FIX"]

RESCALE_FIX = ("rescale the inputs (divide the largest arrays by a power of two, or reduce alpha or |beta|) so "
               "that the scores and the loss stay well inside the dtype's range")
"""The fix every overflow message suggests."""

_NEG_INF = -math.inf


def _log2max(x: Any) -> float:
    m = float(np.max(np.abs(to_numpy(x)))) if np.size(to_numpy(x)) else 0.0
    return math.log2(m) if m > 0 else _NEG_INF


def _ladd(a: float, b: float) -> float:
    """``log2(2^a + 2^b)`` without overflow."""
    hi, lo = max(a, b), min(a, b)
    if lo == _NEG_INF:
        return hi
    return hi + math.log2(1.0 + 2.0 ** (lo - hi))


def _pow10(l2: float) -> str:
    if l2 == _NEG_INF:
        return "0"
    e = l2 * math.log10(2.0)
    mant = 10 ** (e - math.floor(e))
    return f"{mant:.2g}e{int(math.floor(e)):+d}"


@dataclass
class Magnitudes:
    """Certified ``log2`` entry bounds of each intermediate, and the inputs that drive each one.

    ``bounds`` maps a quantity ("W_Q", "Q", "S", "loss", ...) to ``log2`` of an upper bound of its
    max |entry|; ``drivers`` maps it to ``{input field: log2 max|entry|}`` of the inputs it is built from.
    """

    dtype: str
    limit: float
    bounds: dict[str, float] = field(default_factory=dict)
    drivers: dict[str, dict[str, float]] = field(default_factory=dict)

    def culprit(self, quantity: str) -> str:
        """The input field with the largest magnitude among the drivers of ``quantity``."""
        drivers = self.drivers.get(quantity) or {}
        return max(drivers, key=lambda k: drivers[k]) if drivers else "problem"

    def describe(self, quantity: str) -> str:
        drivers = self.drivers.get(quantity) or {}
        top = sorted(drivers.items(), key=lambda kv: -kv[1])[:3]
        inputs = ", ".join(("|s| = |alpha|/r" if k == "alpha" else f"max|{k}|") + f" ~ {_pow10(v)}" for k, v in top)
        return f"certified bound max|{quantity}| <= {_pow10(self.bounds[quantity])} ({inputs})"


def magnitudes(problem: Any) -> Magnitudes:
    """Certified ``log2`` entry bounds of the weights, ``Q``, ``K``, ``V``, ``Q K^T``, ``S`` and the loss."""
    dtype = np.dtype(problem.dtype)
    m = Magnitudes(str(dtype), math.log2(float(np.finfo(dtype).max)))
    inp = {name: _log2max(getattr(problem, name)) for name in ("x_q", "x_k", "x_v", "y", "w_q", "w_k", "w_v")}
    for key in ("Q", "K", "V"):
        w = f"w_{key.lower()}"
        drivers = {w: inp[w]}
        bound = inp[w]
        if key in problem.adapters:
            ad = problem.adapters[key]
            s = abs(problem.scale(key))
            la, lb = _log2max(ad.a), _log2max(ad.b)
            ls = math.log2(s) if s > 0 else _NEG_INF
            drivers.update({"alpha": ls, f"adapters['{key}'].a": la, f"adapters['{key}'].b": lb})
            bound = _ladd(bound, ls + math.log2(ad.r) + la + lb) + 1
        m.bounds[f"W_{key}"], m.drivers[f"W_{key}"] = bound, drivers
        x = {"Q": "x_q", "K": "x_k", "V": "x_v"}[key]
        m.bounds[key] = math.log2(problem.d_model) + inp[x] + bound + 1
        m.drivers[key] = {x: inp[x], **drivers}
    m.bounds["Q K^T"] = math.log2(problem.d_head) + m.bounds["Q"] + m.bounds["K"] + 1
    m.drivers["Q K^T"] = {**m.drivers["Q"], **m.drivers["K"]}
    lbeta = math.log2(abs(problem.beta)) if problem.beta else _NEG_INF
    # S - max S is formed too: one more bit
    m.bounds["S"] = max(m.bounds["Q K^T"], lbeta + m.bounds["Q K^T"]) + 1
    m.drivers["S"] = {"beta": lbeta, **m.drivers["Q K^T"]}
    c = _ladd(m.bounds["V"], inp["y"]) + 1
    m.bounds["loss"] = math.log2(problem.L * problem.d_v) + 2 * c  # 1/2 sum of squares, +1 bit rounding
    m.drivers["loss"] = {"y": inp["y"], **m.drivers["V"]}
    return m


_ORDER = ("W_Q", "W_K", "W_V", "Q", "K", "V", "Q K^T", "S", "loss")


def check_problem(problem: Any, where: str = "") -> Magnitudes:
    """Raise :class:`OverflowInputError` when a certified bound leaves the problem dtype's range.

    ``where`` names the engine in the message ("exact", "fast", ...). Returns the magnitudes.
    """
    m = magnitudes(problem)
    for q in _ORDER:
        if m.bounds[q] >= m.limit - 1:
            raise OverflowInputError(
                m.culprit(q), f"inputs whose {q} fits in {m.dtype} (max {np.finfo(m.dtype).max:.3g})",
                f"{m.describe(q)}" + (f"; {where} would return inf/NaN" if where else ""), RESCALE_FIX)
    return m


def _finite(x: Any) -> bool:
    try:
        return bool(np.all(np.isfinite(np.asarray(to_numpy(x), dtype=np.float64))))
    except (TypeError, ValueError, OverflowError):
        return True  # object arrays of mpf/intervals: mpmath does not overflow


def check_result(result: Any, problem: Any, where: str = "") -> Any:
    """``result`` unchanged when its loss and every gradient entry are finite; else :class:`OverflowInputError`."""
    parts: dict[str, Any] = {"loss": result.loss, **dict(result.grads)}
    parts.update({f"dL/dW_{k}": v for k, v in result.weight_grads.items()})
    bad = [name for name, v in parts.items() if not _finite(v)]
    if bad:
        m = magnitudes(problem)
        worst = max((q for q in _ORDER), key=lambda q: m.bounds[q] - m.limit)
        raise OverflowInputError(
            m.culprit(worst), f"inputs whose loss and gradients fit in {m.dtype}",
            f"{where + ': ' if where else ''}non-finite {', '.join(bad)} (largest intermediate: {m.describe(worst)})",
            RESCALE_FIX)
    return result

