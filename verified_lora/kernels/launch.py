"""Argument checking and launch geometry shared by the CPU runner and the CuPy backend (no SymPy).

Neither ctypes nor CuPy's ``RawKernel`` validates anything: a wrong dtype, a transposed
(non-contiguous) view or a short buffer is silently read as garbage. :func:`prepare` therefore
checks every array's dtype, shape and C-contiguity against the spec, checks the index tables
of the feature kernels, refuses outputs that overlap inputs (the signatures promise
``__restrict__``), allocates missing outputs, and returns the argument list with every scalar
converted explicitly (floating scalars to ``np.float32``/``np.float64``, sizes to ``np.int64``,
matching ``const long long``). The signature of each kernel comes from the shipped manifest
(:class:`~verified_lora.kernels.manifest.KernelSignature`); a build-time
:class:`~verified_lora.codegen.specs.KernelSpec` has the same fields and is accepted too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import InputError
from .manifest import KernelSignature

__all__ = ["Prepared", "prepare", "work_items", "launch_geometry"]

_FLOAT = {"float32": np.float32, "float64": np.float64}


def _shapes(spec: KernelSignature, sizes: dict[str, int]) -> dict[str, tuple[int, ...]]:
    t = spec.template
    if t in ("elementwise", "rows"):
        table = {"entry": ("n_rows", "n_cols"), "out_entry": ("n_rows", "n_cols"), "row": ("n_rows",),
                 "out_row": ("n_rows",), "col": ("n_cols",)}
        return {a.name: tuple(sizes[s] for s in table[a.role]) for a in spec.args if a.role != "scalar"}
    if t == "kron_t":
        k1, k2, n = sizes["k1"], sizes["k2"], sizes["n"]
        return {"a": (k1, n), "b": (k2, n), "o": (k1 * k2, n)}
    if t == "monomials_t":
        d, k, n = sizes["d"], sizes["k"], sizes["n"]
        return {"x": (d, n), "parent": (k,), "var": (k,), "mono": (k, n)}
    if t == "monomials_backward":
        n, d, k, kp = sizes["n_rows"], sizes["d"], sizes["k"], sizes["kp"]
        return {"g": (n, k), "mono": (n, k), "succ": (kp, d), "mult": (kp, d), "dx": (n, d)}
    if t == "row_contract":
        n, o, i = sizes["n_rows"], sizes["n_out"], sizes["n_inner"]
        return {"z": (n, o * i), "y": (n, i), "out": (n, o)}
    raise AssertionError(t)  # pragma: no cover - specs validate their template


def _infer_sizes(spec: KernelSignature, inputs: dict[str, Any]) -> dict[str, int]:
    def dims(name: str, ndim: int) -> tuple[int, ...]:
        shape = tuple(getattr(inputs[name], "shape", ()))
        if len(shape) != ndim:
            raise InputError(f"{spec.name}.{name}", f"a {ndim}-d array", f"shape {shape}")
        return shape

    t = spec.template
    if t in ("elementwise", "rows"):
        first = next(a.name for a in spec.inputs if a.role == "entry")
        n_rows, n_cols = dims(first, 2)
        return {"n_rows": n_rows, "n_cols": n_cols}
    if t == "kron_t":
        k1, n = dims("a", 2)
        return {"k1": k1, "k2": dims("b", 2)[0], "n": n}
    if t == "monomials_t":
        d, n = dims("x", 2)
        return {"d": d, "k": dims("parent", 1)[0], "n": n}
    if t == "monomials_backward":
        n_rows, k = dims("g", 2)
        kp, d = dims("succ", 2)
        return {"n_rows": n_rows, "d": d, "k": k, "kp": kp}
    n_rows, n_inner = dims("y", 2)
    width = dims("z", 2)[1]
    if width % n_inner:
        raise InputError(f"{spec.name}.z", f"a column count divisible by n_inner = {n_inner}", str(width))
    return {"n_rows": n_rows, "n_out": width // n_inner, "n_inner": n_inner}


def work_items(spec: KernelSignature, sizes: dict[str, int]) -> int:
    """Iterations of the kernel's grid-stride loop."""
    t = spec.template
    if t == "elementwise":
        return sizes["n_rows"] * sizes["n_cols"]
    if t == "kron_t":
        return sizes["k1"] * sizes["k2"] * sizes["n"]
    if t == "monomials_t":
        return sizes["n"]
    if t == "monomials_backward":
        return sizes["n_rows"] * sizes["d"]
    if t == "row_contract":
        return sizes["n_rows"] * sizes["n_out"]
    return sizes["n_rows"]


