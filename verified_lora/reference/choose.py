"""``reference.enclose``: the Jacobian-form oracle for small problems, the blocked form beyond.

* ``method="jacobian"``: :func:`verified_lora.reference.enclose.enclose` (the explicit row
  Jacobian, ``O(L L_k (L_k + d))`` scalar operations in Python, ``mpmath.iv`` or ``arb``);
* ``method="blocked"``: :func:`verified_lora.reference.blocked.enclose_blocked` (``O(L L_k d)``
  on python-flint ball matrices, optionally on dask);
* ``method="auto"`` (default): the Jacobian form while its cost stays below
  :data:`JACOBIAN_MAX_COST` (or when python-flint is missing), the blocked form otherwise.
"""

from __future__ import annotations

from collections.abc import Callable

from ..errors import InputError
from ..numerics.intervals import available_backends
from ..problem import LoraAttention
from . import blocked
from .enclose import Enclosure
from .enclose import enclose as enclose_jacobian

__all__ = ["enclose", "METHODS", "JACOBIAN_MAX_COST", "jacobian_cost"]

METHODS = ("auto", "jacobian", "blocked")

JACOBIAN_MAX_COST = 2_000_000
"""Largest ``N L L_k (L_k + d_head + d_v)`` sent to the Jacobian form by ``method="auto"`` (about
L = L_k = 100, i.e. seconds)."""


def jacobian_cost(problem: LoraAttention) -> int:
    """Scalar operations of the Jacobian-form oracle, up to a constant: ``N L L_k (L_k + d_head + d_v)``."""
    return problem.n_batch * problem.L * problem.L_k * (problem.L_k + problem.d_head + problem.d_v)


def enclose(problem: LoraAttention, dps: int = 30, *, backend: str = "auto", method: str = "auto",
            workers: int | None = None, scheduler: str | None = None,
            progress: Callable[[int, int], None] | None = None) -> Enclosure:
    """Rigorous enclosures of the loss, the adapter gradients and ``dL/dW_mu`` of ``problem``.

    ``dps``: digits of working precision for the Jacobian form; for the blocked form the requested
    relative width is ``10**-dps``. ``backend`` applies to the Jacobian form only; ``workers``,
    ``scheduler`` and ``progress`` to the blocked form only (see :mod:`verified_lora.parallel`).
    """
    if method not in METHODS:
        raise InputError("method", f"one of {METHODS}", repr(method))
    if not isinstance(problem, LoraAttention):
        raise InputError("problem", "a verified_lora.LoraAttention", type(problem).__name__)
    if method == "auto":
        small = jacobian_cost(problem) <= JACOBIAN_MAX_COST
        method = "jacobian" if small or "arb" not in available_backends() else "blocked"
    if method == "jacobian":
        if workers is not None or scheduler is not None:
            raise InputError("workers", "no runner for the Jacobian form", f"workers={workers!r}, "
                             f"scheduler={scheduler!r}", 'use method="blocked" to run on dask')
        return enclose_jacobian(problem, dps, backend=backend)
    return blocked.enclose_blocked(problem, dps, workers=workers, scheduler=scheduler, progress=progress)
