"""The one-pass upward helpers of bounds/_rigorous.py (items 2-4 of its docstring) against exact rationals.

Each helper must return a float at or above the exact real it names, for normal, subnormal, zero and
near-overflow inputs; ``col_max`` must equal ``np.max(axis=0)`` and ``mm`` must agree with ``@``.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from verified_lora.bounds import _rigorous as rg

TINY = 2.0**-1074
U = Fraction(1, 2**53)


def _nonneg(rng, n):
    edges = [0.0, TINY, 3 * TINY, 2.0**-1022, 2.0**-1022 * (1 - 2.0**-52), 1.0, 1.5, 2.0 - 2.0**-52,
             np.nextafter(1.0, 0.0), 2.0**-1000 * 1.75, 1e300]
    mags = np.exp2(rng.uniform(-1074, 1000, n))
    return np.concatenate([edges, mags, np.nextafter(mags, 0.0)])


def test_up_nn_reaches_the_float_above():
    x = _nonneg(np.random.default_rng(3), 3000)
    with np.errstate(over="ignore"):
        assert np.all(rg.up_nn(x) >= np.nextafter(x, np.inf))
        assert np.all(rg.sqrt_up(x) >= np.nextafter(np.sqrt(x), np.inf))


@pytest.mark.parametrize("name", ["mul", "add", "div"])
def test_nn_binary_helpers_bound_the_exact_result(name):
    rng = np.random.default_rng(5)
    a = np.abs(rng.standard_normal(1500)) * np.exp2(rng.uniform(-600, 10, 1500))
    b = np.exp2(rng.uniform(-600, 10, 1500))       # products and quotients reach the subnormal range
    f, op = {"mul": (rg.mul_up_nn, lambda x, y: x * y), "add": (rg.add_up_nn, lambda x, y: x + y),
             "div": (rg.div_up_nn, lambda x, y: x / y)}[name]
    r = f(a, b)
    for x, y, z in zip(a, b, r):
        assert Fraction(float(z)) >= op(Fraction(float(x)), Fraction(float(y)))


@pytest.mark.parametrize("s", [0.0, 3.0, 1e-300, 7.5e-310, 2.0**-30, 1 / 3])
def test_scale_up_bounds_the_exact_product(s):
    rng = np.random.default_rng(11)
    b = np.abs(rng.standard_normal(800)) * np.exp2(rng.uniform(-700, 10, 800))
    for x, z in zip(b, rg.scale_up(s, b)):
        assert Fraction(float(z)) >= Fraction(s) * Fraction(float(x))


@pytest.mark.parametrize("m", [1, 2, 6, 100])
def test_inflate_meets_its_contract(m):
    """``inflate(x, m) >= x (1 - u)^{-m} + (m + 1) 2^-1074`` (item 2), also in place."""
    rng = np.random.default_rng(m)
    x = np.abs(rng.standard_normal(400)) * np.exp2(rng.uniform(-1074, 10, 400))
    need = [Fraction(float(v)) / (1 - U) ** m + (m + 1) * Fraction(TINY) for v in x]
    for r in (rg.inflate(x, m), rg.inflate_inplace(x.copy(), m)):
        assert all(Fraction(float(z)) >= w for z, w in zip(r, need))


def test_sums_and_row_dots_bound_the_exact_sums():
    rng = np.random.default_rng(2)
    x = np.abs(rng.standard_normal((9000, 5))) * np.exp2(rng.uniform(-30, 30, (9000, 5)))
    y = np.abs(rng.standard_normal((9000, 5)))
    fx = [[Fraction(float(v)) for v in row] for row in x]
    cols = [sum(fx[i][j] for i in range(x.shape[0])) for j in range(5)]
    assert all(Fraction(float(z)) >= c for z, c in zip(rg.sum_up(x, axis=0), cols))
    rows = rg.sum_up(x, axis=1)
    dots = rg.inflate(rg.row_dot(x, y), 5)
    for i in range(0, x.shape[0], 97):
        assert Fraction(float(rows[i])) >= sum(fx[i])
        assert Fraction(float(dots[i])) >= sum(fx[i][j] * Fraction(float(y[i, j])) for j in range(5))


def test_col_max_and_mm_match_numpy():
    rng = np.random.default_rng(0)
    for n in (1, 5, 63, 64, 65, 1000, 20001):
        for d in (1, 3, 4, 8, 33):
            x = rng.standard_normal((n, d))
            assert np.array_equal(rg.col_max(x), np.max(x, axis=0))
    x = rng.standard_normal((1000, 4))
    x[500, 2] = np.nan
    assert np.array_equal(rg.col_max(x), np.max(x, axis=0), equal_nan=True)
    a, b = rng.standard_normal((20001, 8)), rng.standard_normal((8, 4))
    np.testing.assert_allclose(rg.mm(a, b), a @ b, rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(rg.mm(a, b[:, 0]), a @ b[:, 0], rtol=1e-13, atol=1e-13)
    aa, bb = np.abs(a), np.abs(b)
    up = rg.matmul_up(aa, bb)
    for i in range(0, a.shape[0], 1999):
        for j in range(4):
            assert Fraction(float(up[i, j])) >= sum(Fraction(float(aa[i, t])) * Fraction(float(bb[t, j])) for t in range(8))


def test_row_magnitudes_bound_pabs_and_its_derivative_exactly():
    """``row_magnitudes``: per row ``>= min(A0, Pabs(R_i))`` and ``>= min(A1, Pabs'(R_i))`` in exact rationals, and
    never above the global ``A0``, ``A1`` (the per-row rounding terms must not exceed the global ones)."""
    from verified_lora.fast.rounding_bound import poly_magnitudes, row_magnitudes

    rng = np.random.default_rng(5)
    coeffs = [Fraction(float(c)) for c in rng.standard_normal(13) * np.exp2(rng.uniform(-20, 3, 13))]
    R = 3.0
    A0, A1 = poly_magnitudes(coeffs, R)
    radii = np.concatenate([[0.0, 5e-324, 1e-300, R, 2 * R], rng.uniform(0, 1.2 * R, 300)])
    a0r, a1r = row_magnitudes(coeffs, radii, A0, A1)
    assert np.all(a0r <= A0) and np.all(a1r <= A1)
    for r, p0, p1 in zip(radii, a0r, a1r):
        x = Fraction(float(r))
        e0 = sum(abs(c) * x ** t for t, c in enumerate(coeffs))
        e1 = sum(t * abs(c) * x ** (t - 1) for t, c in enumerate(coeffs) if t > 0)
        assert Fraction(float(p0)) >= min(Fraction(A0), e0)
        assert Fraction(float(p1)) >= min(Fraction(A1), e1)
    # a tightening, not a copy: rows well inside the radius get a smaller magnitude
    assert a0r[-300:].min() < A0 / 2
