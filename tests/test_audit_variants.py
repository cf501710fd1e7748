"""Embeddings (PEFT, loralib), fused q/k/v with unequal widths, dropout placement, merge round trip:
correct code passes, each broken variant fails exactly its own check."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from torch import nn  # noqa: E402

from verified_lora.audit import audit  # noqa: E402
from verified_lora.testing import broken_variants as bv  # noqa: E402

EXAMPLES = 2


def _failed(report) -> set[str]:
    return {r.check for r in report.results if r.passed is False}


@pytest.mark.parametrize("name", bv.GOOD_VARIANTS)
def test_correct_conventions_pass(name):
    report = audit(f"verified_lora.testing.broken_variants:{name}", examples=EXAMPLES)
    assert report.passed, report.to_text()


@pytest.mark.parametrize("name", sorted(bv.EXPECTED_FAILURE))
def test_broken_variant_fails_exactly_its_check(name):
    if name.startswith("conv"):
        pytest.importorskip("peft")
    report = audit(f"verified_lora.testing.broken_variants:{name}", examples=EXAMPLES)
    assert _failed(report) == {bv.EXPECTED_FAILURE[name]}, report.to_text()


def test_dropout_after_the_up_projection_is_a_named_warning():
    report = audit("verified_lora.testing.broken_variants:dropout_after_up", examples=EXAMPLES)
    row = [r for r in report.results if r.check == "dropout"][0]
    assert report.passed and row.verdict == "WARN" and "after the up-projection" in row.detail


def test_a_merge_in_a_narrower_dtype_is_named():
    report = audit("verified_lora.testing.broken_variants:merge_in_float32", examples=1,
                   checks=["merge_forward", "forward"])
    rows = {r.check: r for r in report.results}
    assert rows["forward"].passed and rows["merge_forward"].passed is False
    assert "the merge computes in float32" in rows["merge_forward"].detail


def test_layer_without_dropout_is_not_applicable():
    report = audit("verified_lora.testing.broken_variants:lora_layer_child", examples=1, checks=["dropout"])
    row = report.results[0]
    assert row.passed is None and "no dropout" in row.detail


class _Holder(nn.Module):
    def __init__(self, emb):
        super().__init__()
        self.emb = emb

    def forward(self, x):
        return self.emb(x)


def peft_embedding(d_in: int, d_out: int, r: int, alpha: float) -> nn.Module:
    from peft import LoraConfig, inject_adapter_in_model

    cfg = LoraConfig(r=r, lora_alpha=alpha, target_modules=["emb"], init_lora_weights=False)
    return inject_adapter_in_model(cfg, _Holder(nn.Embedding(d_in, d_out))).emb


def peft_scaled_embedding(d_in: int, d_out: int, r: int, alpha: float) -> nn.Module:
    """embed_scale 1.75 is exact in bfloat16 (PEFT casts it to the base weight's dtype)."""
    from peft import LoraConfig, inject_adapter_in_model

    cfg = LoraConfig(r=r, lora_alpha=alpha, target_modules=["emb"], init_lora_weights=False, use_rslora=True)
    return inject_adapter_in_model(cfg, _Holder(bv.ScaledEmbedding(d_in, d_out, 1.75))).emb


def loralib_embedding(d_in: int, d_out: int, r: int, alpha: float) -> nn.Module:
    import loralib

    return loralib.Embedding(d_in, d_out, r=r, lora_alpha=alpha)


@pytest.mark.parametrize("factory", [peft_embedding, peft_scaled_embedding, loralib_embedding])
def test_real_embeddings_pass_as_written(factory):
    pytest.importorskip("peft" if factory is not loralib_embedding else "loralib")
    report = audit(factory, examples=EXAMPLES)
    assert report.passed, report.to_text()
    applicable = {r.check for r in report.results if r.passed is not None}
    assert {"forward", "grad_A", "grad_B", "scaling", "merge_forward", "merge_roundtrip"} <= applicable
    if factory is peft_scaled_embedding:
        assert "embed_scale" in applicable


def peft_dora(d_in: int, d_out: int, r: int, alpha: float, bias: bool) -> nn.Module:
    from peft import LoraConfig, inject_adapter_in_model

    from verified_lora.audit.torch_models import Holder

    cfg = LoraConfig(r=r, lora_alpha=alpha, target_modules=["proj"], use_dora=True, init_lora_weights=False)
    return inject_adapter_in_model(cfg, Holder(nn.Linear(d_in, d_out, bias=bias))).proj


def test_real_peft_dora_passes_as_written():
    pytest.importorskip("peft")
    report = audit(peft_dora, examples=EXAMPLES)
    assert report.passed, report.to_text()
    applicable = {r.check for r in report.results if r.passed is not None}
    assert {"forward", "grad_A", "grad_B", "grad_magnitude", "grad_input", "dora_norm", "dora_bias",
            "merge_forward", "merge_roundtrip", "double_merge", "precision_bfloat16"} <= applicable


def test_dora_magnitude_is_drawn_away_from_its_init():
    from verified_lora.audit.cases import Example, LayerCase, draw_layer_spec

    case = LayerCase("dora", lambda spec: bv.dora(spec.d_in, spec.d_out, spec.r, spec.alpha, spec.bias),
                     lambda rng, i: draw_layer_spec(rng, i))
    import numpy as np

    from verified_lora.audit.variants.dora import row_norms

    ex = Example(case, draw_layer_spec(np.random.default_rng(0), 0), seed=1)
    arrays = ex.fresh().read()
    assert np.all(np.abs(arrays.m / row_norms(arrays) - 1) > 1e-3)  # m / n != 1: magnitude moved off its init


@pytest.mark.parametrize("name", ["peft_conv1d", "peft_conv2d", "peft_conv2d_same", "peft_conv1d_valid"])
def test_real_peft_conv_passes_as_written(name):
    pytest.importorskip("peft")
    report = audit(f"verified_lora.testing.broken_variants:{name}", examples=EXAMPLES)
    assert report.passed, report.to_text()
    applicable = {r.check for r in report.results if r.passed is not None}
    assert {"forward", "grad_A", "grad_B", "grad_input", "scaling", "merge_forward", "merge_roundtrip",
            "dropout", "precision_bfloat16"} <= applicable


def loralib_conv2d(d_out: int, r: int, alpha: float, bias: bool) -> nn.Module:
    import loralib

    return loralib.Conv2d(2, d_out, 3, r=r, lora_alpha=alpha, bias=bias, padding=1)


def loralib_conv2d_strided(d_out: int, r: int, alpha: float, bias: bool) -> nn.Module:
    import loralib

    return loralib.Conv2d(3, d_out, 2, r=r, lora_alpha=alpha, bias=bias, stride=2)


@pytest.mark.parametrize("factory", [loralib_conv2d, loralib_conv2d_strided])
def test_real_loralib_convlora_passes_as_written(factory):
    pytest.importorskip("loralib")
    report = audit(factory, examples=EXAMPLES)
    assert report.passed, report.to_text()
    applicable = {r.check for r in report.results if r.passed is not None}
    assert {"forward", "grad_A", "grad_B", "grad_input", "scaling", "merge_forward", "merge_roundtrip",
            "precision_float32"} <= applicable


def test_loralib_convlora_with_a_transposed_kernel_fails_forward():
    """Negative control for the shared-A reduction: the kernel view transposed in forward is caught."""
    loralib = pytest.importorskip("loralib")

    class Transposed(loralib.Conv2d):
        def forward(self, x):
            delta = (self.lora_B @ self.lora_A).view(self.conv.weight.shape).transpose(-1, -2)
            return self.conv._conv_forward(x, self.conv.weight + delta * self.scaling, self.conv.bias)

    report = audit(lambda: Transposed(2, 3, 3, r=2, lora_alpha=3.0, padding=1, merge_weights=False), examples=1)
    assert "forward" in {r.check for r in report.results if r.passed is False}


@pytest.mark.parametrize("conv, reason", [
    (lambda: nn.Conv2d(2, 4, 3, groups=2), "groups=2"),
    (lambda: nn.Conv2d(2, 4, 3, padding=1, padding_mode="reflect"), "padding_mode='reflect'"),
    (lambda: nn.Conv2d(2, 4, 2, padding="same"), "asymmetric padding"),
])
@pytest.mark.filterwarnings("ignore:LoRA adapter added to ConvNd layer with groups")
def test_peft_conv_beyond_zero_padding_and_one_group_is_refused_in_one_line(conv, reason):
    pytest.importorskip("peft")
    from verified_lora import AuditError
    from verified_lora.audit.adapters import detect_layer
    from verified_lora.testing.broken_variants import _peft_conv

    with pytest.raises(AuditError, match=reason) as exc:
        detect_layer(_peft_conv(conv(), 2, 3.0))
    assert "\n" not in str(exc.value)


def test_peft_lora_on_a_dilated_conv_fails_forward_with_the_shape_mismatch():
    """PEFT 0.21.2 builds lora_A without the base's dilation (huggingface/peft#3697; hand check:
    benchmarks/peft_conv_dilation_check.py), so its forward raises; the audit reports that as a failure."""
    pytest.importorskip("peft")
    report = audit("verified_lora.testing.broken_variants:peft_conv1d_dilated", examples=1, checks=["forward"])
    forward = next(r for r in report.results if r.check == "forward")
    if forward.passed:  # a PEFT that applies lora_A with the base's dilation: then the whole layer must pass
        assert audit("verified_lora.testing.broken_variants:peft_conv1d_dilated", examples=EXAMPLES).passed
    else:
        assert "RuntimeError" in forward.detail and "must match the size" in forward.detail


def test_loralib_conv1d_is_refused_with_its_reason():
    loralib = pytest.importorskip("loralib")
    from verified_lora import AuditError
    from verified_lora.audit.adapters import detect_layer

    with pytest.raises(AuditError, match="only Conv2d"):
        detect_layer(loralib.Conv1d(2, 4, 3, r=2, lora_alpha=3))
