"""verify section: certified score bound, the default problem's plan, a small phase table."""

from __future__ import annotations

import math

from ..problem import LoraAttention
from .core import Check, Progress, Section

__all__ = ["bounds_section", "VERIFY_TOL"]

VERIFY_TOL = 1e-6
"""Absolute gradient tolerance the verify section plans for (the default problem)."""


def bounds_section(problem: LoraAttention, progress: Progress) -> Section:
    """``verified-lora verify`` section: score bound, the default problem's plan, a small phase table."""
    import numpy as np

    from .._xp import to_numpy
    from ..bounds.phase import phase_sweep
    from ..bounds.planner import plan
    from ..bounds.propagation import gradient_bounds
    from ..bounds.score import score_bound

    section = Section("bounds: score interval, plan, phase transition")
    progress("certified score bound")
    sb = score_bound(problem)
    smax = 0.0
    for x_q, x_k, _x_v, _y in problem.items():
        q = np.asarray(to_numpy(x_q), dtype=np.float64) @ np.asarray(to_numpy(problem.weight("Q")), dtype=np.float64)
        k = np.asarray(to_numpy(x_k), dtype=np.float64) @ np.asarray(to_numpy(problem.weight("K")), dtype=np.float64)
        m = float(np.max(np.abs(problem.beta * (q @ k.T))))
        smax = m if not m <= smax else smax  # a NaN observation is kept (and then fails the check)
    section.checks.append(Check("score bound R >= max|S_ij|", smax <= sb.R, smax, sb.R,
                                "Cauchy-Schwarz with rigorous rounding, O(L d)"))
    section.checks.append(Check("R <= paper form |beta| d Gamma^2", sb.R <= sb.R_paper, sb.R, sb.R_paper, ""))
    progress(f"plan at tol = {VERIFY_TOL:g}")
    pl = plan(problem, VERIFY_TOL, "factored")
    # A verdict, not a pass/fail figure: a refusal is correct when the problem is outside the regime.
    consistent = pl.max_bound <= VERIFY_TOL if pl.degree is not None else not pl.efficient
    section.checks.append(Check("plan (factored): " + ("efficient" if pl.efficient else "refused"), consistent,
                                pl.cost_ratio, 1.0, pl.reason))
    if pl.degree is not None:
        section.checks.append(Check("certified bound <= tol", pl.max_bound <= VERIFY_TOL, pl.max_bound, VERIFY_TOL,
                                    f"{pl.family} degree {pl.degree}, rank {pl.rank}"))
    # The same layer in its efficient regime: the default problem's weights at small scale, longer L.
    from ..examples import random_problem

    small = random_problem(2025, L=120, L_k=100, d_model=3, d_head=2, d_v=2, r=2, alpha=3.0, beta=0.5, scale=0.3)
    progress("plan for an efficient-regime problem (L=120, d_head=2, scale 0.3)")
    pe = plan(small, VERIFY_TOL, "factored")
    section.checks.append(Check("efficient-regime problem: plan certifies tol", pe.efficient and
                                pe.max_bound <= VERIFY_TOL, pe.max_bound, VERIFY_TOL,
                                f"{pe.family} degree {pe.degree}, rank {pe.rank}, predicted cost "
                                f"{pe.cost_ratio if pe.cost_ratio is not None else math.nan:.3g} x exact"))
    progress("certified bound at eps_A = eps_D = 1e-6")
    gb = gradient_bounds(problem, 1e-6, 1e-6, "factored")
    section.checks.append(Check("bound per unit eps (factored, max over gradients)", math.isfinite(gb.max_bound),
                                gb.max_bound / 1e-6, None,
                                "certified max-entry bound at eps_A = eps_D = 1e-6, divided by 1e-6"))
    progress("small phase table")
    pts = phase_sweep(L_exponents=(10, 16), gamma_multiples=(0.25, 1.0), eps_exponents=(1.0,), d=8)
    for p in pts:
        deg = p.degree if p.degree is not None else f">{p.g_pay}"
        settled = p.degree is not None or "every polynomial" in p.proof  # certified, or refuted for every polynomial
        section.checks.append(Check(f"phase L=2^{int(math.log2(p.L))}, Gamma={p.gamma_multiple:g} sqrt(ln L)", settled,
                                    p.ratio_factored, 1.0,
                                    f"degree {deg}, k={p.rank}, {'pays' if p.pays else 'does not pay'}"))
    low = [p for p in pts if p.gamma_multiple == 0.25]
    high = [p for p in pts if p.gamma_multiple == 1.0]
    monotone = all(a.ratio_factored <= b.ratio_factored for a, b in zip(low, high))
    section.checks.append(Check("larger Gamma never cheaper", monotone, None, None,
                                "predicted ratio at Gamma = 1.0 sqrt(ln L) >= at 0.25 sqrt(ln L), same L"))
    return section
