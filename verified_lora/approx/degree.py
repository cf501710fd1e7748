"""Least certified degree for a target relative error, with caches (DESIGN.md section 4.2).

``min_degree(R, eps, family)`` is the least degree ``g`` whose family member ``P_g`` has
*certified* error ``eps(P_g, R) <= eps`` (:mod:`.certify`). Minimality is proved, not assumed:

* the degree just below (``g - 1``, or ``g - 2`` for ``taylor_even``) has a rigorous *lower*
  bound on its error above ``eps`` (point enclosures), or else its full certificate is above
  ``eps``;
* every lower degree fails as well: for ``minimax`` by the de la Vallee Poussin bound on the
  degree-``g - 1`` Remez reference, which bounds the error of *every* polynomial of degree
  ``< g`` from below; for the other families by a point-enclosure witness per degree.

``certified_on_grid(R, eps, family)`` rounds ``R`` up to a coarse grid (eight steps per octave:
``R' = (k/8) 2^e``, ``k = 8..16``, so ``R <= R' < 1.125 R``). A certificate on ``[-R', R']`` is
valid on ``[-R, R]``. All results are memoised in process: one table per ``(family, R)`` keeps
every certificate and lower bound computed, so a new ``eps`` on a known grid radius costs a few
dictionary look-ups. There is deliberately no on-disk cache: a cold grid point costs well under
a second, and a number read back from disk would be a claim not re-proved by this process.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache

from ..errors import CertificationError
from .certify import (Certificate, alternation_lower_bound, certify_relative_error,
                      fraction_to_float_up, relative_error_lower_bound)
from .polynomials import (MAX_DEGREE, Polynomial, as_eps, as_family, as_radius, make_polynomial,
                          minimax_reference)

__all__ = ["DegreeChoice", "min_degree", "best_polynomial", "certified_on_grid", "grid_radius",
           "degree_table"]


@dataclass(frozen=True)
class DegreeChoice:
    """The least certified degree for ``eps`` on ``[-R, R]`` and its proof.

    ``certificate`` proves ``eps(poly, R) <= certificate.upper <= eps``; ``below_lower`` is a
    rigorous lower bound (``> eps``) on the error of the family's degree just below (``None``
    for degree 0); ``minimality`` says how all lower degrees were shown to fail.
    """

    family: str
    R: Fraction
    eps: Fraction
    degree: int
    poly: Polynomial
    certificate: Certificate
    below_lower: Fraction | None
    minimality: str

    @property
    def certified(self) -> float:
        """Certified error (float64, rounded up)."""
        return self.certificate.value

    def to_json(self) -> dict:
        return {"family": self.family, "R": str(self.R), "eps": str(self.eps), "degree": self.degree,
                "certified": self.certified, "upper": str(self.certificate.upper),
                "below_lower": None if self.below_lower is None else str(self.below_lower),
                "minimality": self.minimality}


def _step(family: str) -> int:
    return 2 if family == "taylor_even" else 1


class _FamilyTable:
    """Memo of certificates and lower bounds for one ``(family, R)``."""

    def __init__(self, family: str, R: Fraction):
        self.family, self.R = family, R
        self._cert: dict[int, Certificate] = {}
        self._lower: dict[int, Fraction] = {}
        self._alternation: dict[int, Fraction] = {}

    def poly(self, g: int) -> Polynomial:
        return make_polynomial(self.family, g, self.R)

    def certificate(self, g: int) -> Certificate:
        if g not in self._cert:
            self._cert[g] = certify_relative_error(self.poly(g), self.R)
            self._lower[g] = max(self._lower.get(g, Fraction(0)), self._cert[g].lower)
        return self._cert[g]

    def lower(self, g: int) -> Fraction:
        """Rigorous lower bound on the error of the degree-``g`` member (cheap)."""
        if g not in self._lower:
            self._lower[g] = relative_error_lower_bound(self.poly(g), self.R)
        return self._lower[g]

    def alternation(self, g: int) -> Fraction:
        """Lower bound on the error of every polynomial of degree ``<= g`` (minimax only)."""
        if g not in self._alternation:
            poly = make_polynomial("minimax", g, self.R)
            self._alternation[g] = alternation_lower_bound(poly, minimax_reference(g, self.R))
        return self._alternation[g]


@lru_cache(maxsize=1024)
def degree_table(family: str, R: Fraction) -> _FamilyTable:
    """The (memoised) table of certificates for ``family`` on ``[-R, R]``."""
    return _FamilyTable(family, R)


def _log_est_error(family: str, R: float, g: int) -> float:
    """Natural log of a heuristic error estimate (used only to pick the first degree tried).

    Minimax/Chebyshev: ``2 (R/2)^{g+1} / (g+1)!`` (the classical estimate of the best error);
    Taylor: ``R^{g+1} / (g+1)!`` (the leading remainder term at ``x = -R``, relative).
    """
    if family in ("taylor", "taylor_even"):
        return (g + 1) * math.log(R) - math.lgamma(g + 2)
    return math.log(2) + (g + 1) * math.log(R / 2) - math.lgamma(g + 2)


def _initial_degree(family: str, R: Fraction, eps: Fraction) -> int:
    r, log_eps = float(R), math.log(float(eps)) if eps > 0 else -math.inf
    step = _step(family)
    g = 0
    while _log_est_error(family, r, g) > log_eps:
        g += 1
        if g > MAX_DEGREE:
            raise CertificationError(
                f"no {family} polynomial of degree <= {MAX_DEGREE} reaches relative error {float(eps):.3g} "
                f"on [-{float(R):.6g}, {float(R):.6g}] (estimated); shrink the score bound R or loosen eps")
    return g + (g % step)


def _too_high(family: str, R: Fraction, eps: Fraction, g: int) -> CertificationError:
    return CertificationError(
        f"the {family} family needs degree > {MAX_DEGREE} for relative error {float(eps):.3g} on "
        f"[-{float(R):.6g}, {float(R):.6g}] (tried up to degree {g}); shrink R or loosen eps")


@lru_cache(maxsize=4096)
def _choose(family: str, R: Fraction, eps: Fraction) -> DegreeChoice:
    tbl = degree_table(family, R)
    step = _step(family)
    g = _initial_degree(family, R, eps)
    while tbl.certificate(g).upper > eps:
        g += step
        if g > MAX_DEGREE:
            raise _too_high(family, R, eps, g - step)
    # Walk down while the next-lower degree also certifies.
    while g - step >= 0:
        if tbl.lower(g - step) > eps:
            break
        if tbl.certificate(g - step).upper <= eps:
            g -= step
            continue
        break
    below = None if g - step < 0 else tbl.lower(g - step)
    if below is not None and below <= eps:
        # The degree below fails only by its certificate (eps lies in its [lower, upper] gap).
        below = tbl.certificate(g - step).upper
    minimality = _prove_lower_degrees_fail(tbl, g, eps)
    return DegreeChoice(family, R, eps, g, tbl.poly(g), tbl.certificate(g), below, minimality)


def _prove_lower_degrees_fail(tbl: _FamilyTable, g: int, eps: Fraction) -> str:
    """Show that every degree below ``g`` has certified error > eps; returns how."""
    step = _step(tbl.family)
    if g - step < 0:
        return "degree 0"
    if tbl.family == "minimax":
        if tbl.alternation(g - 1) > eps:
            return (f"de la Vallee Poussin: every polynomial of degree <= {g - 1} has relative error "
                    f">= {fraction_to_float_up(tbl.alternation(g - 1)):.6g} > eps")
    for h in range(g - step, -1, -step):
        if tbl.lower(h) > eps:
            continue
        if tbl.certificate(h).upper > eps:
            continue
        raise CertificationError(  # would contradict the search above; never expected
            f"internal: {tbl.family} degree {h} < {g} also certifies eps={float(eps):.3g}")
    return f"point-enclosure witness (or certificate) above eps for every degree < {g}"


def min_degree(R, eps, family: str = "minimax") -> int:
    """Least degree whose certified relative error on ``[-R, R]`` is ``<= eps`` (module docstring)."""
    return _choose(as_family(family), as_radius(R), as_eps(eps)).degree


def best_polynomial(R, eps, family: str = "minimax") -> tuple[Polynomial, float]:
    """``(P, certified_eps)`` for the least certified degree (see :func:`min_degree`)."""
    choice = _choose(as_family(family), as_radius(R), as_eps(eps))
    return choice.poly, choice.certified


def grid_radius(R) -> Fraction:
    """Round ``R > 0`` up to the grid ``(k/8) 2^e`` (``k = 8..16``): ``R <= R' < 1.125 R``."""
    r = as_radius(R)
    e = r.numerator.bit_length() - r.denominator.bit_length()  # 2^(e-1) < r < 2^(e+1)
    base = Fraction(2) ** (e - 1)
    while base * 2 <= r:
        base *= 2
    while base > r:
        base /= 2
    # now base <= r < 2 base
    k = math.ceil(r / base * 8)
    return base * Fraction(k, 8)


def certified_on_grid(R, eps, family: str = "minimax") -> DegreeChoice:
    """Least certified degree for ``eps`` on ``[-R', R']``, ``R' = grid_radius(R) >= R``.

    Valid on ``[-R, R]`` because ``[-R, R]`` is contained in ``[-R', R']``. Repeated calls with
    radii in the same grid cell reuse the memoised certificates.
    """
    return _choose(as_family(family), grid_radius(R), as_eps(eps))
