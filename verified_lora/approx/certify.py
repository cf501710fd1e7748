"""Certified relative error of a polynomial approximation of ``exp`` (DESIGN.md section 4.2).

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

Backends: ``"flint"`` (python-flint arb, fast, imported lazily) and ``"mpmath"`` (mpmath.iv,
pure Python, ~30x slower); ``"auto"`` takes flint when importable. Precision is chosen from
the degree, the dynamic range ``e^{2R}`` and ``sum |a_t| R^t`` and raised automatically when a
point enclosure is too wide to separate the bounds.
"""

from __future__ import annotations

import heapq
import math
import sys
from dataclasses import dataclass
from fractions import Fraction
from typing import Sequence

from ..errors import CertificationError, InputError
from .polynomials import Polynomial, as_radius, working_precision

__all__ = [
    "Certificate",
    "certify_relative_error",
    "certified_relative_error",
    "certified_derivative_error",
    "relative_error_lower_bound",
    "alternation_lower_bound",
    "any_polynomial_lower_bound",
    "divided_difference_lower_bound",
    "fraction_to_float_up",
    "BACKENDS",
]

BACKENDS = ("auto", "flint", "mpmath")

# Default relative gap between the certified upper bound and the rigorous lower bound.
# The acceptance test allows certified <= 1.01 x (dense sample max); 2e-3 leaves room for the
# sampling shortfall of a 60-digit dense grid.
DEFAULT_REL_TOL = 2e-3


def fraction_to_float_up(q: Fraction) -> float:
    """The least float64 ``>= q`` (round toward +inf); ``inf`` when ``q`` exceeds the float range.

    A relative error of ``e^{10^4}`` (a low degree on a huge interval) is a valid input: its
    upper bound is ``inf`` (it certifies nothing), never an ``OverflowError``.
    """
    try:
        f = float(q)
    except OverflowError:
        return math.inf if q > 0 else -sys.float_info.max
    if Fraction(f) < q:
        f = math.nextafter(f, math.inf)
    return f


def _fraction_to_float_down(q: Fraction) -> float:
    """The greatest float64 ``<= q``; the largest finite float when ``q`` exceeds the range."""
    try:
        f = float(q)
    except OverflowError:
        return sys.float_info.max if q > 0 else -math.inf
    if Fraction(f) > q:
        f = math.nextafter(f, -math.inf)
    return f


def _float_sat(q: Fraction) -> float:
    """``float(q)``, saturating at ``+-inf`` beyond the float range (for messages and heap keys)."""
    try:
        return float(q)
    except OverflowError:
        return math.inf if q > 0 else -math.inf


def _heap_key(ub: Fraction) -> tuple[float, Fraction]:
    """Max-heap key of a piece bound: the float first (fast), the exact value to break ties, so
    the order stays exact when bounds beyond the float range all saturate to ``inf``."""
    return (-_float_sat(ub), -ub)


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


# ----------------------------------------------------------------------------- backends
class _FlintBackend:
    """python-flint ``arb`` balls; precision scoped with ``flint.ctx.workprec``."""

    name = "flint"

    def __init__(self, prec: int):
        import flint

        self.flint = flint
        self.prec = prec

    def scope(self):
        return self.flint.ctx.workprec(self.prec)

    def poly(self, coeffs):
        f = self.flint
        return f.arb_poly([f.fmpq(c.numerator, c.denominator) for c in coeffs])

    def point(self, q: Fraction):
        return self.flint.arb(self.flint.fmpq(q.numerator, q.denominator))

    def interval(self, lo: Fraction, hi: Fraction):
        return self.point(lo).union(self.point(hi))

    @staticmethod
    def evaluate(p, x):
        return p(x)

    @staticmethod
    def exp(x):
        return x.exp()

    @staticmethod
    def abs(x):
        return abs(x)

    def shifted_abs_sup(self, p, m, r):
        """Ball containing ``sum_i |q_i| r^i`` where ``p(m + t) = sum_i q_i t^i``."""
        coeffs = p(self.flint.arb_poly([m, 1])).coeffs()
        acc = self.flint.arb(0)
        for c in reversed(coeffs):
            acc = acc * r + abs(c)
        return acc

    @staticmethod
    def _arb_to_fraction(a) -> Fraction:
        man, exp = a.man_exp()
        man, exp = int(man), int(exp)
        return Fraction(man << exp) if exp >= 0 else Fraction(man, 1 << -exp)

    def abs_upper(self, x) -> Fraction:
        if not x.is_finite():
            raise _NeedPrecision
        return self._arb_to_fraction(x.abs_upper())

    def abs_lower(self, x) -> Fraction:
        if not x.is_finite():
            return Fraction(0)
        return self._arb_to_fraction(x.abs_lower())

    def sign(self, x) -> int:
        """+1 / -1 when the enclosure excludes 0, else 0."""
        if x > 0:
            return 1
        if x < 0:
            return -1
        return 0


