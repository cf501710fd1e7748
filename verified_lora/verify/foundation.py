"""verify section: exact float64 gradients against the mpmath reference (dps 50) and interval enclosures."""

from __future__ import annotations

from ..problem import LoraAttention
from .core import Check, Progress, Section

__all__ = ["foundation_section", "TITLE"]

TITLE = "exact (problem dtype) vs mpmath reference and enclosures"


def foundation_section(problem: LoraAttention, progress: Progress) -> Section:
    """Exact float64 gradients against the mpmath reference (dps 50) and interval enclosures."""
    from .. import exact, reference
    from ..tolerances import EXACT_VS_REFERENCE, enclosure_relative_width, max_relative_error

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
