"""Upward-rounded float64 arithmetic for a-priori bounds (NumPy has no directed rounding).

Two facts make every bound in :mod:`verified_lora.bounds` an upper bound of the exact real
quantity it names, although it is computed in round-to-nearest float64:

1. **One correctly rounded operation** (``+ - * / sqrt`` on floats, IEEE 754). The exact result
   ``z`` lies between the two float neighbours of the rounded ``fl(z)``, so
   ``z <= nextafter(fl(z), +inf)``. :func:`up` applies this (elementwise; exact for any sign,
   subnormals included, and ``inf`` stays ``inf``).
2. **Sums and products of n non-negative terms** (``sum``, ``@``), in any order, blocked or with
   FMA: every term of the computed result carries at most ``m`` rounding factors ``(1 + theta)``,
   ``|theta| <= u = 2**-53`` (``m = n`` for an inner product of length ``n``: ``n`` products and at
   most ``n - 1`` additions on any path of the summation tree). Hence
   ``exact <= computed * (1 - u)**(-m)`` plus, for products that underflow, at most ``n * 2**-1075``.
   :func:`inflate` returns a float ``>= computed * (1 - u)**(-m) + n * 2**-1074``:

   * it multiplies by ``c = 1 + 2 (m + 2) u`` (exactly representable for ``m < 2**51``);
     for ``(m + 1) u <= 0.01``, ``(1 - u)**(-(m + 1)) <= exp(1.01 (m + 1) u) <= 1 + 2 (m + 2) u = c``,
     so ``fl(x c) >= x c (1 - u) >= x (1 - u)**(-m)``;
   * then adds the underflow allowance and rounds up once more with :func:`up`.

   ``tests/test_bounds.py`` checks the constant ``c`` against mpmath at 50 digits.

Every helper takes and returns NumPy float64 arrays (or Python floats) of **non-negative**
quantities unless stated otherwise.
"""

from __future__ import annotations

import numpy as np

from ..numerics.rounding import U64, gamma  # gamma: Higham's gamma_n rounded up (re-exported)

__all__ = ["U", "up", "down", "inflate", "inflation_factor", "gamma", "sum_up", "matmul_up", "mul_up",
           "add_up", "div_up", "sqrt_up"]

U = U64
"""Unit roundoff of float64."""

_TINY = 2.0**-1074  # smallest positive subnormal: bounds the absolute underflow error of one product


_EPS = 2.0**-52  # 2u: |x| * _EPS >= ulp(x) for every normal x


def up(x):
    """A float ``>=`` the next float above ``x`` (elementwise): an upper bound of the exact value ``fl`` rounded.

    For finite ``x`` it is ``fl(fl(x + fl(|x| 2^-52)) + 2^-1074)`` (about 10x faster than
    ``np.nextafter`` on large arrays, and above ``x`` by at most ``2^-51 |x| + 3 * 2^-1074``): for normal ``x`` in ``[2^e, 2^{e+1})``
    in magnitude, ``|x| 2^-52 >= 2^{e-52} = ulp(x)``, a power of two ``>= 2^-1074`` (representable),
    so its rounding is still ``>= ulp(x)``; ``x + ulp(x)`` is ``>=`` the float above ``x`` (for
    negative ``x`` the gap above is ``ulp(x)`` or ``ulp(x) / 2``), and rounding to nearest is
    monotone, so ``fl(x + fl(|x| 2^-52)) >= nextafter(x, +inf)``; adding ``2^-1074`` can only keep
    or raise it. For zero and subnormal ``x`` the last addition is exact and gives the float above.
    Arrays with an inf or NaN entry take ``np.nextafter`` (so ``up(-inf)`` is ``-max``, NaN stays NaN).
    ``tests/test_bounds.py`` checks ``up(x) >= nextafter(x, +inf)`` on edge cases.
    """
    a = np.asarray(x, dtype=np.float64)
    if a.size < 64 or not np.isfinite(a).all():
        return np.nextafter(x, np.inf)
    with np.errstate(over="ignore"):
        r = np.abs(a)
        r *= _EPS
        r += a
        r += _TINY
    return r


def down(x):
    """A float ``<=`` the next float below ``x`` (elementwise); the mirror image of :func:`up`."""
    a = np.asarray(x, dtype=np.float64)
    if a.size < 64 or not np.isfinite(a).all():
        return np.nextafter(x, -np.inf)
    with np.errstate(over="ignore"):
        r = np.abs(a)
        r *= -_EPS
        r += a
        r -= _TINY
    return r


def inflation_factor(m: int) -> float:
    """``c = 1 + 2 (m + 2) u`` with ``c (1 - u) >= (1 - u)**(-m)``; see the module docstring."""
    m = int(m)
    if m < 0:
        raise ValueError("rounding depth must be >= 0")
    if (m + 1) * U > 0.01:
        raise ValueError(f"rounding depth {m} too large for the inflation lemma ((m+1) u <= 0.01)")
    return 1.0 + 2 * (m + 2) * U  # exact: 2 (m + 2) u is a multiple of 2**-52 below 2**-1


def inflate(x, m: int, n_terms: int | None = None):
    """An upper bound of the exact value of a non-negative quantity with rounding depth ``m``.

    ``n_terms`` (default ``m``) products may have underflowed; each adds at most ``2**-1075``.
    """
    n = m if n_terms is None else n_terms
    return up(np.asarray(x, dtype=np.float64) * inflation_factor(m) + (n + 1) * _TINY)


def sum_up(x, axis=None):
    """Upper bound of the exact sum of the non-negative entries of ``x`` along ``axis``."""
    x = np.asarray(x, dtype=np.float64)
    n = x.size if axis is None else x.shape[axis]
    return inflate(np.sum(x, axis=axis), max(n, 1))


def matmul_up(a, b):
    """Upper bound of the exact product of two non-negative matrices (any BLAS order)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    n = a.shape[-1]
    return inflate(a @ b, max(n, 1))


def mul_up(a, b):
    """Upper bound of ``a * b`` for non-negative ``a, b`` (elementwise)."""
    return up(np.multiply(a, b, dtype=np.float64))


def add_up(a, b):
    """Upper bound of ``a + b`` (elementwise, any signs)."""
    return up(np.add(a, b, dtype=np.float64))


def div_up(a, b):
    """Upper bound of ``a / b`` for ``a >= 0, b > 0`` (elementwise)."""
    return up(np.divide(a, b, dtype=np.float64))


def sqrt_up(a):
    """Upper bound of ``sqrt(a)`` for ``a >= 0``."""
    return up(np.sqrt(np.asarray(a, dtype=np.float64)))