class _MpmathBackend:
    """``mpmath.iv`` intervals (outward rounding); precision set and restored around the work."""

    name = "mpmath"

    def __init__(self, prec: int):
        import mpmath

        self.iv = mpmath.iv
        self.prec = prec

    class _Scope:
        def __init__(self, iv, prec):
            self.iv, self.prec = iv, prec

        def __enter__(self):
            self.old = self.iv.prec
            self.iv.prec = self.prec

        def __exit__(self, *exc):
            self.iv.prec = self.old
            return False

    def scope(self):
        return self._Scope(self.iv, self.prec)

    def _q(self, q: Fraction):
        return self.iv.mpf(q.numerator) / q.denominator

    def poly(self, coeffs):
        return [self._q(c) for c in coeffs]

    def point(self, q: Fraction):
        return self._q(q)

    def interval(self, lo: Fraction, hi: Fraction):
        a, b = self._q(lo), self._q(hi)
        return self.iv.mpf([a.a, b.b])

    @staticmethod
    def evaluate(p, x):
        acc = p[-1]
        for c in p[-2::-1]:
            acc = acc * x + c
        return acc

    def exp(self, x):
        return self.iv.exp(x)

    @staticmethod
    def abs(x):
        return abs(x)

    def shifted_abs_sup(self, p, m, r):
        """Interval containing ``sum_i |q_i| r^i`` where ``p(m + t) = sum_i q_i t^i``
        (Taylor shift by repeated synthetic division, O(g^2) interval operations)."""
        c = list(p)
        n = len(c)
        for k in range(n - 1):
            for j in range(n - 2, k - 1, -1):
                c[j] = c[j] + m * c[j + 1]
        acc = self.iv.mpf(0)
        for q in reversed(c):
            acc = acc * r + abs(q)
        return acc

    @staticmethod
    def _mpf_tuple_to_fraction(t) -> Fraction:
        sign, man, exp, bc = t
        if not man and exp:  # inf / nan encodings of mpmath
            raise _NeedPrecision
        v = Fraction(int(man) << int(exp)) if exp >= 0 else Fraction(int(man), 1 << -int(exp))
        return -v if sign else v

    def _ends(self, x):
        lo, hi = x._mpi_
        return self._mpf_tuple_to_fraction(lo), self._mpf_tuple_to_fraction(hi)

    def abs_upper(self, x) -> Fraction:
        lo, hi = self._ends(x)
        return max(abs(lo), abs(hi))

    def abs_lower(self, x) -> Fraction:
        try:
            lo, hi = self._ends(x)
        except _NeedPrecision:
            return Fraction(0)
        if lo <= 0 <= hi:
            return Fraction(0)
        return min(abs(lo), abs(hi))

    def sign(self, x) -> int:
        lo, hi = self._ends(x)
        return 1 if lo > 0 else (-1 if hi < 0 else 0)


class _NeedPrecision(Exception):
    """Internal: an enclosure was too wide (or overflowed) at the current precision."""


def _backend(name: str, prec: int):
    if name not in BACKENDS:
        raise InputError("backend", f"one of {', '.join(BACKENDS)}", repr(name))
    if name in ("auto", "flint"):
        try:
            return _FlintBackend(prec)
        except ImportError:
            if name == "flint":
                raise InputError("backend", "an installed backend", "'flint' (python-flint is not installed)",
                                 fix="pip install 'verified-lora[rigorous]' or use backend='mpmath'") from None
    return _MpmathBackend(prec)


