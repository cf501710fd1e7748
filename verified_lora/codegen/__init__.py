"""Build time only: CUDA kernels printed from the SymPy derivations, and the drift check.

* :mod:`.printer`: SymPy C99 printer for CUDA (float32/float64, expanded powers, canonical CSE);
* :mod:`.specs`: one frozen :class:`~.specs.KernelSpec` per kernel (the math, never C text);
* :mod:`.templates`: signatures and grid-stride loops;
* :mod:`.emit`: the files under ``verified_lora/kernels/cuda/`` (``.cu`` text and ``manifest.json``)
  and the drift check (``verified-lora kernels --check`` regenerates and diffs);
* :mod:`.accuracy`: mpmath references and running-error bounds; :mod:`.report`: the ``kernels`` command.

The runtime (:mod:`verified_lora.kernels`: loading, argument checks, launches, the CPU shim) never
imports this package; nothing here is imported by ``import verified_lora``. SymPy loads with these modules.
"""

from __future__ import annotations

__all__ = ["printer", "specs", "templates", "emit", "accuracy", "report"]
