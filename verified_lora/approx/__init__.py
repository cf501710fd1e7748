"""Polynomial approximation of ``exp`` with certified relative error (docs/design.md section 4.2).

Submodules (each imported on first use, so ``import verified_lora.approx`` stays light):

* :mod:`.polynomials` -- the families ``taylor``, ``taylor_even``, ``chebyshev``, ``minimax``
  with exact rational coefficients, and the :class:`~.polynomials.Polynomial` type;
* :mod:`.certify` -- interval branch-and-bound certificates of
  ``eps(P, R) = max_{|x| <= R} |P(x) e^{-x} - 1|`` (python-flint arb or mpmath.iv);
* :mod:`.lower_bounds` -- rigorous lower bounds on that error (one polynomial, or every
  polynomial of a degree);
* :mod:`.remez` -- the Remez exchange behind the ``minimax`` family;
* :mod:`.degree` -- ``min_degree``, ``best_polynomial``, ``certified_on_grid`` (cached);
* :mod:`.remainder` -- the Taylor Lagrange-remainder bound, derived in SymPy;
* :mod:`.aggarwal_alman` -- the Aggarwal-Alman degree form and its fitted constants.

The feature maps phi_U, phi_V (low-rank factorisation of P(<u, v>)) are in :mod:`verified_lora.features`.
"""

from __future__ import annotations

from .._lazy import lazy_exports

_EXPORTS = {
    "Polynomial": "polynomials",
    "FAMILIES": "polynomials",
    "make_polynomial": "polynomials",
    "Certificate": "certify",
    "certify_relative_error": "certify",
    "relative_error_lower_bound": "lower_bounds",
    "any_polynomial_lower_bound": "lower_bounds",
    "min_degree": "degree",
    "best_polynomial": "degree",
    "certified_on_grid": "degree",
    "grid_radius": "degree",
    "taylor_remainder_bound": "remainder",
    "fit_aggarwal_alman": "aggarwal_alman",
}

__all__ = sorted(_EXPORTS)


__getattr__ = lazy_exports(__name__, _EXPORTS, submodules=("polynomials", "certify", "lower_bounds", "remez",
                                                            "degree", "remainder", "aggarwal_alman"))
