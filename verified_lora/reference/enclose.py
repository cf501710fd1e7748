"""Rigorous interval enclosures of the loss and of every gradient entry.

:func:`enclose` runs the reference body :func:`verified_lora.reference.mp.evaluate` in interval
arithmetic with outward rounding: ``mpmath.iv`` (always available) or python-flint's ``arb``
balls (optional, faster). Float inputs are exact binary values, so every returned interval
contains the true real-valued loss or gradient entry of the stored problem. The widths come from
rounding only (about ``10**-dps`` times a modest growth factor).

Every interval is returned as an ``mpmath.iv`` interval (arb balls are converted exactly), so
the :class:`Enclosure` looks the same whichever backend produced it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import InputError
from ..numerics.intervals import BACKENDS, available_backends, resolve_backend, scoped_precision
from ..problem import LoraAttention
from ..result import GradientResult
from .mp import check_dps, evaluate

__all__ = ["Enclosure", "enclose", "BACKENDS", "available_backends"]

_WEIGHT_NAMES = {"Q": "W_Q", "K": "W_K", "V": "W_V"}


# ---------------------------------------------------------------------------- contexts
class _ArbContext:
    """The few context operations :func:`evaluate` uses, on python-flint ``arb`` balls.

    ``arb(float)`` is exact; every operation returns a ball containing the exact result.
    """

    name = "flint.arb"

    def __init__(self) -> None:
        import flint

        self._arb = flint.arb

    def mpf(self, x: Any) -> Any:
        return self._arb(x)

    @staticmethod
    def exp(x: Any) -> Any:
        return x.exp()

    def sqrt(self, x: Any) -> Any:
        return self._arb(x).sqrt()

    def fsum(self, xs: Any) -> Any:
        total = self._arb(0)
        for x in xs:
            total += x
        return total

    def fdot(self, xs: Any, ys: Any) -> Any:
        total = self._arb(0)
        for x, y in zip(xs, ys):
            total += x * y
        return total


def _arb_to_iv(x: Any) -> Any:
    """The exact endpoints of an arb ball as an ``mpmath.iv`` interval (no rounding)."""
    import mpmath
    from mpmath.libmp import from_man_exp

    if not x.is_finite():
        raise ArithmeticError(f"non-finite ball {x}")
    ends = []
    for end in (x.lower(), x.upper()):
        man, exp = end.man_exp()
        ends.append(from_man_exp(int(man), int(exp)))
    return mpmath.iv.make_mpf(tuple(ends))


# ---------------------------------------------------------------------------- the result
def _endpoints(x: Any) -> tuple[Any, Any]:
    """Exact endpoints of an ``mpmath.iv`` interval as ``mpmath.mpf`` values."""
    import mpmath

    lo, hi = x._mpi_
    return mpmath.mp.make_mpf(lo), mpmath.mp.make_mpf(hi)


def _exact_mpf(v: Any) -> Any:
    """``v`` (mpf, float, NumPy float) as an exact ``mpmath.mpf``."""
    import mpmath

    if isinstance(v, mpmath.mpf):
        return v
    with mpmath.mp.workprec(64):
        return mpmath.mp.mpf(float(v))  # binary64 (and float32) values are exact at 64 bits


@dataclass(frozen=True)
class Enclosure:
    """Intervals containing the exact loss and every gradient entry of one problem.

    Attributes
    ----------
    loss:
        An ``mpmath.iv`` interval containing ``1/(2N) sum ||f V - Y||_F^2``.
    grads:
        "A_Q", "B_Q", ... (adapted weights only): NumPy object arrays of ``mpmath.iv`` intervals.
    weight_grads:
        "Q", "K", "V": intervals of ``dL/dW_mu``.
    backend, dps:
        Which interval arithmetic ran ("mpmath.iv" or "flint.arb") and at how many digits.
    """

    loss: Any
    grads: dict[str, np.ndarray]
    weight_grads: dict[str, np.ndarray]
    backend: str
    dps: int
    info: dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        """Compact: the loss interval with enough digits to tell its endpoints apart, and per quantity
        the shape and the relative width (never the arrays)."""
        widths = self.relative_widths()
        parts = [f"{k}: {tuple(box.shape)} rel. width {widths.get(k, float('nan')):.2g}" for k, box in self.items()
                 if k != "loss"]
        return (f"Enclosure(backend={self.backend!r}, dps={self.dps}, loss={_interval_text(self.loss, self.dps)}, "
                + "widths={" + ", ".join(parts) + "})")

    def items(self) -> Iterator[tuple[str, np.ndarray]]:
        """``(name, object array of intervals)`` for "loss", every adapter gradient and "W_Q".."W_V"."""
        yield "loss", np.array([self.loss], dtype=object)
        yield from self.grads.items()
        for key, value in self.weight_grads.items():
            yield _WEIGHT_NAMES[key], value

    @staticmethod
    def _values_of(result: GradientResult) -> dict[str, np.ndarray]:
        values = {"loss": np.array([result.loss], dtype=object)}
        values.update({k: np.asarray(v, dtype=object) for k, v in result.grads.items()})
        values.update({_WEIGHT_NAMES[k]: np.asarray(v, dtype=object) for k, v in result.weight_grads.items()})
        return values

    def outside(self, result: GradientResult) -> list[str]:
        """Names (e.g. ``"A_Q[1, 0]"``) of the entries of ``result`` that lie outside their interval.

        ``result`` may hold mpf, float or float64 entries (floats are taken as exact binary
        values). Missing keys or shapes that differ are reported too.
        """
        values = self._values_of(result)
        bad: list[str] = []
        for name, box in self.items():
            if name not in values:
                if name.startswith("W_") and not result.weight_grads:
                    continue  # a result without weight gradients is checked on the rest
                bad.append(f"{name} (missing)")
                continue
            got = values[name]
            if got.shape != box.shape:
                bad.append(f"{name} (shape {got.shape}, expected {box.shape})")
                continue
            for index in np.ndindex(box.shape):
                lo, hi = _endpoints(box[index])
                v = _exact_mpf(got[index])
                if not lo <= v <= hi:
                    where = "" if name == "loss" else str(list(index))
                    bad.append(f"{name}{where}")
        bad.extend(f"{name} (not enclosed)" for name in values if name not in dict(self.items()))
        return bad

    def contains(self, result: GradientResult) -> bool:
        """True when every loss/gradient entry of ``result`` lies in its interval (see :meth:`outside`)."""
        return not self.outside(result)

    def magnitudes(self) -> dict[str, float]:
        """Per quantity: ``max |midpoint|`` over its entries (the scale of the relative forms)."""
        import mpmath

        with mpmath.mp.workdps(self.dps + 10):
            return {name: float(max(abs(lo + hi) / 2 for lo, hi in map(_endpoints, box.ravel())))
                    for name, box in self.items()}

    def relative_widths(self) -> dict[str, float]:
        """Per quantity: ``max width / max |midpoint|`` (the absolute width when every midpoint is 0)."""
        import mpmath

        out: dict[str, float] = {}
        with mpmath.mp.workdps(self.dps + 10):
            for name, box in self.items():
                width = max((hi - lo for lo, hi in map(_endpoints, box.ravel())), default=mpmath.mpf(0))
                scale = max((abs(lo + hi) / 2 for lo, hi in map(_endpoints, box.ravel())), default=mpmath.mpf(0))
                out[name] = float(width / scale) if scale else float(width)
        return out

    def max_relative_width(self) -> float:
        """The largest of :meth:`relative_widths` over the loss and every gradient."""
        return max(self.relative_widths().values())

    def midpoint(self) -> GradientResult:
        """A :class:`GradientResult` of the interval midpoints (``mpmath.mpf``; ``method="enclosure"``)."""
        import mpmath

        def mid(x: Any) -> Any:
            lo, hi = _endpoints(x)
            with mpmath.mp.workdps(self.dps + 20):
                return (lo + hi) / 2

        def conv(box: np.ndarray) -> np.ndarray:
            out = np.empty(box.shape, dtype=object)
            for index in np.ndindex(box.shape):
                out[index] = mid(box[index])
            return out

        return GradientResult(loss=mid(self.loss), grads={k: conv(v) for k, v in self.grads.items()},
                              weight_grads={k: conv(v) for k, v in self.weight_grads.items()},
                              method="enclosure", info={"dps": self.dps, "backend": self.backend})

    def error_bounds(self, result: GradientResult) -> dict[str, float]:
        """Certified max-entry absolute error of ``result`` per quantity, rounded up to a float.

        For each entry ``v`` with interval ``[lo, hi]``, ``|v - exact| <= max(v - lo, hi - v)``;
        the maximum over the entries of a quantity is returned (an upper bound, never an estimate).
        """
        import mpmath

        values = self._values_of(result)
        out: dict[str, float] = {}
        for name, box in self.items():
            if name not in values:
                continue
            worst = mpmath.mpf(0)
            for index in np.ndindex(box.shape):
                lo, hi = _endpoints(box[index])
                v = _exact_mpf(values[name][index])
                worst = max(worst, mpmath.fsub(v, lo, exact=True), mpmath.fsub(hi, v, exact=True))
            out[name] = mpmath.libmp.to_float(worst._mpf_, rnd=mpmath.libmp.round_up)
        return out


# ---------------------------------------------------------------------------- entry point
_SHOWN: list[type] = []


def _shown(x: Any) -> Any:
    """``x`` as an ``mpmath.iv`` interval whose repr/str show enough digits to tell its endpoints apart
    (mpmath prints at its global 15 digits, where both endpoints of a tight interval look the same)."""
    import mpmath

    if not _SHOWN:
        class Interval(type(mpmath.iv.mpf(0))):  # an ivmpf: arithmetic and isinstance checks unchanged
            __slots__ = ()

            def __repr__(self) -> str:
                a, b = _interval_text(self, 60)[1:-1].split(", ")
                return f"mpi('{a}', '{b}')"

            def __str__(self) -> str:
                return _interval_text(self, 60)

        _SHOWN.append(Interval)
    out = object.__new__(_SHOWN[0])
    out._mpi_ = x._mpi_
    return out


def _interval_text(x: Any, dps: int) -> str:
    """``[a, b]`` with the fewest digits (>= 6) at which the endpoints differ (all ``dps + 5`` if they never do)."""
    import mpmath

    a, b = _endpoints(x)
    for n in range(6, dps + 6):
        sa, sb = mpmath.nstr(a, n), mpmath.nstr(b, n)
        if sa != sb:
            return f"[{sa}, {sb}]"
    return f"[{mpmath.nstr(a, dps + 5)}, {mpmath.nstr(b, dps + 5)}]"


def _wrap(rows: list[list[Any]], convert) -> np.ndarray:
    out = np.empty((len(rows), len(rows[0])), dtype=object)
    for i, row in enumerate(rows):
        for j, v in enumerate(row):
            out[i, j] = convert(v)
    return out


def enclose(problem: LoraAttention, dps: int = 30, *, backend: str = "auto") -> Enclosure:
    """Rigorous enclosures of the loss, the adapter gradients and ``dL/dW_mu`` of ``problem``.

    Runs the reference body in interval arithmetic at ``dps`` digits with outward rounding
    (``backend``: "iv" = mpmath.iv, "arb" = python-flint, "auto" = arb when installed; see
    :mod:`verified_lora.numerics.intervals`). Float
    inputs are taken as their exact binary values. Every true value lies in its interval.
    """
    if not isinstance(problem, LoraAttention):
        raise InputError("problem", "a verified_lora.LoraAttention", type(problem).__name__)
    dps = check_dps(dps)
    backend = resolve_backend(backend)  # InputError naming "backend" for an unknown or missing one
    if backend == "arb":
        # arb's lower()/upper() round at the context precision
        with scoped_precision(dps=dps, backend="arb"):
            loss, grads, weight_grads = evaluate(_ArbContext(), problem)
            try:
                return _enclosure(loss, grads, weight_grads, _arb_to_iv, "flint.arb", dps)
            except ArithmeticError as exc:  # exp of a huge score: arb gives up (non-finite ball)
                raise _overflow_error(problem, str(exc)) from None
    with scoped_precision(dps=dps, backend="iv") as iv:
        loss, grads, weight_grads = evaluate(iv, problem)
    return _enclosure(loss, grads, weight_grads, lambda x: x, "mpmath.iv", dps)


def _overflow_error(problem: LoraAttention, what: str) -> Exception:
    from ..errors import OverflowInputError
    from ..overflow import RESCALE_FIX, magnitudes

    m = magnitudes(problem)
    return OverflowInputError(m.culprit("S"), "scores whose exponentials arb can enclose",
                              f"{what} ({m.describe('S')})", RESCALE_FIX + ", or use backend='iv'")


def _enclosure(loss: Any, grads: dict, weight_grads: dict, to_iv, backend: str, dps: int) -> Enclosure:
    def convert(x: Any) -> Any:
        return _shown(to_iv(x))

    return Enclosure(loss=convert(loss), grads={k: _wrap(v, convert) for k, v in grads.items()},
                     weight_grads={k: _wrap(v, convert) for k, v in weight_grads.items()},
                     backend=backend, dps=dps)
