"""Detection by structure: any base location, any factor names, merge discovery, LoraSpec, r = 0, refusals."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from torch import nn  # noqa: E402

from verified_lora import AuditError  # noqa: E402
from verified_lora.audit import audit  # noqa: E402
from verified_lora.audit.adapters import DisabledAdapter, detect_layer, scan_model  # noqa: E402
from verified_lora.audit.spec import LoraSpec  # noqa: E402
from verified_lora.testing import broken_lora as bl  # noqa: E402
from verified_lora.testing import broken_variants as bv  # noqa: E402

CHECKS = ["layout", "scaling", "forward", "grad_A", "grad_B", "merge_forward", "merge_roundtrip", "double_merge"]


@pytest.mark.parametrize("factory, base, a, b, merge", [
    (lambda: bv.down_up(5, 4, 2, 3.0, True), "linear.weight", "lora_down.weight", "lora_up.weight", "merge"),
    (lambda: bv.lora_layer_child(5, 4, 2, 3.0, True), "weight", "lora_layer.down.weight", "lora_layer.up.weight",
     "_fuse_lora"),
    (lambda: bv.parametrized(5, 4, 2, 3.0, True), "parametrizations.weight.original",
     "parametrizations.weight.0.lora_A", "parametrizations.weight.0.lora_B", None),
    (bl.mlx_style, "linear.weight", "lora_a", "lora_b", None),
])
def test_structure_is_found_whatever_the_names(factory, base, a, b, merge):
    view = detect_layer(factory())
    assert (view.paths["W"], view.paths["A"], view.paths["B"]) == (base, a, b)
    assert (view.merge_names[0] if view.merge_mode == "explicit" else None) == merge


def test_declared_hyperparameters_are_read_from_a_child():
    view = detect_layer(bv.lora_layer_child(5, 4, 2, 3.0, True))
    assert view.declared == {"network_alpha": 3.0, "rank": 2} and view.declared_scale == 1.5


def test_mlx_transposed_factors_and_raw_scale_are_audited():
    report = audit(bl.mlx_style, examples=1, checks=["layout", "scaling", "forward", "grad_A", "grad_B"])
    assert report.passed, report.to_text()
    assert "stored transposed" in [r for r in report.results if r.check == "layout"][0].detail


def test_loraspec_maps_an_ambiguous_layer():
    class TwoPairs(nn.Module):
        def __init__(self):
            super().__init__()
            self.base = nn.Linear(5, 4)
            self.lora_p1, self.lora_q1 = nn.Parameter(torch.randn(2, 5)), nn.Parameter(torch.randn(4, 2))
            self.lora_p2, self.lora_q2 = nn.Parameter(torch.randn(2, 5)), nn.Parameter(torch.randn(4, 2))
            self.alpha = 3.0

        def forward(self, x):
            return self.base(x) + 1.5 * x @ self.lora_p1.T @ self.lora_q1.T

    with pytest.raises(AuditError, match="several factor pairs"):
        detect_layer(TwoPairs())
    view = detect_layer(TwoPairs(), LoraSpec(base="base", lora_a="lora_p1", lora_b="lora_q1", alpha=3.0, rank=2))
    assert view.r == 2 and view.declared_scale == 1.5


def test_rank_zero_is_a_disabled_adapter():
    loralib = pytest.importorskip("loralib")
    with pytest.raises(DisabledAdapter, match="disabled adapter"):
        detect_layer(loralib.Linear(5, 4, r=0))
    found, disabled, refused = scan_model(nn.Sequential(loralib.Linear(5, 4, r=0), loralib.Linear(4, 3, r=2)))
    assert [n for n, _ in found] == ["1"] and [n for n, _ in disabled] == ["0"] and not refused


def test_refusal_is_one_line_naming_what_is_missing():
    class Conv(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3)
            self.lora_down, self.lora_up = nn.Conv2d(3, 2, 3), nn.Conv2d(2, 4, 1)

    with pytest.raises(AuditError) as info:
        detect_layer(Conv())
    msg = str(info.value)
    assert "\n" not in msg and "found" in msg and "missing" in msg and "convolution" in msg


def test_spec_validation_names_the_field():
    with pytest.raises(AuditError, match="LoraSpec.rank"):
        LoraSpec(rank=-1)
    with pytest.raises(AuditError, match="unmerge"):
        LoraSpec(merge="merge")
    assert LoraSpec.from_flags(merge="_fuse_lora,_unfuse_lora").unmerge == "_unfuse_lora"


def test_fused_slice_widths_come_from_the_layer_or_the_spec():
    layer = bv.fused_gqa(5, 8, 2, 3.0, True, (True, False, True))
    widths = layer.qkv_shapes
    assert len(set(widths)) > 1  # q wider than k, v
    view = detect_layer(layer)
    assert [len(b.declared_cols) for b in view.blocks()] == [widths[0], widths[2]]
    declared = detect_layer(layer, LoraSpec(slices=widths, enable=(True, False, True)))
    assert [b.declared_cols.tolist() for b in declared.blocks()] == [b.declared_cols.tolist() for b in view.blocks()]
    with pytest.raises(AuditError, match="slices"):
        detect_layer(layer, LoraSpec(slices=(widths[0] + 1, widths[1], widths[2]))).blocks()


def test_rank_one_is_audited():
    report = audit(lambda: bl.GoodLoraLinear(5, 4, 1, 3.0, True), examples=1)
    assert report.passed, report.to_text()
    assert {r.check for r in report.results if r.passed} >= {"scaling", "forward", "grad_A", "grad_B", "merge_roundtrip"}


class _SquareUnnamed(nn.Module):
    """A square layer whose factor names say nothing about their roles: only behaviour can tell."""

    def __init__(self, d: int = 4, r: int = 2):
        super().__init__()
        self.linear = nn.Linear(d, d)
        self.lora_p = nn.Parameter(torch.randn(r, d))
        self.lora_q = nn.Parameter(torch.randn(d, r))
        self.scale = 0.75

    def forward(self, x):
        return self.linear(x) + self.scale * (x @ self.lora_p.T @ self.lora_q.T)


def test_factor_roles_of_a_square_layer_are_found_by_behaviour():
    view = detect_layer(_SquareUnnamed())
    assert (view.paths["A"], view.paths["B"], view.a_t, view.b_t) == ("lora_p", "lora_q", False, False)
    assert audit(lambda: _SquareUnnamed(), examples=1, checks=["forward", "grad_A", "grad_B", "scaling"]).passed


class _Unnamed(nn.Module):
    """A LoRA layer whose factors carry no LoRA name: frozen ``weight``, trainable ``p`` (r x in), ``q`` (out x r)."""

    def __init__(self, d_in: int = 5, d_out: int = 4, r: int = 2, alpha: float = 3.0):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(d_out, d_in), requires_grad=False)
        self.p = nn.Parameter(torch.randn(r, d_in))
        self.q = nn.Parameter(torch.randn(d_out, r))
        self.s = alpha / r

    def forward(self, x):
        return x @ self.weight.T + self.s * (x @ self.p.T) @ self.q.T


def test_unnamed_factor_pair_is_refused_with_the_flags_that_map_it():
    def unnamed(d_in, d_out, r, alpha):
        return _Unnamed(d_in, d_out, r, alpha)

    with pytest.raises(AuditError, match=r"no name marks them as LoRA factors.*--lora-a p --lora-b q") as exc:
        audit(unnamed, examples=1)
    assert "\n" not in str(exc.value)
    report = audit(unnamed, examples=2, checks=["layout", "scaling", "forward", "grad_A", "grad_B"],
                   spec=LoraSpec(lora_a="p", lora_b="q"))
    assert report.passed, report.to_text()


def test_a_plain_linear_is_still_no_lora_layer():
    with pytest.raises(AuditError, match="no LoRA layers found"):
        audit(lambda: nn.Linear(3, 4), examples=1)
