"""Run the generated CUDA text on the CPU: g++ + a CUDA shim header + a generated launcher.

``cuda_shim.h`` defines ``__global__``/``__device__`` away and provides thread-local
``threadIdx``/``blockIdx``/``blockDim``/``gridDim``. A launcher, generated from the signature, sets
those indices and calls the kernel once for every (block, thread) pair, in forward or reverse
order (a kernel whose result depended on the order of its threads would be caught by running
both). The ``.cu`` text is ``#include``d unchanged. Libraries are cached by the sha256 of
everything that goes into them (shim, kernel text, launcher, flags, compiler version) under
``$VERIFIED_LORA_CACHE`` or ``<tmp>/verified_lora_kernels``.

Compiled with ``-O2 -ffp-contract=off`` and without fast-math, so every operation rounds once
as written (IEEE binary32/binary64, no fused multiply-add), which is what the error bounds of
:mod:`verified_lora.codegen.accuracy` assume. No SymPy: the signatures
come from the shipped manifest (:mod:`verified_lora.kernels.manifest`).
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import CodegenError
from .launch import prepare
from .manifest import SUFFIX, KernelSignature, all_signatures, get_signature, kernel_text

__all__ = ["SHIM", "CXX_FLAGS", "cache_dir", "compile_library", "CpuKernel", "run_kernel", "compiler"]

SHIM = Path(__file__).with_name("cuda_shim.h")
CXX_FLAGS = ("-std=c++17", "-O2", "-fPIC", "-shared", "-ffp-contract=off", "-fno-fast-math", "-w")


def compiler() -> str:
    """The C++ compiler (``$CXX`` or ``g++``); :class:`CodegenError` if neither exists."""
    cxx = os.environ.get("CXX", "g++")
    path = shutil.which(cxx)
    if path is None:
        raise CodegenError(f"no C++ compiler {cxx!r} on PATH: install g++ (or set CXX) to run kernels on the CPU")
    return path


@lru_cache(maxsize=None)
def _compiler_version(cxx: str) -> str:
    return subprocess.run([cxx, "--version"], capture_output=True, text=True, check=False).stdout.splitlines()[0]


def cache_dir() -> Path:
    """Where compiled libraries are kept (created on demand)."""
    root = os.environ.get("VERIFIED_LORA_CACHE")
    path = Path(root) if root else Path(tempfile.gettempdir()) / "verified_lora_kernels"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _c_param(spec: KernelSignature, dtype: str) -> list[tuple[str, str]]:
    T = {"float32": "float", "float64": "double"}[dtype]
    params = []
    for a in spec.args:
        if a.role == "scalar":
            params.append((f"{T}", a.name))
        elif a.role == "int_table":
            params.append(("const int*", a.name))
        elif a.is_output:
            params.append((f"{T}*", a.name))
        else:
            params.append((f"const {T}*", a.name))
    params += [("long long", s) for s in spec.sizes]
    return params


def _launcher(spec: KernelSignature, dtype: str) -> str:
    fn = f"vl_{spec.name}_{SUFFIX[dtype]}"
    params = _c_param(spec, dtype)
    decl = ", ".join(f"{t} {n}" for t, n in params)
    call = ", ".join(n for _, n in params)
    return (
        f'extern "C" void launch_{fn}(unsigned int vl_grid, unsigned int vl_block, int vl_reverse, {decl}) {{\n'
        "    gridDim = {vl_grid, 1, 1}; blockDim = {vl_block, 1, 1};\n"
        "    for (unsigned int vl_bb = 0; vl_bb < vl_grid; ++vl_bb) {\n"
        "        const unsigned int vl_b = vl_reverse ? vl_grid - 1 - vl_bb : vl_bb;\n"
        "        for (unsigned int vl_tt = 0; vl_tt < vl_block; ++vl_tt) {\n"
        "            const unsigned int vl_t = vl_reverse ? vl_block - 1 - vl_tt : vl_tt;\n"
        "            blockIdx = {vl_b, 0, 0}; threadIdx = {vl_t, 0, 0};\n"
        f"            {fn}({call});\n"
        "        }\n    }\n}\n")


def compile_library(sources: dict[str, str], signatures: dict[str, KernelSignature] | None = None) -> Path:
    """Compile kernel texts ``{name: text of cuda/<name>.cu}`` with their launchers into one cached .so.

    Every text is ``#include``d unchanged; the library is keyed by the sha256 of the shim, the
    texts, the launchers, the flags and the compiler version. ``signatures`` (by name) default to
    the shipped manifest's.
    """
    cxx = compiler()
    names = sorted(sources)
    sigs = signatures or {}
    launchers = "".join(_launcher(sigs.get(n) or get_signature(n), d) for n in names for d in ("float32", "float64"))
    shim = SHIM.read_text()
    key = hashlib.sha256("\0".join([shim, *(f"{n}\0{sources[n]}" for n in names), launchers, " ".join(CXX_FLAGS),
                                     _compiler_version(cxx)]).encode()).hexdigest()[:24]
    label = names[0] if len(names) == 1 else f"bundle{len(names)}"
    lib = cache_dir() / f"{label}-{key}.so"
    if lib.exists():
        return lib
    with tempfile.TemporaryDirectory(dir=cache_dir()) as tmp:
        includes = []
        for n in names:
            cu = Path(tmp) / f"{n}.cu"
            cu.write_text(sources[n])
            includes.append(f'#include "{cu}"')
        unit = Path(tmp) / "unit.cpp"
        unit.write_text(f'#include "{SHIM}"\n' + "\n".join(includes) + "\n" + launchers)
        out = Path(tmp) / "lib.so"
        proc = subprocess.run([cxx, *CXX_FLAGS, "-o", str(out), str(unit)], capture_output=True, text=True)
        if proc.returncode != 0:
            raise CodegenError(f"g++ failed on kernels {', '.join(names)}:\n{proc.stderr[-4000:]}")
        os.replace(out, lib)  # atomic: concurrent test processes never see a partial file
    return lib


def default_sources() -> dict[str, str]:
    """The text of every shipped kernel: the committed ``cuda/<name>.cu`` files (package data)."""
    return {sig.name: kernel_text(sig.name) for sig in all_signatures()}


_CTYPE = {"float32": ctypes.c_float, "float64": ctypes.c_double}


class CpuKernel:
    """Generated kernels compiled for the CPU, callable on NumPy arrays.

    ``CpuKernel(spec, source)(dtype, inputs, grid=3, block=4)`` checks the arguments exactly as
    the GPU backend does, runs every (block, thread) pair and returns the outputs by name.
    ``source=None`` uses the library of every kernel built from :func:`default_sources`.
    """

    def __init__(self, spec: KernelSignature | str, source: str | None = None):
        self.spec = get_signature(spec) if isinstance(spec, str) else spec
        if source is None:
            self._lib = _load(compile_library(default_sources()))
        else:
            self._lib = _load(compile_library({self.spec.name: source}, {self.spec.name: self.spec}))

    def __call__(self, dtype: str, inputs: dict[str, Any], outputs: dict[str, Any] | None = None, *,
                 grid: int | None = None, block: int = 4, reverse: bool = False) -> dict[str, np.ndarray]:
        prep = prepare(self.spec, dtype, np, inputs, outputs)
        fn = getattr(self._lib, f"launch_vl_{self.spec.name}_{SUFFIX[dtype]}")
        if grid is None:
            grid = max(1, min(8, -(-prep.items // block)))
        cargs: list[Any] = [ctypes.c_uint(grid), ctypes.c_uint(block), ctypes.c_int(int(reverse))]
        for v in prep.args:
            if isinstance(v, np.ndarray):
                cargs.append(ctypes.c_void_p(v.ctypes.data))
            elif isinstance(v, np.int64):
                cargs.append(ctypes.c_longlong(int(v)))
            else:
                cargs.append(_CTYPE[dtype](float(v)))
        fn.restype = None
        fn(*cargs)
        return prep.outputs


@lru_cache(maxsize=None)
def _load(path: Path) -> ctypes.CDLL:
    return ctypes.CDLL(str(path))


def run_kernel(name: str, dtype: str, inputs: dict[str, Any], *, source: str | None = None, **kw) -> dict[str, np.ndarray]:
    """Compile (cached) and run kernel ``name`` on NumPy ``inputs``; return its outputs.

    ``source=None`` runs the committed ``cuda/<name>.cu`` text (all kernels in one library).
    """
    return CpuKernel(name, source)(dtype, inputs, **kw)
