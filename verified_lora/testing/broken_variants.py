"""LoRA layers in other conventions for the audit's tests: correct controls and broken variants (imports torch).

Each class follows one convention met in public code, written here from its published formula
``Y = c (X W^T + b) + s c D(X) A^T B^T`` (``c`` = 1 except for scaled embeddings): factors named
``lora_down``/``lora_up`` next to a child base layer; a ``lora_layer`` child with ``down``/``up`` and
``_fuse_lora``/``_unfuse_lora``; a ``torch.nn.utils.parametrize`` parametrization of the weight; a
scaled embedding; PEFT's conv LoRA with a deliberately transposed merge kernel; a fused q/k/v projection with unequal slice widths (grouped-query attention); DoRA
(``Y = (m / n) X (W + s B A)^T + b``, per-output norm, detached, as in the DoRA paper and PEFT).
Each broken variant changes one thing; :data:`EXPECTED_FAILURE` names the check that must catch it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize

__all__ = ["EXPECTED_FAILURE", "EXPECTED_WARN", "GOOD_VARIANTS"]


class DownUpLinear(nn.Module):
    """Base in ``.linear``; ``lora_down`` (r x d_in) / ``lora_up`` (d_out x r) Linear children; ``merge``/``unmerge``."""

    def __init__(self, d_in: int, d_out: int, r: int, alpha: float, bias: bool):
        super().__init__()
        self.linear = nn.Linear(d_in, d_out, bias=bias).requires_grad_(False)
        self.lora_down = nn.Linear(d_in, r, bias=False)
        self.lora_up = nn.Linear(r, d_out, bias=False)
        self.alpha, self.rank = alpha, r
        self.dropout = nn.Identity()
        self.merged = False

    @property
    def s(self) -> float:
        return self.alpha / self.rank

    def forward(self, x):
        y = self.linear(x)
        return y if self.merged else y + self.s * self.lora_up(self.lora_down(self.dropout(x)))

    def merge(self):
        if not self.merged:
            self.linear.weight.data += self.s * (self.lora_up.weight @ self.lora_down.weight)
            self.merged = True

    def unmerge(self):
        if self.merged:
            self.linear.weight.data -= self.s * (self.lora_up.weight @ self.lora_down.weight)
            self.merged = False


class DropoutAfterUp(DownUpLinear):
    """Dropout on the LoRA branch's output instead of its input: a named deviation (WARN), not a failure."""

    def forward(self, x):
        y = self.linear(x)
        return y if self.merged else y + self.s * self.dropout(self.lora_up(self.lora_down(x)))


class UnmergeDropsAdapter(DownUpLinear):
    """Unmerge restores W but zeroes the up factor: the adapter is lost (W and b alone look restored)."""

    def unmerge(self):
        was = self.merged
        super().unmerge()
        if was:
            self.lora_up.weight.data.zero_()


class MergeInFloat32(DownUpLinear):
    """Merges (and unmerges) through float32 whatever the weight's dtype: a narrower-precision merge."""

    def merge(self):
        if not self.merged:
            w = self.linear.weight
            w.data = (w.float() + self.s * (self.lora_up.weight.float() @ self.lora_down.weight.float())).to(w.dtype)
            self.merged = True

    def unmerge(self):
        if self.merged:
            w = self.linear.weight
            w.data = (w.float() - self.s * (self.lora_up.weight.float() @ self.lora_down.weight.float())).to(w.dtype)
            self.merged = False


class _LoraLayer(nn.Module):
    def __init__(self, d_in: int, d_out: int, r: int, network_alpha: float):
        super().__init__()
        self.down = nn.Linear(d_in, r, bias=False)
        self.up = nn.Linear(r, d_out, bias=False)
        self.network_alpha, self.rank = network_alpha, r

    def forward(self, x):
        return self.up(self.down(x)) * (self.network_alpha / self.rank)


