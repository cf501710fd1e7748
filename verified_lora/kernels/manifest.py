"""The shipped kernels: the committed ``cuda/<name>.cu`` text and ``cuda/manifest.json`` (package data).

The manifest is written at build time by :func:`verified_lora.codegen.emit.write_dir` from the
specs (and drift-checked with the ``.cu`` files by ``verified-lora kernels --check``). It holds,
per kernel, the template, the arguments (name and role, in signature order) and the size
parameters: everything :func:`verified_lora.kernels.launch.prepare` needs to check a call, so the
runtime never imports SymPy or the code generator.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from ..errors import InputError

__all__ = ["SUFFIX", "KernelArg", "KernelSignature", "kernel_dir", "manifest_path", "all_signatures",
           "get_signature", "kernel_text", "module_source", "function_name"]

SUFFIX = {"float32": "f32", "float64": "f64"}
"""C function suffix of each dtype variant: ``vl_<name>_f32`` / ``vl_<name>_f64``."""


@dataclass(frozen=True)
class KernelArg:
    """One array or scalar argument: its name and role (``entry``, ``row``, ``scalar``, ``int_table``, ``out_*``...)."""

    name: str
    role: str

    @property
    def is_output(self) -> bool:
        return self.role.startswith("out_")


@dataclass(frozen=True)
class KernelSignature:
    """What a launch needs to know about a kernel: template, arguments in order, size parameters."""

    name: str
    template: str
    inputs: tuple[KernelArg, ...]
    outputs: tuple[KernelArg, ...]
    sizes: tuple[str, ...]

    @property
    def args(self) -> tuple[KernelArg, ...]:
        return self.inputs + self.outputs


def kernel_dir() -> Path:
    """The directory of the shipped ``.cu`` files and the manifest (inside the installed package)."""
    return Path(__file__).resolve().with_name("cuda")


def manifest_path() -> Path:
    return kernel_dir() / "manifest.json"


@lru_cache(maxsize=1)
def _manifest() -> dict[str, KernelSignature]:
    data = json.loads(manifest_path().read_text())
    out = {}
    for k in data["kernels"]:
        args = [KernelArg(a["name"], a["role"]) for a in k["args"]]
        out[k["name"]] = KernelSignature(name=k["name"], template=k["template"],
                                         inputs=tuple(a for a in args if not a.is_output),
                                         outputs=tuple(a for a in args if a.is_output), sizes=tuple(k["sizes"]))
    return out


def all_signatures() -> tuple[KernelSignature, ...]:
    """Every shipped kernel, in the manifest's (fixed) order."""
    return tuple(_manifest().values())


def get_signature(name: str) -> KernelSignature:
    """The signature of kernel ``name``; :class:`InputError` naming the known kernels otherwise."""
    sigs = _manifest()
    if name not in sigs:
        raise InputError("kernel", f"one of {sorted(sigs)}", repr(name))
    return sigs[name]


def function_name(name: str, dtype: str) -> str:
    """The C function of kernel ``name`` in ``dtype``: ``vl_<name>_f32`` or ``vl_<name>_f64``."""
    if dtype not in SUFFIX:
        raise InputError(f"{name}.dtype", "'float32' or 'float64'", repr(dtype))
    return f"vl_{name}_{SUFFIX[dtype]}"


def kernel_text(name: str) -> str:
    """The committed text of ``cuda/<name>.cu`` (both dtype variants)."""
    get_signature(name)
    return (kernel_dir() / f"{name}.cu").read_text()


def module_source() -> str:
    """Every shipped kernel file concatenated in manifest order: the source of the CuPy ``RawModule``."""
    return "\n".join(kernel_text(s.name) for s in all_signatures())
