"""Runtime kernels (no SymPy): the committed CUDA text shipped as package data, and its launches.

* :mod:`.manifest`: the shipped ``cuda/<name>.cu`` files and ``cuda/manifest.json`` (signatures);
* :mod:`.launch`: argument checks and launch geometry shared by both runners;
* :mod:`.backend`: :func:`~.backend.launch` (CuPy ``RawModule`` per device, or the CPU shim),
  :func:`~.backend.available`, :func:`~.backend.to_cupy`;
* :mod:`.cpu`: g++ + ``cuda_shim.h`` + generated launchers run the unchanged ``.cu`` text;
* :mod:`.steps`: :class:`~.steps.KernelSteps`, the kernel bodies of :mod:`verified_lora.steps`.

The text is produced at build time by :mod:`verified_lora.codegen` (``verified-lora kernels --update``)
and checked against the specs by ``verified-lora kernels --check``; nothing here imports codegen.
"""

from __future__ import annotations

from .backend import available, device_name, launch, prepare_call, to_cupy

__all__ = ["available", "device_name", "launch", "prepare_call", "to_cupy"]
