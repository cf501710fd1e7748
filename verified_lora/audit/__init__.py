"""Audit third-party LoRA code (PEFT, loralib, torchtune-style, your own) against the verified reference.

``audit(target)`` runs the registered checks (:func:`check_names`; see :mod:`.registry`) on every case of
a target (``"peft"``, ``"loralib"`` or ``"module.path:factory"``) and returns an :class:`AuditReport`;
``assert_lora_module_ok(factory)`` does the same for a factory and raises ``AssertionError`` listing
the failed checks (one line in a test suite). Importing this package does not import torch;
the checks import it when they run.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from ..errors import AuditError
from .report import AuditReport

__all__ = ["audit", "audit_cases", "assert_lora_module_ok", "AuditReport", "AuditError", "check_names"]


def check_names() -> list[str]:
    """Names of every check (imports torch)."""
    from .runner import check_names as names

    return names()


def _environment() -> dict[str, str]:
    import importlib
    import importlib.metadata as md

    env = {}
    for name in ("torch", "peft", "loralib", "transformers", "torchtune", "diffusers", "keras"):
        try:
            env[name] = md.version(name)
        except md.PackageNotFoundError:
            continue
    importlib.import_module("torch")
    return env


def audit_cases(cases: Sequence[Any], *, target: str = "custom", seed: int = 0, examples: int = 3,
                checks: Sequence[str] | None = None, progress: Callable[[str], None] | None = None,
                keep_going: bool = False, case_progress: Callable[[int, int, str], None] | None = None
                ) -> AuditReport:
    """Run every check on every case (see :mod:`.runner`) and collect an :class:`AuditReport`.

    With ``keep_going`` (whole models) a case that cannot be audited, because detection refuses its
    fresh copy or the audit itself raises, is listed in ``report.unaudited`` with the reason (verdict
    PARTIAL) and the others still run; without it the error propagates (an :class:`AuditError`, or the
    unexpected exception itself). ``case_progress(i, n, name)`` is called before case ``i`` of ``n``.
    """
    from .runner import check_names as names
    from .runner import run_case

    if examples < 1:
        raise AuditError(f"examples must be >= 1, got {examples}")
    if checks is not None:
        known = names()
        unknown = [c for c in checks if c not in known]
        if unknown:
            raise AuditError(f"unknown check(s) {unknown}; known: {known}")
    report = AuditReport(target=target, seed=seed, examples=examples, environment=_environment())
    t_all = time.perf_counter()
    import traceback
    import warnings

    import torch

    for k, case in enumerate(cases):
        if case_progress:
            case_progress(k, len(cases), case.name)
        t0 = time.perf_counter()
        # the caller's torch RNG state is restored afterwards; warnings the implementation emits
        # (e.g. PEFT's fan_in_fan_out notice) are recorded as notes instead of escaping
        with torch.random.fork_rng(devices=[]), warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch.manual_seed(seed)
            try:
                report.results += run_case(case, seed=seed, examples=examples,
                                           checks=None if checks is None else list(checks), progress=progress)
            except Exception as exc:
                if not keep_going:
                    raise
                kind = "refused" if isinstance(exc, AuditError) else f"audit error {type(exc).__name__}"
                report.unaudited.append((case.name, f"{kind}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"))
                if not isinstance(exc, AuditError):
                    report.tracebacks[case.name] = traceback.format_exc()
        report.case_seconds[case.name] = time.perf_counter() - t0
        notes = list(case.notes)
        seen: list[str] = []
        for w in caught:
            msg = f"{w.category.__name__}: {str(w.message).splitlines()[0][:160]}"
            if msg not in seen:
                seen.append(msg)
        notes += [f"warning from the implementation: {m}" for m in seen[:3]]
        if notes:
            report.notes[case.name] = notes
    report.seconds = time.perf_counter() - t_all
    return report


def audit(target: str | Callable[..., Any], *, seed: int = 0, examples: int = 3, checks: Sequence[str] | None = None,
          progress: Callable[[str], None] | None = None, spec: Any = None,
          case_progress: Callable[[int, int, str], None] | None = None) -> AuditReport:
    """Audit ``target``: ``"peft"``, ``"loralib"``, ``"module.path:factory"`` or a factory callable.

    A factory may return one LoRA layer, a single-head attention module, or a whole model: then every
    LoRA-carrying module is audited with its own weights and with fresh draws, and the modules the
    audit cannot map are listed in ``report.unaudited`` (verdict PARTIAL). ``spec`` (a
    :class:`~.spec.LoraSpec`) maps a single layer explicitly.
    """
    from .targets import builtin_available, factory_target, resolve_target

    ok, why = builtin_available("torch")
    if not ok:
        raise AuditError(f"audit: {why}. Fix: pip install 'verified-lora[audit]'")
    import torch

    with torch.random.fork_rng(devices=[]):  # building the probe modules must not move the caller's RNG
        if callable(target):
            name = getattr(target, "__qualname__", repr(target))
            resolved = factory_target(target, name, spec)
        else:
            name = str(target)
            resolved = resolve_target(name, spec)
        report = audit_cases(resolved.cases, target=name, seed=seed, examples=examples, checks=checks,
                             progress=progress, keep_going=resolved.model, case_progress=case_progress)
    report.whole_model = resolved.model
    report.unaudited = list(resolved.unaudited) + report.unaudited
    report.disabled = list(resolved.disabled)
    report.model_notes = list(resolved.notes)
    return report


def assert_lora_module_ok(factory: Callable[..., Any] | str, *, seed: int = 0, examples: int = 2,
                          checks: Sequence[str] | None = None) -> AuditReport:
    """Audit ``factory`` and raise ``AssertionError`` naming every failed check; returns the report."""
    report = audit(factory, seed=seed, examples=examples, checks=checks)
    if not report.passed:
        lines = [f"{r.case}: {r.check} FAILED (max error {r.max_error}, bound {r.bound}): {r.detail}"
                 for r in report.failures]
        lines += [f"{name}: NOT AUDITED: {why}" for name, why in report.unaudited]
        raise AssertionError(f"LoRA audit {report.verdict}:\n" + "\n".join(lines))
    return report
