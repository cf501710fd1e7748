"""Map a single-head attention module onto :class:`~verified_lora.LoraAttention` (imports torch).

The module exposes ``q_proj``, ``k_proj``, ``v_proj`` (supported LoRA layers or ``nn.Linear``) and the
score scale ``beta``; ``forward(x)`` returns ``softmax_rows(beta Q K^T) V``. The attention checks
(:mod:`.attention_checks`) use this mapping to compare the module with the mpmath reference.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..errors import AuditError
from .adapters import detect_layer

__all__ = ["attention_problem"]


def attention_problem(module: nn.Module, x: np.ndarray, y: np.ndarray):
    """Map a single-head attention module (q_proj/k_proj/v_proj, ``beta``) onto a LoraAttention problem.

    Biases are folded exactly: ``x -> [x, 1]`` and ``W_paper -> [W_paper; b]`` (zero row where a
    projection has no bias), with a zero row appended to each adapter's ``b``. A layer's scale ``s``
    enters as ``alpha = s r`` with ``scaling="lora"`` when that reproduces ``s`` exactly and all ranks
    agree; otherwise each ``b`` is multiplied by ``s_key / problem.scale(key)`` (one rounding, which
    the attention error bound accounts for). Returns ``(problem, info)`` where ``info`` maps each
    key to its view and the factor needed to map gradients back.
    """
    from ..problem import Adapter, LoraAttention, lora_scale
    from .adapters import to_paper

    beta = getattr(module, "beta", None)
    if beta is None:
        raise AuditError(f"{type(module).__name__}: attention modules must expose the score scale as "
                         "attribute 'beta' (S = beta Q K^T)")
    views, mats = {}, {}
    for key, attr in (("Q", "q_proj"), ("K", "k_proj"), ("V", "v_proj")):
        proj = getattr(module, attr, None)
        if proj is None:
            raise AuditError(f"{type(module).__name__}: attention modules need q_proj, k_proj and v_proj")
        view = detect_layer(proj)
        if view is not None:
            arr = view.read()
            paper = to_paper(arr)
            mats[key] = (paper["w"], arr.bias, paper["a"], paper["b"], arr.s)
            views[key] = view
        elif isinstance(proj, nn.Linear):
            mats[key] = (_np_t(proj.weight).T, None if proj.bias is None else _np_t(proj.bias), None, None, None)
        else:
            raise AuditError(f"{attr} is neither a supported LoRA layer nor nn.Linear")
    has_bias = any(m[1] is not None for m in mats.values())
    X = np.asarray(x, dtype=np.float64)
    if has_bias:
        X = np.concatenate([X, np.ones((*X.shape[:-1], 1))], axis=-1)
    ranks = {m[2].shape[0] for m in mats.values() if m[2] is not None}
    scales = {m[4] for m in mats.values() if m[4] is not None}
    alpha, factor_all = 1.0, None
    if len(ranks) == 1 and len(scales) == 1:
        (r,), (s,) = ranks, scales
        if lora_scale(s * r, r, "lora") == s:
            alpha, factor_all = s * r, 1.0
    adapters, weights, info = {}, {}, {}
    for key, (w, b, a, bb, s) in mats.items():
        if has_bias:
            w = np.concatenate([w, (np.zeros((1, w.shape[1])) if b is None else b[None, :])], axis=0)
        weights[key] = w
        if a is not None:
            if has_bias:
                bb = np.concatenate([bb, np.zeros((1, bb.shape[1]))], axis=0)
            factor = factor_all if factor_all is not None else s / lora_scale(alpha, a.shape[0], "lora")
            adapters[key] = Adapter(a=a, b=bb * factor)
            info[key] = (views[key], factor, has_bias)
    problem = LoraAttention(x_q=X, y=np.asarray(y, dtype=np.float64), w_q=weights["Q"], w_k=weights["K"],
                            w_v=weights["V"], adapters=adapters, alpha=alpha, beta=float(beta), scaling="lora")
    return problem, info


def _np_t(t: torch.Tensor) -> np.ndarray:
    return t.detach().to(torch.float64).numpy().copy()
