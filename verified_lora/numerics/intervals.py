"""One interval backend: python-flint ``arb`` balls or ``mpmath.iv`` intervals (outward rounding).

Vocabulary, used everywhere in :mod:`verified_lora`: ``"arb"`` (python-flint, fast, needs the
``rigorous`` extra), ``"iv"`` (mpmath.iv, pure Python, always available) and ``"auto"`` (arb when
python-flint imports, else iv). The older names ``"flint"`` and ``"mpmath"`` are accepted as
aliases of ``"arb"`` and ``"iv"`` (:func:`resolve_backend`).

* :class:`scoped_precision` -- set the working precision of a backend for a block or a function
  (context manager and decorator), restoring the previous one afterwards;
* :func:`backend` -- an :class:`ArbBackend` / :class:`IvBackend` at a given precision: the few
  operations a branch-and-bound needs (points, intervals, polynomials, exp, exact endpoints);
* :func:`sign` -- three-valued sign of an enclosure (:class:`Sign`);
* :func:`mpf_to_fraction` -- the exact value of an ``mpmath`` binary float.
"""

from __future__ import annotations

import enum
from contextlib import ContextDecorator
from fractions import Fraction
from typing import Any

from ..errors import InputError

__all__ = ["BACKENDS", "ALIASES", "available_backends", "resolve_backend", "scoped_precision", "Sign", "sign",
           "backend", "ArbBackend", "IvBackend", "EnclosureTooWide", "mpf_to_fraction"]

BACKENDS = ("auto", "iv", "arb")
"""``"iv"``: mpmath.iv; ``"arb"``: python-flint arb (``rigorous`` extra); ``"auto"``: arb when
python-flint is installed, else iv."""

ALIASES = {"flint": "arb", "mpmath": "iv"}
"""Older spellings of the backend names, still accepted."""


def available_backends() -> tuple[str, ...]:
    """The interval backends usable here (``"iv"`` always; ``"arb"`` when python-flint imports)."""
    try:
        import flint  # noqa: F401
    except ImportError:
        return ("iv",)
    return ("iv", "arb")


def resolve_backend(name: str, field: str = "backend") -> str:
    """``"arb"`` or ``"iv"`` for a backend option (``"auto"`` and the aliases resolved).

    Raises :class:`InputError` naming ``field`` for an unknown name, or for ``"arb"`` without
    python-flint.
    """
    key = ALIASES.get(name, name) if isinstance(name, str) else name
    if key not in BACKENDS:
        raise InputError(field, f"one of {', '.join(BACKENDS)}", repr(name))
    if key == "auto":
        return available_backends()[-1]
    if key == "arb" and "arb" not in available_backends():
        raise InputError(field, "an installed interval backend", f"{name!r} (python-flint is not installed)",
                         fix="pip install 'verified-lora[rigorous]' or use backend='iv'")
    return key


# ----------------------------------------------------------------------------- precision
class scoped_precision(ContextDecorator):
    """Working precision of one backend, set on entry and restored on exit.

    ``scoped_precision(prec=bits)`` or ``scoped_precision(dps=digits)``, ``backend`` ``"iv"``
    (``mpmath.iv``, the default) or ``"arb"`` (python-flint's context). Usable as
    ``with scoped_precision(prec=128): ...`` and as ``@scoped_precision(dps=30)``; nested and
    re-entrant uses restore the precision each one found.
    """

    def __init__(self, prec: int | None = None, *, dps: int | None = None, backend: str = "iv"):
        if (prec is None) == (dps is None):
            raise ValueError("give exactly one of prec (bits) and dps (digits)")
        self.prec, self.dps = prec, dps
        self.backend = ALIASES.get(backend, backend)
        if self.backend not in ("iv", "arb"):
            raise InputError("backend", "'iv' or 'arb'", repr(backend))
        self._saved: list[int] = []

    def _ctx(self) -> Any:
        if self.backend == "arb":
            import flint

            return flint.ctx
        import mpmath

        return mpmath.iv

    def __enter__(self) -> Any:
        ctx = self._ctx()
        self._saved.append(ctx.prec)
        if self.prec is not None:
            ctx.prec = int(self.prec)
        else:
            ctx.dps = int(self.dps)
        return ctx

    def __exit__(self, *exc: Any) -> bool:
        self._ctx().prec = self._saved.pop()
        return False


