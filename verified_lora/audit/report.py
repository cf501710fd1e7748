"""Audit reports: terminal table, JSON and Markdown (no torch)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from .._table import fmt_num, format_markdown, format_table

__all__ = ["AuditReport"]

HEADERS = ("check", "verdict", "max error", "allowed bound", "explanation")


@dataclass
class AuditReport:
    """Results of one audit: one :class:`~.outcome.CheckResult` per (case, check)."""

    target: str
    results: list = field(default_factory=list)
    case_seconds: dict[str, float] = field(default_factory=dict)
    notes: dict[str, list[str]] = field(default_factory=dict)
    seconds: float = 0.0
    seed: int = 0
    examples: int = 0
    environment: dict[str, str] = field(default_factory=dict)
    #: modules (or cases) the audit could not check, ``(name, one-line reason)``: verdict PARTIAL
    unaudited: list[tuple[str, str]] = field(default_factory=list)
    #: rank-0 adapters of a whole model, ``(name, reason)``: nothing to audit
    disabled: list[tuple[str, str]] = field(default_factory=list)
    model_notes: list[str] = field(default_factory=list)
    whole_model: bool = False
    #: tracebacks of unexpected errors inside the audit, by case (shown with ``--debug``)
    tracebacks: dict[str, str] = field(default_factory=dict)

    @property
    def verdict(self) -> str:
        """FAIL (a check failed), PARTIAL (something was not audited), WARN (a named deviation), or PASS."""
        if any(r.passed is False for r in self.results):
            return "FAIL"
        if self.unaudited:
            return "PARTIAL"
        if any(getattr(r, "verdict", "") == "WARN" for r in self.results):
            return "WARN"
        return "PASS"

    @property
    def passed(self) -> bool:
        """No check failed and nothing was left unaudited (verdict PASS or WARN)."""
        return self.verdict in ("PASS", "WARN")

    @property
    def failures(self) -> list:
        return [r for r in self.results if r.passed is False]

    def cases(self) -> list[str]:
        seen: list[str] = []
        for r in self.results:
            if r.case not in seen:
                seen.append(r.case)
        return seen

    def case_verdict(self, case: str) -> str:
        """FAIL, WARN or PASS for the checks of one case."""
        verdicts = {r.verdict for r in self.results if r.case == case}
        return "FAIL" if "FAIL" in verdicts else "WARN" if "WARN" in verdicts else "PASS"

    def _rows(self, case: str) -> list[tuple[Any, ...]]:
        return [(r.check, r.verdict, r.max_error, r.bound, r.detail or r.explanation)
                for r in self.results if r.case == case]

    def summary(self) -> str:
        n_pass = sum(r.passed is True for r in self.results)
        n_fail = sum(r.passed is False for r in self.results)
        n_na = sum(r.passed is None for r in self.results)
        extra = f", {len(self.unaudited)} not audited" if self.unaudited else ""
        return (f"verdict: {self.verdict} ({n_pass} passed, {n_fail} failed, "
                f"{n_na} not applicable{extra}; {self.seconds:.1f}s)")

    def _inventory_lines(self) -> list[str]:
        out = list(self.model_notes)
        out += [f"NOT AUDITED {name}: {why}" for name, why in self.unaudited]
        out += [f"disabled {name}: {why}" for name, why in self.disabled]
        return out

    def to_text(self) -> str:
        out = [f"verified-lora audit {self.target} (seed {self.seed}, {self.examples} examples per case; "
               f"{', '.join(f'{k} {v}' for k, v in self.environment.items())})"]
        for case in self.cases():
            title = f"\n== {case} ({self.case_seconds.get(case, 0):.1f}s): {self.case_verdict(case)}"
            out.append(format_table(HEADERS, self._rows(case), title=title))
            for note in self.notes.get(case, []):
                out.append(f"  note: {note}")
        inv = self._inventory_lines()
        if inv:
            out.append("\n== modules" if self.whole_model else "\n== not audited")
            out += [f"  {line}" for line in inv]
        out.append("")
        out.append(self.summary())
        return "\n".join(out)

    def to_markdown(self) -> str:
        out = [f"# verified-lora audit `{self.target}`", "",
               f"seed {self.seed}, {self.examples} examples per case; "
               + ", ".join(f"{k} {v}" for k, v in self.environment.items()), ""]
        for case in self.cases():
            out += [f"## {case} ({self.case_seconds.get(case, 0):.1f}s)", ""]
            out.append(format_markdown(HEADERS, self._rows(case)))
            out += [f"- note: {n}" for n in self.notes.get(case, [])]
            out.append("")
        inv = self._inventory_lines()
        if inv:
            out += ["## Modules" if self.whole_model else "## Not audited", ""] + [f"- {line}" for line in inv] + [""]
        out.append(f"**{self.summary()}**")
        return "\n".join(out)

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target, "verdict": self.verdict, "passed": self.passed, "seed": self.seed,
            "examples": self.examples, "whole_model": self.whole_model, "model_notes": self.model_notes,
            "unaudited": [{"module": n, "reason": w} for n, w in self.unaudited],
            "disabled": [{"module": n, "reason": w} for n, w in self.disabled],
            "seconds": round(self.seconds, 3), "environment": self.environment,
            "cases": [{"case": c, "seconds": round(self.case_seconds.get(c, 0), 3), "notes": self.notes.get(c, []),
                       "checks": [{"check": r.check, "verdict": r.verdict, "max_error": _num(r.max_error),
                                   "bound": _num(r.bound), "detail": r.detail, "explanation": r.explanation,
                                   "bug_classes": r.bug_classes, "examples": r.examples}
                                  for r in self.results if r.case == c]} for c in self.cases()],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def matrix(self) -> dict[str, dict[str, Any]]:
        """``{check: {case: result}}``."""
        m: dict[str, dict[str, Any]] = {}
        for r in self.results:
            m.setdefault(r.check, {})[r.case] = r
        return m


def _num(x):
    if x is None:
        return None
    x = float(x)
    return x if x == x and abs(x) != float("inf") else str(x)


def cell(r) -> str:
    """A compact matrix cell: ``PASS 1.2e-16/3.4e-15``."""
    if r is None:
        return ""
    if r.max_error is None or r.passed is None:
        return r.verdict
    return f"{r.verdict} {fmt_num(r.max_error, 2)}/{fmt_num(r.bound, 2)}"
