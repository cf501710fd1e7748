"""LoRA layers for the audit's tests: correct positive controls and deliberately broken variants.

Every class is written from the formulas of docs/design.md section 2.2 (loralib
convention: ``lora_A`` (r x d_in) and ``lora_B`` (d_out x r) Parameters, float ``scaling``,
``merge_weights`` with ``train(False)`` merging and ``train(True)`` unmerging). Each broken variant
changes exactly one thing; :data:`EXPECTED_FAILURE` names the one audit check that must catch it.
Factories take the keyword arguments the audit passes (``d_in, d_out, r, alpha, bias``...).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class GoodLoraLinear(nn.Module):
    """A correct loralib-convention layer: ``Y = X W^T + b + s (D(X) A^T) B^T``."""

    def __init__(self, d_in: int = 5, d_out: int = 4, r: int = 2, alpha: float = 3.0, bias: bool = True,
                 use_rslora: bool = False):
        super().__init__()
        self.in_features, self.out_features, self.r, self.lora_alpha = d_in, d_out, r, alpha
        self.use_rslora = use_rslora
        self.fan_in_fan_out = False
        self.weight = nn.Parameter(torch.randn(d_out, d_in), requires_grad=False)
        self.bias = nn.Parameter(torch.randn(d_out), requires_grad=False) if bias else None
        self.lora_A = nn.Parameter(0.1 * torch.randn(r, d_in))
        self.lora_B = nn.Parameter(0.1 * torch.randn(*self.b_shape()))
        self.scaling = self.compute_scaling()
        self.lora_dropout = nn.Identity()
        self.merge_weights = True
        self.merged = False

    def b_shape(self) -> tuple[int, int]:
        return (self.out_features, self.r)

    def compute_scaling(self) -> float:
        return self.lora_alpha / (math.sqrt(self.r) if self.use_rslora else self.r)

    def delta(self) -> torch.Tensor:
        """``s B A`` in the (out x in) orientation of ``weight``."""
        return (self.lora_B @ self.lora_A) * self.scaling

    def lora_branch(self, x: torch.Tensor) -> torch.Tensor:
        return (self.lora_dropout(x) @ self.lora_A.T @ self.lora_B.T) * self.scaling

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.linear(x, self.weight, self.bias)
        if self.merged:
            return out
        return out + self.lora_branch(x)

    def merge_(self) -> None:
        self.weight.data += self.delta().detach()

    def unmerge_(self) -> None:
        self.weight.data -= self.delta().detach()

    def train(self, mode: bool = True):
        super().train(mode)
        if self.merge_weights:
            if mode and self.merged:
                self.unmerge_()
                self.merged = False
            elif not mode and not self.merged:
                self.merge_()
                self.merged = True
        return self


# ------------------------------------------------------------------------- broken variants
class WrongScale(GoodLoraLinear):
    """Uses alpha as the scale (forgot the 1/r), consistently in forward, backward and merge."""

    def compute_scaling(self) -> float:
        return float(self.lora_alpha)


class RsloraClaimedAlphaOverR(GoodLoraLinear):
    """Declares rsLoRA (``use_rslora=True``) but applies alpha/r."""

    def __init__(self, *args, **kwargs):
        kwargs["use_rslora"] = True
        super().__init__(*args, **kwargs)

    def compute_scaling(self) -> float:
        return self.lora_alpha / self.r


class TransposedB(GoodLoraLinear):
    """Stores lora_B as (r x d_out), mlx-style, under the loralib convention (which says d_out x r)."""

    def b_shape(self) -> tuple[int, int]:
        return (self.r, self.out_features)

    def delta(self) -> torch.Tensor:
        return (self.lora_A.T @ self.lora_B).T * self.scaling

    def lora_branch(self, x: torch.Tensor) -> torch.Tensor:
        return (self.lora_dropout(x) @ self.lora_A.T @ self.lora_B) * self.scaling


class FanInFanOutNotTransposed(GoodLoraLinear):
    """Declares fan_in_fan_out=True (weight stored in x out) but stores and uses weight as (out x in)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fan_in_fan_out = True


class BiasScaledOnMerge(GoodLoraLinear):
    """Merge also multiplies the bias by (1 + s); unmerge divides it back."""

    def merge_(self) -> None:
        super().merge_()
        if self.bias is not None:
            self.bias.data *= 1 + self.scaling

    def unmerge_(self) -> None:
        super().unmerge_()
        if self.bias is not None:
            self.bias.data /= 1 + self.scaling


