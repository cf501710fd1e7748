"""The Taylor Lagrange-remainder bound on the relative error, derived in SymPy.

For the degree-``g`` Taylor polynomial ``T_g`` of ``e^x`` at 0 and ``|x| <= R``:

1. Lagrange: ``e^x - T_g(x) = f^(g+1)(xi) x^(g+1) / (g+1)!`` for some ``xi`` between 0 and
   ``x``; here ``f^(g+1) = exp`` (SymPy checks ``d/dx e^x = e^x``, which gives every order by
   induction).
2. Relative error: ``|T_g(x) e^{-x} - 1| = e^{xi - x} |x|^(g+1) / (g+1)!``. Over ``xi`` between
   0 and ``x`` the factor ``e^{xi - x}`` is largest at ``xi = max(0, x)``, giving
   ``e^{max(0, -x)}``: ``e^{|x|}`` for ``x < 0`` and ``1`` for ``x >= 0``.
3. ``u -> e^u u^(g+1)`` is increasing for ``u > 0`` (SymPy: its derivative is
   ``(u + g + 1) u^g e^u > 0``), so the supremum over ``[-R, R]`` is at ``x = -R``:

       eps_Taylor(g, R) <= e^R R^(g+1) / (g+1)!.

The same bound at ``g - 1`` covers ``P' = T_{g-1}`` (the factored path's derivative error).

How loose it is: for ``R < g + 2`` the tail at ``x = -R`` is an alternating series with
decreasing terms, so the true error there is at least ``(1 - R/(g+2))`` times the bound; the
bound is therefore within a factor ``1 / (1 - R/(g+2))`` of the certified value (measured 1.02
to 1.25 on the min-degree table, ``benchmarks/results/min_degree_table.md``).
"""

from __future__ import annotations

import math
from functools import lru_cache

from ..numerics.intervals import EnclosureTooWide, mpf_to_fraction, scoped_precision
from ..numerics.rounding import fraction_to_float_up
from .polynomials import as_degree, as_radius

__all__ = ["derive_taylor_relative_bound", "taylor_remainder_bound"]


@lru_cache(maxsize=1)
def derive_taylor_relative_bound():
    """Run the SymPy derivation; returns ``(bound_expr, (R, g), steps)``.

    ``bound_expr`` is ``exp(R) R^(g+1) / (g+1)!`` in the symbols ``R`` (positive) and ``g``
    (non-negative integer); ``steps`` maps step names to the SymPy facts that were checked.
    Raises ``AssertionError`` if any step fails (it would be a SymPy regression).
    """
    import sympy as sp

    x, xi, u = sp.symbols("x xi u", real=True)
    R = sp.Symbol("R", positive=True)
    g = sp.Symbol("g", integer=True, nonnegative=True)
    steps = {}

    # Step 1: every derivative of exp is exp (d/dx exp = exp, induction on the order).
    assert sp.simplify(sp.diff(sp.exp(xi), xi) - sp.exp(xi)) == 0
    lagrange = sp.exp(xi) * x ** (g + 1) / sp.factorial(g + 1)
    steps["lagrange_remainder"] = sp.Eq(sp.Symbol("e^x - T_g(x)"), lagrange)

    # Step 2: relative error = e^{xi - x} |x|^(g+1) / (g+1)!, maximised over xi between 0 and x.
    relative = sp.simplify(lagrange * sp.exp(-x))
    assert sp.simplify(relative - sp.exp(xi - x) * x ** (g + 1) / sp.factorial(g + 1)) == 0
    factor_neg = sp.exp(xi - x).subs(xi, 0)          # x < 0: xi in (x, 0), sup at xi = 0
    factor_pos = sp.exp(xi - x).subs(xi, x)          # x >= 0: xi in (0, x), sup at xi = x
    assert sp.diff(sp.exp(xi - x), xi) == sp.exp(xi - x)  # increasing in xi: sup at right end
    assert sp.simplify(factor_pos) == 1
    steps["sup_over_xi"] = {"x<0": factor_neg, "x>=0": factor_pos}

    # Step 3: on x = -u (u in (0, R]) the bound is e^u u^(g+1)/(g+1)!, increasing in u.
    branch = sp.exp(u) * u ** (g + 1) / sp.factorial(g + 1)
    d_branch = sp.factor(sp.diff(branch, u))
    expected = sp.exp(u) * u ** g * (u + g + 1) / sp.factorial(g + 1)
    assert sp.simplify(d_branch - expected) == 0
    steps["monotone_in_|x|"] = d_branch
    # and the x >= 0 branch u^(g+1)/(g+1)! is dominated by the x < 0 branch (e^u >= 1).
    bound = branch.subs(u, R)
    steps["bound"] = bound
    return bound, (R, g), steps


def taylor_remainder_bound(R, degree: int) -> float:
    """``e^R R^(g+1) / (g+1)!`` (the SymPy-derived bound), rounded up to float64.

    Evaluated from the SymPy expression with interval arithmetic (mpmath.iv, outward rounding)
    so the returned float is a rigorous upper bound on the bound itself.
    """
    import mpmath
    import sympy as sp

    r = as_radius(R)
    g = as_degree(degree, "taylor")
    bound, (R_sym, g_sym), _ = derive_taylor_relative_bound()
    expr = bound.subs(g_sym, g)  # R stays symbolic: it is passed as an exact interval below
    fn = sp.lambdify(R_sym, expr, modules=[{"exp": mpmath.iv.exp, "mpf": mpmath.iv.mpf}, "mpmath"])
    with scoped_precision(prec=128):
        val = fn(mpmath.iv.mpf(r.numerator) / r.denominator)
        upper_end = mpmath.iv.mpf(val)._mpi_[1]
    try:
        return fraction_to_float_up(mpf_to_fraction(upper_end))
    except EnclosureTooWide:  # the interval overflowed: no finite bound
        return math.inf
