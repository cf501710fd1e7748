"""Dense-sampling estimate of a polynomial's relative error against ``exp`` (tests and benchmarks).

Pure sampling at high precision, sharing no code with the interval certificates of
:mod:`verified_lora.approx`: a *lower* estimate of ``max |P(x) e^{-x} - 1|`` to compare the
certified upper bounds with.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

__all__ = ["sampled_max"]


def sampled_max(poly: Any, R, n: int = 1000, dps: int = 60):
    """max |P(x) e^{-x} - 1| over ``[-R, R]``: a uniform grid of ``n`` points plus ``n``
    Chebyshev-clustered points, then a golden-section refinement around the 6 best samples.

    ``poly`` has exact rational ``coeffs`` (lowest degree first) as
    :class:`verified_lora.approx.polynomials.Polynomial`; ``R`` is a float or Fraction. Evaluated
    with mpmath at ``dps`` digits; returns an ``mpf``. Pure sampling: a lower estimate.
    """
    import mpmath

    with mpmath.workdps(dps):
        Rq = Fraction(R)
        Rm = mpmath.mpf(Rq.numerator) / Rq.denominator
        cs = [mpmath.mpf(c.numerator) / c.denominator for c in reversed(poly.coeffs)]

        def err(x):
            return abs(mpmath.polyval(cs, x) * mpmath.exp(-x) - 1)

        xs = [Rm * (2 * mpmath.mpf(i) / (n - 1) - 1) for i in range(n)]
        xs += [-Rm * mpmath.cos(mpmath.pi * i / (n - 1)) for i in range(n)]
        xs = sorted(set(xs))
        vals = [err(x) for x in xs]
        best = max(vals)
        phi = (mpmath.sqrt(5) - 1) / 2
        for i in sorted(range(len(xs)), key=lambda j: vals[j], reverse=True)[:6]:
            a, b = xs[max(i - 1, 0)], xs[min(i + 1, len(xs) - 1)]
            for _ in range(40):
                c, d = b - phi * (b - a), a + phi * (b - a)
                if err(c) >= err(d):
                    b = d
                else:
                    a = c
            best = max(best, err((a + b) / 2))
        return best
