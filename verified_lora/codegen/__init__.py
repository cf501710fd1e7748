"""CUDA kernels printed from the SymPy derivations, executable on the CPU without a GPU.

* :mod:`.printer`: SymPy C99 printer for CUDA (float32/float64, expanded powers, canonical CSE);
* :mod:`.specs`: one frozen :class:`~.specs.KernelSpec` per kernel (the math, never C text);
* :mod:`.templates`: signatures and grid-stride loops; :mod:`.emit`: files under ``gpu/`` and drift;
* :mod:`.launch`: argument checks shared by the CPU runner and the CuPy backend;
* :mod:`.cpu`: g++ + ``cuda_shim.h`` + generated launchers run the unchanged ``.cu`` text;
* :mod:`.accuracy`: mpmath references and running-error bounds; :mod:`.report`: CLI/verify glue.

Nothing here is imported by ``import verified_lora``; SymPy loads with these modules.
"""

from __future__ import annotations

__all__ = ["printer", "specs", "templates", "emit", "launch", "cpu", "accuracy", "report"]
