"""verify section: the certified fast path against exact gradients, the certified bound beside the observed error."""

from __future__ import annotations

import math

from ..examples import rescaled_to
from ..problem import LoraAttention
from .core import Check, Progress, Section

__all__ = ["fast_section"]


def fast_section(problem: LoraAttention, progress: Progress) -> Section:
    """``verified-lora verify``: fast vs exact, the certified bound beside the observed error.

    The comparison runs on the problem with ``x_q`` scaled so that ``R <= 1`` (at the default
    problem's own ``R`` the certified degree, about 37, makes a forced fast run slow); the planner's
    own decision (and the fallback flag) is shown for the problem as given.
    """
    from .. import exact
    from ..fast import METHODS, _max_abs, loss_and_grads

    section = Section("fast path (certified) vs exact")
    small = rescaled_to(problem, 1.0)
    # The reference is the float64 exact gradient of the same input values (widening float32 is
    # exact); an exact run in float32 would carry its own ~1e-7 rounding error.
    ex = exact.loss_and_grads(small.astype("float64"))
    keys = small.grad_keys or ("Q", "K", "V")
    for method in METHODS:
        progress(f"fast path, method {method}, tol 1e-6 relative (forced fast, R <= 1)")
        res = loss_and_grads(small, 1e-6, method=method, force="fast")
        for key in keys:
            got = res.grads[key] if small.grad_keys else res.weight_grads[key]
            ref = ex.grads[key] if small.grad_keys else ex.weight_grads[key]
            b = (res.bounds or res.weight_bounds)[key]
            err = _max_abs(got - ref)
            section.checks.append(Check(f"{method} {key}: observed error <= certified bound", err <= b, err, b,
                                        f"{res.family} g={res.degree}, k={res.rank}, R={res.R:.3g}; certified "
                                        f"relative {res.relative_bounds.get(key, math.nan):.2g}"))
    progress("planner decision on the problem as given (fallback flag)")
    auto = loss_and_grads(problem, 1e-6, max_degree=20)
    ex_full = exact.loss_and_grads(problem)
    if auto.fallback:
        same = auto.path == "exact" and all(_max_abs(auto.grads[k] - ex_full.grads[k]) == 0 for k in problem.grad_keys)
        section.checks.append(Check("planner: outside the efficient regime -> exact, fallback flag set", same,
                                    "fallback", "exact gradients", auto.reason[:110]))
    else:
        section.checks.append(Check("planner: fast path taken and certified", auto.certified, auto.path, "fast",
                                    auto.reason[:110]))
    return section
