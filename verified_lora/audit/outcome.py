"""Outcomes of the audit's checks and how they are combined (NumPy only, no torch).

An :class:`Outcome` is one check on one example; :func:`compare` makes one from computed values,
reference values and per-entry bounds; :func:`worst` combines the sub-comparisons of one check;
:func:`aggregate` turns a check's outcomes over all examples into a :class:`CheckResult`, the row
an :class:`~verified_lora.audit.AuditReport` shows.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..errors import AuditError
from . import registry
from .tool_errors import raised_by_the_audit

__all__ = ["Outcome", "CheckResult", "compare", "worst", "aggregate", "guard"]


@dataclass
class Outcome:
    """One check on one example: ``passed`` None = not applicable (``detail`` says why)."""

    passed: bool | None
    error: float | None = None
    bound: float | None = None
    detail: str = ""
    warn: bool = False  # passed, but with a named deviation from the paper's convention (verdict WARN)

    @property
    def ratio(self) -> float:
        """``error / bound`` (0 when either is missing; inf for a nonzero error against a zero bound)."""
        if self.error is None or self.bound is None:
            return 0.0
        return math.inf if self.bound == 0 and self.error > 0 else (self.error / self.bound if self.bound else 0.0)


@dataclass
class CheckResult:
    """A check aggregated over examples: the worst example's error and bound are reported."""

    check: str
    case: str
    passed: bool | None
    max_error: float | None
    bound: float | None
    detail: str
    examples: int
    seconds: float = 0.0
    warned: bool = False  # passed with a named deviation (see Outcome.warn)

    @property
    def verdict(self) -> str:
        if self.passed and self.warned:
            return "WARN"
        return {True: "PASS", False: "FAIL", None: "N/A"}[self.passed]

    @property
    def explanation(self) -> str:
        """What the check compares (its registered doc)."""
        return registry.get(self.check).doc

    @property
    def bug_classes(self) -> str:
        """The bug classes the check is meant to catch (as registered)."""
        return registry.get(self.check).bug_classes


def compare(computed: np.ndarray, reference: np.ndarray, bound: np.ndarray) -> Outcome:
    """Entrywise ``|computed - reference| <= bound``; reports the entry closest to (or furthest over) its bound."""
    c = np.asarray(computed, dtype=np.float64).reshape(reference.shape)
    err = np.abs(c - reference)
    bnd = np.broadcast_to(np.asarray(bound, dtype=np.float64), err.shape)
    if not np.all(np.isfinite(c)):
        return Outcome(False, math.inf, float(np.max(bnd)), "non-finite values")
    ratio = np.where(bnd > 0, err / np.where(bnd > 0, bnd, 1), np.where(err > 0, np.inf, 0))
    k = int(np.argmax(ratio)) if ratio.size else 0
    e, b = (float(err.flat[k]), float(bnd.flat[k])) if ratio.size else (0.0, 0.0)
    return Outcome(bool(np.all(err <= bnd)), e, b)


def worst(outcomes: list[Outcome]) -> Outcome:
    """Combine sub-comparisons: fail if any fails; report the one closest to (or furthest over) its bound."""
    real = [o for o in outcomes if o.passed is not None]
    if not real:
        return outcomes[0] if outcomes else Outcome(None, detail="nothing to compare")
    top = max(real, key=lambda o: (o.passed is False, o.ratio))
    passed = all(o.passed for o in real)
    details = "; ".join(o.detail for o in real if o.detail and (o.passed is False or o is top or o.warn))
    return Outcome(passed, top.error, top.bound, details, warn=any(o.warn for o in real))


def aggregate(check: str, case: str, outs: list[Outcome], seconds: float) -> CheckResult:
    """One check's outcomes over all examples of a case: the worst example and the count of failures."""
    real = [o for o in outs if o.passed is not None]
    if not real:
        return CheckResult(check, case, None, None, None, outs[0].detail if outs else "", len(outs), seconds)
    top = max(real, key=lambda o: (o.passed is False, o.ratio))
    n_fail = sum(o.passed is False for o in real)
    detail = top.detail
    warned = [o for o in real if o.warn]
    if warned and not n_fail and not top.warn:
        detail = warned[0].detail
    if n_fail:
        detail = f"{n_fail}/{len(real)} examples fail; " + detail
    return CheckResult(check, case, n_fail == 0, top.error, top.bound, detail, len(real), seconds,
                       warned=bool(warned))


def guard(fn: Callable[[], Outcome]) -> Outcome:
    """Run one check: an implementation that raises fails the check, with the reason; an AuditError and a
    programming error of the audit's own code (:mod:`.tool_errors`) escape."""
    try:
        return fn()
    except AuditError:
        raise
    except Exception as exc:
        if raised_by_the_audit(exc):
            raise
        return Outcome(False, None, None, f"raised {type(exc).__name__}: {str(exc).splitlines()[0][:160]}")
