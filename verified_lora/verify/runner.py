"""Run the verify sections in order: :data:`SECTION_PROVIDERS` names each one as ``"module:function"``.

Providers are imported only when their section runs, so a layer's heavy dependencies load only
when ``verify`` reaches it. A provider that accepts ``workers`` and ``scheduler`` keywords (the
enclosure section, for problems too large for the mpmath reference) receives the runner
(:mod:`verified_lora.parallel`); the others run in this process.
"""

from __future__ import annotations

import importlib
import inspect
import time
from collections.abc import Callable

from ..problem import LoraAttention
from ..errors import InputError, OverflowInputError
from .core import Check, Progress, Section

__all__ = ["SECTION_PROVIDERS", "run", "check_only"]

SECTION_PROVIDERS: list[tuple[str, str]] = [
    ("exact (problem dtype) vs mpmath reference and enclosures", "verified_lora.verify.foundation:foundation_section"),
    ("symbolic proofs and certificates", "verified_lora.verify.proofs:proofs_section"),
    ("bounds: score interval, plan, phase transition", "verified_lora.verify.bounds:bounds_section"),
    ("fast path (certified) vs exact", "verified_lora.verify.fast:fast_section"),
    ("LoRA audit of installed PEFT and loralib", "verified_lora.verify.audit:audit_section"),
    ("generated CUDA kernels", "verified_lora.verify.kernels:kernels_section"),
]
"""(title, "module:function") of every verify section, in the order they run."""


def _load(spec: str) -> Callable[[LoraAttention, Progress], Section]:
    module, func = spec.split(":")
    return getattr(importlib.import_module(module), func)


def check_only(only: list[str] | None, field: str = "only") -> None:
    """Raise :class:`InputError` when a name in ``only`` matches no section title."""
    for name in only or []:
        if not any(name.lower() in title.lower() for title, _ in SECTION_PROVIDERS):
            raise InputError(field, "text contained in a section title: " + "; ".join(
                repr(t) for t, _ in SECTION_PROVIDERS), repr(name), "e.g. --only exact --only fast")


def run(problem: LoraAttention | None = None, *, progress: Progress | None = None,
        only: list[str] | None = None, workers: int | None = None, scheduler: str | None = None) -> list[Section]:
    """Run every section (or those whose title contains one of ``only``) on ``problem``.

    ``workers`` / ``scheduler``: the dask runner for the sections that take one (see
    :func:`verified_lora.parallel.map_tasks`); serial by default.
    """
    from ..examples import default_problem
    from ..parallel import check_runner

    check_only(only)
    check_runner(workers, scheduler)
    problem = default_problem() if problem is None else problem
    progress = progress or (lambda msg: None)
    sections = []
    chosen = [(t, s) for t, s in SECTION_PROVIDERS if not only or any(o.lower() in t.lower() for o in only)]
    for i, (title, spec) in enumerate(chosen, 1):
        progress(f"[section {i}/{len(chosen)}: {title}]")
        t0 = time.perf_counter()
        try:
            provider = _load(spec)
            takes_runner = "workers" in inspect.signature(provider).parameters
            section = (provider(problem, progress, workers=workers, scheduler=scheduler) if takes_runner
                       else provider(problem, progress))
        except OverflowInputError as exc:  # a valid problem beyond the dtype's range: N/A, with the reason
            section = Section(title, [Check.not_applicable("section", f"{exc}")])
        section.seconds = time.perf_counter() - t0
        sections.append(section)
    return sections
