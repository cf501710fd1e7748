"""A small torch single-head attention module with q/k/v projections (used to exercise PEFT).

``forward(x) = softmax_rows(beta * q_proj(x) k_proj(x)^T) v_proj(x)``, i.e. the paper's attention
in torch orientation (``q_proj(x) = x W_Q^T + b``). Imports torch; load it lazily.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["TinyAttention", "Holder"]


class TinyAttention(nn.Module):
    """Single-head attention exposing ``q_proj``, ``k_proj``, ``v_proj`` and the score scale ``beta``."""

    def __init__(self, d_model: int, d_head: int, d_v: int, *, bias: bool = False, beta: float | None = None):
        super().__init__()
        self.q_proj = nn.Linear(d_model, d_head, bias=bias)
        self.k_proj = nn.Linear(d_model, d_head, bias=bias)
        self.v_proj = nn.Linear(d_model, d_v, bias=bias)
        self.beta = float(d_head ** -0.5 if beta is None else beta)

    def forward(self, x: torch.Tensor, x_k: torch.Tensor | None = None, x_v: torch.Tensor | None = None):
        x_k = x if x_k is None else x_k
        x_v = x if x_v is None else x_v
        scores = self.beta * (self.q_proj(x) @ self.k_proj(x_k).transpose(-1, -2))
        return torch.softmax(scores, dim=-1) @ self.v_proj(x_v)


class Holder(nn.Module):
    """A one-layer model ``proj`` so that PEFT can inject LoRA into a single Linear or Conv1D."""

    def __init__(self, proj: nn.Module):
        super().__init__()
        self.proj = proj

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)