class DropoutAtEval(GoodLoraLinear):
    """Applies dropout with training=True whatever the module mode."""

    def lora_branch(self, x: torch.Tensor) -> torch.Tensor:
        p = getattr(self.lora_dropout, "p", 0.0)
        return (F.dropout(x, p, training=True) @ self.lora_A.T @ self.lora_B.T) * self.scaling


class MergeWithoutScale(GoodLoraLinear):
    """Merge and unmerge add/subtract B A without the factor s."""

    def merge_(self) -> None:
        self.weight.data += (self.lora_B @ self.lora_A).detach()

    def unmerge_(self) -> None:
        self.weight.data -= (self.lora_B @ self.lora_A).detach()


class UnmergeNotRestoring(GoodLoraLinear):
    """Unmerge forgets the factor s, so W is not restored (s != 1 because alpha != r)."""

    def unmerge_(self) -> None:
        self.weight.data -= (self.lora_B @ self.lora_A).detach()


class _LoraFunction(torch.autograd.Function):
    """``s X A^T B^T`` with a hand-written backward; ``wrong_db`` drops the s in dB."""

    @staticmethod
    def forward(ctx, x, a, b, s, wrong_db):
        ctx.save_for_backward(x, a, b)
        ctx.s, ctx.wrong_db = s, wrong_db
        return (x @ a.T @ b.T) * s

    @staticmethod
    def backward(ctx, g):
        x, a, b = ctx.saved_tensors
        s = ctx.s
        x2, g2 = x.reshape(-1, x.shape[-1]), g.reshape(-1, g.shape[-1])
        gb = g2 @ b  # N x r
        dx = (s * gb @ a).reshape(x.shape)
        da = s * gb.T @ x2
        db = g2.T @ (x2 @ a.T)
        if not ctx.wrong_db:
            db = s * db
        return dx, da, db, None, None


class CorrectCustomBackward(GoodLoraLinear):
    """The custom autograd.Function with the right backward (positive control)."""

    wrong_db = False

    def lora_branch(self, x: torch.Tensor) -> torch.Tensor:
        return _LoraFunction.apply(self.lora_dropout(x), self.lora_A, self.lora_B, self.scaling, self.wrong_db)


class WrongBackward(CorrectCustomBackward):
    """A custom autograd.Function whose backward omits s in dL/dB."""

    wrong_db = True


class _ActivationDtypeLora(torch.autograd.Function):
    """Unsloth-style: A and B are cast to the activation dtype, so dA and dB are 16-bit accurate."""

    @staticmethod
    def forward(ctx, x, a, b, s):
        a16, b16 = a.to(x.dtype), b.to(x.dtype)
        ctx.save_for_backward(x, a16, b16)
        ctx.s = s
        return (x @ a16.T @ b16.T) * s

    @staticmethod
    def backward(ctx, g):
        x, a, b = ctx.saved_tensors
        x2, g2 = x.reshape(-1, x.shape[-1]), g.reshape(-1, g.shape[-1]).to(x.dtype)
        gb = g2 @ b
        return (ctx.s * gb @ a).reshape(x.shape), ctx.s * gb.T @ x2, ctx.s * g2.T @ (x2 @ a.T), None


class AdapterGradsInActivationDtype(GoodLoraLinear):
    """Accepts float32 adapters with bfloat16 inputs but computes their gradients in bfloat16."""

    def lora_branch(self, x: torch.Tensor) -> torch.Tensor:
        return _ActivationDtypeLora.apply(self.lora_dropout(x), self.lora_A, self.lora_B, self.scaling)


class InputMutation(GoodLoraLinear):
    """Scales the dropout output in place; with p = 0 dropout is the identity, so the caller's x changes."""

    def lora_branch(self, x: torch.Tensor) -> torch.Tensor:
        h = self.lora_dropout(x)
        h.mul_(self.scaling)
        return h @ self.lora_A.T @ self.lora_B.T


