"""LoRA layers written in conventions met in public code, for tests/test_audit_libraries.py (imports torch).

Each is written here from its published formula ``Y = X W^T + b + s X A^T B^T``, in the storage and
naming of one style; none is an alias of another library's class:

* :class:`TransposedAB`: ``lora_a`` (d_in x r) and ``lora_b`` (r x d_out) stored transposed, a raw
  ``scale`` multiplier (no alpha / r), the base in a child ``linear`` (the MLX-LM style);
* :func:`parametrized`: a ``torch.nn.utils.parametrize`` parametrization of ``weight`` holding
  ``lora_A``/``lora_B`` and ``scaling`` (the minLoRA style): ``W_eff = W + s B A``;
* :class:`DownUpParams`: ``down`` (r x d_in) and ``up`` (d_out x r) as plain ``Parameter`` s next to
  a frozen ``weight``/``bias``, ``alpha`` and ``rank`` attributes, ``merge()``/``unmerge()``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize


class TransposedAB(nn.Module):
    def __init__(self, d_in: int, d_out: int, r: int, alpha: float, bias: bool):
        super().__init__()
        self.linear = nn.Linear(d_in, d_out, bias=bias).requires_grad_(False)
        self.lora_a = nn.Parameter(torch.randn(d_in, r) / d_in ** 0.5)
        self.lora_b = nn.Parameter(torch.randn(r, d_out) / r)
        self.scale = alpha  # a raw multiplier, as MLX-LM's `scale`

    def forward(self, x):
        return self.linear(x) + self.scale * ((x @ self.lora_a) @ self.lora_b)


class _LoraWeight(nn.Module):
    def __init__(self, d_in: int, d_out: int, r: int, alpha: float):
        super().__init__()
        self.lora_A = nn.Parameter(torch.randn(r, d_in) / d_in ** 0.5)
        self.lora_B = nn.Parameter(torch.randn(d_out, r) / r)
        self.scaling = alpha / r

    def forward(self, weight):
        return weight + self.scaling * (self.lora_B @ self.lora_A)


def parametrized(d_in: int, d_out: int, r: int, alpha: float, bias: bool) -> nn.Module:
    layer = nn.Linear(d_in, d_out, bias=bias)
    layer.weight.requires_grad_(False)
    if bias:
        layer.bias.requires_grad_(False)
    parametrize.register_parametrization(layer, "weight", _LoraWeight(d_in, d_out, r, alpha))
    return layer


class DownUpParams(nn.Module):
    def __init__(self, d_in: int, d_out: int, r: int, alpha: float, bias: bool):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(d_out, d_in) / d_in ** 0.5, requires_grad=False)
        self.bias = nn.Parameter(torch.zeros(d_out), requires_grad=False) if bias else None
        self.down = nn.Parameter(torch.randn(r, d_in) / d_in ** 0.5)
        self.up = nn.Parameter(torch.randn(d_out, r) / r)
        self.alpha, self.rank = alpha, r
        self.merged = False

    def forward(self, x):
        y = F.linear(x, self.weight, self.bias)
        return y if self.merged else y + (self.alpha / self.rank) * (x @ self.down.T @ self.up.T)

    def merge(self):
        if not self.merged:
            self.weight.data += (self.alpha / self.rank) * (self.up @ self.down)
            self.merged = True

    def unmerge(self):
        if self.merged:
            self.weight.data -= (self.alpha / self.rank) * (self.up @ self.down)
            self.merged = False


def transposed_ab(d_in: int, d_out: int, r: int, alpha: float, bias: bool) -> nn.Module:
    return TransposedAB(d_in, d_out, r, alpha, bias)


def down_up_params(d_in: int, d_out: int, r: int, alpha: float, bias: bool) -> nn.Module:
    return DownUpParams(d_in, d_out, r, alpha, bias)


# ------------------------------------------------------------------ fixed shapes (explicit-mapping tests)
def down_up_fixed() -> nn.Module:
    """:class:`DownUpParams` at fixed shapes (d_in 5, d_out 4, r 2, alpha 3): the CLI mapping flags describe it."""
    torch.manual_seed(0)
    return DownUpParams(5, 4, 2, 3.0, True)


# ------------------------------------------------------------------ small models (whole-model tests)
class _HalfLora(nn.Module):
    """A LoRA-looking layer with ``lora_A`` but no second factor: detection must refuse it."""

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(4, 5), requires_grad=False)
        self.lora_A = nn.Parameter(torch.randn(2, 5))

    def forward(self, x):
        return F.linear(x, self.weight)


def model_with_refused_layer() -> nn.Module:
    """A model holding one supported LoRA layer and one the audit cannot map."""
    torch.manual_seed(0)
    return nn.ModuleDict({"good": DownUpParams(5, 4, 2, 3.0, True), "odd": _HalfLora()})


def model_with_loose_trainable() -> nn.Module:
    """A frozen model with one LoRA layer and a trainable plain head outside every LoRA layer."""
    torch.manual_seed(0)
    return nn.ModuleDict({"lora": DownUpParams(5, 4, 2, 3.0, True), "head": nn.Linear(4, 3)})


def model_with_nan_weight() -> nn.Module:
    """A frozen model whose LoRA layer's own base weight holds a NaN (as a diverged training run leaves it)."""
    torch.manual_seed(0)
    m = nn.ModuleDict({"lora": DownUpParams(5, 4, 2, 3.0, True), "frozen": nn.Linear(4, 3).requires_grad_(False)})
    with torch.no_grad():
        m["lora"].weight[1, 2] = float("nan")
    return m
