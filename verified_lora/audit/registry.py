"""The audit's check registry (no torch): every check is declared once, where it is defined.

A check module registers each check with :func:`check` (a decorator on the function that runs it)
or, for checks computed together by one runner, with :func:`register`. The registration carries
the check's name, a one-line explanation and the bug classes it is meant to catch, so the
report, the CLI's ``--check`` validation and the runners all read the same entry. Entries keep
their registration order within a level (layer checks, then attention checks), which is the
order of the report's rows.

The registry is filled by importing the check modules; :mod:`verified_lora.audit.runner` imports
all of them, so code that needs every name goes through it (``verified_lora.audit.check_names``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["CheckSpec", "check", "register", "get", "specs", "names"]

#: What a layer check's function takes: a fresh ``example`` (its own modules), the ``pass`` shared
#: by the forward/backward checks, the ``view`` built once per example (structure checks), or
#: ``probe``: run on every example before the others (it records the detected placement).
LAYER_INPUTS = ("example", "pass", "view", "probe")


@dataclass(frozen=True)
class CheckSpec:
    """One registered check.

    ``level`` is ``"layer"`` (run on each drawn linear layer) or ``"attention"`` (run on each drawn
    attention module); ``takes`` says what a layer check's ``run`` is called with (see
    :data:`LAYER_INPUTS`); ``run`` is None for checks that a level's runner computes together.
    """

    name: str
    doc: str
    bug_classes: str
    level: str = "layer"
    takes: str = "example"
    run: Callable[..., Any] | None = None


_REGISTRY: dict[str, CheckSpec] = {}


def register(name: str, *, doc: str, bug_classes: str, level: str = "layer", takes: str = "example",
             run: Callable[..., Any] | None = None) -> CheckSpec:
    """Add one check to the registry and return its entry (each name at most once)."""
    if name in _REGISTRY:
        raise ValueError(f"audit check {name!r} is registered twice")
    if level not in ("layer", "attention"):
        raise ValueError(f"audit check {name!r}: level must be 'layer' or 'attention', got {level!r}")
    if level == "layer" and takes not in LAYER_INPUTS:
        raise ValueError(f"audit check {name!r}: takes must be one of {LAYER_INPUTS}, got {takes!r}")
    spec = CheckSpec(name, doc, bug_classes, level, takes, run)
    _REGISTRY[name] = spec
    return spec


def check(name: str, *, doc: str, bug_classes: str, takes: str = "example"
          ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator form of :func:`register` for a layer check: the decorated function runs it."""

    def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
        register(name, doc=doc, bug_classes=bug_classes, level="layer", takes=takes, run=fn)
        return fn

    return deco


def get(name: str) -> CheckSpec:
    """The entry of check ``name`` (KeyError if no loaded module registered it)."""
    return _REGISTRY[name]


def specs(level: str | None = None) -> list[CheckSpec]:
    """Registered checks of one ``level`` in registration order; all of them: layer checks first."""
    if level is None:
        return specs("layer") + specs("attention")
    return [s for s in _REGISTRY.values() if s.level == level]


def names(level: str | None = None) -> list[str]:
    """Names of the registered checks, in the order of :func:`specs`."""
    return [s.name for s in specs(level)]
