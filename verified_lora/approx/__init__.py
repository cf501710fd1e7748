"""Polynomial approximation of ``exp`` with certified relative error (DESIGN.md section 4.2).

Submodules (each imported on first use, so ``import verified_lora.approx`` stays light):

* :mod:`.polynomials` -- the families ``taylor``, ``taylor_even``, ``chebyshev``, ``minimax``
  with exact rational coefficients, and the :class:`~.polynomials.Polynomial` type;
* :mod:`.certify` -- interval branch-and-bound certificates of
  ``eps(P, R) = max_{|x| <= R} |P(x) e^{-x} - 1|`` (python-flint arb or mpmath.iv);
* :mod:`.degree` -- ``min_degree``, ``best_polynomial``, ``certified_on_grid`` (cached);
* :mod:`.remainder` -- the Taylor Lagrange-remainder bound, derived in SymPy;
* :mod:`.aggarwal_alman` -- the Aggarwal-Alman degree form and its fitted constants;
* :mod:`.features` -- the feature maps phi_U, phi_V (low-rank factorisation of P(<u, v>)).
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "Polynomial": "polynomials",
    "FAMILIES": "polynomials",
    "make_polynomial": "polynomials",
    "Certificate": "certify",
    "certify_relative_error": "certify",
    "certified_relative_error": "certify",
    "certified_derivative_error": "certify",
    "min_degree": "degree",
    "best_polynomial": "degree",
    "certified_on_grid": "degree",
    "grid_radius": "degree",
    "taylor_remainder_bound": "remainder",
    "fit_aggarwal_alman": "aggarwal_alman",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    if name in {"polynomials", "certify", "degree", "remainder", "aggarwal_alman", "features"}:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'verified_lora.approx' has no attribute {name!r}")
