"""Kernel checks for the CLI (``verified-lora kernels``) and the verify section (:mod:`verified_lora.verify.kernels`).

* :func:`drift` - committed ``kernels/cuda/*.cu`` (and ``manifest.json``) vs the text regenerated from the specs;
* :func:`nvcc_compile` - ``nvcc -ptx -arch=sm_90`` on every kernel file (cached by source hash);
* :func:`accuracy_rows` - CPU-executed kernels against the mpmath references (see accuracy.py);
* :func:`gpu_rows` - the same kernels through CuPy on a GPU, when one is usable;
* :func:`kernels_command` - ``verified-lora kernels``.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .emit import check_dir, default_kernel_dir
from .specs import all_specs

__all__ = ["NVCC_FLAGS", "NvccResult", "nvcc_compile", "gpu_rows", "kernels_command"]

NVCC_FLAGS = ("-ptx", "-arch=sm_90")


@dataclass(frozen=True)
class NvccResult:
    """Outcome of compiling one kernel file (``ok is None``: nvcc missing)."""

    name: str
    ok: bool | None
    message: str = ""


def nvcc_compile(directory: Path | None = None, names: list[str] | None = None) -> list[NvccResult]:
    """Compile each ``kernels/cuda/<name>.cu`` with ``nvcc -ptx -arch=sm_90``; successes are cached by sha256.

    One nvcc invocation compiles every file not yet in the cache. Returns one result per kernel
    (``ok=None`` with the reason when nvcc is not on PATH).
    """
    from ..kernels.cpu import cache_dir

    directory = Path(directory) if directory is not None else default_kernel_dir()
    specs = [s for s in all_specs() if not names or s.name in names]
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        return [NvccResult(s.name, None, "nvcc is not on PATH") for s in specs]
    version = subprocess.run([nvcc, "--version"], capture_output=True, text=True).stdout.strip().splitlines()[-1:]
    results: dict[str, NvccResult] = {}
    todo: list[tuple[str, Path, Path]] = []
    for s in specs:
        path = directory / f"{s.name}.cu"
        if not path.exists():
            results[s.name] = NvccResult(s.name, False, f"{path} is missing")
            continue
        key = hashlib.sha256((path.read_text() + " ".join(NVCC_FLAGS) + "".join(version)).encode()).hexdigest()[:24]
        marker = cache_dir() / f"nvcc-{s.name}-{key}.ok"
        if marker.exists():
            results[s.name] = NvccResult(s.name, True, "cached")
        else:
            todo.append((s.name, path, marker))
    if todo:
        with tempfile.TemporaryDirectory() as tmp:
            # one translation unit including every file (one nvcc process); per file only on failure
            bundle = Path(tmp) / "bundle.cu"
            bundle.write_text("".join(f'#include "{p}"\n' for _, p, _ in todo))
            proc = subprocess.run([nvcc, *NVCC_FLAGS, "-o", str(Path(tmp) / "bundle.ptx"), str(bundle)],
                                  capture_output=True, text=True)
            ptx = (Path(tmp) / "bundle.ptx").read_text() if proc.returncode == 0 else ""
            for name, path, marker in todo:
                if proc.returncode == 0:
                    ok, message = f".entry vl_{name}_f64" in ptx and f".entry vl_{name}_f32" in ptx, "compiled"
                else:
                    one = subprocess.run([nvcc, *NVCC_FLAGS, "-o", str(Path(tmp) / f"{name}.ptx"), str(path)],
                                         capture_output=True, text=True)
                    ok, message = one.returncode == 0, one.stderr[-2000:] or "compiled"
                if ok:
                    marker.write_text("ok\n")
                results[name] = NvccResult(name, ok, message if ok else message or "entry points missing")
    return [results[s.name] for s in specs]


def gpu_rows(samples: int = 2):
    """Kernels through CuPy vs the mpmath reference with the CUDA libm figures; [] without a GPU."""
    from .. import kernels as gpu
    from .accuracy import KernelAccuracy, measure, sample_inputs

    if not gpu.available():
        return []
    rows = []
    for spec in all_specs():
        for dtype in ("float64", "float32"):
            worst: dict[str, list[float]] = {}
            for seed in range(samples):
                inputs = sample_inputs(spec.name, dtype, seed, rows=64, cols=33, d=3, g=3)
                for key, vals in measure(spec.name, dtype, inputs, runner="gpu").items():
                    w = worst.setdefault(key, [0.0, 0.0, 0.0])
                    worst[key] = [max(a, b) for a, b in zip(w, vals)]
            rows += [KernelAccuracy(spec.name, k, dtype, *v, samples) for k, v in worst.items()]
    return rows


def kernels_command(*, check: bool = False, update: bool = False, directory: str | None = None,
                    accuracy: bool = False, samples: int = 4, nvcc: bool = False, progress=None, out=print) -> int:
    """``verified-lora kernels``: list, drift-check, update, compile and measure the kernels.

    Returns the exit code: 1 on drift (``--check``), a failed compile (``--nvcc``) or an error
    above its bound (``--accuracy``); 0 otherwise.
    """
    from .._table import format_table
    from .emit import op_counts, write_dir

    progress = progress or (lambda msg: None)
    path = Path(directory) if directory else default_kernel_dir()
    code = 0
    if update:
        changed = write_dir(path)
        out(f"wrote {len(changed)} changed file(s) under {path}" + "".join(f"\n  {p}" for p in changed))
    progress("regenerating kernels and diffing against " + str(path))
    drifts = check_dir(path) if path.is_dir() else []
    status = {d.path.stem: d.status for d in drifts}
    rows = [(s.name, s.template, s.used_by, op_counts(s)["float32"], op_counts(s)["float64"],
             s.expression_hash()[:12], status.get(s.name, "ok") if path.is_dir() else "no kernel dir")
            for s in all_specs()]
    out(format_table(("kernel", "template", "used by", "ops f32", "ops f64", "sha256", "file"), rows,
                     title=f"{len(rows)} kernels (float32 + float64 each) in {path}"))
    extra = [d for d in drifts if d.status == "extra"]
    for d in extra:
        out(f"extra file not produced by any spec: {d.path}")
    if check:
        if not path.is_dir():
            out(f"drift check: {path} does not exist")
            code = 1
        elif drifts:
            for d in drifts:
                out(d.diff or f"{d.path}: {d.status}")
            out(f"drift check: FAIL ({len(drifts)} file(s) differ); run `verified-lora kernels --update`")
            code = 1
        else:
            out("drift check: clean (every committed kernel is byte-identical to its regeneration)")
    if nvcc:
        progress("nvcc -ptx -arch=sm_90")
        results = nvcc_compile(path)
        if all(r.ok is None for r in results):
            out(f"nvcc: SKIP ({results[0].message})")
        else:
            bad = [r for r in results if not r.ok]
            out(f"nvcc -ptx -arch=sm_90: {len(results) - len(bad)}/{len(results)} kernels compile")
            for r in bad:
                out(f"  {r.name}: {r.message}")
            code = code or (1 if bad else 0)
    if accuracy:
        from .accuracy import accuracy_table

        table = accuracy_table(samples, progress=progress)
        out(format_table(("kernel", "output", "dtype", "max ulp", "max rel err", "err / bound", "samples"),
                         [(r.kernel, r.output, r.dtype, r.max_ulp, r.max_rel, r.max_bound_ratio, r.samples)
                          for r in table],
                         title="CPU-executed kernels (g++ + CUDA shim) vs mpmath dps 40; bound = "
                               "KERNEL_BOUND_FACTOR * u * running-error bound"))
        code = code or (0 if all(r.passed for r in table) else 1)
    return code
