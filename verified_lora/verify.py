"""``verified-lora verify``: one pass over every verification layer, as a verdict table.

Each layer contributes a *section* through a provider ``f(problem, progress) -> Section``
listed in :data:`SECTION_PROVIDERS` (imported lazily, so a layer's heavy dependencies load
only when verify runs). A section is a list of named checks with the observed figure, the
bound it is held to, and a verdict.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .problem import LoraAttention

__all__ = ["Check", "Section", "SECTION_PROVIDERS", "run", "foundation_section"]

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Check:
    """One verdict. ``passed`` is ``None`` when the check was skipped (``detail`` says why)."""

    name: str
    passed: bool | None
    observed: Any = None
    bound: Any = None
    detail: str = ""

    @property
    def verdict(self) -> str:
        return {True: "PASS", False: "FAIL", None: "SKIP"}[self.passed]


@dataclass
class Section:
    title: str
    checks: list[Check] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return all(c.passed is not False for c in self.checks)


SECTION_PROVIDERS: list[tuple[str, str]] = [
    ("exact float64 vs mpmath reference and enclosures", "verified_lora.verify:foundation_section"),
    ("symbolic proofs and certificates", "verified_lora.symbolic.prove:verify_section"),
    ("bounds: score interval, plan, phase transition", "verified_lora.bounds.phase:verify_section"),
    ("fast path (certified) vs exact", "verified_lora.fast:verify_section"),
    ("LoRA audit of installed PEFT and loralib", "verified_lora.audit:verify_section"),
    ("generated CUDA kernels", "verified_lora.codegen.report:kernels_section"),
]
"""(title, "module:function") of every verify section, in the order they run."""


def foundation_section(problem: LoraAttention, progress: Progress) -> Section:
    """Exact float64 gradients against the mpmath reference (dps 50) and interval enclosures."""
    from . import exact, reference
    from .tolerances import EXACT_VS_REFERENCE, enclosure_relative_width, max_relative_error

    section = Section("exact float64 vs mpmath reference and enclosures")
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
        section.checks.append(Check(f"{name}: float64 vs mpmath", err <= tol, err, tol,
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
    section.checks.append(Check("float64 error certified by enclosures", certified <= tol, certified, tol,
                                "rigorous max-entry error bound / max |value|, worst quantity"))
    return section


def _load(spec: str) -> Callable[[LoraAttention, Progress], Section]:
    module, func = spec.split(":")
    return getattr(importlib.import_module(module), func)


def run(problem: LoraAttention | None = None, *, progress: Progress | None = None,
        only: list[str] | None = None) -> list[Section]:
    """Run every section (or those whose title contains one of ``only``) on ``problem``."""
    from .examples import default_problem

    problem = default_problem() if problem is None else problem
    progress = progress or (lambda msg: None)
    sections = []
    for title, spec in SECTION_PROVIDERS:
        if only and not any(o.lower() in title.lower() for o in only):
            continue
        progress(f"[{title}]")
        t0 = time.perf_counter()
        section = _load(spec)(problem, progress)
        section.seconds = time.perf_counter() - t0
        sections.append(section)
    return sections
