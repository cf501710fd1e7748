"""verify section: the certified fast path against exact gradients, the certified bound beside the observed error."""

from __future__ import annotations

import math

from ..examples import rescaled_to
from ..problem import LoraAttention
from .core import Check, Progress, Section

__all__ = ["fast_section"]

VERIFY_FAST_TOL = 1e-6
"""Relative tolerance of the forced fast runs."""


def fast_section(problem: LoraAttention, progress: Progress) -> Section:
    """``verified-lora verify``: fast vs exact, the certified bound beside the observed error.

    The comparison runs on the problem with ``x_q`` scaled so that ``R <= 1`` (at the default
    problem's own ``R`` the certified degree, about 37, makes a forced fast run slow), in float64:
    the certificate bounds the approximation error, not float32 rounding, so a float32 problem is
    compared on its exact float64 twin. A gradient that is exactly zero (e.g. Q and K when
    ``L_k = 1``: a one-key softmax is constant) makes a relative error undefined: the run then
    uses the absolute tolerance ``1e-6 * min max|G|`` over the non-zero gradients and the zero
    ones are N/A. The planner's own decision (and the fallback flag) is shown for the problem as given.
    """
    from .. import exact
    from ..fast import METHODS, _max_abs, loss_and_grads
    from ..tolerances import fast_path_rounding

    section = Section("fast path (certified) vs exact")
    small = rescaled_to(problem, 1.0).astype("float64")
    twin = " (float64 twin of the float32 problem)" if problem.dtype != small.dtype else ""
    ex = exact.loss_and_grads(small)
    by_weight = not small.grad_keys
    keys = small.grad_keys or ("Q", "K", "V")
    exact_of = ex.weight_grads if by_weight else ex.grads
    scales = {k: _max_abs(exact_of[k]) for k in keys}
    zero = [k for k in keys if scales[k] == 0]
    nonzero = [scales[k] for k in keys if scales[k] > 0]
    if not nonzero:
        section.checks.append(Check.not_applicable(
            "fast vs exact", "every exact gradient is exactly zero: a relative error is undefined"))
    else:
        kwargs = {"tol_mode": "absolute"} if zero else {}
        tol = VERIFY_FAST_TOL * min(nonzero) if zero else VERIFY_FAST_TOL
        for method in METHODS:
            progress(f"fast path, method {method}, tol {tol:.2g} {'absolute' if zero else 'relative'} "
                     "(forced fast, R <= 1)")
            res = loss_and_grads(small, tol, method=method, force="fast", **kwargs)
            # float64 rounding of the fast path itself: the tested allowance (tolerances.fast_path_rounding)
            allowance = fast_path_rounding(res.rank, small.L_k, res.degree, res.R)
            for key in keys:
                got = res.weight_grads[key] if by_weight else res.grads[key]
                b = (res.weight_bounds if by_weight else res.bounds)[key]
                err = _max_abs(got - exact_of[key])
                name = f"{method} {key}: error <= bound"
                info = f"{res.family} g={res.degree}, k={res.rank}, R={res.R:.3g}{twin}"
                if key in zero:
                    section.checks.append(Check.not_applicable(
                        name, f"exact gradient exactly zero: relative comparison undefined (absolute error "
                              f"{err:.2g})", err, b))
                    continue
                rel = (res.relative_bounds or {}).get(key, math.nan)
                total = b + allowance * scales[key]
                section.checks.append(Check(name, err <= total, err, total,
                                            f"bound = certified {b:.3g} (relative {rel:.2g}) + float64 rounding "
                                            f"allowance {allowance * scales[key]:.2g}; {info}"))
    progress("planner decision on the problem as given (fallback flag)")
    auto = loss_and_grads(problem, VERIFY_FAST_TOL, max_degree=20)
    ex_full = exact.loss_and_grads(problem)
    if auto.fallback:
        same = auto.path == "exact" and all(_max_abs(auto.grads[k] - ex_full.grads[k]) == 0 for k in problem.grad_keys)
        section.checks.append(Check("planner: outside the efficient regime -> exact, fallback flag set", same,
                                    "fallback", "exact gradients", auto.reason))
    else:
        section.checks.append(Check("planner: fast path taken and certified", auto.certified, auto.path, "fast",
                                    auto.reason))
    return section
