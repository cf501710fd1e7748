"""The narrow interface the planner and the phase sweep use from :mod:`verified_lora.approx`.

Certificates are memoised per ``(family, degree, R)``; ``R`` is first rounded *up* to the
approx layer's cache grid (:func:`verified_lora.approx.grid_radius`) so nearby problems share
certificates. A polynomial certified on ``[-R', R']`` with ``R' >= R`` is certified on
``[-R, R]``: the bound only uses ``|S_ij| <= R``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from typing import Any

from ..approx import polynomials  # module attribute: make_polynomial is looked up at call time
from ..approx.certify import certify_relative_error
from ..approx.degree import grid_radius
from ..approx.lower_bounds import any_polynomial_lower_bound, relative_error_lower_bound
from ..errors import CertificationError
from ..numerics.rounding import fraction_to_float_down

__all__ = ["families", "Cert", "certify", "certify_on", "lower_errors", "any_polynomial_lower", "next_degree",
           "grid_R"]


def families() -> tuple[str, ...]:
    """The polynomial families the approx layer builds."""
    return tuple(polynomials.FAMILIES)


def grid_R(R: float) -> Fraction:
    """``R`` rounded up to the approx layer's grid (:func:`verified_lora.approx.grid_radius`)."""
    r = Fraction(R)
    g = Fraction(grid_radius(r))
    if g < r:  # defensive: the grid must round up
        raise CertificationError(f"grid_radius({R}) = {g} < R")
    return g


@dataclass(frozen=True)
class Cert:
    """A polynomial with its certified relative errors on ``[-R, R]`` (floats, rounded up)."""

    family: str
    degree: int
    R: Fraction
    polynomial: Any
    eps_A: float
    eps_D: float | None


@lru_cache(maxsize=4096)
def _cert(family: str, degree: int, R: Fraction, need_derivative: bool) -> Cert:
    poly = polynomials.make_polynomial(family, degree, R)

    def cert(p) -> float:
        try:
            return certify_relative_error(p, R).value
        except (OverflowError, CertificationError):  # an error beyond float range: certifies nothing
            return math.inf

    eps_A = cert(poly)
    eps_D = cert(poly.derivative()) if need_derivative else None
    return Cert(family, degree, R, poly, eps_A, eps_D)


def certify(family: str, degree: int, R: float, need_derivative: bool = False) -> Cert:
    """Certified ``eps_A`` (and ``eps_D``) of ``family`` at ``degree`` on ``[-R, R]`` (grid-rounded)."""
    return _cert(family, int(degree), grid_R(R), bool(need_derivative))


@lru_cache(maxsize=4096)
def _cert_on(coeffs: tuple[Fraction, ...], radius: Fraction, need_derivative: bool) -> tuple[float, float | None]:
    from ..approx.polynomials import Polynomial

    poly = Polynomial("given", len(coeffs) - 1, radius, coeffs)

    def cert(p) -> float:
        try:
            return certify_relative_error(p, radius).value
        except (OverflowError, CertificationError):
            return math.inf

    return cert(poly), (cert(poly.derivative()) if need_derivative else None)


def certify_on(coeffs, radius: Fraction, need_derivative: bool = False) -> tuple[float, float | None]:
    """Certified ``(eps_A, eps_D)`` (floats, rounded up; ``inf`` when not certifiable) of the polynomial with
    exact coefficients ``coeffs`` on ``[-radius, radius]`` (any radius, e.g. a sub-interval of its own);
    memoised per process."""
    return _cert_on(tuple(Fraction(c) for c in coeffs), Fraction(radius), bool(need_derivative))


@lru_cache(maxsize=4096)
def _lower(family: str, degree: int, R: Fraction, need_derivative: bool) -> tuple[float, float | None] | None:
    poly = polynomials.make_polynomial(family, degree, R)
    # Only "below 1 or not" and small values matter: clamp at 2 (a smaller lower bound stays valid),
    # and round down so these stay lower bounds.
    lo_A = fraction_to_float_down(min(Fraction(2), relative_error_lower_bound(poly, R)))
    lo_D = fraction_to_float_down(min(Fraction(2), relative_error_lower_bound(poly.derivative(), R))) \
        if need_derivative else None
    return lo_A, lo_D


def lower_errors(family: str, degree: int, R: float, need_derivative: bool = False):
    """Rigorous *lower* bounds of ``eps_A`` (and ``eps_D``) from point enclosures (cheap), or ``None``."""
    try:
        return _lower(family, int(degree), grid_R(R), bool(need_derivative))
    except (CertificationError, OverflowError):  # no rigorous lower bound at this size
        return None


@lru_cache(maxsize=4096)
def _any_lower(degree: int, R: Fraction) -> float:
    lo = min(Fraction(2), any_polynomial_lower_bound(degree, R))  # exact; <= 2 fits a float
    return max(0.0, fraction_to_float_down(lo))


LOWER_BOUND_R_CAP = Fraction(1024)
"""Radius at which the any-polynomial lower bound is evaluated for larger ``R`` (it is 1 there for
every degree the planner tries)."""


def any_polynomial_lower(degree: int, R: float) -> float:
    """Lower bound (float, rounded down, clamped at 2) on the relative error on ``[-R, R]`` of
    *every* polynomial of degree ``<= degree`` (:func:`verified_lora.approx.lower_bounds.any_polynomial_lower_bound`).

    It bounds ``eps_A`` of every degree-``<= degree`` candidate and ``eps_D`` too (``P'`` is a
    polynomial of lower degree), on ``[-R, R]`` and on any larger grid interval. Exact arithmetic,
    no polynomial is built: a few milliseconds even for ``R = 10^4``.
    """
    # the best error is non-decreasing in R (a polynomial's error on a larger interval is at least its
    # error on a smaller one), so the bound at min(R, cap) holds at R: no e^{10^6} is ever formed
    return _any_lower(int(degree), min(Fraction(R), LOWER_BOUND_R_CAP))


def next_degree(family: str, g: int) -> int:
    return g + 2 if family == "taylor_even" else g + 1
