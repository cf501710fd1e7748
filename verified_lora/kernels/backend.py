"""Kernel launches where the arrays live: CuPy ``RawModule`` per device, or the CPU shim.

:func:`launch` runs one kernel of the shipped text (``kernels/cuda/*.cu``, package data):

* CuPy arrays: the kernel from a ``RawModule`` built from
  :func:`~verified_lora.kernels.manifest.module_source` (the committed files, which the drift
  check keeps byte-identical to the specs), memoized per device;
* NumPy arrays: the *same* text compiled for the CPU by :mod:`verified_lora.kernels.cpu` (how the
  kernel steps are tested without a GPU).

CuPy validates no kernel arguments and widens Python scalars, so every call goes through
:func:`verified_lora.kernels.launch.prepare`: dtype, shape and C-contiguity are checked against the spec,
floating scalars are passed as ``np.float32``/``np.float64`` and sizes as ``np.int64``
(``const long long``). A usable GPU is detected only through ``cupy.cuda.is_available()``;
cupy is imported only when a function here is asked to use it.
"""

from __future__ import annotations

import sys
from functools import lru_cache
from typing import Any

import numpy as np

from .._xp import is_cupy_array
from ..errors import InputError, VerifiedLoraError
from .launch import launch_geometry, prepare
from .manifest import function_name, get_signature, module_source

__all__ = ["BLOCK", "available", "device_name", "to_cupy", "prepare_call", "launch"]

BLOCK = 256


def available() -> bool:
    """True when CuPy imports and ``cupy.cuda.is_available()`` says a device is usable."""
    try:
        import cupy
    except Exception:
        return False
    try:
        return bool(cupy.cuda.is_available())
    except Exception:
        return False


def device_name() -> str | None:
    """The current CUDA device's name (``None`` without a usable GPU)."""
    if not available():
        return None
    import cupy

    props = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)
    name = props.get("name", b"?")
    return name.decode() if isinstance(name, bytes) else str(name)


def to_cupy(problem: Any) -> Any:
    """The same :class:`~verified_lora.LoraAttention` with every array moved to the current GPU."""
    import cupy

    from ..problem import Adapter

    c = cupy.asarray
    return problem.replace(
        x_q=c(problem.x_q), y=c(problem.y), w_q=c(problem.w_q), w_k=c(problem.w_k), w_v=c(problem.w_v),
        x_k=None if problem.x_k is problem.x_q else c(problem.x_k),
        x_v=None if problem.x_v is problem.x_q else c(problem.x_v),
        adapters={k: Adapter(a=c(ad.a), b=c(ad.b)) for k, ad in problem.adapters.items()})


def _dtype_of(name: str, arrays: list[Any]) -> str:
    kinds = {str(a.dtype) for a in arrays}
    floats = kinds & {"float32", "float64"}
    if len(floats) != 1:
        raise InputError(f"{name} arrays", "float32 or float64 arrays of one dtype", f"dtypes {sorted(kinds)}")
    return floats.pop()


def prepare_call(name: str, inputs: dict[str, Any], outputs: dict[str, Any] | None = None,
                 xp: Any = np) -> tuple[str, tuple[int, int], Any]:
    """Checked call of kernel ``name``: ``(C function name, (grid, block), Prepared)``.

    The dtype is taken from the floating arrays (which must agree); integer tables are int32.
    """
    spec = get_signature(name)
    arrays = [inputs[a.name] for a in spec.inputs if a.role not in ("scalar", "int_table") and a.name in inputs]
    for a in arrays:
        if not hasattr(a, "dtype"):
            raise InputError(f"{name} inputs", "arrays", type(a).__name__)
    dtype = _dtype_of(name, arrays)
    prep = prepare(spec, dtype, xp, inputs, outputs)
    grid, block = launch_geometry(prep.items, BLOCK)
    return function_name(name, dtype), (grid, block), prep


@lru_cache(maxsize=None)
def _module(device_id: int):
    import cupy

    with cupy.cuda.Device(device_id):
        return cupy.RawModule(code=module_source(), options=("--std=c++14",))


def launch(name: str, inputs: dict[str, Any], outputs: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run kernel ``name`` where its arrays live (CuPy: GPU; NumPy: the CPU-compiled text)."""
    first = next((v for v in inputs.values() if hasattr(v, "dtype") and getattr(v, "ndim", 0) >= 1), None)
    if first is not None and is_cupy_array(first):
        cupy = sys.modules["cupy"]
        if not available():
            raise VerifiedLoraError("CuPy arrays were given but cupy.cuda.is_available() is False: no usable GPU")
        fn, (grid, block), prep = prepare_call(name, inputs, outputs, xp=cupy)
        kernel = _module(cupy.cuda.Device().id).get_function(fn)
        kernel((grid,), (block,), prep.args)
        return prep.outputs
    from .cpu import run_kernel

    spec = get_signature(name)
    dtype = _dtype_of(name, [inputs[a.name] for a in spec.inputs
                             if a.role not in ("scalar", "int_table") and hasattr(inputs.get(a.name), "dtype")])
    return run_kernel(name, dtype, inputs, outputs=outputs)
