"""Polynomials ``P`` approximating ``e^x`` on ``[-R, R]``, with exact rational coefficients.

docs/design.md section 4.2; docs/math.md section 3 step 1 (the paper's polynomial P of Lemma 3.3,
taken from Alman-Song 2023 / Aggarwal-Alman 2022, is an existence statement; these are concrete
substitutes, docs/math.md section 6 item 2).

Families (``FAMILIES``), all in the ascending power basis ``P(x) = sum_t a_t x^t``:

``taylor``
    ``a_t = 1/t!`` for ``t <= g``. Any degree ``g >= 0``.
``taylor_even``
    The same polynomial restricted to even ``g``; it is then positive on the whole real line
    (by construction, not by certificate): at a critical point ``x*`` of ``T_g`` one has
    ``T_g'(x*) = T_{g-1}(x*) = 0``, hence ``T_g(x*) = T_{g-1}(x*) + x*^g/g! = x*^g/g! > 0``
    (``x* != 0`` because ``T_{g-1}(0) = 1``), and the global minimum of an even-degree
    polynomial with positive leading coefficient is attained at a critical point.
    Positivity keeps ``P(S)`` a valid un-normalised attention matrix for any score.
``chebyshev``
    Interpolation of ``e^x`` at the ``g + 1`` Chebyshev nodes of the first kind
    ``x_j = R cos((2j + 1) pi / (2g + 2))``. The Chebyshev coefficients are computed in mpmath at
    a working precision well beyond the approximation error, rounded to binary rationals, and
    converted to the power basis *exactly* (integer Chebyshev polynomial coefficients).
``minimax``
    The relative-error minimax polynomial ``argmin_P max |P(x) e^{-x} - 1|``, computed by the
    Remez exchange algorithm in mpmath (:mod:`.remez`), rationalised the same way.
``minimax-antiderivative``
    ``F(x) = C + int_0^x P(t) dt`` with ``P`` the degree ``g - 1`` ``minimax`` polynomial (exact
    rational coefficients ``a_t / (t + 1)``), so ``F' = P`` exactly: the factored gradient's
    derivative error is then ``eps(P)`` of the degree ``g - 1`` minimax (about 1/5 of the degree-``g``
    minimax's ``eps(P_g')`` at ``R = 1``), while ``F``'s own error stays of the same order. The
    constant ``C`` minimises the sampled relative error of ``F`` (a convex 1-D problem solved on a
    Chebyshev grid in mpmath), then is rounded to a binary rational; only ``F``'s certificate counts.
    Degree 0 is the degree-0 ``minimax`` constant.

The polynomial actually used is always the rational one stored here; every certificate
(:mod:`.certify`) is about these exact coefficients, so rounding inside the construction can only
move the *value* of the certified error, never invalidate it.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from typing import Any

import numpy as np

from ..errors import InputError

__all__ = [
    "FAMILIES",
    "MAX_DEGREE",
    "Polynomial",
    "as_radius",
    "as_eps",
    "as_family",
    "as_degree",
    "make_polynomial",
    "taylor",
    "taylor_even",
    "chebyshev",
    "minimax",
    "minimax_antiderivative",
    "working_precision",
]

FAMILIES = ("taylor", "taylor_even", "chebyshev", "minimax", "minimax-antiderivative")

# Degrees above this are refused: the fast path's rank C(d+g, g) is hopeless long before, and the
# Remez linear systems grow as g^3 in multiple precision.
MAX_DEGREE = 160


# ----------------------------------------------------------------------------- validation
def _as_fraction(value: Any, field: str) -> Fraction:
    if isinstance(value, bool) or value is None:
        raise InputError(field, "a finite real number", repr(value))
    if isinstance(value, Fraction):
        return value
    if isinstance(value, numbers.Integral):
        return Fraction(int(value))
    if isinstance(value, np.generic) and not np.issubdtype(type(value), np.number):
        raise InputError(field, "a finite real number", repr(value))
    if isinstance(value, (numbers.Rational,)):
        return Fraction(value.numerator, value.denominator)
    if isinstance(value, (numbers.Real, np.floating)):
        f = float(value)
        if not math.isfinite(f):
            raise InputError(field, "a finite real number", repr(value), fix="pass a finite value")
        return Fraction(f)
    if isinstance(value, str):
        try:
            return Fraction(value)
        except (ValueError, ZeroDivisionError):
            pass
    try:  # sympy Rational / Integer, mpmath mpf, decimal.Decimal ...
        import decimal

        if isinstance(value, decimal.Decimal):
            if not value.is_finite():
                raise InputError(field, "a finite real number", repr(value), fix="pass a finite value")
            return Fraction(value)
        if hasattr(value, "p") and hasattr(value, "q"):  # sympy Rational
            return Fraction(int(value.p), int(value.q))
        if hasattr(value, "_mpf_"):
            import mpmath

            if not mpmath.isfinite(value):
                raise InputError(field, "a finite real number", repr(value), fix="pass a finite value")
            man, exp = mpmath.mpf(value).man_exp
            return Fraction(int(man)) * (Fraction(2) ** int(exp))
    except InputError:
        raise
    except Exception:  # pragma: no cover - defensive
        pass
    raise InputError(field, "a finite real number (int, float, Fraction, numeric string)",
                     f"{type(value).__name__} {value!r}")


def as_radius(R: Any, field: str = "R") -> Fraction:
    """Validate the half-width ``R > 0`` of the interval ``[-R, R]``; returns it as an exact Fraction."""
    r = _as_fraction(R, field)
    if r <= 0:
        raise InputError(field, "a half-width R > 0 of the interval [-R, R]", repr(R),
                         fix="pass the certified score bound max|S_ij| (strictly positive)")
    return r


def as_eps(eps: Any, field: str = "eps") -> Fraction:
    """Validate a target relative error ``0 < eps < 1``; returns it as an exact Fraction."""
    e = _as_fraction(eps, field)
    if not (0 < e < 1):
        raise InputError(field, "a relative error strictly between 0 and 1", repr(eps),
                         fix="e.g. eps=1e-6")
    return e


def as_family(family: Any, field: str = "family") -> str:
    """Validate a family name (one of ``FAMILIES``)."""
    if not isinstance(family, str) or family not in FAMILIES:
        raise InputError(field, f"one of {', '.join(FAMILIES)}", repr(family))
    return family


def as_degree(degree: Any, family: str = "taylor", field: str = "degree") -> int:
    """Validate a degree ``0 <= g <= MAX_DEGREE`` (even for ``taylor_even``)."""
    if isinstance(degree, bool) or not isinstance(degree, numbers.Integral):
        raise InputError(field, "a non-negative integer", repr(degree))
    g = int(degree)
    if g < 0:
        raise InputError(field, "a non-negative integer", repr(degree))
    if g > MAX_DEGREE:
        raise InputError(field, f"a degree <= {MAX_DEGREE}", repr(degree),
                         fix="shrink R or loosen eps; such a degree never pays off")
    if family == "taylor_even" and g % 2:
        raise InputError(field, "an even degree for family 'taylor_even'", repr(degree),
                         fix=f"use degree {g + 1} or family 'taylor'")
    return g


# ----------------------------------------------------------------------------- the type
@dataclass(frozen=True)
class Polynomial:
    """``P(x) = sum_t coeffs[t] x^t`` (exact rationals, ascending powers) built for ``[-R, R]``.

    ``family`` and ``degree`` say how it was made; ``derivative_order`` counts applications of
    :meth:`derivative` (the factored gradient needs ``P'`` against ``exp``, docs/design.md section 4.4).
    """

    family: str
    degree: int
    R: Fraction
    coeffs: tuple[Fraction, ...]
    derivative_order: int = 0

    def __post_init__(self):
        if len(self.coeffs) != self.degree + 1:
            raise InputError("coeffs", f"{self.degree + 1} coefficients for degree {self.degree}",
                             str(len(self.coeffs)))
        if not all(isinstance(c, Fraction) for c in self.coeffs):
            raise InputError("coeffs", "fractions.Fraction coefficients (exact rationals)",
                             ", ".join(sorted({type(c).__name__ for c in self.coeffs})))

    # --- derived polynomials
    def derivative(self) -> "Polynomial":
        """``P'`` (exact). The derivative of a constant is the zero polynomial of degree 0."""
        if self.degree == 0:
            new: tuple[Fraction, ...] = (Fraction(0),)
        else:
            new = tuple(t * c for t, c in enumerate(self.coeffs) if t > 0)
        return Polynomial(self.family, len(new) - 1, self.R, new, self.derivative_order + 1)

    # --- evaluation
    def as_float(self) -> np.ndarray:
        """Coefficients as float64 (ascending powers), each correctly rounded."""
        return np.array([float(c) for c in self.coeffs], dtype=np.float64)

    def __call__(self, x):
        """Vectorised float64 Horner evaluation (``x`` array-like or scalar)."""
        a = self.as_float()
        xx = np.asarray(x, dtype=np.float64)
        acc = np.full_like(xx, a[-1])
        for c in a[-2::-1]:
            acc = acc * xx + c
        return acc if acc.ndim else float(acc)

    def exact(self, x) -> Fraction:
        """Exact rational value ``P(x)`` (Horner in :class:`fractions.Fraction`)."""
        xx = _as_fraction(x, "x")
        acc = Fraction(0)
        for c in reversed(self.coeffs):
            acc = acc * xx + c
        return acc

    def abs_sum(self, R=None) -> Fraction:
        """``sum_t |a_t| R^t``: bounds ``|P(x)|`` on ``[-R, R]`` and scales float Horner rounding
        (``|fl(P(x)) - P(x)| <= gamma_{2g} * sum_t |a_t| |x|^t``, Higham eq. 5.3)."""
        r = self.R if R is None else as_radius(R)
        return sum((abs(c) * r ** t for t, c in enumerate(self.coeffs)), Fraction(0))

    def as_sympy(self, x=None):
        """The polynomial as a SymPy expression with ``Rational`` coefficients."""
        import sympy as sp

        x = sp.Symbol("x") if x is None else x
        return sp.Add(*[sp.Rational(c.numerator, c.denominator) * x ** t for t, c in enumerate(self.coeffs)])

    def to_json(self) -> dict:
        """JSON-ready description with exact coefficient strings ``"p/q"``."""
        return {"family": self.family, "degree": self.degree, "R": str(self.R),
                "derivative_order": self.derivative_order, "coeffs": [str(c) for c in self.coeffs]}

    def __repr__(self) -> str:  # the coefficient tuple is long; keep reprs readable
        d = "'" * self.derivative_order
        return f"Polynomial({self.family}{d}, degree={self.degree}, R={self.R})"


# ----------------------------------------------------------------------------- helpers
def working_precision(R: Fraction, g: int) -> int:
    """Binary precision for constructing a degree-``g`` approximant on ``[-R, R]``.

    ``64`` guard bits, plus the bits of the expected error ``~ 2 (R/2)^{g+1}/(g+1)!`` (so the
    error is resolved), plus ``2R log2(e)`` (the dynamic range of ``e^x`` on the interval), plus
    ``2g`` (growth of Chebyshev-to-power conversion and of the Remez system).
    """
    r = float(R)
    log2_err = (1.0 + (g + 1) * math.log2(max(r / 2, 1e-300)) - math.lgamma(g + 2) / math.log(2))
    return int(64 + max(0.0, -log2_err) + 2 * r * math.log2(math.e) + 2 * g)


@lru_cache(maxsize=4)
def _chebyshev_power_table(n: int) -> tuple[tuple[int, ...], ...]:
    """Integer power-basis coefficients of ``T_0 .. T_n`` (``T_{k+1} = 2 s T_k - T_{k-1}``)."""
    rows: list[list[int]] = [[1], [0, 1]]
    for k in range(1, n):
        a, b = rows[k], rows[k - 1]
        nxt = [0] + [2 * v for v in a]
        for i, v in enumerate(b):
            nxt[i] -= v
        rows.append(nxt)
    return tuple(tuple(r) for r in rows[: n + 1])


def chebyshev_to_power(cheb: list[tuple[int, int]], R: Fraction) -> tuple[Fraction, ...]:
    """Exact power coefficients of ``sum_k c_k T_k(x / R)`` for binary rationals ``c_k = m_k 2^{e_k}``.

    ``cheb`` holds the pairs ``(m_k, e_k)``. All ``c_k`` are brought to one binary exponent, so the
    sums are integer arithmetic; the only divisions are by ``2^E R^j``, exact in Fraction.
    """
    g = len(cheb) - 1
    e_min = min(int(e) for _, e in cheb)
    ints = [int(m) << (int(e) - e_min) for m, e in cheb]
    table = _chebyshev_power_table(max(g, 1))
    out = []
    scale = Fraction(2) ** e_min
    for j in range(g + 1):
        num = sum(ints[k] * table[k][j] for k in range(j, g + 1) if j < len(table[k]))
        out.append(scale * num / R ** j)
    return tuple(out)


# ----------------------------------------------------------------------------- families
def taylor(degree: int, R: Any = 1) -> Polynomial:
    """Degree-``g`` Taylor polynomial of ``e^x`` at 0: ``a_t = 1/t!``."""
    r = as_radius(R)
    g = as_degree(degree, "taylor")
    return Polynomial("taylor", g, r, tuple(Fraction(1, math.factorial(t)) for t in range(g + 1)))


def taylor_even(degree: int, R: Any = 1) -> Polynomial:
    """Even-degree Taylor polynomial: positive on all of R by construction (module docstring)."""
    r = as_radius(R)
    g = as_degree(degree, "taylor_even")
    return Polynomial("taylor_even", g, r, tuple(Fraction(1, math.factorial(t)) for t in range(g + 1)))


def chebyshev(degree: int, R: Any = 1) -> Polynomial:
    """Interpolant of ``e^x`` at the ``g+1`` Chebyshev nodes of the first kind on ``[-R, R]``.

    ``c_k = (2 - [k = 0]) / (g + 1) * sum_j e^{R cos theta_j} cos(k theta_j)``,
    ``theta_j = (2j + 1) pi / (2g + 2)`` (discrete orthogonality of ``T_k`` on these nodes).
    """
    r = as_radius(R)
    g = as_degree(degree, "chebyshev")
    return _chebyshev_cached(g, r)


@lru_cache(maxsize=512)
def _chebyshev_cached(g: int, r: Fraction) -> Polynomial:
    import mpmath

    mp = mpmath.mp
    with mp.workprec(working_precision(r, g)):
        rm = mp.mpf(r.numerator) / r.denominator
        n = g + 1
        nodes = [mp.cos(mp.pi * (2 * j + 1) / (2 * n)) for j in range(n)]
        vals = [mp.exp(rm * c) for c in nodes]
        # cos(k theta_j) = T_k(cos theta_j), by the three-term recurrence
        t_prev, t_cur = [mp.one] * n, list(nodes)
        cheb = [mp.fsum(vals) / n]
        for k in range(1, n):
            cheb.append(2 * mp.fsum(v * t for v, t in zip(vals, t_cur)) / n)
            t_prev, t_cur = t_cur, [2 * c * t - tp for c, t, tp in zip(nodes, t_cur, t_prev)]
        coeffs = chebyshev_to_power([c.man_exp for c in cheb], r)
    return Polynomial("chebyshev", g, r, coeffs)


def minimax(degree: int, R: Any = 1) -> Polynomial:
    """Relative-error minimax polynomial of degree ``g`` for ``e^x`` on ``[-R, R]`` (Remez)."""
    r = as_radius(R)
    g = as_degree(degree, "minimax")
    return _minimax_cached(g, r)[0]


def minimax_reference(degree: int, R: Any = 1) -> tuple[Fraction, ...]:
    """The final Remez reference (``g + 2`` alternation points, exact rationals) of :func:`minimax`.

    Used for the de la Vallee Poussin lower bound (:func:`.lower_bounds.alternation_lower_bound`).
    """
    r = as_radius(R)
    g = as_degree(degree, "minimax")
    return _minimax_cached(g, r)[1]


@lru_cache(maxsize=512)
def _minimax_cached(g: int, r: Fraction):
    from .remez import remez_relative_exp

    cheb, ref, frac_bits = remez_relative_exp(r, g, working_precision(r, g))
    coeffs = chebyshev_to_power([(c, -frac_bits) for c in cheb], r)
    return Polynomial("minimax", g, r, coeffs), ref


def minimax_antiderivative(degree: int, R: Any = 1) -> Polynomial:
    """``F = C + int_0^x P`` with ``P`` the degree ``g - 1`` minimax polynomial (module docstring)."""
    r = as_radius(R)
    g = as_degree(degree, "minimax-antiderivative")
    return _antiderivative_cached(g, r)


@lru_cache(maxsize=512)
def _antiderivative_cached(g: int, r: Fraction) -> Polynomial:
    if g == 0:
        return Polynomial("minimax-antiderivative", 0, r, minimax(0, r).coeffs)
    tail = tuple(c / (t + 1) for t, c in enumerate(minimax(g - 1, r).coeffs))
    return Polynomial("minimax-antiderivative", g, r, (Fraction(1) + _best_offset(tail, r, g),) + tail)


def _best_offset(tail: tuple[Fraction, ...], r: Fraction, g: int, n: int = 400) -> Fraction:
    """``c`` minimising ``max_x |(c + 1 + sum_t tail_t x^{t+1}) e^{-x} - 1|`` on a Chebyshev grid of
    ``[-r, r]`` (ternary search on a convex function), as a binary rational. A heuristic choice: the
    polynomial's error is certified afterwards, whatever ``c`` is."""
    import mpmath

    with mpmath.mp.workprec(working_precision(r, g)):
        rm = mpmath.mpf(r.numerator) / r.denominator
        xs = [rm * mpmath.cos(mpmath.pi * j / n) for j in range(n + 1)]
        coef = [mpmath.mpf(c.numerator) / c.denominator for c in tail]
        h0, ex = [], []
        for x in xs:
            e = mpmath.exp(-x)
            integral = mpmath.fsum(c * x ** (t + 1) for t, c in enumerate(coef))
            h0.append(float(e * (1 + integral) - 1))
            ex.append(float(e))
    h = np.array(h0)
    w = np.array(ex)
    if not (np.all(np.isfinite(h)) and np.all(np.isfinite(w)) and w.min() > 0):
        return Fraction(0)
    bound = 2.0 * float(np.max(np.abs(h))) / float(w.min())

    def worst(c: float) -> float:
        return float(np.max(np.abs(c * w + h)))

    lo, hi = -bound, bound
    for _ in range(200):
        m1, m2 = lo + (hi - lo) / 3, hi - (hi - lo) / 3
        if worst(m1) < worst(m2):
            hi = m2
        else:
            lo = m1
    c = (lo + hi) / 2
    return Fraction(c) if worst(c) < worst(0.0) else Fraction(0)


_BUILDERS = {"taylor": taylor, "taylor_even": taylor_even, "chebyshev": chebyshev, "minimax": minimax,
             "minimax-antiderivative": minimax_antiderivative}


def make_polynomial(family: str, degree: int, R: Any) -> Polynomial:
    """The degree-``degree`` member of ``family`` for ``[-R, R]`` (cached for the costly families)."""
    return _BUILDERS[as_family(family)](degree, R)