class LoraLayerChild(nn.Linear):
    """The base is the module's own weight; a ``lora_layer`` child with ``down``/``up`` and ``network_alpha``;
    ``_fuse_lora``/``_unfuse_lora`` (the fused flag makes a second fuse a no-op)."""

    def __init__(self, d_in: int, d_out: int, r: int, alpha: float, bias: bool):
        super().__init__(d_in, d_out, bias=bias)
        self.weight.requires_grad_(False)
        self.lora_layer = _LoraLayer(d_in, d_out, r, alpha)
        self.fused = False

    def _delta(self):
        ll = self.lora_layer
        return (ll.network_alpha / ll.rank) * (ll.up.weight @ ll.down.weight)

    def _fuse_lora(self):
        if not self.fused:
            self.weight.data += self._delta().detach()
            self.fused = True

    def _unfuse_lora(self):
        if self.fused:
            self.weight.data -= self._delta().detach()
            self.fused = False

    def forward(self, x):
        y = F.linear(x, self.weight, self.bias)
        return y if self.fused else y + self.lora_layer(x)


class _LoraParametrization(nn.Module):
    def __init__(self, d_in: int, d_out: int, r: int, alpha: float):
        super().__init__()
        self.lora_A = nn.Parameter(torch.randn(r, d_in) * 0.1)
        self.lora_B = nn.Parameter(torch.randn(d_out, r) * 0.1)
        self.scaling = alpha / r

    def forward(self, W):
        return W + self.scaling * (self.lora_B @ self.lora_A)


def parametrized(d_in: int, d_out: int, r: int, alpha: float, bias: bool) -> nn.Module:
    """A plain ``nn.Linear`` whose weight is parametrized as ``W + s B A`` (no merge: forward is merged)."""
    layer = nn.Linear(d_in, d_out, bias=bias)
    parametrize.register_parametrization(layer, "weight", _LoraParametrization(d_in, d_out, r, alpha))
    return layer


class ScaledEmbedding(nn.Embedding):
    """An embedding whose output is multiplied by ``embed_scale`` (as Gemma's scaled word embedding)."""

    def __init__(self, num: int, dim: int, embed_scale: float):
        super().__init__(num, dim)
        self.embed_scale = embed_scale

    def forward(self, ids):
        return super().forward(ids) * self.embed_scale


class ScaledEmbeddingLora(nn.Module):
    """LoRA on a scaled embedding: ``c (E[x] + s A^T[x] B^T)``; ``lora_A`` (r x V), ``lora_B`` (d x r)."""

    scale_lora = True

    def __init__(self, d_in: int, d_out: int, r: int, alpha: float, bias: bool = False):
        super().__init__()
        self.embed = ScaledEmbedding(d_in, d_out, embed_scale=float(d_out) ** 0.5).requires_grad_(False)
        self.lora_A = nn.Parameter(torch.randn(r, d_in))
        self.lora_B = nn.Parameter(torch.randn(d_out, r))
        self.lora_alpha, self.r = alpha, r
        self.scaling = alpha / r

    def forward(self, ids):
        lora = F.embedding(ids, self.lora_A.T) @ self.lora_B.T * self.scaling
        return self.embed(ids) + (lora * self.embed.embed_scale if self.scale_lora else lora)


class EmbeddingScaleMissing(ScaledEmbeddingLora):
    """The LoRA branch is not multiplied by the base's embed_scale (PEFT's bug before its fix for Gemma3)."""

    scale_lora = False


class FusedGQA(nn.Module):
    """Fused q/k/v with unequal widths (q wider than k, v) and an ``enable_lora`` mask; ``qkv_shapes`` declared."""

    off_by_one = 0

    def __init__(self, d_in: int, r: int, alpha: float, bias: bool, enable_lora, qkv_shapes):
        super().__init__()
        self.qkv_shapes = tuple(int(w) for w in qkv_shapes)
        d_out = sum(self.qkv_shapes)
        self.in_features, self.out_features, self.r, self.lora_alpha = d_in, d_out, r, alpha
        self.enable_lora = list(enable_lora)
        self.fan_in_fan_out = False
        self.weight = nn.Parameter(torch.randn(d_out, d_in), requires_grad=False)
        self.bias = nn.Parameter(torch.randn(d_out), requires_grad=False) if bias else None
        k = sum(self.enable_lora)
        m = sum(w for w, on in zip(self.qkv_shapes, self.enable_lora) if on)
        self.lora_A = nn.Parameter(0.1 * torch.randn(r * k, d_in))
        self.lora_B = nn.Parameter(0.1 * torch.randn(m, r))
        self.scaling = alpha / r
        self.lora_dropout = nn.Identity()
        self.merge_weights = False

    def delta(self):
        widths = list(self.qkv_shapes)
        widths[0] += self.off_by_one
        widths[1] -= self.off_by_one
        starts = [sum(widths[:j]) for j in range(len(widths))]
        dw = self.lora_A.new_zeros(self.out_features, self.in_features)
        g = b0 = 0
        for j, on in enumerate(self.enable_lora):
            if not on:
                continue
            w = self.qkv_shapes[j]
            part = self.lora_B[b0:b0 + w] @ self.lora_A[g * self.r:(g + 1) * self.r]
            dw[starts[j]:starts[j] + w] = part
            g, b0 = g + 1, b0 + w
        return dw * self.scaling

    def forward(self, x):
        return F.linear(x, self.weight, self.bias) + self.lora_dropout(x) @ self.delta().T