# ----------------------------------------------------------------------------- sign
class Sign(enum.IntEnum):
    """Three-valued sign of an enclosure: it compares equal to +1, -1 and 0."""

    POSITIVE = 1
    NEGATIVE = -1
    UNDECIDED = 0


def sign(x: Any) -> Sign:
    """:attr:`Sign.POSITIVE` / :attr:`Sign.NEGATIVE` when the enclosure ``x`` (arb ball or
    ``mpmath.iv`` interval) lies strictly on one side of 0, else :attr:`Sign.UNDECIDED`."""
    if hasattr(x, "_mpi_"):
        lo, hi = x._mpi_
        lo_q, hi_q = _mpf_tuple_to_fraction(lo), _mpf_tuple_to_fraction(hi)
        if lo_q is not None and lo_q > 0:
            return Sign.POSITIVE
        if hi_q is not None and hi_q < 0:
            return Sign.NEGATIVE
        return Sign.UNDECIDED
    if x > 0:
        return Sign.POSITIVE
    if x < 0:
        return Sign.NEGATIVE
    return Sign.UNDECIDED


# ----------------------------------------------------------------------------- exact values
class EnclosureTooWide(Exception):
    """An enclosure was too wide (or overflowed) at the current precision: raise the precision."""


def _mpf_tuple_to_fraction(t: tuple) -> Fraction | None:
    """Exact value of an mpmath ``(sign, man, exp, bc)`` tuple; ``None`` for inf / nan."""
    sgn, man, exp, _bc = t
    if not man and exp:  # inf / nan encodings of mpmath
        return None
    v = Fraction(int(man) << int(exp)) if exp >= 0 else Fraction(int(man), 1 << -int(exp))
    return -v if sgn else v


def mpf_to_fraction(x: Any) -> Fraction:
    """The exact value of an ``mpmath.mpf`` (or its ``_mpf_`` tuple); :class:`EnclosureTooWide` for inf/nan."""
    v = _mpf_tuple_to_fraction(getattr(x, "_mpf_", x))
    if v is None:
        raise EnclosureTooWide(f"non-finite value {x!r}")
    return v


def _arb_to_fraction(a: Any) -> Fraction:
    man, exp = a.man_exp()
    man, exp = int(man), int(exp)
    return Fraction(man << exp) if exp >= 0 else Fraction(man, 1 << -exp)


# ----------------------------------------------------------------------------- backends
class ArbBackend:
    """python-flint ``arb`` balls at ``prec`` bits."""

    name = "arb"

    def __init__(self, prec: int):
        import flint

        self.flint = flint
        self.prec = prec

    def scope(self) -> scoped_precision:
        return scoped_precision(self.prec, backend="arb")

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

    def abs_upper(self, x) -> Fraction:
        if not x.is_finite():
            raise EnclosureTooWide
        return _arb_to_fraction(x.abs_upper())

    def abs_lower(self, x) -> Fraction:
        if not x.is_finite():
            return Fraction(0)
        return _arb_to_fraction(x.abs_lower())

    @staticmethod
    def sign(x) -> Sign:
        return sign(x)


class IvBackend:
    """``mpmath.iv`` intervals (outward rounding) at ``prec`` bits."""

    name = "iv"

    def __init__(self, prec: int):
        import mpmath

        self.iv = mpmath.iv
        self.prec = prec

    def scope(self) -> scoped_precision:
        return scoped_precision(self.prec, backend="iv")

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
    def _ends(x) -> tuple[Fraction, Fraction]:
        lo, hi = x._mpi_
        return mpf_to_fraction(lo), mpf_to_fraction(hi)

    def abs_upper(self, x) -> Fraction:
        lo, hi = self._ends(x)
        return max(abs(lo), abs(hi))

    def abs_lower(self, x) -> Fraction:
        try:
            lo, hi = self._ends(x)
        except EnclosureTooWide:
            return Fraction(0)
        if lo <= 0 <= hi:
            return Fraction(0)
        return min(abs(lo), abs(hi))

    @staticmethod
    def sign(x) -> Sign:
        return sign(x)


def backend(name: str, prec: int) -> ArbBackend | IvBackend:
    """The backend ``name`` (``"auto"``, ``"arb"``, ``"iv"`` or an alias) at ``prec`` bits."""
    key = resolve_backend(name)
    return ArbBackend(prec) if key == "arb" else IvBackend(prec)
