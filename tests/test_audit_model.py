"""Whole-model audits, the explicit-mapping CLI flags, and errors of the tool itself (exit 2, --debug)."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")

from verified_lora import AuditError  # noqa: E402
from verified_lora.audit import audit  # noqa: E402
from verified_lora.cli import build_parser, main  # noqa: E402

from . import lora_conventions as lc  # noqa: E402

CONV = "tests.lora_conventions"


# ----------------------------------------------------------------------------- whole models
def test_peft_llama_every_module_audited_with_own_and_drawn_weights(capsys):
    pytest.importorskip("peft")
    pytest.importorskip("transformers")
    from verified_lora.testing.tiny_models import LLAMA_TARGETS

    rc = main(["audit", "verified_lora.testing.tiny_models:peft_llama", "--json", "--examples", "1", "-q"])
    data = json.loads(capsys.readouterr().out)
    assert rc == 0 and data["verdict"] == "PASS" and data["whole_model"] is True
    assert data["unaudited"] == [] and data["disabled"] == []
    names = [c["case"] for c in data["cases"]]
    for target in LLAMA_TARGETS:  # attention (grouped-query k/v), MLP and the token embedding
        for kind in ("own weights", "drawn"):
            assert sum(n.endswith(f".{target} [{kind}]") for n in names) == 1, (target, kind, names)
    assert len(names) == 2 * len(LLAMA_TARGETS)
    assert f"{len(LLAMA_TARGETS)} LoRA module(s) audited" in data["model_notes"][0]
    embed = next(c for c in data["cases"] if c["case"].endswith("embed_tokens [own weights]"))
    checks = {c["check"]: c["verdict"] for c in embed["checks"]}
    assert checks["forward"] == "PASS" and checks["grad_A"] == "PASS" and checks["grad_B"] == "PASS"


def test_saved_peft_adapter_loaded_and_audited(tmp_path):
    pytest.importorskip("peft")
    pytest.importorskip("transformers")
    from verified_lora.testing import tiny_models as tm

    path = tm.save_adapter(str(tmp_path / "adapter"))
    trained = tm.peft_llama()
    loaded = tm.load_adapter(path)
    for (n1, p1), (n2, p2) in zip(trained.named_parameters(), loaded.named_parameters()):
        assert n1 == n2 and torch.equal(p1, p2)  # the adapter directory round-trips every weight
    report = audit(lambda: tm.load_adapter(path), examples=1, checks=["scaling", "forward", "grad_A", "grad_B"])
    assert report.verdict == "PASS" and report.whole_model
    assert len(report.cases()) == 2 * len(tm.LLAMA_TARGETS)
    # loaded for inference (is_trainable=False): the adapter is frozen; the audit says so and checks the
    # gradients on trainable copies
    assert all("frozen" in " ".join(report.notes[c]) for c in report.cases())


def test_refused_module_inside_a_model_makes_the_verdict_partial(capsys):
    report = audit(lc.model_with_refused_layer, examples=1, checks=["forward"])
    assert report.verdict == "PARTIAL" and not report.passed
    assert [n for n, _ in report.unaudited] == ["odd"] and "missing" in report.unaudited[0][1]
    assert {c.split()[1] for c in report.cases()} == {"good"}
    assert main(["audit", f"{CONV}:model_with_refused_layer", "-q", "--examples", "1", "--check", "forward"]) == 2
    out, err = capsys.readouterr()
    assert "NOT AUDITED odd" in out and "verdict: PARTIAL" in out
    assert err.count("\n") == 1 and "PARTIAL: 1 module(s) not audited, first: odd" in err
    with pytest.raises(AssertionError, match="NOT AUDITED"):
        from verified_lora.audit import assert_lora_module_ok
        assert_lora_module_ok(lc.model_with_refused_layer, examples=1, checks=["forward"])


def test_trainable_parameters_outside_lora_layers_are_listed():
    report = audit(lc.model_with_loose_trainable, examples=1, checks=["forward"])
    assert report.verdict == "PARTIAL"
    assert report.unaudited[0][0] == "(trainable parameters)" and "head.weight" in report.unaudited[0][1]


def test_own_weights_are_the_models_and_drawn_weights_are_fresh():
    report = audit(lc.model_with_nan_weight, examples=1, checks=["forward"])
    verdicts = {r.case: r.verdict for r in report.results}
    assert verdicts == {"model_with_nan_weight lora [own weights]": "FAIL",
                        "model_with_nan_weight lora [drawn]": "PASS"}
    assert report.failures[0].max_error == float("inf")  # non-finite output from the NaN weight


def test_loralib_embedding_inside_a_model_is_never_skipped_silently():
    loralib = pytest.importorskip("loralib")

    def model():
        torch.manual_seed(0)
        return torch.nn.ModuleDict({"emb": loralib.Embedding(7, 5, r=2, lora_alpha=3),
                                    "lin": loralib.Linear(5, 4, r=2, lora_alpha=3)})

    report = audit(model, examples=1, checks=["forward"])
    accounted = {c.split()[1] for c in report.cases()} | {n for n, _ in report.unaudited}
    assert {"emb", "lin"} <= accounted
    assert report.verdict != "PASS" or not report.unaudited


def test_untrained_adapter_is_noted():
    pytest.importorskip("peft")
    from peft import LoraConfig, inject_adapter_in_model

    def model():
        torch.manual_seed(0)
        base = torch.nn.ModuleDict({"proj": torch.nn.Linear(5, 4), "out": torch.nn.Linear(4, 3)})
        return inject_adapter_in_model(LoraConfig(r=2, lora_alpha=3, target_modules=["proj", "out"]), base)

    report = audit(model, examples=1, checks=["forward"])
    own = [c for c in report.cases() if "[own weights]" in c]
    assert len(own) == 2 and all("B = 0" in " ".join(report.notes[c]) for c in own)


# ----------------------------------------------------------------------------- explicit mapping flags
def test_mapping_flags_reach_the_spec(capsys):
    base = ["audit", f"{CONV}:down_up_fixed", "-q", "--examples", "1", "--base", "weight", "--lora-a", "down",
            "--lora-b", "up", "--rank", "2", "--merge", "merge,unmerge"]
    assert main(base + ["--alpha", "3", "--check", "scaling", "--check", "merge_forward"]) == 0
    assert "PASS" in capsys.readouterr().out
    # a declared alpha the layer does not use: the scaling check compares the measured s with it
    assert main(base + ["--alpha", "6", "--check", "scaling"]) == 1
    assert "scaling" in capsys.readouterr().out


@pytest.mark.parametrize("flags, named", [
    (["--rank", "-1"], "--rank"), (["--rank", "two"], "--rank"), (["--alpha", "nan"], "--alpha"),
    (["--alpha", "x"], "--alpha"), (["--merge", "merge"], "--merge"), (["--base", "a..b"], "--base"),
    (["--lora-a", "1x"], "--lora-a"), (["--lora-b", ""], "--lora-b"),
])
def test_invalid_mapping_flags_exit_2_naming_the_flag(flags, named, capsys):
    with pytest.raises(SystemExit) as info:
        main(["audit", f"{CONV}:down_up_fixed", "-q"] + flags)
    assert info.value.code == 2
    assert f"argument {named}" in capsys.readouterr().err


def test_mapping_that_does_not_fit_exits_2_with_one_line(capsys):
    assert main(["audit", f"{CONV}:down_up_fixed", "-q", "--lora-a", "nothing", "--lora-b", "up"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "nothing" in err
    assert main(["audit", f"{CONV}:model_with_refused_layer", "-q", "--base", "weight"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "weight" in err
    with pytest.raises(AuditError, match="applies to a 'module.path:factory' target"):
        from verified_lora.audit.spec import LoraSpec
        audit("loralib", spec=LoraSpec(rank=2))


# ----------------------------------------------------------------------------- errors of the tool itself
def _boom(*args, **kwargs):
    raise RuntimeError("boom inside a check")


def test_unexpected_error_exits_2_with_one_line_and_traceback_only_with_debug(monkeypatch, capsys):
    import verified_lora.audit.runner as runner

    monkeypatch.setattr(runner, "run_case", _boom)
    assert main(["audit", f"{CONV}:down_up_fixed", "-q"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "internal error: RuntimeError: boom inside a check" in err
    assert "--debug" in err and "Traceback" not in err
    assert main(["audit", f"{CONV}:down_up_fixed", "-q", "--debug"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and err.rstrip().splitlines()[-1].endswith("boom inside a check")


def test_unexpected_error_inside_a_model_lists_the_module(monkeypatch, capsys):
    import verified_lora.audit.runner as runner

    real = runner.run_case

    def flaky(case, **kw):
        if "odd" in case.name or "[drawn]" in case.name:
            raise RuntimeError("boom in one case")
        return real(case, **kw)

    monkeypatch.setattr(runner, "run_case", flaky)
    report = audit(lc.model_with_loose_trainable, examples=1, checks=["forward"])
    assert report.verdict == "PARTIAL"
    assert any("[drawn]" in n and "audit error RuntimeError: boom in one case" in w for n, w in report.unaudited)
    assert main(["audit", f"{CONV}:model_with_loose_trainable", "-q", "--examples", "1", "--check", "forward",
                 "--debug"]) == 2
    assert "Traceback" in capsys.readouterr().err


def test_every_command_takes_debug():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    assert sub.choices and all("--debug" in p._option_string_actions for p in sub.choices.values())


def test_programming_error_of_the_audit_inside_a_check_exits_2(monkeypatch, capsys):
    import verified_lora.audit.layer_checks.forward_backward as fb

    monkeypatch.setattr(fb, "tensor", len)  # the audit's own code now calls len(array, dtype, ...): a TypeError
    assert main(["audit", f"{CONV}:down_up_fixed", "-q", "--check", "forward"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "internal error: TypeError" in err


def test_an_implementation_that_raises_fails_the_check_not_the_tool():
    from verified_lora.audit.tool_errors import raised_by_the_audit

    class Raises(lc.DownUpParams):
        def forward(self, x):
            raise TypeError("this layer rejects its input")

    report = audit(lambda: Raises(5, 4, 2, 3.0, True), examples=1, checks=["forward"])
    assert report.verdict == "FAIL" and "raised TypeError: this layer rejects its input" in report.failures[0].detail
    try:
        {}["missing"]
    except KeyError as exc:  # raised here, in a test module: not the audit's code
        assert not raised_by_the_audit(exc)


def test_rank_zero_adapter_in_a_model_is_listed_as_disabled():
    loralib = pytest.importorskip("loralib")

    def model():
        torch.manual_seed(0)
        m = torch.nn.ModuleDict({"off": loralib.Linear(5, 4, r=0), "on": loralib.Linear(4, 3, r=2, lora_alpha=3)})
        loralib.mark_only_lora_as_trainable(m)
        return m

    report = audit(model, examples=1, checks=["forward"])
    assert [n for n, _ in report.disabled] == ["off"] and not report.unaudited
    assert report.verdict == "PASS" and {c.split()[1] for c in report.cases()} == {"on"}
    assert "disabled off" in report.to_text()
