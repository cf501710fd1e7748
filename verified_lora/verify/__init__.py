"""``verified-lora verify``: one pass over every verification layer, as a verdict table.

This is the report layer: it imports the domain packages, and no domain package imports it.

* :mod:`.core` -- :class:`Check` (one named verdict with the observed figure and its bound) and
  :class:`Section` (a list of checks);
* :mod:`.runner` -- :data:`SECTION_PROVIDERS` and :func:`run`;
* one module per layer's section, each a provider ``f(problem, progress) -> Section`` imported
  only when its section runs: :mod:`.foundation` (exact vs mpmath and enclosures), :mod:`.proofs`,
  :mod:`.bounds`, :mod:`.fast`, :mod:`.audit`, :mod:`.kernels`.
"""

from __future__ import annotations

from .._lazy import lazy_exports
from .core import Check, Progress, Section
from .runner import SECTION_PROVIDERS, run

_EXPORTS = {"foundation_section": "foundation"}

__all__ = ["Check", "Section", "Progress", "SECTION_PROVIDERS", "run", *_EXPORTS]

__getattr__ = lazy_exports(__name__, _EXPORTS)