def _initial_precision(poly: Polynomial, R: Fraction) -> int:
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
        return _fraction_to_float_down(self.lower)

    def to_json(self) -> dict:
        return {"poly": self.poly.to_json(), "R": str(self.R), "upper": str(self.upper),
                "lower": str(self.lower), "argmax": str(self.argmax), "upper_float_up": self.value,
                "pieces": self.pieces, "backend": self.backend, "prec": self.prec}


def _initial_partition(R: Fraction, n: int) -> list[Fraction]:
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
        bounds = _initial_partition(R, max(8, 2 * poly.degree + 4))
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
                    f"(upper {_float_sat(ub):.3e}, lower {_float_sat(lower):.3e})")
            if hi - lo < min_width:
                raise _NeedPrecision
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
    ``upper / lower - 1``.
    """
    if not isinstance(poly, Polynomial):
        raise InputError("poly", "a verified_lora.approx.Polynomial", type(poly).__name__,
                         fix="build one with make_polynomial(family, degree, R)")
    r = poly.R if R is None else as_radius(R)
    if not (isinstance(rel_tol, (int, float)) and 0 < rel_tol < 1):
        raise InputError("rel_tol", "a number in (0, 1)", repr(rel_tol))
    prec = _initial_precision(poly, r)
    for _attempt in range(6):
        be = _backend(backend, prec)
        try:
            upper, lower, argmax, pieces = _branch_and_bound(poly, r, be, rel_tol, max_pieces)
        except _NeedPrecision:
            prec *= 2
            continue
        return Certificate(poly, r, upper, lower, argmax, pieces, be.name, prec)
    raise CertificationError(f"could not certify {poly!r} on [-{r}, {r}] up to {prec} bits of precision")


def certified_relative_error(poly: Polynomial, R=None, *, backend: str = "auto",
                             rel_tol: float = DEFAULT_REL_TOL) -> float:
    """Certified upper bound (float64, rounded up) on ``max_{|x| <= R} |P(x) e^{-x} - 1|``.

    Works for any :class:`Polynomial`, including ``poly.derivative()`` (the factored gradient's
    ``max |P'(x) e^{-x} - 1|``).
    """
    return certify_relative_error(poly, R, backend=backend, rel_tol=rel_tol).value


def certified_derivative_error(poly: Polynomial, R=None, *, backend: str = "auto",
                               rel_tol: float = DEFAULT_REL_TOL) -> float:
    """Certified ``max_{|x| <= R} |P'(x) e^{-x} - 1|`` (DESIGN.md 4.4, factored path)."""
    return certified_relative_error(poly.derivative(), R if R is not None else poly.R,
                                    backend=backend, rel_tol=rel_tol)


# ----------------------------------------------------------------------------- lower bounds
def relative_error_lower_bound(poly: Polynomial, R=None, points: Sequence | None = None, *,
                               backend: str = "auto") -> Fraction:
    """Rigorous lower bound ``max_i |h(x_i)|_low`` on ``eps(P, R)`` from point enclosures.

    Default points: ``+-R``, ``0`` and ``4g + 8`` Chebyshev points. Cheap; used to prove that a
    degree *fails* a target without a full branch-and-bound.
    """
    r = poly.R if R is None else as_radius(R)
    if points is None:
        n = 4 * poly.degree + 8
        points = [-r, r, Fraction(0)] + _initial_partition(r, n)[1:-1]
    pts = [Fraction(p) for p in points]
    if any(abs(p) > r for p in pts):
        raise InputError("points", f"points inside [-{r}, {r}]", "a point outside")
    prec = _initial_precision(poly, r)
    be = _backend(backend, prec)
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
    be = _backend(backend, 192 + 2 * g)
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
    prec = _initial_precision(poly, r)
    be = _backend(backend, prec)
    with be.scope():
        p_b = be.poly(poly.coeffs)
        one = be.point(Fraction(1))
        signs, mags = [], []
        for x in pts:
            xb = be.point(x)
            h = be.evaluate(p_b, xb) * be.exp(-xb) - one
            signs.append(be.sign(h))
            mags.append(be.abs_lower(h))
    if 0 in signs or any(a == b for a, b in zip(signs[:-1], signs[1:])):
        return Fraction(0)
    return min(mags)