class FusedSliceWidthOffByOne(FusedGQA):
    """The slice starts are computed with q one row wider and k one row narrower than declared."""

    off_by_one = 1


class DoraLinear(nn.Module):
    """DoRA as in its paper and PEFT: ``Y = (m / n) * (X V^T) + b``, ``V = W + s B A``, ``n`` = per-output norm,
    detached; ``magnitude`` (d_out,) trainable."""

    norm_dim = 1
    scale_bias = False

    def __init__(self, d_in: int, d_out: int, r: int, alpha: float, bias: bool):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(d_out, d_in), requires_grad=False)
        self.bias = nn.Parameter(torch.randn(d_out), requires_grad=False) if bias else None
        self.lora_A = nn.Parameter(0.1 * torch.randn(r, d_in))
        self.lora_B = nn.Parameter(0.1 * torch.randn(d_out, r))
        self.lora_alpha, self.r = alpha, r
        self.scaling = alpha / r
        self.magnitude = nn.Parameter(torch.ones(d_out))

    def forward(self, x):
        V = self.weight + self.scaling * (self.lora_B @ self.lora_A)
        k = self.magnitude / V.norm(dim=self.norm_dim).detach()
        if self.scale_bias and self.bias is not None:
            return F.linear(x, V, self.bias) * k
        y = F.linear(x, V) * k
        return y if self.bias is None else y + self.bias


class DoraNormWrongAxis(DoraLinear):
    """The norm is taken per input (``dim=0`` of the (out x in) weight): silent only on square layers."""

    norm_dim = 0


class DoraBiasScaled(DoraLinear):
    """The bias is rescaled by ``m / n`` together with the weight."""

    scale_bias = True


# ------------------------------------------------------------------------- factories
def dora(d_in: int, d_out: int, r: int, alpha: float, bias: bool) -> nn.Module:
    return DoraLinear(d_in, d_out, r, alpha, bias)


def dora_norm_wrong_axis(d_in: int, r: int, alpha: float, bias: bool) -> nn.Module:
    """Square (d_in x d_in): the only shape on which this mistake runs without a shape error."""
    return DoraNormWrongAxis(d_in, d_in, r, alpha, bias)


def dora_bias_scaled(d_in: int, d_out: int, r: int, alpha: float, bias: bool) -> nn.Module:
    return DoraBiasScaled(d_in, d_out, r, alpha, bias)

def down_up(d_in: int, d_out: int, r: int, alpha: float, bias: bool) -> nn.Module:
    return DownUpLinear(d_in, d_out, r, alpha, bias)


def dropout_after_up(d_in: int, d_out: int, r: int, alpha: float, bias: bool) -> nn.Module:
    return DropoutAfterUp(d_in, d_out, r, alpha, bias)


def unmerge_drops_adapter(d_in: int, d_out: int, r: int, alpha: float, bias: bool) -> nn.Module:
    return UnmergeDropsAdapter(d_in, d_out, r, alpha, bias)


def merge_in_float32(d_in: int, d_out: int, r: int, alpha: float, bias: bool) -> nn.Module:
    return MergeInFloat32(d_in, d_out, r, alpha, bias)


def lora_layer_child(d_in: int, d_out: int, r: int, alpha: float, bias: bool) -> nn.Module:
    return LoraLayerChild(d_in, d_out, r, alpha, bias)


def scaled_embedding(d_in: int, d_out: int, r: int, alpha: float) -> nn.Module:
    return ScaledEmbeddingLora(d_in, d_out, r, alpha)


def embedding_scale_missing(d_in: int, d_out: int, r: int, alpha: float) -> nn.Module:
    return EmbeddingScaleMissing(d_in, d_out, r, alpha)