class GoodMergedLinear(nn.Module):
    """A correct loralib-MergedLinear-convention fused layer with an ``enable_lora`` mask."""

    shift = 0

    def __init__(self, d_in: int = 5, d_out: int = 6, r: int = 2, alpha: float = 3.0, bias: bool = True,
                 enable_lora=(True, False, True)):
        super().__init__()
        enable_lora = tuple(enable_lora)
        k = sum(enable_lora)
        self.in_features, self.out_features, self.r, self.lora_alpha = d_in, d_out, r, alpha
        self.enable_lora = list(enable_lora)
        self.fan_in_fan_out = False
        m = d_out // len(enable_lora)
        self.weight = nn.Parameter(torch.randn(d_out, d_in), requires_grad=False)
        self.bias = nn.Parameter(torch.randn(d_out), requires_grad=False) if bias else None
        self.lora_A = nn.Parameter(0.1 * torch.randn(r * k, d_in))
        self.lora_B = nn.Parameter(0.1 * torch.randn(m * k, r))
        self.scaling = alpha / r
        self.lora_dropout = nn.Identity()
        self.merge_weights = True
        self.merged = False
        ind = torch.zeros(len(enable_lora), m, dtype=torch.bool)
        ind[list(enable_lora)] = True
        self.lora_ind = torch.roll(ind.reshape(-1), self.shift)
        self.m, self.k = m, k

    def delta(self) -> torch.Tensor:
        parts = [self.lora_B[g * self.m:(g + 1) * self.m] @ self.lora_A[g * self.r:(g + 1) * self.r]
                 for g in range(self.k)]
        dw = self.lora_A.new_zeros(self.out_features, self.in_features)
        dw[self.lora_ind] = torch.cat(parts, dim=0)
        return dw * self.scaling

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.linear(x, self.weight, self.bias)
        if self.merged:
            return out
        return out + self.lora_dropout(x) @ self.delta().T

    def train(self, mode: bool = True):
        super().train(mode)
        if self.merge_weights:
            if mode and self.merged:
                self.weight.data -= self.delta().detach()
                self.merged = False
            elif not mode and not self.merged:
                self.weight.data += self.delta().detach()
                self.merged = True
        return self


class SliceOffByOne(GoodMergedLinear):
    """The fused-qkv row mask is shifted by one row."""

    shift = 1


class TorchtuneStyleLoRALinear(nn.Module):
    """The attribute layout of torchtune's LoRALinear (in_dim, out_dim, rank, alpha, lora_a, lora_b, dropout)."""

    def __init__(self, d_in: int = 5, d_out: int = 4, r: int = 2, alpha: float = 3.0, bias: bool = False):
        super().__init__()
        self.in_dim, self.out_dim, self.rank, self.alpha, self.use_bias = d_in, d_out, r, alpha, bias
        self.weight = nn.Parameter(torch.randn(d_out, d_in), requires_grad=False)
        self.bias = nn.Parameter(torch.randn(d_out), requires_grad=False) if bias else None
        self.dropout = nn.Identity()
        self.lora_a = nn.Linear(d_in, r, bias=False)
        self.lora_b = nn.Linear(r, d_out, bias=False)
        self.merged = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.linear(x, self.weight, self.bias)
        return out + (self.alpha / self.rank) * self.lora_b(self.lora_a(self.dropout(x)))


class AttentionOf(nn.Module):
    """Single-head attention whose q/k/v projections are given layers; exposes ``beta``."""

    def __init__(self, q: nn.Module, k: nn.Module, v: nn.Module, beta: float):
        super().__init__()
        self.q_proj, self.k_proj, self.v_proj, self.beta = q, k, v, beta

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.beta * (self.q_proj(x) @ self.k_proj(x).transpose(-1, -2))
        return torch.softmax(s, dim=-1) @ self.v_proj(x)


