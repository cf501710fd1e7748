"""CuPy backend: the generated kernels (``gpu/*.cu``) as a ``cupy.RawModule``, one per device.

``exact`` and ``fast`` call the step functions below for their non-GEMM steps when their arrays
are CuPy arrays (GEMMs stay in cuBLAS through ``@`` / ``cupy.matmul``). Each step function
takes arrays of one namespace and runs the kernel where they live:

* CuPy arrays: the kernel from the ``RawModule`` built from :func:`codegen.emit.module_source`
  (byte-identical to the committed ``gpu/`` files, which the drift test enforces), memoized per
  device;
* NumPy arrays: the *same* kernel text compiled for the CPU by :mod:`codegen.cpu` (how the
  dispatch is tested without a GPU).

CuPy validates no kernel arguments and widens Python scalars, so every call goes through
:func:`codegen.launch.prepare`: dtype, shape and C-contiguity are checked against the spec,
floating scalars are passed as ``np.float32``/``np.float64`` and sizes as ``np.int64``
(``const long long``). A usable GPU is detected only through ``cupy.cuda.is_available()``;
cupy is imported only when a function here is asked to use it.
"""

from __future__ import annotations

import sys
from functools import lru_cache
from typing import Any

import numpy as np

from ._xp import is_cupy_array
from .errors import InputError, VerifiedLoraError

__all__ = ["available", "device_name", "to_cupy", "wants_kernels", "prepare_call", "launch", "softmax_rows", "residual",
           "softmax_grad_rows", "row_dot", "normalised_residual_rows", "scaled_divide", "kron_rows_t",
           "paper_grad_rows", "monomials_t", "monomials_backward", "contract_rows"]

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

    from .problem import Adapter

    c = cupy.asarray
    return problem.replace(
        x_q=c(problem.x_q), y=c(problem.y), w_q=c(problem.w_q), w_k=c(problem.w_k), w_v=c(problem.w_v),
        x_k=None if problem.x_k is problem.x_q else c(problem.x_k),
        x_v=None if problem.x_v is problem.x_q else c(problem.x_v),
        adapters={k: Adapter(a=c(ad.a), b=c(ad.b)) for k, ad in problem.adapters.items()})


def wants_kernels(xp: Any) -> bool:
    """Whether ``exact``/``fast`` should dispatch their non-GEMM steps here: ``xp`` is CuPy."""
    return getattr(xp, "__name__", "") == "cupy"


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
    from .codegen.launch import launch_geometry, prepare
    from .codegen.specs import get_spec
    from .codegen.templates import SUFFIX

    spec = get_spec(name)
    arrays = [inputs[a.name] for a in spec.inputs if a.role not in ("scalar", "int_table") and a.name in inputs]
    for a in arrays:
        if not hasattr(a, "dtype"):
            raise InputError(f"{name} inputs", "arrays", type(a).__name__)
    dtype = _dtype_of(name, arrays)
    prep = prepare(spec, dtype, xp, inputs, outputs)
    grid, block = launch_geometry(prep.items, BLOCK)
    return f"vl_{name}_{SUFFIX[dtype]}", (grid, block), prep


@lru_cache(maxsize=None)
def _module(device_id: int):
    import cupy

    from .codegen.emit import module_source

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
    from .codegen.cpu import run_kernel
    from .codegen.specs import get_spec

    spec = get_spec(name)
    dtype = _dtype_of(name, [inputs[a.name] for a in spec.inputs
                             if a.role not in ("scalar", "int_table") and hasattr(inputs.get(a.name), "dtype")])
    return run_kernel(name, dtype, inputs, outputs=outputs)


def _xp_of(a: Any) -> Any:
    return sys.modules["cupy"] if is_cupy_array(a) else np


def _table(xp: Any, table: np.ndarray) -> Any:
    return xp.asarray(table)


# ---------------------------------------------------------------------------- exact path steps
def softmax_rows(s: Any, beta: float) -> Any:
    """``f = softmax_rows(beta s)`` row by row, max-stabilised (kernel ``softmax_rows``)."""
    return launch("softmax_rows", {"s": s, "beta": float(beta)})["f"]


