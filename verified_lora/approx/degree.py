"""Least certified degree for a target relative error, with caches (docs/design.md section 4.2).

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
from .certify import Certificate, certify_relative_error
from .lower_bounds import alternation_lower_bound, relative_error_lower_bound
from .polynomials import (MAX_DEGREE, Polynomial, as_eps, as_family, as_radius, make_polynomial,
                          minimax_reference)

__all__ = ["DegreeChoice", "min_degree", "best_polynomial", "certified_on_grid", "grid_radius",
           "degree_table"]


@dataclass(frozen=True)
class DegreeChoice:
    """The least certified degree for ``eps`` on ``[-R, R]`` and its proof.

    ``certificate`` proves ``eps(poly, R) <= certificate.upper <= eps``; ``below_lower`` is a
    rigorous lower bound (``> eps``) on the error of the family's degree just below (``None``
    for degree 0; when ``eps`` falls in that degree's certificate gap, its certificate is
    tightened until the question is decided); ``minimality`` says how all lower degrees were shown to fail.
    """

    family: str
    R: Fraction
    eps: Fraction
    degree: int
    poly: Polynomial
    certificate: Certificate
    below_lower: Fraction | None
    minimality: str
    derivative_certificate: Certificate | None = None

    @property
    def certified(self) -> float:
        """Certified error (float64, rounded up)."""
        return self.certificate.value

    def derivative_certified(self) -> float:
        """Certified ``max |P'(x) e^{-x} - 1|`` on ``[-R, R]`` (float64, rounded up; memoised)."""
        if self.derivative_certificate is not None:
            return self.derivative_certificate.value
        return degree_table(self.family, self.R).certificate(self.degree, 1).value

    def to_json(self) -> dict:
        return {"family": self.family, "R": str(self.R), "eps": str(self.eps), "degree": self.degree,
                "certified": self.certified, "upper": str(self.certificate.upper),
                "below_lower": None if self.below_lower is None else str(self.below_lower),
                "minimality": self.minimality,
                "derivative_certified": None if self.derivative_certificate is None
                else self.derivative_certificate.value}


def _step(family: str) -> int:
    return 2 if family == "taylor_even" else 1


class _FamilyTable:
    """Memo of certificates and lower bounds for one ``(family, R)``.

    ``which = 0`` refers to ``P_g`` itself, ``which = 1`` to its derivative ``P_g'`` (both
    measured against ``exp``).
    """

    def __init__(self, family: str, R: Fraction):
        self.family, self.R = family, R
        self._cert: dict[tuple[int, int], Certificate] = {}
        self._lower: dict[tuple[int, int], Fraction] = {}
        self._alternation: dict[int, Fraction] = {}

    def poly(self, g: int, which: int = 0) -> Polynomial:
        p = make_polynomial(self.family, g, self.R)
        return p.derivative() if which else p

    def certificate(self, g: int, which: int = 0) -> Certificate:
        key = (g, which)
        if key not in self._cert:
            self._cert[key] = certify_relative_error(self.poly(g, which), self.R)
            self._lower[key] = max(self._lower.get(key, Fraction(0)), self._cert[key].lower)
        return self._cert[key]

    def lower(self, g: int, which: int = 0, eps: Fraction | None = None) -> Fraction:
        """Rigorous lower bound on the error of the degree-``g`` member (cheap).

        With ``eps``, the endpoints ``+-R`` alone are tried first and returned if they already
        exceed ``eps`` (low degrees fail there by orders of magnitude).
        """
        key = (g, which)
        if key in self._lower:
            return self._lower[key]
        if eps is not None:
            ends = relative_error_lower_bound(self.poly(g, which), self.R, [-self.R, self.R])
            if ends > eps:
                return ends
        self._lower[key] = relative_error_lower_bound(self.poly(g, which), self.R)
        return self._lower[key]

    def alternation(self, g: int) -> Fraction:
        """Lower bound on the error of every polynomial of degree ``<= g`` (from the minimax one)."""
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


def _initial_degree(family: str, R: Fraction, eps: Fraction, derivative: bool = False) -> int:
    r, log_eps = float(R), math.log(float(eps)) if eps > 0 else -math.inf
    step = _step(family)
    g = 0

    def log_est(h: int) -> float:
        base = _log_est_error(family, r, h)
        if family == "chebyshev":  # observed: interpolation loses ~e^{R + 1/2} in relative error
            base += r + 0.5
        if not derivative:
            return base
        if family.startswith("taylor"):  # P' = T_{g-1}
            return _log_est_error(family, r, max(h - 1, 0))
        # observed on the certified tables: P' error ~ 1.7 g^2 / R times P's error
        return base + math.log1p(2 * h * h / r)

    while log_est(g) > log_eps:
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
def _choose(family: str, R: Fraction, eps: Fraction, derivative: bool = False) -> DegreeChoice:
    tbl = degree_table(family, R)
    step = _step(family)
    whiches = (0, 1) if derivative else (0,)

    def certifies(h: int) -> bool:
        return all(tbl.certificate(h, w).upper <= eps for w in whiches)

    def fails_cheaply(h: int) -> bool:
        return any(tbl.lower(h, w) > eps for w in whiches)

    g = _initial_degree(family, R, eps, derivative)
    while not certifies(g):
        g += step
        if g > MAX_DEGREE:
            raise _too_high(family, R, eps, g - step)
    # Walk down while the next-lower degree also certifies.
    while g - step >= 0 and not fails_cheaply(g - step) and certifies(g - step):
        g -= step
    below = None
    while g - step >= 0:
        h = g - step
        below = max(tbl.lower(h, w) for w in whiches)
        if below > eps:
            break
        # eps lies in the certificate gap [lower, upper] of degree h: tighten until decided
        decided = _decide_gap(tbl, h, eps, whiches)
        if decided is None:
            raise CertificationError(
                f"{family} degree {h} on [-{float(R):.6g}, {float(R):.6g}]: eps={float(eps):.6g} stays inside its "
                "certificate gap at the tightest tolerance tried; minimality of degree "
                f"{g} is not decided")
        if decided > 0:
            below = decided
            break
        g = h  # degree h certifies after all: it is the least so far; look below it too
    minimality = _prove_lower_degrees_fail(tbl, g, eps, whiches)
    return DegreeChoice(family, R, eps, g, tbl.poly(g), tbl.certificate(g), below, minimality,
                        tbl.certificate(g, 1) if derivative else None)


