"""Certified relative error of a polynomial approximation of ``exp`` (docs/design.md section 4.2).

``eps(P, R) = max_{x in [-R, R]} |P(x) e^{-x} - 1|`` is bounded from above by interval
branch-and-bound with outward rounding. Write ``h(x) = P(x) e^{-x} - 1``; then exactly

    h(x) = Q_0(x) e^{-x} - 1,   h^(n)(x) = Q_n(x) e^{-x} (n >= 1),   Q_0 = P,  Q_{n+1} = Q_n' - Q_n

(so ``Q_1 = P' - P``, ``Q_2 = P'' - 2P' + P``), with every ``Q_n`` formed in exact rational arithmetic, so
no cancellation is ever evaluated in floating point. On a piece ``X = [m - r, m + r]`` Taylor's
theorem with the Lagrange remainder gives, for every ``x`` in ``X`` (order ``K``),

    |h(x)| <= sum_{n < K} |h^(n)(m)| r^n / n!  +  sup_X |h^(K)| r^K / K!,          (*)

where the ``h^(n)(m)`` are *point* enclosures (tight) and ``sup_X |h^(K)|`` is an interval
enclosure of ``Q_K(X) e^{-X}`` (python-flint ``arb`` balls or ``mpmath.iv`` intervals, outward
rounding). Interval Horner over a wide ``X`` overestimates ``Q_K`` by orders of magnitude
(power-basis terms of size ``e^{|x|}`` cancel to a tiny value), which is why only the order-``K``
term is enclosed over ``X`` and it carries ``r^K``. At an interior extremum ``h'(m) = O(r)`` and
(*) exceeds the true maximum by ``O(|h''| r^2)``.

The search keeps the pieces in a max-heap on (*) and splits the worst one until its bound is
within ``rel_tol`` of the best rigorous *lower* bound ``max |h(m)|_low`` seen so far (point
enclosures at midpoints and at ``+-R``). The certificate is ``max (*)`` over a partition of
``[-R, R]``, hence a proof; it comes with the lower bound, so the true error is bracketed:
``lower <= eps(P, R) <= upper <= (1 + rel_tol) lower``.

Backends (:mod:`verified_lora.numerics.intervals`): ``"arb"`` (python-flint, fast, imported lazily)
and ``"iv"`` (mpmath.iv, pure Python, ~30x slower); ``"auto"`` takes arb when importable
(``"flint"`` and ``"mpmath"`` are accepted as older names of the two). Precision is chosen from
the degree, the dynamic range ``e^{2R}`` and ``sum |a_t| R^t`` and raised automatically when a
point enclosure is too wide to separate the bounds.

The lower bounds that need no certificate (any polynomial of a degree, alternation, divided
differences) are in :mod:`.lower_bounds`.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Sequence

from ..errors import CertificationError, InputError
from ..numerics import intervals
from ..numerics.intervals import EnclosureTooWide
from ..numerics.rounding import fraction_to_float_down, fraction_to_float_saturating, fraction_to_float_up
from .polynomials import Polynomial, as_radius, working_precision

__all__ = ["Certificate", "certify_relative_error", "derivative_factors", "initial_precision",
           "chebyshev_partition", "BACKENDS", "DEFAULT_REL_TOL", "TAYLOR_ORDER"]

BACKENDS = intervals.BACKENDS + tuple(intervals.ALIASES)
"""Accepted ``backend`` values: ``"auto"``, ``"iv"``, ``"arb"`` and the older ``"mpmath"``, ``"flint"``."""

# Default relative gap between the certified upper bound and the rigorous lower bound.
# The acceptance test allows certified <= 1.01 x (dense sample max); 2e-3 leaves room for the
# sampling shortfall of a 60-digit dense grid.
DEFAULT_REL_TOL = 2e-3


def _heap_key(ub: Fraction) -> tuple[float, Fraction]:
    """Max-heap key of a piece bound: the float first (fast), the exact value to break ties, so
    the order stays exact when bounds beyond the float range all saturate to ``inf``."""
    return (-fraction_to_float_saturating(ub), -ub)


def _log2_upper(q: Fraction) -> int:
    """An integer ``>= log2 q`` for ``q > 0``, from bit lengths (no float conversion, any size).

    ``2^(bl(n) - 1) <= n < 2^bl(n)`` and ``2^(bl(d) - 1) <= d``, so ``n/d < 2^(bl(n) - bl(d) + 1)``.
    """
    return q.numerator.bit_length() - q.denominator.bit_length() + 1


# Order of the Taylor form (*). 5 makes the wrapped remainder negligible once r <~ 1e-2 R.
TAYLOR_ORDER = 5


def derivative_factors(coeffs: Sequence[Fraction], order: int) -> list[list[Fraction]]:
    """Exact ``Q_0 = P, Q_{n+1} = Q_n' - Q_n`` for ``n < order`` (``h^(n) = Q_n e^{-x}``, n >= 1)."""
    out = [list(coeffs)]
    g = len(coeffs) - 1
    for _ in range(order):
        q = out[-1]
        d = [t * q[t] for t in range(1, g + 1)] + [Fraction(0)]
        out.append([d[t] - q[t] for t in range(g + 1)])
    return out


