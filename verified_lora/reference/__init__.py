"""Independent high-precision reference: mpmath point values and rigorous interval enclosures.

* :func:`loss_and_grads` (``dps=50``): loss and gradients in ``mpmath.mp`` straight from the
  definitions (Lemma 3.1's row Jacobian ``diag(f_j) - f_j f_j^T``), sharing no code path with
  :mod:`verified_lora.exact`;
* :func:`to_float`: the same result rounded to the nearest float64;
* :func:`enclose` (``dps=30``): an :class:`Enclosure` of intervals (``mpmath.iv`` or python-flint
  ``arb``) containing the exact loss and every gradient entry: the Jacobian form for small
  problems, the blocked ``O(L L_k d)`` form (:func:`enclose_blocked`, python-flint ball matrices,
  optionally on dask) beyond ``JACOBIAN_MAX_COST`` or with ``method="blocked"``.

mpmath is imported on first use, not when this package is imported.
"""

from __future__ import annotations

from .blocked import calibrate_plan, enclose_blocked, plan_blocks
from .choose import JACOBIAN_MAX_COST, METHODS, enclose
from .enclose import BACKENDS, Enclosure, available_backends
from .mp import evaluate, loss_and_grads, to_float

__all__ = ["BACKENDS", "METHODS", "JACOBIAN_MAX_COST", "Enclosure", "available_backends", "enclose",
           "enclose_blocked", "plan_blocks", "calibrate_plan", "evaluate", "loss_and_grads", "to_float"]
