"""verified_lora.testing: importable without its extras, and its sampler measures what it says."""

from __future__ import annotations

import subprocess
import sys
from fractions import Fraction

import mpmath

from verified_lora.testing.sampling import sampled_max


def test_importing_testing_pulls_in_neither_hypothesis_nor_torch():
    code = ("import sys, verified_lora, verified_lora.testing, verified_lora.testing.sampling, "
            "verified_lora.testing.dense; print(','.join(m for m in ('hypothesis', 'torch') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "", f"importing verified_lora.testing imported {out}"


class _Poly:
    def __init__(self, coeffs):
        self.coeffs = [Fraction(c) for c in coeffs]


def test_sampled_max_of_constant_one_is_attained_at_the_left_end():
    # P = 1: |e^{-x} - 1| on [-R, R] is largest at x = -R, where it equals e^R - 1 (a grid point).
    got = sampled_max(_Poly([1]), 2, n=50, dps=40)
    with mpmath.workdps(40):
        assert abs(got - (mpmath.e ** 2 - 1)) < mpmath.mpf(10) ** -35


def test_sampled_max_of_linear_taylor_matches_the_closed_form():
    # P = 1 + x on [-1, 1]: |(1 + x) e^{-x} - 1| peaks at x = -1 with value 1 (P(-1) = 0).
    got = sampled_max(_Poly([1, 1]), 1, n=50, dps=40)
    assert abs(got - 1) < mpmath.mpf(10) ** -35