def initial_precision(poly: Polynomial, R: Fraction) -> int:
    """Starting interval precision (bits) for enclosing ``P(x) e^{-x} - 1`` on ``[-R, R]``."""
    # Extra bits for the magnitude sum |a_t| R^t, computed exactly (it exceeds the float range
    # once R >~ 700, so no float conversion here).
    abs_sum = poly.abs_sum(R) if poly.degree else abs(poly.coeffs[0])
    extra = max(0, _log2_upper(abs_sum)) if abs_sum > 1 else 0
    return working_precision(R, poly.degree + poly.derivative_order) + extra + 32


# ----------------------------------------------------------------------------- certificate
@dataclass(frozen=True)
class Certificate:
    """Proof that ``lower <= max_{|x| <= R} |P(x) e^{-x} - 1| <= upper`` (exact rationals).

    ``argmax`` is a point where the lower bound was attained; ``pieces`` the size of the final
    partition; ``backend`` and ``prec`` (bits) say how it was computed.
    """

    poly: Polynomial
    R: Fraction
    upper: Fraction
    lower: Fraction
    argmax: Fraction
    pieces: int
    backend: str
    prec: int

    @property
    def value(self) -> float:
        """``upper`` rounded up to float64 (the certified error)."""
        return fraction_to_float_up(self.upper)

    @property
    def lower_value(self) -> float:
        """``lower`` rounded down to float64."""
        return fraction_to_float_down(self.lower)

    def to_json(self) -> dict:
        return {"poly": self.poly.to_json(), "R": str(self.R), "upper": str(self.upper),
                "lower": str(self.lower), "argmax": str(self.argmax), "upper_float_up": self.value,
                "pieces": self.pieces, "backend": self.backend, "prec": self.prec}


def chebyshev_partition(R: Fraction, n: int) -> list[Fraction]:
    """``n`` Chebyshev-clustered pieces of ``[-R, R]`` with exact endpoints ``+-R``."""
    pts = [-R]
    for k in range(1, n):
        x = Fraction(-float(R) * math.cos(math.pi * k / n))
        if -R < x < R and x > pts[-1]:
            pts.append(x)
    pts.append(R)
    return pts