def _gqa_widths(d_out: int) -> tuple[int, int, int]:
    kv = max(2, d_out // 4)
    return (d_out - 2 * kv + 2, kv - 1, kv - 1) if d_out - 2 * kv > kv else (kv + 2, kv, kv)


def fused_gqa(d_in: int, d_out: int, r: int, alpha: float, bias: bool, enable_lora) -> nn.Module:
    return FusedGQA(d_in, r, alpha, bias, enable_lora, _gqa_widths(d_out))


def fused_slice_width_off_by_one(d_in: int, d_out: int, r: int, alpha: float, bias: bool, enable_lora) -> nn.Module:
    return FusedSliceWidthOffByOne(d_in, r, alpha, bias, enable_lora, _gqa_widths(d_out))


def _peft_conv(base: nn.Module, r: int, alpha: float, rslora: bool = False) -> nn.Module:
    from peft import LoraConfig, inject_adapter_in_model

    class Holder(nn.Module):
        def __init__(self, proj):
            super().__init__()
            self.proj = proj

        def forward(self, x):
            return self.proj(x)

    cfg = LoraConfig(r=r, lora_alpha=alpha, target_modules=["proj"], init_lora_weights=False, use_rslora=rslora)
    return inject_adapter_in_model(cfg, Holder(base)).proj


def peft_conv2d(d_out: int, r: int, alpha: float, bias: bool) -> nn.Module:
    """PEFT's LoRA on a Conv2d (kernel 3 x 2, stride (1, 2), padding (1, 0)), as written."""
    return _peft_conv(nn.Conv2d(2, d_out, kernel_size=(3, 2), stride=(1, 2), padding=(1, 0), bias=bias), r, alpha)


def peft_conv1d(d_out: int, r: int, alpha: float, bias: bool, use_rslora: bool = False) -> nn.Module:
    """PEFT's LoRA on a Conv1d (kernel 3, padding 1), as written."""
    return _peft_conv(nn.Conv1d(3, d_out, kernel_size=3, padding=1, bias=bias), r, alpha, use_rslora)


def peft_conv2d_same(d_out: int, r: int, alpha: float, bias: bool) -> nn.Module:
    """PEFT's LoRA on a Conv2d with ``padding='same'`` (kernel 3: one zero on each side), as written."""
    return _peft_conv(nn.Conv2d(2, d_out, kernel_size=3, padding="same", bias=bias), r, alpha)


def peft_conv1d_valid(d_out: int, r: int, alpha: float, bias: bool) -> nn.Module:
    """PEFT's LoRA on a Conv1d with ``padding='valid'`` (kernel 2, stride 2), as written."""
    return _peft_conv(nn.Conv1d(3, d_out, kernel_size=2, stride=2, padding="valid", bias=bias), r, alpha)


def peft_conv1d_dilated(d_out: int, r: int, alpha: float, bias: bool) -> nn.Module:
    """PEFT's LoRA on a dilated Conv1d (kernel 2, dilation 2), as written: PEFT 0.21.2 builds ``lora_A``
    without the base's dilation, so the two branches' outputs differ in length and the forward raises."""
    return _peft_conv(nn.Conv1d(3, d_out, kernel_size=2, dilation=2, bias=bias), r, alpha)


def conv_kernel_transposed(d_out: int, r: int, alpha: float, bias: bool) -> nn.Module:
    """PEFT's Conv2d LoRA whose merge adds the update with the kernel's spatial axes swapped (3 x 3 kernel)."""
    layer = _peft_conv(nn.Conv2d(2, d_out, kernel_size=3, padding=1, bias=bias), r, alpha)
    delta = layer.get_delta_weight
    layer.get_delta_weight = lambda adapter: delta(adapter).transpose(-1, -2)
    return layer


GOOD_VARIANTS = ("down_up", "lora_layer_child", "parametrized", "scaled_embedding", "fused_gqa", "dora")

EXPECTED_FAILURE = {
    "embedding_scale_missing": "embed_scale",
    "fused_slice_width_off_by_one": "qkv_slices",
    "unmerge_drops_adapter": "merge_roundtrip",
    "dora_norm_wrong_axis": "dora_norm",
    "dora_bias_scaled": "dora_bias",
    "conv_kernel_transposed": "merge_forward",
}
"""Broken factory name -> the one check that must fail (every other applicable check must pass)."""

EXPECTED_WARN = {"dropout_after_up": "dropout"}
"""Factories with a named deviation -> the check whose verdict must be WARN (nothing fails)."""
