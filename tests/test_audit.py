"""``verified_lora.audit``: real PEFT and loralib pass, each broken variant fails exactly its check.

Needs torch (and peft/loralib for their tests); skipped with the reason when they are missing.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch")

from verified_lora.testing import broken_lora as bl  # noqa: E402
from verified_lora import AuditError  # noqa: E402
from verified_lora.audit import assert_lora_module_ok, audit  # noqa: E402
from verified_lora.audit.pytest_plugin import lora_audit  # noqa: E402,F401  (the fixture under test)
from verified_lora.cli import main  # noqa: E402

EXAMPLES = 2


def _failed(report) -> set[str]:
    return {r.check for r in report.failures}


def _applicable(report) -> set[str]:
    return {r.check for r in report.results if r.passed is not None}


def test_importing_the_audit_does_not_import_torch():
    code = ("import sys, verified_lora, verified_lora.audit, verified_lora.audit.pytest_plugin; "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


# ----------------------------------------------------------------------------- layout mapping
def test_layout_mapping_torch_to_paper():
    """X W^T + s X A^T B^T == X (W_p + s B_p A_p) with W_p = W^T, B_p = lora_A^T, A_p = lora_B^T."""
    from verified_lora.audit.adapters import detect_layer, to_paper

    layer = bl.GoodLoraLinear(5, 3, r=2, alpha=3.0, bias=False).double()
    view = detect_layer(layer)
    rng = np.random.default_rng(0)
    view.write(rng.standard_normal((3, 5)), None, [(rng.standard_normal((2, 5)), rng.standard_normal((3, 2)), None)])
    paper = to_paper(view.read())
    assert paper["w"].shape == (5, 3) and paper["b"].shape == (5, 2) and paper["a"].shape == (2, 3)
    np.testing.assert_array_equal(paper["b"], layer.lora_A.detach().numpy().T)
    np.testing.assert_array_equal(paper["a"], layer.lora_B.detach().numpy().T)
    x = rng.standard_normal((4, 5))
    y_paper = x @ (paper["w"] + layer.scaling * paper["b"] @ paper["a"])
    y_torch = layer(torch.from_numpy(x)).detach().numpy()
    np.testing.assert_allclose(y_torch, y_paper, rtol=0, atol=1e-13)


def test_attention_mapping_matches_lora_attention_weights():
    """The mapped problem's effective weights are the torch module's merged weights, transposed."""
    from verified_lora.audit.attention import attention_problem

    torch.manual_seed(0)
    module = bl.attention_good(d_model=5, d_head=4, d_v=3, r=2, alpha=3.0, bias=False).double()
    for proj in (module.q_proj, module.v_proj):
        torch.nn.init.normal_(proj.lora_B)
    x, y = np.random.default_rng(1).standard_normal((2, 6, 5))[0], np.zeros((6, 3))
    problem, info = attention_problem(module, x, y)
    for key, proj in (("Q", module.q_proj), ("V", module.v_proj)):
        merged = (proj.weight + proj.scaling * proj.lora_B @ proj.lora_A).detach().numpy()
        np.testing.assert_allclose(problem.weight(key), merged.T, rtol=0, atol=1e-14)
    k = module.k_proj
    np.testing.assert_allclose(problem.weight("K"), (k.weight + k.alpha / k.rank * k.lora_b.weight @ k.lora_a.weight)
                               .detach().numpy().T, rtol=0, atol=1e-14)
    assert set(info) == {"Q", "K", "V"}


# ----------------------------------------------------------------------------- real libraries
def test_real_peft_passes_every_applicable_check():
    pytest.importorskip("peft")
    report = audit("peft", examples=EXAMPLES)
    assert report.passed, report.to_text()
    not_applicable = {r.check for r in report.results if r.passed is None}
    assert not_applicable <= {"qkv_slices", "embed_scale", "dora_bias", "dora_norm", "grad_magnitude"}
    assert {"forward", "grad_A", "grad_B", "grad_input", "scaling", "merge_forward", "merge_roundtrip",
            "double_merge", "dropout", "layout", "input_unchanged", "precision_bfloat16", "precision_mixed",
            "attention_grads",
            "attention_loss"} <= _applicable(report)
    assert {"peft Linear", "peft attention LoRA on q,v", "peft attention LoRA on q,k,v"} <= set(report.cases())


def test_real_loralib_passes_every_applicable_check():
    pytest.importorskip("loralib")
    report = audit("loralib", examples=EXAMPLES)
    assert report.passed, report.to_text()
    assert "qkv_slices" in _applicable(report)  # MergedLinear with partial enable_lora masks
    # loralib multiplies a bfloat16 input by float32 adapters without casting: it cannot run mixed
    assert {r.check for r in report.results if r.passed is None} <= {"qkv_slices", "precision_mixed", "embed_scale",
                                                                     "dora_bias", "dora_norm", "grad_magnitude"}


# ----------------------------------------------------------------------------- broken variants
@pytest.mark.parametrize("name", sorted(bl.BROKEN))
def test_broken_variant_fails_exactly_its_check(name):
    report = audit(f"verified_lora.testing.broken_lora:{name}", examples=EXAMPLES)
    assert _failed(report) == {bl.BROKEN[name]}, report.to_text()


@pytest.mark.parametrize("name", sorted(bl.BROKEN_ATTENTION))
def test_broken_attention_fails_only_attention_checks(name):
    report = audit(f"verified_lora.testing.broken_lora:{name}", examples=EXAMPLES)
    assert _failed(report) == bl.BROKEN_ATTENTION[name], report.to_text()


@pytest.mark.parametrize("name", bl.GOOD)
def test_correct_controls_pass(name):
    report = audit(f"verified_lora.testing.broken_lora:{name}", examples=EXAMPLES)
    assert report.passed, report.to_text()


@settings(max_examples=4)
@given(seed=st.integers(0, 2**31 - 1))
def test_verdicts_hold_for_any_seed(seed):
    assert audit(bl.good, seed=seed, examples=1).passed
    assert _failed(audit(bl.wrong_backward, seed=seed, examples=1)) == {"grad_B"}


def test_torchtune_layout_is_detected_and_has_no_merge():
    report = audit("verified_lora.testing.broken_lora:torchtune_style", examples=1)
    merge = [r for r in report.results if r.check == "merge_forward"][0]
    assert merge.passed is None and "no in-module merge" in merge.detail
    assert report.passed


def test_degenerate_fixture_is_noted():
    report = audit("verified_lora.testing.broken_lora:fixed_shape_good", examples=1)
    assert report.passed
    degenerate = audit(lambda: bl.GoodLoraLinear(4, 4, 2, 2.0, True), examples=1)
    notes = " ".join(n for ns in degenerate.notes.values() for n in ns)
    assert "alpha == r" in notes and "square" in notes


# ----------------------------------------------------------------------------- bad targets
@pytest.mark.parametrize("target, message", [
    ("no_such_module_xyz:factory", "not importable"),
    ("verified_lora.testing.broken_lora:does_not_exist", "has no attribute"),
    ("verified_lora.testing.broken_lora:not_callable", "not callable"),
    ("verified_lora.testing.broken_lora:no_lora", "no LoRA layers found"),
    ("verified_lora.testing.broken_lora:attention_without_beta", "unsupported convention"),
    ("justaname", "expected 'peft', 'loralib' or 'module.path:factory'"),
])
def test_bad_targets_raise_clear_audit_errors(target, message):
    with pytest.raises(AuditError, match=message):
        audit(target, examples=1)


def test_bad_target_exit_code_and_bad_arguments(capsys):
    assert main(["audit", "verified_lora.testing.broken_lora:no_lora", "-q"]) == 2
    assert "no LoRA layers found" in capsys.readouterr().err
    with pytest.raises(AuditError, match="examples"):
        audit(bl.good, examples=0)
    with pytest.raises(AuditError, match="unknown check"):
        audit(bl.good, examples=1, checks=["nonsense"])


# ----------------------------------------------------------------------------- outputs
def test_cli_json_markdown_table_and_exit_codes(capsys):
    assert main(["audit", "verified_lora.testing.broken_lora:wrong_scale", "--json", "--examples", "1", "-q"]) == 1
    data = json.loads(capsys.readouterr().out)
    checks = {c["check"]: c for case in data["cases"] for c in case["checks"]}
    assert data["passed"] is False and checks["scaling"]["verdict"] == "FAIL"
    assert checks["forward"]["verdict"] == "PASS" and checks["forward"]["max_error"] <= checks["forward"]["bound"]
    assert "scale convention" in checks["scaling"]["bug_classes"]
    assert main(["audit", "verified_lora.testing.broken_lora:good", "--markdown", "--examples", "1", "-q",
                 "--check", "forward", "--check", "scaling"]) == 0
    md = capsys.readouterr().out
    assert md.startswith("# verified-lora audit") and "| forward | PASS |" in md
    assert main(["audit", "verified_lora.testing.broken_lora:good", "--examples", "1", "-q", "--check", "grad_A"]) == 0
    text = capsys.readouterr().out
    assert "check" in text and "allowed bound" in text and "grad_A" in text and "verdict: PASS" in text


def test_lora_audit_fixture(lora_audit):  # noqa: F811
    report = lora_audit("verified_lora.testing.broken_lora:good", examples=1)
    assert report.passed
    with pytest.raises(AssertionError, match="scaling FAILED"):
        lora_audit(bl.wrong_scale, examples=1)


def test_assert_lora_module_ok_accepts_callables():
    assert assert_lora_module_ok(bl.custom_backward, examples=1).passed


def test_verify_section_audits_installed_libraries():
    from verified_lora.verify.audit import audit_section as verify_section

    section = verify_section(None, lambda msg: None)
    assert section.passed
    names = [c.name for c in section.checks]
    for lib in ("peft", "loralib"):
        try:
            __import__(lib)
        except Exception:
            assert any(n == f"audit {lib}" for n in names)  # SKIP line with the reason
        else:
            assert f"{lib} forward" in names and f"{lib} grad_A" in names


def test_peft_dora_on_an_embedding_is_refused_in_one_line():
    """PEFT DoRA on Linear is audited (tests/test_audit_variants.py); its embedding variant is not yet."""
    pytest.importorskip("peft")
    from peft import LoraConfig, inject_adapter_in_model

    from verified_lora.audit.adapters import detect_layer
    from verified_lora.audit.torch_models import Holder

    cfg = LoraConfig(r=2, lora_alpha=3, target_modules=["proj"], use_dora=True)
    layer = inject_adapter_in_model(cfg, Holder(torch.nn.Embedding(6, 4))).proj
    with pytest.raises(AuditError, match="LoRA variant") as info:
        detect_layer(layer)
    assert "\n" not in str(info.value) and "missing" in str(info.value)


def test_verify_section_says_skip_when_a_library_is_absent(monkeypatch):
    import verified_lora.audit.targets as targets
    from verified_lora.verify.audit import audit_section as verify_section

    real = targets.builtin_available
    monkeypatch.setattr(targets, "builtin_available",
                        lambda name: (False, f"{name} is not importable (simulated)") if name == "peft" else real(name))
    section = verify_section(None, lambda msg: None)
    skip = [c for c in section.checks if c.name == "audit peft"]
    assert len(skip) == 1 and skip[0].passed is None and "not importable" in skip[0].detail
    assert not any(c.name.startswith("peft ") for c in section.checks)


def test_audit_is_deterministic_and_restores_the_torch_rng():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    first = audit(bl.good, seed=7, examples=1)
    assert torch.equal(torch.rand(3), expected)
    second = audit(bl.good, seed=7, examples=1)
    assert [(r.check, r.max_error, r.bound) for r in first.results] == \
        [(r.check, r.max_error, r.bound) for r in second.results]
