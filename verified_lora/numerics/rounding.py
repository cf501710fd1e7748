"""Unit roundoff, Higham's ``gamma_n`` and directed rational-to-float conversions (one of each).

The model is the standard one (Higham, *Accuracy and Stability of Numerical Algorithms*, 2nd ed.,
section 2.2): each floating-point operation returns ``(exact result)(1 + delta)`` with
``|delta| <= u``; a chain of ``n`` such operations has relative error at most
``gamma_n = n u / (1 - n u)`` (Lemma 3.1). :func:`gamma` returns a float *upper* bound of that
rational number, so a bound built from it never rounds below the true ``gamma_n``.

``float(Fraction)`` rounds to nearest; :func:`fraction_to_float_up` and
:func:`fraction_to_float_down` round toward ``+inf`` / ``-inf`` instead.
"""

from __future__ import annotations

import math
import sys
from fractions import Fraction
from typing import Any

__all__ = ["U64", "DTYPES", "unit_roundoff", "underflow_unit", "gamma", "fraction_to_float_up",
           "fraction_to_float_down", "fraction_to_float_saturating"]

U64 = 2.0**-53
"""Unit roundoff of float64."""

# unit roundoff u and eta (half the smallest positive subnormal) per dtype name;
# bfloat16 (8 significand bits, float32's exponent range) is not a NumPy dtype.
_DTYPE_CONSTANTS = {
    "float64": (2.0**-53, 2.0**-1075),
    "float32": (2.0**-24, 2.0**-150),
    "bfloat16": (2.0**-8, 2.0**-134),
    "float16": (2.0**-11, 2.0**-25),
}

DTYPES = tuple(_DTYPE_CONSTANTS)
"""The dtype names :func:`unit_roundoff` and :func:`underflow_unit` know."""


def dtype_name(dtype: Any) -> str:
    """``"float64"``, ``"float32"``, ``"bfloat16"`` or ``"float16"`` for a dtype given as a name,
    a NumPy dtype or scalar type, or a torch dtype; ``ValueError`` for any other dtype."""
    name = str(dtype).replace("torch.", "")
    if name not in _DTYPE_CONSTANTS:
        try:
            import numpy as np

            name = np.dtype(dtype).name
        except TypeError:
            pass
    if name not in _DTYPE_CONSTANTS:
        raise ValueError(f"unsupported dtype {dtype!r}; expected one of {DTYPES}")
    return name


def unit_roundoff(dtype: Any = "float64") -> float:
    """``u``: 2^-53 (float64), 2^-24 (float32), 2^-8 (bfloat16), 2^-11 (float16)."""
    return _DTYPE_CONSTANTS[dtype_name(dtype)][0]


def underflow_unit(dtype: Any = "float64") -> float:
    """``eta``: half the smallest positive subnormal of the dtype."""
    return _DTYPE_CONSTANTS[dtype_name(dtype)][1]


def gamma(n: int, u: Any = U64) -> float:
    """A float ``>= gamma_n = n u / (1 - n u)`` (Higham, Lemma 3.1); ``inf`` when ``n u >= 1``.

    ``u`` is a unit roundoff (a float such as ``2**-24``) or a dtype (name, NumPy or torch dtype),
    whose :func:`unit_roundoff` is used. The quotient is formed exactly and rounded up.
    """
    if not isinstance(u, (int, float)):
        u = unit_roundoff(u)
    nu = Fraction(int(n)) * Fraction(u)
    if nu >= 1:
        return math.inf
    return fraction_to_float_up(nu / (1 - nu))


def fraction_to_float_up(q: Fraction | int | float) -> float:
    """The least float64 ``>= q`` (round toward +inf); ``inf`` when ``q`` exceeds the float range.

    A relative error of ``e^{10^4}`` (a low degree on a huge interval) is a valid input: its
    upper bound is ``inf`` (it certifies nothing), never an ``OverflowError``.
    """
    q = Fraction(q)
    try:
        f = float(q)
    except OverflowError:
        return math.inf if q > 0 else -sys.float_info.max
    if Fraction(f) < q:
        f = math.nextafter(f, math.inf)
    return f


def fraction_to_float_down(q: Fraction | int | float) -> float:
    """The greatest float64 ``<= q``; the largest finite float when ``q`` exceeds the range."""
    q = Fraction(q)
    try:
        f = float(q)
    except OverflowError:
        return sys.float_info.max if q > 0 else -math.inf
    if Fraction(f) > q:
        f = math.nextafter(f, -math.inf)
    return f


def fraction_to_float_saturating(q: Fraction | int | float) -> float:
    """``float(q)`` rounded to nearest, saturating at ``+-inf`` beyond the float range (for
    messages and sort keys, never for bounds)."""
    q = Fraction(q)
    try:
        return float(q)
    except OverflowError:
        return math.inf if q > 0 else -math.inf
