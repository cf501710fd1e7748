r"""Score ranges the interval certifier should never see: tiny ``R`` (``beta = 0``) and absurd ``R``.

**Tiny R (closed-form certificate).** For the Taylor polynomial ``T_g(x) = sum_{t <= g} x^t / t!``
and ``|x| <= R <= 1/2``, Taylor's theorem with the Lagrange remainder gives
``e^x - T_g(x) = e^xi x^{g+1} / (g+1)!`` for some ``xi`` between 0 and ``x``, so

    |T_g(x) e^{-x} - 1| = e^{xi - x} |x|^{g+1} / (g+1)! <= e^{2R} R^{g+1} / (g+1)! <= 3 R^{g+1} / (g+1)!

(``e^{2R} <= e < 3`` for ``R <= 1/2``). ``T_g' = T_{g-1}``, so the derivative's relative error is
the same bound at ``g - 1`` (``T_0' = 0`` has relative error 1). Both are evaluated in exact
rational arithmetic and rounded up. :func:`tiny_radius_cert` uses this below
:data:`TINY_R` (``beta = 0`` gives a score bound of a few subnormals, where interval
branch-and-bound would split forever), so such inputs are decided at once.

**Absurd R** is handled by :func:`verified_lora.bounds._approx_api.any_polynomial_lower`, which
evaluates the any-polynomial lower bound at ``min(R, 1024)`` (the best error is non-decreasing in
``R``).
"""

from __future__ import annotations

import math
from fractions import Fraction

from ..numerics.rounding import fraction_to_float_up

__all__ = ["TINY_R", "taylor_tiny_errors", "tiny_radius_cert"]

TINY_R = 2.0**-10
"""Below this score bound the closed-form Taylor certificate is used (no branch-and-bound)."""


def taylor_tiny_errors(g: int, R: float) -> tuple[float, float]:
    """``(eps_A, eps_D)`` upper bounds of ``T_g`` and ``T_g'`` on ``[-R, R]``, ``0 <= R <= 1/2`` (module docstring)."""
    r = Fraction(R)
    if not (0 <= r <= Fraction(1, 2)):
        raise ValueError("the closed-form Taylor bound needs 0 <= R <= 1/2")
    if g < 0:
        raise ValueError("degree must be >= 0")

    def eps(h: int) -> Fraction:
        return Fraction(1) if h < 0 else 3 * r ** (h + 1) / math.factorial(h + 1)

    return fraction_to_float_up(min(Fraction(1), eps(g))), fraction_to_float_up(min(Fraction(1), eps(g - 1)))


def tiny_radius_cert(g: int, R: float):
    """A :class:`~verified_lora.bounds._approx_api.Cert` for Taylor degree ``g`` on ``[-R, R]``, ``R <= TINY_R``."""
    from ..approx.polynomials import make_polynomial
    from ._approx_api import Cert

    if not (0 <= R <= TINY_R):
        raise ValueError(f"tiny_radius_cert needs 0 <= R <= {TINY_R}")
    eps_A, eps_D = taylor_tiny_errors(g, R)
    return Cert("taylor", g, Fraction(R), make_polynomial("taylor", g, Fraction(1, 2)), eps_A, eps_D)