def launch_geometry(items: int, block: int = 256, max_blocks: int = 4096) -> tuple[int, int]:
    """``(grid, block)`` for a grid-stride loop over ``items`` iterations."""
    return max(1, min(max_blocks, -(-items // block))), block


@dataclass(frozen=True)
class Prepared:
    """Checked arguments in signature order, the sizes and the outputs by name."""

    args: tuple[Any, ...]
    sizes: dict[str, int]
    outputs: dict[str, Any]
    items: int


def _is_array(xp: Any, arr: Any) -> bool:
    if xp is np:
        return isinstance(arr, np.ndarray)
    return type(arr).__module__.split(".")[0] == "cupy"


def _overlap(xp: Any, a: Any, b: Any) -> bool:
    if xp is np:
        return bool(np.shares_memory(a, b))
    pa, pb = int(a.data.ptr), int(b.data.ptr)
    return pa < pb + b.nbytes and pb < pa + a.nbytes


def prepare(spec: KernelSignature, dtype: str, xp: Any, inputs: dict[str, Any],
            outputs: dict[str, Any] | None = None) -> Prepared:
    """Validate ``inputs`` (and optional preallocated ``outputs``) for ``spec`` in ``dtype``.

    ``xp`` is ``numpy`` or ``cupy``; arrays must belong to it. Integer tables must be int32;
    every other array must have ``dtype`` exactly and be C-contiguous. Raises
    :class:`~verified_lora.errors.InputError` naming the argument and the fix.
    """
    if dtype not in _FLOAT:
        raise InputError(f"{spec.name}.dtype", "'float32' or 'float64'", repr(dtype))
    names_in = [a.name for a in spec.inputs]
    unknown = set(inputs) - set(names_in)
    missing = set(names_in) - set(inputs)
    if unknown or missing:
        raise InputError(f"{spec.name} inputs", f"exactly {names_in}",
                         f"missing {sorted(missing)}, unknown {sorted(unknown)}")
    for a in spec.inputs:
        if a.role != "scalar" and not _is_array(xp, inputs[a.name]):
            raise InputError(f"{spec.name}.{a.name}", f"a {xp.__name__} array", type(inputs[a.name]).__name__,
                             "NumPy arrays run on the CPU runner, CuPy arrays on the GPU backend")
    sizes = _infer_sizes(spec, inputs)
    for k, v in sizes.items():
        if v < (0 if k == "kp" else 1):  # kp = 0: degree-0 features, whose derivative is 0
            raise InputError(f"{spec.name}.{k}", "a size >= 1", str(v), "kernels are not launched on empty arrays")
    shapes = _shapes(spec, sizes)
    outputs = dict(outputs or {})
    args: list[Any] = []
    arrays_in = []
    for a in spec.args:
        field = f"{spec.name}.{a.name}"
        if a.role == "scalar":
            v = inputs[a.name]
            if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.floating, np.integer)):
                raise InputError(field, "a real scalar", type(v).__name__)
            if not np.isfinite(float(v)):
                raise InputError(field, "a finite scalar", repr(v))
            args.append(_FLOAT[dtype](v))
            continue
        want_dtype = np.dtype(np.int32) if a.role == "int_table" else np.dtype(dtype)
        if a.is_output and a.name not in outputs:
            outputs[a.name] = xp.empty(shapes[a.name], dtype=want_dtype)
        arr = outputs[a.name] if a.is_output else inputs[a.name]
        if not _is_array(xp, arr):
            raise InputError(field, f"a {xp.__name__} array", type(arr).__name__,
                             "NumPy arrays run on the CPU runner, CuPy arrays on the GPU backend")
        if arr.dtype != want_dtype:
            raise InputError(field, f"dtype {want_dtype}", f"dtype {arr.dtype}", f"convert with .astype({want_dtype.name})")
        if tuple(arr.shape) != shapes[a.name]:
            raise InputError(field, f"shape {shapes[a.name]}", f"shape {tuple(arr.shape)}")
        if not arr.flags.c_contiguous:
            raise InputError(field, "a C-contiguous array", "a strided view", "pass xp.ascontiguousarray(...)")
        if a.is_output:
            for other_name, other in arrays_in:
                if _overlap(xp, arr, other):
                    raise InputError(field, "an output not overlapping any input",
                                     f"memory shared with {other_name}", "allocate a separate output")
        else:
            arrays_in.append((a.name, arr))
        args.append(arr)
    _check_tables(spec, sizes, inputs)
    args += [np.int64(sizes[s]) for s in spec.sizes]
    return Prepared(tuple(args), sizes, {a.name: outputs[a.name] for a in spec.outputs},
                    work_items(spec, sizes))


def _host(x: Any) -> np.ndarray:
    return x.get() if hasattr(x, "get") and not isinstance(x, np.ndarray) else np.asarray(x)


def _check_tables(spec: KernelSignature, sizes: dict[str, int], inputs: dict[str, Any]) -> None:
    """Index tables must keep every read in bounds (the kernels do not check them)."""
    if spec.template == "monomials_t":
        parent, var = _host(inputs["parent"]), _host(inputs["var"])
        m = np.arange(sizes["k"])
        if sizes["k"] > 1 and (np.any(parent[1:] < 0) or np.any(parent[1:] >= m[1:])):
            raise InputError(f"{spec.name}.parent", "0 <= parent[m] < m for m >= 1", "an index out of range",
                             "build the tables with verified_lora.features.monomial_tables")
        if sizes["k"] > 1 and (np.any(var[1:] < 0) or np.any(var[1:] >= sizes["d"])):
            raise InputError(f"{spec.name}.var", f"0 <= var[m] < d = {sizes['d']}", "an index out of range")
    if spec.template == "monomials_backward":
        succ = _host(inputs["succ"])
        if np.any(succ < 0) or np.any(succ >= sizes["k"]):
            raise InputError(f"{spec.name}.succ", f"indices in [0, k = {sizes['k']})", "an index out of range")
        if sizes["kp"] > sizes["k"]:
            raise InputError(f"{spec.name}.succ", f"at most k = {sizes['k']} rows", f"{sizes['kp']} rows")
