"""Run the audit's checks on one case (imports torch): the layer or the attention runner.

Importing this module imports every check module, so the registry is complete here:
:func:`check_names` lists every check in the report's row order.
"""

from __future__ import annotations

from collections.abc import Callable

from . import registry
from .attention_checks import run_attention_case
from .cases import AttentionCase, LayerCase
from .layer_checks import run_layer_case
from .outcome import CheckResult

__all__ = ["run_case", "check_names"]


def check_names() -> list[str]:
    """Names of every registered check (layer checks first, then attention checks)."""
    return registry.names()


def run_case(case: LayerCase | AttentionCase, *, seed: int = 0, examples: int = 3, checks: list[str] | None = None,
             progress: Callable[[str], None] | None = None) -> list[CheckResult]:
    """Run the checks (all, or those named in ``checks``) on ``examples`` draws of ``case``."""
    if isinstance(case, AttentionCase):
        if checks is not None and not set(checks) & set(registry.names("attention")):
            return []
        return run_attention_case(case, seed=seed, examples=examples, progress=progress)
    return run_layer_case(case, seed=seed, examples=examples, checks=checks, progress=progress)
