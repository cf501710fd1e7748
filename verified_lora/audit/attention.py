"""Attention-level audit: map a single-head attention module onto :class:`~verified_lora.LoraAttention`.

The module exposes ``q_proj``, ``k_proj``, ``v_proj`` (supported LoRA layers or ``nn.Linear``) and the
score scale ``beta``; ``forward(x)`` returns ``softmax_rows(beta Q K^T) V``. The audit computes the
loss ``1/2 ||forward(x) - y||_F^2`` with torch autograd and compares it and every adapter gradient,
mapped to the paper's orientation (:mod:`.adapters`), with the mpmath reference
(:mod:`verified_lora.reference`) under the running error bound of
:func:`~.error_bounds.attention_error_bounds`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from ..errors import AuditError
from .adapters import detect_layer
from .checks import (AttentionCase, AttentionSpec, CheckResult, Outcome, _aggregate, _compare, _entries, _guard,
                     _t, _worst, draw_values)

__all__ = ["attention_problem", "run_attention_case"]


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


def _attention_example(case: AttentionCase, spec: AttentionSpec | None, seed: int,
                       batch: int | None = None) -> tuple[Outcome, Outcome]:
    from .. import reference
    from .error_bounds import attention_error_bounds

    rng = np.random.default_rng(seed)
    module = case.build(spec).to(torch.float64)
    module.train(True)
    lora_params = []
    for attr in ("q_proj", "k_proj", "v_proj"):
        proj = getattr(module, attr)
        view = detect_layer(proj)
        if view is not None:
            view.set_dropout(0.0)
            vals = draw_values(rng, view, (1,))
            view.write(vals.W, vals.bias, vals.blocks)
            lora_params.append(view)
        else:
            with torch.no_grad():
                proj.weight.copy_(torch.as_tensor(_entries(rng, tuple(proj.weight.shape), 0.6)))
                if proj.bias is not None:
                    proj.bias.copy_(torch.as_tensor(_entries(rng, tuple(proj.bias.shape), 0.5)))
    def dims(proj: nn.Module) -> tuple[int, int]:
        view = detect_layer(proj)
        return (view.d_in, view.d_out) if view is not None else (proj.in_features, proj.out_features)

    d_model, d_v = dims(module.q_proj)[0], dims(module.v_proj)[1]
    L = spec.L if spec is not None else 5
    lead = (L,) if batch is None else (batch, L)
    x = _entries(rng, (*lead, d_model))
    y = _entries(rng, (*lead, d_v))
    out = module(_t(x))
    loss_t = 0.5 * ((out - _t(y)) ** 2).sum() / (1 if batch is None else batch)  # 1/(2N) sum over the batch
    loss_t.backward()
    problem, info = attention_problem(module, x, y)
    ref = reference.to_float(reference.loss_and_grads(problem, dps=40))
    bounds = attention_error_bounds(problem)
    lo = _compare(np.array([loss_t.item()]), np.array([ref.loss]), np.array([bounds["loss"]]))
    lo.detail = f"loss {ref.loss:.6g}"
    outs = []
    for key, (view, factor, folded) in info.items():
        g = view.grads()[0]
        if g["dA"] is None or g["dB"] is None:
            outs.append(Outcome(False, math.inf, None, f"no gradient reached the {key} adapter"))
            continue
        dA_paper = g["dB"].T  # dL/dA_paper = (dL/d lora_B)^T
        dB_paper = g["dA"].T  # dL/dB_paper = (dL/d lora_A)^T
        refB = ref.grads[f"B_{key}"] * factor
        bB = bounds[f"B_{key}"] * abs(factor)
        if folded:
            refB, bB = refB[:-1], bB[:-1]
        oa = _compare(dA_paper, ref.grads[f"A_{key}"], bounds[f"A_{key}"])
        oa.detail = f"A_{key}"
        ob = _compare(dB_paper, refB, bB)
        ob.detail = f"B_{key}"
        outs += [oa, ob]
    return lo, _worst(outs)


def run_attention_case(case: AttentionCase, *, seed: int, examples: int,
                       progress: Callable[[str], None] | None = None) -> list[CheckResult]:
    losses, grads = [], []
    t_total = 0.0
    for i in range(examples):
        rng = np.random.default_rng([seed, 1000 + i])
        spec = case.draw(rng, i) if case.draw is not None else None
        if progress:
            progress(f"{case.name}: attention example {i + 1}/{examples}")
        t0 = time.perf_counter()
        res: list[tuple[Outcome, Outcome]] = []

        def go() -> Outcome:
            ex_seed = int(rng.integers(2**31))
            batch = 2 if i % 2 == 1 else None  # odd examples: a batch of 2 (3-D input), if the module takes one
            try:
                res.append(_attention_example(case, spec, ex_seed, batch))
            except (RuntimeError, ValueError, IndexError):
                if batch is None:
                    raise
                res.append(_attention_example(case, spec, ex_seed, None))
            return Outcome(True)

        o = _guard(go)
        t_total += time.perf_counter() - t0
        if res:
            losses.append(res[0][0])
            grads.append(res[0][1])
        else:
            losses.append(o)
            grads.append(o)
    return [_aggregate("attention_loss", case.name, losses, t_total / 2),
            _aggregate("attention_grads", case.name, grads, t_total / 2)]