def _branch_and_bound(poly: Polynomial, R: Fraction, be, rel_tol: float, max_pieces: int):
    K = TAYLOR_ORDER
    qs = derivative_factors(poly.coeffs, K)
    with be.scope():
        q_b = [be.poly(q) for q in qs]
        one = be.point(Fraction(1))
        inv_fact = [be.point(Fraction(1, math.factorial(n))) for n in range(K + 1)]

        lower, argmax = Fraction(0), Fraction(0)
        rel_tol_q = Fraction(rel_tol)

        def note_lower(h, x):
            nonlocal lower, argmax
            lo = be.abs_lower(h)
            if lo > lower:
                lower, argmax = lo, x

        for x in (-R, R):
            xb = be.point(x)
            note_lower(be.evaluate(q_b[0], xb) * be.exp(-xb) - one, x)

        def piece(lo: Fraction, hi: Fraction):
            m = (lo + hi) / 2
            mb = be.point(m)
            rb = be.point((hi - lo) / 2)
            e_m = be.exp(-mb)
            h0 = be.evaluate(q_b[0], mb) * e_m - one
            note_lower(h0, m)
            total = be.abs(h0)
            rn = one
            for n in range(1, K):
                rn = rn * rb
                total = total + be.abs(be.evaluate(q_b[n], mb) * e_m) * rn * inv_fact[n]
            rk = rn * rb * inv_fact[K]
            xb = be.interval(lo, hi)
            rem = be.abs(be.evaluate(q_b[K], xb) * be.exp(-xb)) * rk
            rem_up = be.abs_upper(rem)
            if rem_up > lower * rel_tol_q / 4:
                # Interval Horner over X wraps badly when |x| is large (power-basis terms ~ e^|x|
                # cancel); bound Q_K on X through its exact Taylor shift at m instead:
                # |Q_K(m + t)| <= sum_i |q_i| r^i,  e^{-x} <= e^{r - m} on X.
                alt = be.shifted_abs_sup(q_b[K], mb, rb) * be.exp(rb - mb) * rk
                if be.abs_upper(alt) < rem_up:
                    rem = alt
            total = total + rem
            return be.abs_upper(total)

        heap: list = []
        counter = 0
        bounds = chebyshev_partition(R, max(8, 2 * poly.degree + 4))
        for lo, hi in zip(bounds[:-1], bounds[1:]):
            ub = piece(lo, hi)
            heap.append((*_heap_key(ub), counter, lo, hi, ub))
            counter += 1
        heapq.heapify(heap)
        min_width = R * Fraction(1, 1 << 60)
        tol = 1 + Fraction(rel_tol)
        while True:
            _, _, _, lo, hi, ub = heap[0]
            if ub <= lower * tol or ub == 0:
                break
            if len(heap) > max_pieces:
                raise CertificationError(
                    f"branch-and-bound for {poly!r} on [-{R}, {R}] needed more than {max_pieces} pieces "
                    f"(upper {fraction_to_float_saturating(ub):.3e}, lower {fraction_to_float_saturating(lower):.3e})")
            if hi - lo < min_width:
                raise EnclosureTooWide
            heapq.heappop(heap)
            mid = (lo + hi) / 2
            for a, b in ((lo, mid), (mid, hi)):
                u = piece(a, b)
                heapq.heappush(heap, (*_heap_key(u), counter, a, b, u))
                counter += 1
        upper = heap[0][5]
        return upper, lower, argmax, len(heap)


def certify_relative_error(poly: Polynomial, R=None, *, backend: str = "auto",
                           rel_tol: float = DEFAULT_REL_TOL, max_pieces: int = 200_000) -> Certificate:
    """Certificate for ``eps(P, R) = max_{|x| <= R} |P(x) e^{-x} - 1|`` (module docstring).

    ``R`` defaults to the interval the polynomial was built for. ``rel_tol`` is the target gap
    ``upper / lower - 1``. The certified error as a float64 (rounded up) is ``.value``; works for
    any :class:`Polynomial`, including ``poly.derivative()`` (the factored gradient's
    ``max |P'(x) e^{-x} - 1|``). ``backend``: ``"auto"``, ``"arb"`` or ``"iv"`` (:data:`BACKENDS`).
    """
    if not isinstance(poly, Polynomial):
        raise InputError("poly", "a verified_lora.approx.Polynomial", type(poly).__name__,
                         fix="build one with make_polynomial(family, degree, R)")
    r = poly.R if R is None else as_radius(R)
    if not (isinstance(rel_tol, (int, float)) and 0 < rel_tol < 1):
        raise InputError("rel_tol", "a number in (0, 1)", repr(rel_tol))
    prec = initial_precision(poly, r)
    for _attempt in range(6):
        be = intervals.backend(backend, prec)
        try:
            upper, lower, argmax, pieces = _branch_and_bound(poly, r, be, rel_tol, max_pieces)
        except EnclosureTooWide:
            prec *= 2
            continue
        return Certificate(poly, r, upper, lower, argmax, pieces, be.name, prec)
    raise CertificationError(f"could not certify {poly!r} on [-{r}, {r}] up to {prec} bits of precision")
