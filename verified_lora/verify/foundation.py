"""verify section: exact float64 gradients against the mpmath reference (dps 50) and interval enclosures.

Problems too large for the Jacobian-form mpmath reference (``N L L_k (L_k + d_head + d_v)`` above
:data:`verified_lora.reference.JACOBIAN_MAX_COST`) are checked against the blocked ``O(L L_k d)``
enclosure instead (python-flint; serially, or on dask with ``workers`` / ``scheduler``): its width,
and the float64 error it certifies.
"""

from __future__ import annotations

from ..problem import LoraAttention
from .core import Check, Progress, Section

__all__ = ["foundation_section", "TITLE"]

TITLE = "exact (problem dtype) vs mpmath reference and enclosures"


def foundation_section(problem: LoraAttention, progress: Progress, *, workers: int | None = None,
                       scheduler: str | None = None) -> Section:
    """Exact float64 gradients against the mpmath reference (dps 50) and interval enclosures.

    ``workers`` / ``scheduler`` run the blocked enclosure of a large problem on dask (see
    :func:`verified_lora.parallel.map_tasks`); the small-problem checks always run here.
    """
    from .. import exact, reference
    from ..numerics.intervals import available_backends
    from ..reference.choose import jacobian_cost
    from ..tolerances import EXACT_VS_REFERENCE, enclosure_relative_width, max_relative_error

    if jacobian_cost(problem) > reference.JACOBIAN_MAX_COST and "arb" in available_backends():
        return _blocked_section(problem, progress, workers, scheduler)

    section = Section(TITLE)
    tol = EXACT_VS_REFERENCE[str(problem.dtype)]
    progress("exact float64 loss and gradients")
    ex = exact.loss_and_grads(problem)
    progress("mpmath reference at 50 digits")
    ref_exact = reference.loss_and_grads(problem, dps=50)
    ref = reference.to_float(ref_exact)
    progress("interval enclosures at 30 digits")
    enc = reference.enclose(problem, dps=30)
    names = ["loss", *problem.grad_keys]
    for name in names:
        e = ex.loss if name == "loss" else ex.grads[name]
        r = ref.loss if name == "loss" else ref.grads[name]
        err = max_relative_error(e, r)
        section.checks.append(Check(f"{name}: {problem.dtype} vs mpmath", err <= tol, err, tol,
                                    "max-entry error relative to max |reference|"))
    outside = enc.outside(ref_exact)
    width = enc.max_relative_width()
    width_tol = enclosure_relative_width(enc.dps)
    section.checks.append(Check("mpmath reference inside enclosures", not outside, len(outside), 0,
                                f"entries outside (loss, {len(problem.grad_keys)} adapter + 3 weight "
                                f"gradients; {enc.backend})"))
    section.checks.append(Check("enclosure relative width", width <= width_tol, width, width_tol,
                                "max width / max |value| over all entries"))
    scales = enc.magnitudes()
    certified = max(bound / scales[name] if scales[name] else bound
                    for name, bound in enc.error_bounds(ex).items())
    section.checks.append(Check(f"{problem.dtype} error certified by enclosures", certified <= tol, certified, tol,
                                "rigorous max-entry error bound / max |value|, worst quantity"))
    return section


BLOCKED_DIGITS = 20
"""Requested relative width of the blocked enclosure in ``verify``."""


def _blocked_section(problem: LoraAttention, progress: Progress, workers: int | None,
                     scheduler: str | None) -> Section:
    """Large problems: exact float64 against the blocked enclosure (no mpmath point reference)."""
    from .. import exact
    from ..parallel import describe_runner
    from ..reference import calibrate_plan, enclose_blocked, plan_blocks
    from ..reference.blocked import CALIBRATE_ABOVE_S
    from ..tolerances import EXACT_VS_REFERENCE

    section = Section("exact float64 vs blocked interval enclosures (too large for the mpmath reference)")
    tol = EXACT_VS_REFERENCE[str(problem.dtype)]
    progress("exact float64 loss and gradients")
    ex = exact.loss_and_grads(problem)
    plan = plan_blocks(problem, BLOCKED_DIGITS)
    if plan.estimate_s >= CALIBRATE_ABOVE_S:
        progress("blocked enclosures: timing one block of query rows for the estimate")
        plan = calibrate_plan(problem, plan)
    share = f", about {plan.estimate_s / workers:.0f} s on {workers} workers" if workers else ""
    progress(f"blocked enclosures: {plan.prec} bits, {plan.chunks * problem.n_batch} chunks, "
             f"estimated {plan.estimate_s:.0f} s in one process{share} ({describe_runner(workers, scheduler)})")
    enc = enclose_blocked(problem, BLOCKED_DIGITS, workers=workers, scheduler=scheduler,
                          progress=lambda done, total: progress(f"enclosure chunks {done}/{total}"))
    width, width_tol = enc.max_relative_width(), 10.0 ** -BLOCKED_DIGITS
    section.checks.append(Check("enclosure relative width", width <= width_tol, width, width_tol,
                                f"max width / max |value| over all entries ({enc.backend}, "
                                f"{enc.info['runner']}, {enc.info['seconds']:.1f} s)"))
    scales = enc.magnitudes()
    certified = max(bound / scales[name] if scales[name] else bound
                    for name, bound in enc.error_bounds(ex).items())
    section.checks.append(Check("float64 error certified by enclosures", certified <= tol, certified, tol,
                                "rigorous max-entry error bound / max |value|, worst quantity"))
    return section
