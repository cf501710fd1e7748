"""The numerics base: unit roundoff, gamma_n rounded up, directed conversions, interval backend."""

from __future__ import annotations

import math
from fractions import Fraction

import mpmath
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from verified_lora.errors import InputError
from verified_lora.numerics import intervals
from verified_lora.numerics.intervals import Sign, mpf_to_fraction, resolve_backend, scoped_precision, sign
from verified_lora.numerics.rounding import (fraction_to_float_down, fraction_to_float_up, gamma, underflow_unit,
                                             unit_roundoff)


def test_unit_roundoff_per_dtype():
    assert unit_roundoff("float64") == 2.0**-53 == unit_roundoff(np.float64) == unit_roundoff(np.dtype("float64"))
    assert unit_roundoff("float32") == 2.0**-24 == unit_roundoff("torch.float32")
    assert unit_roundoff("bfloat16") == 2.0**-8 == unit_roundoff("torch.bfloat16")
    assert unit_roundoff(np.float16) == float(np.finfo(np.float16).eps) / 2
    assert underflow_unit("float32") == float(np.finfo(np.float32).smallest_subnormal) / 2
    with pytest.raises(ValueError, match="unsupported dtype"):
        unit_roundoff("int32")


@pytest.mark.parametrize("n", [1, 3, 10, 1000, 2**40])
@pytest.mark.parametrize("u", [2.0**-53, 2.0**-24, 2.0**-11, 2.0**-8])
def test_gamma_is_the_least_float_above_gamma_n(n, u):
    exact = Fraction(n) * Fraction(u) / (1 - Fraction(n) * Fraction(u)) if n * Fraction(u) < 1 else None
    g = gamma(n, u)
    if exact is None:
        assert g == math.inf
        return
    assert Fraction(g) >= exact and Fraction(math.nextafter(g, 0.0)) < exact


def test_gamma_takes_a_dtype():
    assert gamma(7, "float32") == gamma(7, 2.0**-24)
    assert gamma(7) == gamma(7, 2.0**-53)
    assert gamma(256, "bfloat16") == math.inf


@given(st.fractions(max_denominator=10**30) | st.integers(-10**400, 10**400).map(Fraction))
def test_directed_conversions_bracket_the_rational(q):
    lo, hi = fraction_to_float_down(q), fraction_to_float_up(q)
    assert lo <= hi
    if math.isfinite(lo):
        assert Fraction(lo) <= q
    if math.isfinite(hi):
        assert q <= Fraction(hi)
    if math.isfinite(lo) and math.isfinite(hi):
        assert hi == lo or math.nextafter(lo, math.inf) == hi  # adjacent floats: the tightest bracket


def test_scoped_precision_context_and_decorator():
    before = mpmath.iv.prec
    with scoped_precision(prec=200):
        assert mpmath.iv.prec == 200
        with scoped_precision(dps=10):
            assert mpmath.iv.dps == 10
        assert mpmath.iv.prec == 200
    assert mpmath.iv.prec == before

    @scoped_precision(prec=300)
    def inside():
        return mpmath.iv.prec

    assert inside() == 300 and mpmath.iv.prec == before
    with pytest.raises(RuntimeError):
        with scoped_precision(prec=90):
            raise RuntimeError
    assert mpmath.iv.prec == before


def test_scoped_precision_arb():
    flint = pytest.importorskip("flint")
    before = flint.ctx.prec
    with scoped_precision(prec=333, backend="arb"):
        assert flint.ctx.prec == 333
    assert flint.ctx.prec == before


def test_three_valued_sign_iv():
    iv = mpmath.iv
    assert sign(iv.mpf([1, 2])) is Sign.POSITIVE
    assert sign(iv.mpf([-2, -1])) is Sign.NEGATIVE
    assert sign(iv.mpf([-1, 1])) is Sign.UNDECIDED
    assert sign(iv.mpf([0, 1])) is Sign.UNDECIDED
    assert sign(iv.mpf(["-inf", -1])) is Sign.NEGATIVE


def test_three_valued_sign_arb():
    flint = pytest.importorskip("flint")
    assert sign(flint.arb(1, 0.5)) is Sign.POSITIVE
    assert sign(flint.arb(-1, 0.5)) is Sign.NEGATIVE
    assert sign(flint.arb(0, 1)) is Sign.UNDECIDED


def test_backend_names_and_aliases():
    assert resolve_backend("iv") == resolve_backend("mpmath") == "iv"
    assert resolve_backend("auto") == intervals.available_backends()[-1]
    if "arb" in intervals.available_backends():
        assert resolve_backend("flint") == "arb"
        assert intervals.backend("auto", 64).name == "arb"
    with pytest.raises(InputError) as ei:
        resolve_backend("ball")
    assert ei.value.field == "backend"


def test_mpf_to_fraction_is_exact():
    with mpmath.workprec(200):
        x = mpmath.mpf(1) / 3
    assert mpf_to_fraction(x) == Fraction(int(x.man), 1) * Fraction(2) ** int(x.exp)
    with pytest.raises(intervals.EnclosureTooWide):
        mpf_to_fraction(mpmath.inf)
