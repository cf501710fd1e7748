"""verify section: audit the installed PEFT and loralib (one example per case)."""

from __future__ import annotations

from typing import Any

from ..problem import LoraAttention
from .core import Check, Progress, Section

__all__ = ["audit_section"]


def audit_section(problem: LoraAttention | None, progress: Progress) -> Section:
    """``verified-lora verify`` section: audit the installed PEFT and loralib (one example per case).

    Each check is reported once per library with its worst case; a library that is not installed
    gives one SKIP line with the reason. ``problem`` is unused (the audit draws its own layers).
    """
    from ..audit import audit_cases
    from ..audit.targets import builtin_available, resolve

    section = Section("LoRA audit of installed PEFT and loralib")
    for target in ("peft", "loralib"):
        ok, why = builtin_available(target)
        if not ok:
            section.checks.append(Check(f"audit {target}", None, None, None, f"SKIP: {why}"))
            continue
        progress(f"auditing {target} (1 example per case)")
        cases = resolve(target)
        if target == "peft":  # the Linear layer and the full q,k,v attention: the rest is covered by the tests
            cases = [c for c in cases if c.name in ("peft Linear", "peft attention LoRA on q,k,v")]
        report = audit_cases(cases, target=target, seed=0, examples=1)
        for name, by_case in report.matrix().items():
            results = [r for r in by_case.values() if r.passed is not None]
            if not results:
                continue
            worst = max(results, key=lambda r: (r.passed is False, _ratio(r)))
            passed = all(r.passed for r in results)
            section.checks.append(Check(
                f"{target} {name}", passed, worst.max_error, worst.bound,
                f"{len(results)} case(s), worst: {worst.case}" + (f": {worst.detail}" if not passed else "")))
    return section


def _ratio(r: Any) -> float:
    if r.max_error is None or not r.bound:
        return 0.0
    return float(r.max_error) / float(r.bound)
