"""Printer, specs, templates, committed kernel files (drift) and nvcc compilation."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import sympy as sp

from verified_lora.codegen.emit import check_dir, default_kernel_dir, manifest_text, module_source, render_file
from verified_lora.codegen.printer import CudaPrinter, print_block
from verified_lora.codegen.specs import Arg, KernelSpec, all_specs, get_spec
from verified_lora.errors import CodegenError

GPU_DIR = default_kernel_dir()
x, y, z = sp.symbols("x y z", real=True)


# ---------------------------------------------------------------------------- printer
def test_printer_dtype_suffixes_and_expanded_powers():
    e = sp.exp(x - y) / (x - y) ** 3 + sp.Rational(1, 3) * z**2
    f32 = "\n".join(print_block([("o", e)], "float32", allowed={x, y, z}, where="t").lines)
    f64 = "\n".join(print_block([("o", e)], "float64", allowed={x, y, z}, where="t").lines)
    assert "expf(" in f32 and "1.0F/3.0F" in f32 and "const float" in f32
    assert "exp(" in f64 and "expf" not in f64 and "1.0/3.0" in f64 and "const double" in f64
    assert "pow" not in f32 + f64  # x**3 and z**2 are expanded into products
    assert "t0*t0*t0" in f32 and "z*z" in f32


def test_cse_is_canonical_and_counts_ops():
    e1, e2 = sp.exp(x - y) * z, sp.exp(x - y) + z
    a = print_block([("o1", e1), ("o2", e2)], "float64", allowed={x, y, z}, where="t")
    b = print_block([("o1", e1), ("o2", e2)], "float64", allowed={x, y, z}, where="t")
    assert a == b
    assert a.lines[0].startswith("const double t0 = exp(")  # the shared exp is computed once
    assert a.ops == 4  # exp, -, *, +  after CSE


def test_max_prints_nested_fmax():
    assert CudaPrinter("float32").doprint(sp.Max(x, y, z)) == "fmaxf(fmaxf(x, y), z)"


@pytest.mark.parametrize("expr, match", [
    (x * sp.Float(0.1), "floating constant"),
    (sp.sin(x), "function sin"),
    (x + sp.Symbol("unknown", real=True), "not a kernel argument"),
    (x ** sp.Rational(1, 3), "exponent 1/3"),
    (sp.Piecewise((x, x > 0), (y, True)), "not supported"),
    (sp.I * x, "I cannot appear"),
    (sp.MatrixSymbol("M", 2, 2)[0, 0] + x, "not a kernel argument|matrix"),
])
def test_unsupported_expressions_raise_codegen_error(expr, match):
    with pytest.raises(CodegenError, match=match):
        print_block([("o", expr)], "float64", allowed={x, y, z}, where="test")


def test_unknown_dtype_raises():
    with pytest.raises(CodegenError, match="dtype"):
        CudaPrinter("float16")


# ---------------------------------------------------------------------------- specs
def test_spec_validation():
    with pytest.raises(CodegenError, match="unknown template"):
        KernelSpec("k", "nope", "residual", (Arg("fv", "entry"),), (Arg("c", "out_entry"),), "", "")
    with pytest.raises(CodegenError, match="role"):
        Arg("a", "sideways")
    with pytest.raises(CodegenError, match="duplicate"):
        KernelSpec("k", "elementwise", "residual", (Arg("c", "entry"),), (Arg("c", "out_entry"),), "", "")
    with pytest.raises(CodegenError, match="unknown kernel"):
        get_spec("no_such_kernel")


def test_spec_whose_form_does_not_match_outputs_is_refused():
    from verified_lora.codegen.templates import render_kernel

    bad = KernelSpec("bad", "elementwise", "residual", (Arg("fv", "entry"), Arg("y", "entry")),
                     (Arg("wrong", "out_entry"),), "", "")
    with pytest.raises(CodegenError, match="writes"):
        render_kernel(bad, "float64")


def test_every_form_is_used_by_a_kernel_and_proved():
    from verified_lora.symbolic.elementwise import forms
    from verified_lora.symbolic.elementwise_proofs import PROOFS

    used = {n for s in all_specs() for n in s.form.split("+")}
    assert used == set(forms()) == set(PROOFS)


# ---------------------------------------------------------------------------- committed files
def test_no_drift_between_specs_and_committed_kernels():
    drifts = check_dir(GPU_DIR)
    assert not drifts, "\n".join(f"{d.status}: {d.path}\n{d.diff}" for d in drifts) + \
        "\nrun `verified-lora kernels --update` and commit verified_lora/kernels/cuda/"


def test_drift_is_detected(tmp_path):
    for spec in all_specs():
        (tmp_path / f"{spec.name}.cu").write_text(render_file(spec))
    (tmp_path / "manifest.json").write_text(manifest_text())
    victim = tmp_path / "residual.cu"
    victim.write_text(victim.read_text().replace("v_fv - v_y", "v_fv + v_y"))
    (tmp_path / "stray.cu").write_text("// not generated\n")
    (tmp_path / "kron_rows_t.cu").unlink()
    status = {d.path.name: d.status for d in check_dir(tmp_path)}
    assert status == {"residual.cu": "changed", "stray.cu": "extra", "kron_rows_t.cu": "missing"}


def test_rendering_is_deterministic_across_hash_seeds():
    code = ("import hashlib; from verified_lora.codegen.emit import module_source; "
            "print(hashlib.sha256(module_source().encode()).hexdigest())")
    digests = set()
    for seed in ("1", "2"):
        env = dict(os.environ, PYTHONHASHSEED=seed)
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
        digests.add(out.stdout.strip())
    digests.add(hashlib.sha256(module_source().encode()).hexdigest())
    assert len(digests) == 1


@pytest.mark.parametrize("spec", all_specs(), ids=lambda s: s.name)
def test_committed_file_header_and_structure(spec):
    text = (GPU_DIR / f"{spec.name}.cu").read_text()
    assert text.startswith("// GENERATED FILE - DO NOT EDIT.")
    assert f"verified_lora.codegen.specs:{spec.name} " in text
    assert f"// sha256:     {spec.expression_hash()}" in text
    assert re.search(r"// op count:   float32 \d+, float64 \d+", text)
    for suffix in ("f32", "f64"):
        assert f'extern "C" __global__ void vl_{spec.name}_{suffix}(' in text
    assert "__restrict__" in text and "gridDim.x" in text
    code = "\n".join(line for line in text.splitlines() if not line.startswith("//"))
    for forbidden in ("__syncthreads", "__shared__", "atomic", "__shfl"):
        assert forbidden not in code
    inputs = [a for a in spec.inputs if a.role not in ("scalar", "int_table")]
    for a in inputs:
        assert re.search(rf"const (float|double)\* __restrict__ {a.name}\b", text)


def test_expression_hash_changes_with_the_math():
    spec = get_spec("residual")
    other = KernelSpec("residual", "elementwise", "kron_rows_t", (Arg("a", "entry"), Arg("b", "entry")),
                       (Arg("o", "out_entry"),), "", "")
    assert spec.expression_hash() != other.expression_hash()


# ---------------------------------------------------------------------------- nvcc
@pytest.mark.nvcc
def test_every_kernel_compiles_with_nvcc(tmp_path, monkeypatch):
    """nvcc -ptx -arch=sm_90 on the committed files (fresh cache: nothing is taken from earlier runs)."""
    from verified_lora.codegen.report import nvcc_compile

    monkeypatch.setenv("VERIFIED_LORA_CACHE", str(tmp_path))
    results = nvcc_compile(GPU_DIR)
    assert len(results) == len(all_specs()) == len(list(GPU_DIR.glob("*.cu")))
    assert all(r.ok and r.message == "compiled" for r in results), [(r.name, r.message) for r in results if not r.ok]
    assert len(list(tmp_path.glob("nvcc-*.ok"))) == len(results)


@pytest.mark.nvcc
def test_nvcc_failure_is_attributed_to_its_file(tmp_path, monkeypatch):
    from verified_lora.codegen.report import nvcc_compile

    monkeypatch.setenv("VERIFIED_LORA_CACHE", str(tmp_path / "cache"))
    src = tmp_path / "gpu"
    src.mkdir()
    for spec in all_specs()[:2]:
        (src / f"{spec.name}.cu").write_text(render_file(spec))
    broken = src / f"{all_specs()[1].name}.cu"
    broken.write_text(broken.read_text().replace("const long long n_cols)", "const long long n_cols", 1))
    results = nvcc_compile(src, names=[s.name for s in all_specs()[:2]])
    assert [r.ok for r in results] == [True, False] and "error" in results[1].message


# ---------------------------------------------------------------------------- CLI and verify
def test_kernels_command_exit_codes(tmp_path, capsys):
    from verified_lora.cli import main

    assert main(["kernels", "--update", "--dir", str(tmp_path), "-q"]) == 0
    assert main(["kernels", "--check", "--dir", str(tmp_path), "-q"]) == 0
    assert "drift check: clean" in capsys.readouterr().out
    victim = tmp_path / "softmax_rows.cu"
    victim.write_text(victim.read_text().replace("fmaxf(", "fminf("))
    assert main(["kernels", "--check", "--dir", str(tmp_path), "-q"]) == 1
    out = capsys.readouterr().out
    assert "drift check: FAIL" in out and "+++ generated/softmax_rows.cu" in out


def test_verify_section_reports_every_check():
    from verified_lora.verify.kernels import kernels_section

    section = kernels_section(None, lambda msg: None)
    verdicts = {c.name: c.verdict for c in section.checks}
    assert verdicts["kernels/cuda/*.cu match the specs (drift)"] == "PASS"
    assert verdicts["CPU-run kernels vs mpmath, float64"] == "PASS"
    assert verdicts["CPU-run kernels vs mpmath, float32"] == "PASS"
    assert verdicts["nvcc -ptx -arch=sm_90"] == ("PASS" if shutil.which("nvcc") else "SKIP")
    from verified_lora import kernels as gpu

    assert verdicts[next(n for n in verdicts if n.startswith("GPU kernels"))] == ("PASS" if gpu.available() else "SKIP")
