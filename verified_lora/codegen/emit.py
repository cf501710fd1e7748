"""Render kernel files and their manifest, write them into the runtime package and detect drift.

Build time only: the files land in ``verified_lora/kernels/cuda/`` (package data), where
:mod:`verified_lora.kernels` loads them without SymPy. ``manifest.json`` beside them holds each
kernel's template, arguments (name, role) and size parameters, generated from the same specs.

A kernel file holds the float32 and float64 variants of one :class:`KernelSpec` behind a
do-not-edit header that names the spec, the sha256 of the SymPy expressions it prints
(:meth:`KernelSpec.expression_hash`) and the op count. Rendering is a pure function of the
specs and the SymPy version's printer, so regenerating gives the same bytes.
"""

from __future__ import annotations

import difflib
import json
import textwrap
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from ..errors import CodegenError
from ..kernels.manifest import kernel_dir
from .specs import KernelSpec, all_specs, get_spec
from .templates import render_kernel

__all__ = ["DTYPES", "MANIFEST", "default_kernel_dir", "render_file", "kernel_source", "module_source",
           "manifest_text", "Drift", "check_dir", "write_dir", "op_counts"]

DTYPES = ("float32", "float64")
MANIFEST = "manifest.json"


def default_kernel_dir() -> Path:
    """``verified_lora/kernels/cuda/``: the shipped kernel files (package data)."""
    return kernel_dir()


@lru_cache(maxsize=None)
def _rendered(name: str) -> tuple[str, dict[str, int]]:
    spec = get_spec(name)
    texts, ops = [], {}
    for dtype in DTYPES:
        text, n = render_kernel(spec, dtype)
        texts.append(text)
        ops[dtype] = n
    return "\n".join(texts), ops


def op_counts(spec: KernelSpec) -> dict[str, int]:
    """Arithmetic operations and calls printed in each dtype variant (after CSE)."""
    return dict(_rendered(spec.name)[1])


def _header(spec: KernelSpec, ops: dict[str, int]) -> str:
    args = "\n".join(f"//   {a.name:<8} {a.role:<10} {a.doc}".rstrip() for a in spec.args)
    sizes = ", ".join(spec.sizes)
    doc = "\n".join("// " + line for line in textwrap.wrap(spec.doc, 96))
    return (
        "// GENERATED FILE - DO NOT EDIT. Regenerate with `verified-lora kernels --update`.\n"
        f"// spec:       verified_lora.codegen.specs:{spec.name} (template {spec.template!r}, used by {spec.used_by})\n"
        f"// form:       verified_lora.symbolic.elementwise:{spec.form}\n"
        f"// sha256:     {spec.expression_hash()} (SymPy expressions printed)\n"
        f"// op count:   {', '.join(f'{d} {n}' for d, n in ops.items())} (arithmetic ops and calls after CSE)\n"
        f"{doc}\n"
        f"// arguments (then the sizes {sizes}, as const long long):\n{args}\n"
        "// Grid-stride loops with bound checks, no __syncthreads: the CPU shim runs this text unchanged.\n"
    )


def render_file(spec: KernelSpec) -> str:
    """The complete text of ``kernels/cuda/<name>.cu``."""
    body, ops = _rendered(spec.name)
    return _header(spec, ops) + "\n" + body


def kernel_source(name: str) -> str:
    """Generated text of one kernel file (both dtypes), from the specs, without touching disk."""
    return render_file(get_spec(name))


def module_source() -> str:
    """Every kernel file concatenated: the source of the CuPy ``RawModule``."""
    return "\n".join(render_file(s) for s in all_specs())


def manifest_text() -> str:
    """``manifest.json``: per kernel (in file order) its template, arguments and size parameters."""
    kernels = [{"name": s.name, "template": s.template,
                "args": [{"name": a.name, "role": a.role} for a in s.args], "sizes": list(s.sizes),
                "functions": {d: f"vl_{s.name}_{'f32' if d == 'float32' else 'f64'}" for d in DTYPES}}
               for s in all_specs()]
    return json.dumps({"generated_by": "verified-lora kernels --update", "kernels": kernels}, indent=1) + "\n"


def _expected_files() -> dict[str, str]:
    out = {f"{spec.name}.cu": render_file(spec) for spec in all_specs()}
    out[MANIFEST] = manifest_text()
    return out


@dataclass(frozen=True)
class Drift:
    """One file whose committed text differs from the generated text (or is missing / extra)."""

    path: Path
    status: str  # "changed", "missing", "extra"
    diff: str = ""


def check_dir(directory: Path | None = None) -> list[Drift]:
    """Compare every generated kernel (and the manifest) with ``directory``; return the differences."""
    directory = Path(directory) if directory is not None else default_kernel_dir()
    if not directory.is_dir():
        raise CodegenError(f"kernel directory {directory} does not exist; run `verified-lora kernels --update` "
                           f"from a source checkout, or pass --dir")
    drifts = []
    expected = _expected_files()
    for name, text in expected.items():
        path = directory / name
        if not path.exists():
            drifts.append(Drift(path, "missing"))
            continue
        committed = path.read_text()
        if committed != text:
            diff = "".join(difflib.unified_diff(committed.splitlines(True), text.splitlines(True),
                                                f"committed/{path.name}", f"generated/{path.name}"))
            drifts.append(Drift(path, "changed", diff))
    for path in sorted(directory.glob("*.cu")):
        if path.name not in expected:
            drifts.append(Drift(path, "extra"))
    return drifts


def write_dir(directory: Path | None = None) -> list[Path]:
    """(Re)write every kernel file and the manifest; return the paths whose content changed."""
    directory = Path(directory) if directory is not None else default_kernel_dir()
    directory.mkdir(parents=True, exist_ok=True)
    changed = []
    for name, text in _expected_files().items():
        path = directory / name
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
            changed.append(path)
    return changed