class AttentionIgnoresBeta(AttentionOf):
    """Declares beta but computes softmax(Q K^T) without it."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.q_proj(x) @ self.k_proj(x).transpose(-1, -2)
        return torch.softmax(s, dim=-1) @ self.v_proj(x)


class MlxStyle(nn.Module):
    """An unsupported convention: lora_a (d_in x r), lora_b (r x d_out) Parameters and a raw 'scale'."""

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(5, 4)
        self.lora_a = nn.Parameter(torch.randn(5, 2))
        self.lora_b = nn.Parameter(torch.randn(2, 4))
        self.scale = 20.0

    def forward(self, x):
        return self.linear(x) + self.scale * (x @ self.lora_a @ self.lora_b)


# ------------------------------------------------------------------------- factories
def _layer(cls):
    def factory(d_in: int, d_out: int, r: int, alpha: float, bias: bool) -> nn.Module:
        return cls(d_in, d_out, r, alpha, bias)
    factory.__name__ = factory.__qualname__ = cls.__name__
    return factory


good = _layer(GoodLoraLinear)
custom_backward = _layer(CorrectCustomBackward)
wrong_scale = _layer(WrongScale)
transposed_b = _layer(TransposedB)
fan_in_fan_out_not_transposed = _layer(FanInFanOutNotTransposed)
bias_scaled_on_merge = _layer(BiasScaledOnMerge)
dropout_at_eval = _layer(DropoutAtEval)
merge_without_scale = _layer(MergeWithoutScale)
unmerge_not_restoring = _layer(UnmergeNotRestoring)
wrong_backward = _layer(WrongBackward)
input_mutation = _layer(InputMutation)
adapter_grads_in_activation_dtype = _layer(AdapterGradsInActivationDtype)
rslora_claimed_alpha_over_r = _layer(RsloraClaimedAlphaOverR)
torchtune_style = _layer(TorchtuneStyleLoRALinear)


def good_merged(d_in: int, d_out: int, r: int, alpha: float, bias: bool, enable_lora) -> nn.Module:
    return GoodMergedLinear(d_in, d_out, r, alpha, bias, enable_lora)


def slice_off_by_one(d_in: int, d_out: int, r: int, alpha: float, bias: bool, enable_lora) -> nn.Module:
    return SliceOffByOne(d_in, d_out, r, alpha, bias, enable_lora)


def attention_good(d_model: int, d_head: int, d_v: int, r: int, alpha: float, bias: bool) -> nn.Module:
    """Attention with loralib-convention q and v, a torchtune-style k."""
    return AttentionOf(GoodLoraLinear(d_model, d_head, r, alpha, bias),
                       TorchtuneStyleLoRALinear(d_model, d_head, r, alpha, bias),
                       GoodLoraLinear(d_model, d_v, r, alpha, bias), beta=0.6)


def attention_ignores_beta(d_model: int, d_head: int, d_v: int, r: int, alpha: float, bias: bool) -> nn.Module:
    return AttentionIgnoresBeta(GoodLoraLinear(d_model, d_head, r, alpha, bias),
                                GoodLoraLinear(d_model, d_head, r, alpha, bias),
                                GoodLoraLinear(d_model, d_v, r, alpha, bias), beta=0.6)


class AttentionNoBeta(nn.Module):
    """q/k/v LoRA projections but a hidden score scale (no ``beta`` attribute): unsupported."""

    def __init__(self):
        super().__init__()
        self.q_proj, self.k_proj, self.v_proj = GoodLoraLinear(5, 4), GoodLoraLinear(5, 4), GoodLoraLinear(5, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = 0.5 * (self.q_proj(x) @ self.k_proj(x).transpose(-1, -2))
        return torch.softmax(s, dim=-1) @ self.v_proj(x)


def attention_without_beta() -> nn.Module:
    return AttentionNoBeta()


def fixed_shape_good() -> nn.Module:
    """A factory taking no arguments (the audit uses the module's own shapes)."""
    return GoodLoraLinear(6, 4, 2, 3.0, True)


def no_lora() -> nn.Module:
    return nn.Sequential(nn.Linear(4, 3), nn.ReLU())


def mlx_style() -> nn.Module:
    return MlxStyle()


not_callable = 42

BROKEN = {
    "wrong_scale": "scaling",
    "transposed_b": "layout",
    "fan_in_fan_out_not_transposed": "layout",
    "bias_scaled_on_merge": "merge_forward",
    "dropout_at_eval": "dropout",
    "merge_without_scale": "merge_forward",
    "unmerge_not_restoring": "merge_roundtrip",
    "wrong_backward": "grad_B",
    "input_mutation": "input_unchanged",
    "slice_off_by_one": "qkv_slices",
    "rslora_claimed_alpha_over_r": "scaling",
    "adapter_grads_in_activation_dtype": "precision_mixed",
}
"""Broken factory name -> the one check that must fail (every other applicable check must pass)."""

BROKEN_ATTENTION = {"attention_ignores_beta": {"attention_loss", "attention_grads"}}
"""Broken attention factories -> the attention-level checks that must fail (layer checks pass)."""

GOOD = ("good", "custom_backward", "good_merged", "torchtune_style", "attention_good", "fixed_shape_good")
