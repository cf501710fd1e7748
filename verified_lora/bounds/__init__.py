"""Certified bounds for the fast path: score interval, error propagation, planning, phase sweep.

* :func:`score_bound` -- certified ``R >= max |S_ij|`` in ``O(L d)`` (docs/design.md section 4.1);
* :func:`gradient_bounds` / :func:`sensitivity` -- closed-form a-priori bounds from the
  polynomial's relative errors ``eps_A`` (and ``eps_D`` for ``P'``) to every weight and adapter
  gradient, for the "paper" chain and the "factored" path (:mod:`.propagation`, docs/design.md section 4.5);
* :func:`plan` -- family and degree so that every certified gradient bound is ``<= tol``, or an
  explicit "outside the efficient regime" verdict (:mod:`.planner`);
* :func:`phase_sweep` -- the norm-based phase transition (Theorem 4.1) made measurable (:mod:`.phase`).

Submodules load on first use; ``import verified_lora`` never imports this package.
"""

from __future__ import annotations

from .._lazy import lazy_exports

_EXPORTS = {
    "ScoreBound": "score",
    "score_bound": "score",
    "METHODS": "propagation",
    "GradientBounds": "propagation",
    "Sensitivity": "propagation",
    "StepBounds": "propagation",
    "sensitivity": "propagation",
    "gradient_bounds": "propagation",
    "step_bounds": "propagation",
    "eps_scalars": "propagation",
    "Plan": "planner",
    "plan": "planner",
    "CostModel": "cost",
    "EXP_COST_CPU": "cost",
    "rank": "cost",
    "paper_rank": "cost",
    "cost_ratio": "cost",
    "PhasePoint": "phase",
    "phase_point": "phase",
    "phase_sweep": "phase",
    "phase_table": "phase",
    "plot_phase": "phase",
    "aggarwal_alman_fit": "phase",
}

__all__ = sorted(_EXPORTS)


__getattr__ = lazy_exports(__name__, _EXPORTS)