def residual(fv: Any, y: Any) -> Any:
    """``c = fv - y`` (kernel ``residual``; ``fv = f V`` from a GEMM)."""
    return launch("residual", {"fv": fv, "y": y})["c"]


def softmax_grad_rows(f: Any, q: Any) -> tuple[Any, Any]:
    """``(p, rvec)`` with ``rvec = (f*q) 1`` and ``p = f*(q - rvec)`` = dL/dS (kernel ``softmax_grad_rows``)."""
    out = launch("softmax_grad_rows", {"f": f, "q": q})
    return out["p"], out["rvec"]


# ---------------------------------------------------------------------------- fast path steps
def row_dot(a: Any, b: Any) -> Any:
    """``rvec_i = sum_l a_il b_il`` (kernel ``row_dot``)."""
    return launch("row_dot", {"a": a, "b": b})["rvec"]


def normalised_residual_rows(t: Any, d: Any, y: Any) -> tuple[Any, Any, Any, Any]:
    """``(c~, c~/D~, rvec~, -rvec~/D~)`` from ``t = A~ V`` and ``D~`` (kernel ``normalised_residual_rows``)."""
    out = launch("normalised_residual_rows", {"t": t, "d": d, "y": y})
    return out["c"], out["yp"], out["rvec"], out["rneg"]


def scaled_divide(a: Any, w: Any, d: Any) -> Any:
    """``o[m, i] = w_m a[m, i] / d_i``: ``U1^T`` from the monomials (kernel ``scaled_divide``)."""
    return launch("scaled_divide", {"a": a, "w": w, "d": d})["o"]


def kron_rows_t(a: Any, b: Any) -> Any:
    """``(A (x) B)^T`` from ``A^T`` (k1 x n) and ``B^T`` (k2 x n) (kernel ``kron_rows_t``)."""
    return launch("kron_rows_t", {"a": a, "b": b})["o"]


def paper_grad_rows(a: Any, b: Any, r: Any, beta: float) -> Any:
    """``beta (a - r b)`` row-broadcast (kernel ``paper_grad_rows``)."""
    return launch("paper_grad_rows", {"a": a, "b": b, "r": r, "beta": float(beta)})["o"]


def monomials_t(xT: Any, g: int, out: Any = None) -> Any:
    """Transposed monomials ``(k x n)`` of ``xT`` (d x n), in approx.features' column order."""
    from .codegen.launch import monomial_tables

    d = int(xT.shape[0])
    parent, var = monomial_tables(d, int(g))
    xp = _xp_of(xT)
    strided = out is not None and not out.flags.c_contiguous  # e.g. a column block of a work buffer
    mono = launch("monomials_t", {"x": xp.ascontiguousarray(xT), "parent": _table(xp, parent),
                                  "var": _table(xp, var)}, None if out is None or strided else {"mono": out})["mono"]
    if strided:
        out[...] = mono
        return out
    return mono


def monomials_backward(grad: Any, mono: Any, d: int, g: int) -> Any:
    """``dL/dx`` (n x d) from ``grad = dL/d(monomials)`` and the monomials (n x k) (kernel ``monomials_backward``)."""
    from .codegen.launch import derivative_tables

    succ, mult = derivative_tables(int(d), int(g), str(mono.dtype))
    xp = _xp_of(mono)
    if succ.shape[0] == 0:
        return xp.zeros((mono.shape[0], int(d)), dtype=mono.dtype)
    return launch("monomials_backward", {"g": grad, "mono": mono, "succ": _table(xp, succ),
                                         "mult": _table(xp, mult)})["dx"]


def contract_rows(z: Any, y: Any) -> Any:
    """``out[i, j] = sum_a z[i, j*A + a] y[i, a]`` (kernel ``contract_rows``; ``lowrank_vjp_t``'s einsum)."""
    return launch("contract_rows", {"z": z, "y": y})["out"]
