"""Real third-party LoRA code, installed from the package registries, audited as written (no alias shims).

torchtune and diffusers are optional (``pip install 'verified-lora[audit-libs]'``); each test skips
with the reason when its library does not import. The local layers of ``tests/lora_conventions.py``
are real code written in other public conventions (transposed factors with a raw scale, a
parametrization, ``down``/``up`` parameters), not aliases of a library's classes.
"""

from __future__ import annotations

import importlib
import warnings

import pytest

torch = pytest.importorskip("torch")

from verified_lora.audit import audit  # noqa: E402

from . import lora_conventions as lc  # noqa: E402


def _need(module: str, extra: str = "audit-libs"):
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return importlib.import_module(module)
    except Exception as exc:  # an installed library that fails to import is skipped with its error
        pytest.skip(f"{module} is not importable ({type(exc).__name__}: {str(exc)[:120]}); "
                    f"pip install 'verified-lora[{extra}]'")


def _assert_passes(report):
    failed = [(r.case, r.check, r.detail) for r in report.failures]
    assert report.verdict in ("PASS", "WARN") and not failed, (report.verdict, failed, report.unaudited)


# ----------------------------------------------------------------------------- torchtune
def test_torchtune_lora_linear():
    peft_mod = _need("torchtune.modules.peft")

    def layer(d_in, d_out, r, alpha, bias):
        return peft_mod.LoRALinear(d_in, d_out, rank=r, alpha=alpha, use_bias=bias)

    report = audit(layer, examples=2)
    _assert_passes(report)
    verdicts = {r.check: r.verdict for r in report.results}
    assert verdicts["forward"] == "PASS" and verdicts["grad_A"] == "PASS" and verdicts["grad_B"] == "PASS"
    assert verdicts["merge_forward"] == "N/A"  # torchtune merges state dicts, not modules


def test_torchtune_dora_linear():
    """torchtune 0.6.1's DoRALinear multiplies the base bias by m / n (the paper and PEFT add it after the
    re-normalised weight, and torchtune's own merged checkpoint keeps it unscaled): the audit fails
    exactly ``dora_bias``, on the drawn layers with a bias; without a bias every check passes.
    Hand check in float64: benchmarks/torchtune_dora_bias_check.py, benchmarks/results/third_party_findings.md."""
    peft_mod = _need("torchtune.modules.peft")

    def layer(d_in, d_out, r, alpha, bias):
        m = peft_mod.DoRALinear(d_in, d_out, rank=r, alpha=alpha, use_bias=bias)
        m.initialize_dora_magnitude()
        return m

    report = audit(layer, examples=2)
    assert {r.check for r in report.failures} == {"dora_bias"}, [(r.check, r.detail) for r in report.failures]
    assert "(m / n) b" in report.failures[0].detail  # N/A on the draw without a bias

    def no_bias(d_in, d_out, r, alpha):
        return layer(d_in, d_out, r, alpha, False)

    _assert_passes(audit(no_bias, examples=2))


# ----------------------------------------------------------------------------- diffusers
def test_diffusers_lora_compatible_linear_forward_and_gradients():
    lora = _need("diffusers.models.lora")

    def layer(d_in, d_out, r, alpha, bias):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the deprecation notice of the non-PEFT LoRA classes
            lin = lora.LoRACompatibleLinear(d_in, d_out, bias=bias)
            lin.set_lora_layer(lora.LoRALinearLayer(d_in, d_out, rank=r, network_alpha=alpha))
        return lin

    report = audit(layer, examples=2, checks=["layout", "scaling", "forward", "grad_A", "grad_B", "grad_input",
                                              "grad_nonzero", "input_unchanged", "precision_float32"])
    _assert_passes(report)


def test_diffusers_lora_compatible_linear_merge_checks_run_and_find_the_dropped_adapter():
    """``_fuse_lora`` deletes ``lora_layer``; the merge checks read the base weight alone afterwards, so the layer
    is audited as written: ``_unfuse_lora`` restores W (to float32 accuracy: both compute in float32) but not
    the adapter (benchmarks/results/third_party_findings.md, hand check benchmarks/diffusers_unfuse_check.py)."""
    _need("diffusers.models.lora")
    from verified_lora.testing.library_layers import diffusers_linear

    report = audit(diffusers_linear, examples=2, checks=["forward", "merge_forward", "merge_roundtrip", "double_merge"])
    res = {r.check: r for r in report.results}
    assert {r.check for r in report.failures} == {"merge_forward", "merge_roundtrip"}
    assert res["forward"].verdict == "PASS" and res["double_merge"].verdict == "PASS"
    assert "the merge computes in float32" in res["merge_forward"].detail
    rt = res["merge_roundtrip"].detail
    assert "the adapter is dropped" in rt and "restored only to float32 accuracy" in rt
    assert res["merge_roundtrip"].max_error > 0.1  # the whole LoRA term, not a rounding


def test_diffusers_unet_with_add_adapter_whole_model():
    _need("diffusers")
    _need("peft", "audit")
    from verified_lora.testing.tiny_models import diffusers_unet

    report = audit(diffusers_unet, examples=1, checks=["scaling", "forward", "grad_A", "grad_B", "grad_input"])
    _assert_passes(report)
    assert report.whole_model and not report.unaudited
    assert len(report.cases()) == 2 * 8  # to_q, to_k, to_v, to_out.0 of self- and cross-attention


def test_diffusers_unet_conv_lora_is_audited_or_listed():
    _need("diffusers")
    _need("peft", "audit")
    from verified_lora.testing.tiny_models import diffusers_unet_conv

    report = audit(diffusers_unet_conv, examples=1, checks=["forward", "grad_A", "grad_B"])
    accounted = " ".join(report.cases()) + " " + " ".join(n for n, _ in report.unaudited)
    for conv in ("resnets.0.conv1", "resnets.0.conv2"):
        assert conv in accounted  # never skipped silently
    assert report.verdict in ("PASS", "WARN", "PARTIAL") and not report.failures


# ----------------------------------------------------------------------------- PEFT on transformers
def test_peft_on_transformers_gpt2_conv1d_model():
    _need("peft", "audit")
    _need("transformers", "audit")
    from verified_lora.testing.tiny_models import GPT2_TARGETS, peft_gpt2

    report = audit(peft_gpt2, examples=1, checks=["layout", "scaling", "forward", "grad_A", "grad_B",
                                                   "merge_forward", "merge_roundtrip"])
    _assert_passes(report)
    # c_attn, attn.c_proj, c_fc, mlp.c_proj and wte: every LoRA module, own weights and drawn
    assert len(report.cases()) == 2 * (len(GPT2_TARGETS) + 1) and not report.unaudited


# ----------------------------------------------------------------------------- other conventions
@pytest.mark.parametrize("factory", [lc.transposed_ab, lc.parametrized, lc.down_up_params],
                         ids=["lora_a-lora_b-transposed-raw-scale", "parametrization", "down-up-parameters"])
def test_convention_layers_written_in_other_styles(factory):
    report = audit(factory, examples=2)
    _assert_passes(report)
    assert {r.check: r.verdict for r in report.results}["forward"] == "PASS"
