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

   :func:`inflate` does it in two passes: ``fl(fl(x c') + t)`` with ``c' = 1 + 2 (m + 3) u`` (the constant
   at depth ``m + 1``, so ``c' (1 - u)^2 >= (1 - u)^{-m}`` for ``(m + 2) u <= 0.01``) and
   ``t = (n + 2) 2^-1074``. If ``fl(x c')`` is normal it is ``>= x c' (1 - u)``, else it is ``>= x c' - 2^-1075``
   (subnormal spacing ``2^-1074``); the addition is exact when the sum is subnormal and otherwise loses at
   most the factor ``1 - u``. Either way the result is ``>= x (1 - u)^{-m} + (n + 1) 2^-1074``
   (``(n + 2 - 1/2)(1 - u) >= n + 1``).
3. **One rounding of a non-negative value** (the ``*_nn`` helpers): for a float ``r >= 0``,
   ``fl(fl(r (1 + 2^-52)) + 2^-1074)`` is ``>=`` the float above ``r``: for normal ``r`` in ``[2^e, 2^{e+1})``
   the exact ``r + r 2^-52 >= r + 2^{e-52} = r + ulp(r)``, a float, and rounding is monotone; for zero and
   subnormal ``r`` the first step gives ``>= r`` and the addition of ``2^-1074`` is exact below ``2^-1022``
   (and a result ``>= 2^-1022`` is already above the float after a subnormal). Two in-place passes instead of
   :func:`up`'s four (no ``|x|`` temporary). With a non-negative scalar factor ``s`` the rounding is folded
   into the scalar: ``fl(b s') + 2^-1074 >= b s`` for ``s' >= s / (1 - u)`` (:func:`scale_up`).
4. **A non-negative expression rounded once.** Let ``E`` be built from non-negative input floats with ``+``,
   ``*`` and ``/`` (no ``sqrt``: an underflow error under a square root is not relative), where every ``*``
   and ``/`` has an input float as one operand (the divisor of ``/`` is one), evaluated in round to nearest
   (NumPy, any order) with at most ``m`` rounded operations on any path from an input to the result, and at
   most ``k`` multiplications and divisions, each of whose results is afterwards only added to (a term added
   twice counts twice) or multiplied by input floats ``<= 1``. A leaf may also be ``|fl(a - b)|`` for input
   floats ``a``, ``b`` (it is ``|a - b| (1 + theta)``: one operation). Each operation is
   ``fl(z) = z (1 + theta) + eta`` with ``|theta| <= u`` and ``eta = 0`` except for an underflowing product
   or quotient (``|eta| <= 2^-1075``; sums of floats that land below ``2^-1022`` are exact); the exact value is monotone
   in its operands, so by induction ``E_exact <= fl(E) (1 - u)^{-m} + k 2^-1075 (1 - u)^{-m}``, and
   ``inflate(fl(E), m, n)`` with ``n >= k`` is an upper bound (2.). Products that are multiplied further by
   factors that may exceed 1 are formed with the ``*_nn`` helpers first (3.), so their floats are upper bounds.

Every helper takes and returns NumPy float64 arrays (or Python floats) of **non-negative**
quantities unless stated otherwise. The algebraic steps of 2. and 4. are machine-checked in
verified_lora/proofs/fast_rounding_bound.py (certificates fast-rounding-gamma, fast-rounding-once); the
float facts of 1. and 3. are tested against exact rationals (tests/test_bounds.py,
tests/test_rigorous_fast_helpers.py).
"""

from __future__ import annotations

import numpy as np

from ..numerics.rounding import U64, gamma  # gamma: Higham's gamma_n rounded up (re-exported)

__all__ = ["U", "up", "down", "inflate", "inflation_factor", "gamma", "sum_up", "matmul_up", "mul_up",
           "add_up", "div_up", "sqrt_up", "up_nn", "mul_up_nn", "add_up_nn", "div_up_nn", "scale_up", "row_dot",
           "col_max", "inflate_inplace", "mm"]

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
    r = np.multiply(x, inflation_factor(m + 1), dtype=np.float64)   # two passes (module docstring, 2.)
    r += (n + 2) * _TINY
    return r


_MM_ROWS = 4096


def mm(a, b):
    """``a @ b``; a tall ``a`` (many rows) times a small ``b`` is formed in blocks of 4096 rows.

    Every entry is the same inner product (in some order: 2. covers any), but OpenBLAS threads such
    skinny products and, on a busy 2-core machine, pays milliseconds per call for it (measured: a
    16384 x 8 by 8 x 4 product took 7 ms threaded, 0.2 ms in one thread)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    n = a.shape[0] if a.ndim == 2 else 0
    if n <= 2 * _MM_ROWS or b.ndim not in (1, 2) or a.shape[1] * (b.shape[1] if b.ndim == 2 else 1) > 4096:
        return a @ b
    out = np.empty((n,) + b.shape[1:])
    for i in range(0, n, _MM_ROWS):
        np.matmul(a[i:i + _MM_ROWS], b, out=out[i:i + _MM_ROWS])
    return out


def inflate_inplace(x, m: int, n_terms: int | None = None):
    """:func:`inflate` overwriting ``x`` when it is a float64 array the caller owns (a fresh temporary)."""
    if not (isinstance(x, np.ndarray) and x.dtype == np.float64 and x.ndim and x.flags.writeable):
        return inflate(x, m, n_terms)
    n = m if n_terms is None else n_terms
    x *= inflation_factor(m + 1)   # two passes (module docstring, 2.)
    x += (n + 2) * _TINY
    return x


def sum_up(x, axis=None):
    """Upper bound of the exact sum of the non-negative entries of ``x`` along ``axis``.

    The float sum of a 2-D array along an axis is a GEMV against ones (the products by 1 are exact; any
    summation order is covered by 2.), several times faster than ``np.sum`` across narrow rows or columns."""
    x = np.asarray(x, dtype=np.float64)
    n = x.size if axis is None else x.shape[axis]
    if x.ndim == 2 and axis in (0, 1, -1, -2) and x.size:
        s = np.ones(x.shape[0]) @ x if axis in (0, -2) else mm(x, np.ones(x.shape[1]))
    else:
        s = np.sum(x, axis=axis)
    return inflate_inplace(s, max(n, 1)) if s is not x else inflate(s, max(n, 1))


def row_dot(a, b):
    """``fl(sum_j a_ij b_ij)`` per row ``i`` (2-D, same shape) in some order: ``(a * b) @ 1``. For
    non-negative entries ``inflate(row_dot(a, b), n)`` (``n`` columns) bounds the exact sums (2.)."""
    return mm(np.multiply(a, b), np.ones(np.shape(a)[1]))


def col_max(x):
    """``max`` over the rows of a 2-D array, per column (exact; NaN propagates as in ``np.max``).

    A C-contiguous ``n x d`` array is viewed as ``(n / k) x (k d)`` rows, reduced, then folded: about ten
    times faster than ``np.max(x, axis=0)`` for narrow ``d``."""
    x = np.ascontiguousarray(x, dtype=np.float64)
    n, d = x.shape
    k = 64 // d if 0 < d <= 32 else 1
    if n < 4 * k or k < 2:
        return np.max(x, axis=0)
    n0 = (n // k) * k
    m = np.max(x[:n0].reshape(n0 // k, k * d), axis=0).reshape(k, d)
    m = np.max(m, axis=0)
    if n0 < n:
        m = np.maximum(m, np.max(x[n0:], axis=0))
    return m


def matmul_up(a, b):
    """Upper bound of the exact product of two non-negative matrices (any BLAS order)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    n = a.shape[-1]
    return inflate_inplace(mm(a, b), max(n, 1))


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
    """Upper bound of ``sqrt(a)`` for ``a >= 0`` (the square root is ``>= 0``: one non-negative rounding, 3.)."""
    return _up_nn_inplace(np.sqrt(np.asarray(a, dtype=np.float64)))


_UP1 = 1.0 + 2.0**-52  # fl(r * _UP1) >= r + ulp(r) for normal r >= 0 (module docstring, 3.)


def _up_nn_inplace(r):
    """``r`` (a fresh float64 array or scalar, every entry ``>= 0`` or NaN) raised past the float above, in place."""
    if isinstance(r, np.ndarray) and r.ndim:
        with np.errstate(over="ignore"):
            r *= _UP1
            r += _TINY
        return r
    return np.nextafter(np.float64(r), np.inf)


def up_nn(x):
    """:func:`up` for arrays whose entries are all ``>= 0`` (module docstring, 3.): two passes, no temporary."""
    return _up_nn_inplace(np.array(x, dtype=np.float64))


def mul_up_nn(a, b):
    """Upper bound of ``a * b`` for ``a, b >= 0`` (elementwise), one non-negative rounding (3.)."""
    return _up_nn_inplace(np.multiply(a, b, dtype=np.float64))


def add_up_nn(a, b):
    """Upper bound of ``a + b`` for ``a, b >= 0`` (elementwise), one non-negative rounding (3.)."""
    return _up_nn_inplace(np.add(a, b, dtype=np.float64))


def div_up_nn(a, b):
    """Upper bound of ``a / b`` for ``a >= 0``, ``b > 0`` (elementwise), one non-negative rounding (3.)."""
    return _up_nn_inplace(np.divide(a, b, dtype=np.float64))


def scale_up(s: float, b):
    """Upper bound of ``s * b`` for a scalar ``s >= 0`` and an array ``b >= 0``: ``fl(b s') + 2^-1074`` with
    ``s' >= s / (1 - u)`` formed once (module docstring, 3.; ``fl(b s') >= b s' (1 - u)`` unless subnormal,
    where it is at most ``2^-1075`` below and the exact addition of ``2^-1074`` covers it)."""
    s2 = float(np.nextafter(float(s) * (1.0 + 2.0**-52), np.inf))   # >= s (1 + 2^-52) >= s / (1 - u)
    with np.errstate(over="ignore"):
        r = np.multiply(b, s2, dtype=np.float64)
        r += _TINY
    return r
