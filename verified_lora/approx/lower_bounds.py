"""Rigorous lower bounds on the relative error ``max_{|x| <= R} |P(x) e^{-x} - 1|``.

* :func:`relative_error_lower_bound` -- of one polynomial, from point enclosures (cheap; proves
  that a degree *fails* a target without a branch-and-bound);
* :func:`any_polynomial_lower_bound` -- of *every* polynomial of a degree (Chebyshev growth and
  divided differences: decides the hopeless cases without building a polynomial);
* :func:`divided_difference_lower_bound` -- the divided-difference half of the above;
* :func:`alternation_lower_bound` -- de la Vallee Poussin, from a certified sign alternation.

Interval arithmetic comes from :mod:`verified_lora.numerics.intervals`; the upper bounds
(certificates) are in :mod:`.certify`.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Sequence

from ..errors import InputError
from ..numerics import intervals
from ..numerics.intervals import Sign
from .certify import chebyshev_partition, initial_precision
from .polynomials import Polynomial, as_radius

__all__ = ["relative_error_lower_bound", "alternation_lower_bound", "any_polynomial_lower_bound",
           "divided_difference_lower_bound"]


def relative_error_lower_bound(poly: Polynomial, R=None, points: Sequence | None = None, *,
                               backend: str = "auto") -> Fraction:
    """Rigorous lower bound ``max_i |h(x_i)|_low`` on ``eps(P, R)`` from point enclosures.

    Default points: ``+-R``, ``0`` and ``4g + 8`` Chebyshev points. Cheap; used to prove that a
    degree *fails* a target without a full branch-and-bound.
    """
    r = poly.R if R is None else as_radius(R)
    if points is None:
        n = 4 * poly.degree + 8
        points = [-r, r, Fraction(0)] + chebyshev_partition(r, n)[1:-1]
    pts = [Fraction(p) for p in points]
    if any(abs(p) > r for p in pts):
        raise InputError("points", f"points inside [-{r}, {r}]", "a point outside")
    prec = initial_precision(poly, r)
    be = intervals.backend(backend, prec)
    best = Fraction(0)
    with be.scope():
        p_b = be.poly(poly.coeffs)
        one = be.point(Fraction(1))
        for x in pts:
            xb = be.point(x)
            best = max(best, be.abs_lower(be.evaluate(p_b, xb) * be.exp(-xb) - one))
    return best


# log2(e) = 1.44269504088896...: rational bounds for exact powers of two below and above e^x.
_LOG2E_LOW = Fraction(14426950408, 10 ** 10)
_LOG2E_HIGH = Fraction(14426950409, 10 ** 10)


def _exp_lower(x: Fraction) -> Fraction:
    """A rational ``<= e^x``: ``e^x = 2^{x log2 e} >= 2^{floor(x L)}`` with ``L = log2 e`` rounded
    toward the side that lowers ``x L`` (down for ``x >= 0``, up for ``x < 0``)."""
    return Fraction(2) ** math.floor(x * (_LOG2E_LOW if x >= 0 else _LOG2E_HIGH))


def _exp_upper(x: Fraction) -> Fraction:
    """A rational ``>= e^x`` (as :func:`_exp_lower`, rounded the other way)."""
    return Fraction(2) ** math.ceil(x * (_LOG2E_HIGH if x >= 0 else _LOG2E_LOW))


def _chebyshev_T(g: int, y: Fraction) -> Fraction:
    """``T_g(y)`` exactly (``T_0 = 1``, ``T_1 = y``, ``T_{n+1} = 2 y T_n - T_{n-1}``)."""
    t_prev, t_cur = Fraction(1), y
    if g == 0:
        return t_prev
    for _ in range(g - 1):
        t_prev, t_cur = t_cur, 2 * y * t_cur - t_prev
    return t_cur


def divided_difference_lower_bound(degree: int, R, *, backend: str = "auto") -> Fraction:
    """Rigorous lower bound on ``max_{|x| <= R} |P(x) e^{-x} - 1|`` for every polynomial ``P`` of
    degree ``<= g = degree``, from ``g + 2`` Chebyshev extrema ``x_i`` of ``[-R, R]`` (exact rationals).

    Proof. With ``lambda_i = 1 / prod_{j != i} (x_i - x_j)`` (the weights of the divided difference
    of order ``g + 1``), ``sum_i lambda_i Q(x_i) = 0`` for every polynomial ``Q`` of degree ``<= g``.
    Write ``P(x_i) = e^{x_i} (1 + e_i)`` with ``e_i = P(x_i) e^{-x_i} - 1``, ``|e_i| <= eps``. Then
    ``0 = sum_i lambda_i e^{x_i} + sum_i lambda_i e^{x_i} e_i``, so
    ``|sum_i lambda_i e^{x_i}| <= eps sum_i |lambda_i| e^{x_i}``, i.e.

        eps >= |sum_i lambda_i e^{x_i}| / sum_i |lambda_i| e^{x_i}    (<= 1).

    The ``lambda_i`` are exact; the sums are enclosed by interval arithmetic (outward rounding),
    and the quotient uses the lower end of the numerator's modulus over the upper end of the
    denominator (0 when the numerator's enclosure contains 0). With the points near the
    alternation points of the best approximation this is close to the best error (it is the
    error of the best approximation on these ``g + 2`` points).
    """
    r = as_radius(R)
    g = int(degree)
    if g < 0:
        raise InputError("degree", "an int >= 0", repr(degree))
    n = g + 2
    pts = [-r] + [r * Fraction(-math.cos(math.pi * i / (n - 1))) for i in range(1, n - 1)] + [r]
    if any(a >= b for a, b in zip(pts[:-1], pts[1:])):  # float cosines collided: no bound
        return Fraction(0)
    lam = []
    for i, xi in enumerate(pts):
        prod = Fraction(1)
        for j, xj in enumerate(pts):
            if j != i:
                prod *= xi - xj
        lam.append(1 / prod)
    scale = max(abs(v) for v in lam)  # the ratio is scale-free; keep the balls near 1
    be = intervals.backend(backend, 192 + 2 * g)
    with be.scope():
        num = be.point(Fraction(0))
        den = be.point(Fraction(0))
        for li, xi in zip(lam, pts):
            e = be.exp(be.point(xi - r))  # e^{x_i - R}: the common factor e^R cancels
            num = num + be.point(li / scale) * e
            den = den + be.point(abs(li) / scale) * e
        lo = be.abs_lower(num)
        hi = be.abs_upper(den)
    return min(Fraction(1), lo / hi) if hi > 0 else Fraction(0)


def any_polynomial_lower_bound(degree: int, R, splits: int = 32) -> Fraction:
    """Rigorous lower bound on ``max_{|x| <= R} |P(x) e^{-x} - 1|`` for *every* real polynomial
    ``P`` of degree ``<= degree`` (any family, and any derivative of one). Cheap (milliseconds).

    The larger of :func:`divided_difference_lower_bound` and the Chebyshev growth bound below
    (which alone decides ``R >> degree``, where the first one's cancellation is extreme).

    Growth bound. Let ``eps`` be the error of ``P`` and ``-R < t < R``. On ``[-R, t]``,
    ``|P(x)| <= (1 + eps) e^x <= (1 + eps) e^t``. Chebyshev's growth inequality (for a polynomial
    ``p`` of degree ``<= g`` and ``|y| >= 1``, ``|p(y)| <= |T_g(y)| max_{[-1, 1]} |p|``), applied
    after the affine map of ``[-R, t]`` onto ``[-1, 1]`` (``x = R`` goes to
    ``y_t = (3R - t) / (R + t) > 1``), gives ``P(R) <= (1 + eps) e^t T_g(y_t)``. The error at
    ``x = R`` gives ``P(R) >= (1 - eps) e^R``. Hence ``(1 - eps) e^R <= (1 + eps) M_t`` with
    ``M_t = e^t T_g(y_t)``, i.e. ``eps >= (e^R - M_t) / (e^R + M_t)``. This is increasing in
    ``e^R`` and decreasing in ``M_t``, so a rational lower bound of ``e^R`` and an upper bound of
    ``e^t`` keep it valid; the best over ``t = -R + 2R j / splits`` (``j = 1..splits-1``) is
    returned (``0`` when no split helps). ``T_g(y_t)`` grows with ``g``, so the bound for
    ``degree`` also holds for every lower degree.

    It decides the hopeless cases (``R`` large against the degree: the bound is ``1 - O(e^{-R})``
    for ``R >> degree``) without building or certifying any polynomial.
    """
    r = as_radius(R)
    g = int(degree)
    if g < 0:
        raise InputError("degree", "an int >= 0", repr(degree))
    e_R = _exp_lower(r)
    best = Fraction(0)
    for j in range(1, splits):
        t = -r + 2 * r * Fraction(j, splits)
        M = _exp_upper(t) * _chebyshev_T(g, (3 * r - t) / (r + t))
        best = max(best, (e_R - M) / (e_R + M))
    if best > 1 - Fraction(1, 1 << 40):  # already decisive; skip the interval sums
        return best
    return max(best, divided_difference_lower_bound(g, r))


def alternation_lower_bound(poly: Polynomial, points: Sequence, *, backend: str = "auto") -> Fraction:
    """de la Vallee Poussin bound: a lower bound on the error of *every* polynomial of degree
    ``<= len(points) - 2``.

    If ``h = P e^{-x} - 1`` has certified strictly alternating signs at ``x_0 < ... < x_{n}``
    (``n = len(points) - 1``) then any polynomial ``Q`` of degree ``<= n - 1`` satisfies
    ``max |Q e^{-x} - 1| >= min_i |h(x_i)|`` (otherwise ``(P - Q) e^{-x} = h - h_Q`` would
    change sign ``n`` times, so ``P - Q`` of degree ``<= max(deg P, n - 1)`` would have ``n``
    roots; we require ``deg P <= n - 1``). Returns 0 when the alternation is not certified.
    """
    pts = sorted(Fraction(p) for p in points)
    if len(pts) < 2 or poly.degree > len(pts) - 2:
        raise InputError("points", f"at least degree + 2 = {poly.degree + 2} points", str(len(pts)))
    r = max(abs(pts[0]), abs(pts[-1]), poly.R)
    prec = initial_precision(poly, r)
    be = intervals.backend(backend, prec)
    with be.scope():
        p_b = be.poly(poly.coeffs)
        one = be.point(Fraction(1))
        signs, mags = [], []
        for x in pts:
            xb = be.point(x)
            h = be.evaluate(p_b, xb) * be.exp(-xb) - one
            signs.append(be.sign(h))
            mags.append(be.abs_lower(h))
    if Sign.UNDECIDED in signs or any(a == b for a, b in zip(signs[:-1], signs[1:])):
        return Fraction(0)
    return min(mags)