def _decide_gap(tbl: _FamilyTable, h: int, eps: Fraction, whiches) -> Fraction | None:
    """Tighten degree ``h``'s certificates until ``eps`` is decided: a rigorous lower bound ``> eps``
    (returned), ``0`` when every certificate is ``<= eps`` (degree ``h`` certifies), ``None`` if undecided."""
    certs = [tbl.certificate(h, w) for w in whiches]
    for _ in range(6):
        low = max(c.lower for c in certs)
        if low > eps:
            return low
        if all(c.upper <= eps for c in certs):
            for w, c in zip(whiches, certs):
                tbl._cert[(h, w)] = c
            return Fraction(0)
        # a gap target below eps's distance to both ends decides it (unless eps is the exact error)
        dist = min((min(abs(eps - c.lower) / c.lower, abs(c.upper - eps) / eps) for c in certs if c.lower > 0),
                   default=Fraction(1, 10**4))
        rel_tol = max(1e-15, min(float(dist) / 4, 2e-4))
        certs = [certify_relative_error(tbl.poly(h, w), tbl.R, rel_tol=rel_tol) for w in whiches]
    return None


def _prove_lower_degrees_fail(tbl: _FamilyTable, g: int, eps: Fraction, whiches=(0,)) -> str:
    """Show that every degree below ``g`` fails (P, or P' when ``1 in whiches``); returns how.

    For every family the de la Vallee Poussin bound of the minimax reference of degree ``k``
    covers all polynomials of degree ``<= k`` at once (and all derivatives of polynomials of
    degree ``<= k + 1``); the remaining degrees get a point-enclosure witness or a certificate.
    """
    step = _step(tbl.family)
    if g - step < 0:
        return "degree 0"
    k = -1
    if tbl.family == "minimax":  # the Remez references are already at hand for this family
        k = g - 1
        while k >= 0 and tbl.alternation(k) <= eps:
            k -= 1
    covered = k + 1 if 1 in whiches else k
    witnessed = []
    for h in range(g - step, covered, -step):
        if h < 0:
            break
        if any(tbl.lower(h, w, eps) > eps for w in whiches):
            witnessed.append(h)
            continue
        if any(tbl.certificate(h, w).upper > eps for w in whiches):
            witnessed.append(h)
            continue
        raise CertificationError(  # would contradict the search above; never expected
            f"internal: {tbl.family} degree {h} < {g} also certifies eps={float(eps):.3g}")
    parts = []
    if k >= 0:
        parts.append(f"de la Vallee Poussin (minimax reference of degree {k}) for degrees <= {covered}")
    elif covered == 0:
        parts.append("degree 0: P' = 0 has relative error 1 > eps")
    if witnessed:
        parts.append(f"point-enclosure witness or certificate above eps for degrees {min(witnessed)}..{max(witnessed)}")
    return "; ".join(parts)


def min_degree(R, eps, family: str = "minimax", *, derivative: bool = False) -> int:
    """Least degree whose certified relative error on ``[-R, R]`` is ``<= eps`` (module docstring).

    With ``derivative=True`` the derivative must also satisfy
    ``max |P'(x) e^{-x} - 1| <= eps`` (the factored gradient path, docs/design.md section 4.4).
    """
    return _choose(as_family(family), as_radius(R), as_eps(eps), bool(derivative)).degree


def best_polynomial(R, eps, family: str = "minimax", *, derivative: bool = False) -> tuple[Polynomial, float]:
    """``(P, certified_eps)`` for the least certified degree (see :func:`min_degree`)."""
    choice = _choose(as_family(family), as_radius(R), as_eps(eps), bool(derivative))
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


def certified_on_grid(R, eps, family: str = "minimax", *, derivative: bool = False) -> DegreeChoice:
    # Fast path for repeated calls with the very same arguments (plan() in a loop): skips the
    # exact-rational conversions. Unhashable or invalid arguments fall through to validation.
    try:
        return _on_grid_memo(R, eps, family, bool(derivative))
    except TypeError:
        return _certified_on_grid(R, eps, family, derivative)


@lru_cache(maxsize=4096)
def _on_grid_memo(R, eps, family, derivative):
    return _certified_on_grid(R, eps, family, derivative)


def _certified_on_grid(R, eps, family: str = "minimax", derivative: bool = False) -> DegreeChoice:
    """Least certified degree for ``eps`` on ``[-R', R']``, ``R' = grid_radius(R) >= R``.

    Valid on ``[-R, R]`` because ``[-R, R]`` is contained in ``[-R', R']``. Repeated calls with
    radii in the same grid cell reuse the memoised certificates. ``derivative`` as in
    :func:`min_degree`; the returned choice then carries ``derivative_certificate``.
    """
    return _choose(as_family(family), grid_radius(R), as_eps(eps), bool(derivative))
