"""The report layer stays outside the domain: verify/ and cli/ import the domain packages, never the
reverse; verify sections load lazily; shared CLI flags are declared once; ``python -m verified_lora`` works."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

import verified_lora
from verified_lora._lazy import lazy_exports
from verified_lora.verify import SECTION_PROVIDERS

PKG = Path(verified_lora.__file__).resolve().parent
REPORT_LAYER = ("verify", "cli")


def _imports(path: Path) -> set[str]:
    """Absolute names of every module ``path`` imports (function-level imports included)."""
    rel = path.relative_to(PKG.parent).with_suffix("")
    parts = list(rel.parts[:-1] if rel.name == "__init__" else rel.parts)
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = parts if rel.name == "__init__" else parts[:-1]
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            out.add(base)
            out.update(f"{base}.{a.name}" for a in node.names)
    return out


def test_no_domain_module_imports_the_report_layer():
    offenders = []
    for path in PKG.rglob("*.py"):
        top = path.relative_to(PKG).parts[0]
        if top in REPORT_LAYER or top == "__main__.py":
            continue
        bad = sorted(m for m in _imports(path) if m.startswith(("verified_lora.verify", "verified_lora.cli")))
        if bad:
            offenders.append(f"{path.relative_to(PKG)}: {bad}")
    assert not offenders, offenders


def test_sections_load_lazily_and_resolve():
    code = ("import sys, verified_lora.verify; "
            "print(','.join(m for m in sys.modules if m.startswith(('verified_lora.verify.foundation', "
            "'verified_lora.verify.proofs', 'verified_lora.verify.bounds', 'verified_lora.verify.fast', "
            "'verified_lora.verify.audit', 'verified_lora.verify.kernels', 'verified_lora.bounds', "
            "'verified_lora.audit', 'verified_lora.symbolic', 'verified_lora.codegen', 'sympy', 'mpmath'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "", f"importing verified_lora.verify imported {out}"
    assert len({title for title, _ in SECTION_PROVIDERS}) == len(SECTION_PROVIDERS) == 6
    for _title, spec in SECTION_PROVIDERS:
        module, func = spec.split(":")
        assert module.startswith("verified_lora.verify.") and callable(getattr(importlib.import_module(module), func))


def test_shared_flags_are_declared_once():
    counts: dict[str, int] = {}
    for path in (PKG / "cli").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "add_argument" and node.args:
                first = node.args[0]
                if isinstance(first, ast.Constant) and first.value in ("-q", "--json", "--markdown"):
                    counts[first.value] = counts.get(first.value, 0) + 1
    assert counts == {"-q": 1, "--json": 1, "--markdown": 1}


def test_python_dash_m_runs_the_cli():
    out = subprocess.run([sys.executable, "-m", "verified_lora", "--version"], capture_output=True, text=True,
                         check=True, cwd=PKG.parent).stdout.strip()
    assert out == f"verified-lora {verified_lora.__version__}"
    bad = subprocess.run([sys.executable, "-m", "verified_lora", "no-such-command"], capture_output=True,
                         text=True, cwd=PKG.parent)
    assert bad.returncode == 2 and "invalid choice" in bad.stderr


def test_lazy_exports():
    import verified_lora.bounds as bounds

    assert bounds.score_bound is importlib.import_module("verified_lora.bounds.score").score_bound
    assert verified_lora.exact is importlib.import_module("verified_lora.exact")
    getter = lazy_exports("verified_lora.bounds", {"score_bound": "score"}, submodules=("cost",))
    assert getter("cost") is importlib.import_module("verified_lora.bounds.cost")
    with pytest.raises(AttributeError, match="'verified_lora.bounds' has no attribute 'nothing'"):
        getter("nothing")
    with pytest.raises(AttributeError, match="'verified_lora' has no attribute 'nothing'"):
        verified_lora.nothing  # noqa: B018
