"""``import verified_lora`` and its numerical modules stay light: no torch, cupy, matplotlib or
python-flint at import time (they are optional extras, imported lazily when a feature needs them).

Checked in a fresh interpreter, since other tests legitimately import those frameworks."""

from __future__ import annotations

import subprocess
import sys

import pytest

HEAVY = ("torch", "cupy", "matplotlib", "flint")
MODULES = ["verified_lora", "verified_lora.exact", "verified_lora.reference", "verified_lora.fast",
           "verified_lora.bounds", "verified_lora.approx", "verified_lora.features",
           "verified_lora.audit", "verified_lora.kernels", "verified_lora.verify", "verified_lora.cli",
           "verified_lora.numerics.rounding", "verified_lora.numerics.intervals"]


@pytest.mark.parametrize("module", MODULES)
def test_module_imports_no_optional_framework(module):
    code = (f"import sys, importlib; importlib.import_module({module!r}); "
            f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "", f"importing {module} imported {out}"


def test_top_level_import_is_numpy_only():
    code = "import sys, verified_lora; print(','.join(m for m in ('sympy', 'mpmath') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "", f"import verified_lora imported {out}"
