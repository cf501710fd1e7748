r"""Per-row score radii: each query row's a-posteriori error terms use the polynomial's error on its own radius.

**Lemma (row radius).** For query row ``i`` let ``R_i = |beta| ||Pm_i|| max_l ||Km_l||`` (rounded up), where
``Pm``, ``Km`` are the entrywise magnitude bounds of :mod:`.rounding_bound` (``|P^_ib|, |P_ib| <= Pm_ib``, likewise
``K``). Then ``|S_il| <= R_i`` and ``|S^_il| <= R_i`` for every key ``l`` (Cauchy-Schwarz, for the exact scores
and for the scores ``beta <P^_i, K^_l>`` of the core's own projections). So if ``R_i <= rho`` and the polynomial
``P`` of the run has certified relative errors ``eps_A(rho)`` and ``eps_D(rho)`` on ``[-rho, rho]``, every
statement of :mod:`.aposteriori` about row ``i`` holds with those errors in place of the plan's: (A0) needs
``P(S^_il) = e^{S^_il} (1 + theta)`` with ``|theta| <= eps_A(rho)`` only at the scores of row ``i``, and
``e_i' = (1 + eps_A(rho))(1 + 2 sigma) - 1`` as in :mod:`.rounding_bound` (``|S^ - S| <= sigma``); the factored
``zeta_l = P'(S^_l) / P(S^_l) - 1`` needs ``eps_D(rho)`` at the same points. Every lemma there is per row
(rows are only added up at the end, with nonnegative weights), so the per-row ``delta_i``, ``delta1_i``,
``zeta_i`` may differ from row to row.

The radii tried are the fractions :data:`FRACTIONS` of the plan's (grid-rounded) ``R``; each row takes the
least one ``>= R_i`` (``R_i`` compared with the radius rounded down), and the plan's own errors when none is;
the errors on a sub-interval are the minimum of its certificate and the plan's (both bound it); sub-radii at or
below :data:`~verified_lora.bounds.degenerate.TINY_R` are not tried (the plan's errors hold there). Certificates
are memoised per process (:func:`verified_lora.bounds._approx_api.certify_on`), a few milliseconds each.

What it buys depends on the family: a minimax ``P`` equioscillates over all of ``[-R, R]``, so its ``eps_A`` on
``[-R/2, R/2]`` is the same; its *derivative*'s error peaks at the ends and drops about tenfold (degree 10,
``R = 1``: ``eps_D`` 3.4e-9 on ``[-1, 1]``, 3.6e-10 on ``[-3/4, 3/4]``), which tightens the factored ``zeta``.
The antiderivative family (``P'`` minimax) gains nothing; Taylor gains by orders of magnitude.

Algebraic steps machine-checked: verified_lora/proofs/fast_row_radii.py, certificate fast-row-radius.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import numpy as np

from ..bounds import _approx_api as api
from ..bounds.degenerate import TINY_R
from ..numerics.rounding import fraction_to_float_down
from .rounding_bound import row_radius  # re-exported: the formula lives with the magnitudes Pm, Km it reads

__all__ = ["FRACTIONS", "row_radius", "row_eps"]

FRACTIONS: tuple[Fraction, ...] = (Fraction(1, 4), Fraction(1, 2), Fraction(3, 4), Fraction(7, 8), Fraction(15, 16))
"""Sub-radii tried, as fractions of the plan's ``R`` (ascending)."""


def row_eps(problem: Any, items: list[dict], coeffs, R: float, eps_A: float, eps_D: float | None, sigma: float,
            method: str) -> list[dict[str, Any]]:
    """Per batch item, ``{"eps_A", "eps_D", "eps_A_in"}`` as ``(L,)`` vectors (``eps_D`` ``None`` for "paper")."""
    from .rounding_bound import _inflate_eps

    need_d = method == "factored"
    gR = api.grid_R(R)
    cache: dict[Fraction, tuple[float, float | None, float]] = {}

    def at(rho: Fraction) -> tuple[float, float | None, float]:
        if rho not in cache:
            eA, eD = api.certify_on(coeffs, rho, need_d)
            eA = min(eA, eps_A)
            eD = min(eD, eps_D) if need_d else None
            cache[rho] = (eA, eD, _inflate_eps(eA, sigma))
        return cache[rho]

    full = (eps_A, eps_D if need_d else None, _inflate_eps(eps_A, sigma))
    out = []
    for it in items:
        key = ("_row_radius", float(problem.beta))
        if key not in it:  # memoised in the item: the run's and the proxy's errors use the same radii
            it[key] = row_radius(problem, it["Pm"], it["Km"])
        Ri = it[key]
        L = Ri.shape[0]
        eA, eD, eIn = np.full(L, full[0]), np.full(L, full[1] if need_d else np.nan), np.full(L, full[2])
        done = np.zeros(L, dtype=bool)
        for f in FRACTIONS:
            rho = gR * f
            if rho <= TINY_R:  # no branch-and-bound at a (near-)subnormal radius: those rows keep the plan's errors
                continue
            rows = ~done & (Ri <= fraction_to_float_down(rho))
            if np.any(rows):
                a, d, e = at(rho)
                eA[rows], eIn[rows] = a, e
                if need_d:
                    eD[rows] = d
                done |= rows
        out.append({"eps_A": eA, "eps_D": eD if need_d else None, "eps_A_in": eIn})
    return out
