"""The verdict types of ``verified-lora verify``: a :class:`Check` and a :class:`Section` of them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Check", "Section", "Progress"]

Progress = Callable[[str], None]
"""Progress callback: receives one short message per step."""


@dataclass(frozen=True)
class Check:
    """One verdict. ``passed`` is ``None`` when the check was skipped (a tool is missing) or does not
    apply to this problem (``applies=False``, verdict "N/A"); ``detail`` says why."""

    name: str
    passed: bool | None
    observed: Any = None
    bound: Any = None
    detail: str = ""
    applies: bool = True

    @property
    def verdict(self) -> str:
        if self.passed is None and not self.applies:
            return "N/A"
        return {True: "PASS", False: "FAIL", None: "SKIP"}[self.passed]

    @classmethod
    def not_applicable(cls, name: str, why: str, observed: Any = None, bound: Any = None) -> "Check":
        """A check that does not apply to this problem, with the reason."""
        return cls(name, None, observed, bound, why, applies=False)


@dataclass
class Section:
    title: str
    checks: list[Check] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return all(c.passed is not False for c in self.checks)
