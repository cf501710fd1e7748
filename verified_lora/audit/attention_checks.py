"""Attention-level audit checks (imports torch): ``attention_loss`` and ``attention_grads``.

For every example the audit writes drawn values into a fresh single-head attention module, computes
the loss ``1/2 ||forward(x) - y||_F^2`` with torch autograd and compares it and every adapter
gradient, mapped to the paper's orientation (:func:`.attention.attention_problem`), with the mpmath
reference (:mod:`verified_lora.reference`) under the running error bound of
:func:`~.error_bounds.attention_error_bounds`. Both checks come from one computation per example, so
they are registered here without a function of their own and run by :func:`run_attention_case`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from .adapters import detect_layer
from .attention import attention_problem
from .cases import AttentionCase, AttentionSpec, draw_values, entries, tensor
from .outcome import CheckResult, Outcome, aggregate, compare, guard, worst
from .registry import register

__all__ = ["run_attention_case"]

register("attention_loss", level="attention",
         doc="attention loss of the module vs mpmath reference (verified_lora.reference)",
         bug_classes="wrong forward output at attention level: a projection, scale or bias that feeds the "
                     "scores, softmax or loss differently from the declared LoRA layers")
register("attention_grads", level="attention",
         doc="adapter gradients of the attention module, mapped to the paper, vs mpmath reference",
         bug_classes="wrong adapter gradients at attention level, and layout mistakes between torch's "
                     "lora_A/lora_B and the paper's B/A")


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
                proj.weight.copy_(torch.as_tensor(entries(rng, tuple(proj.weight.shape), 0.6)))
                if proj.bias is not None:
                    proj.bias.copy_(torch.as_tensor(entries(rng, tuple(proj.bias.shape), 0.5)))
    def dims(proj: nn.Module) -> tuple[int, int]:
        view = detect_layer(proj)
        return (view.d_in, view.d_out) if view is not None else (proj.in_features, proj.out_features)

    d_model, d_v = dims(module.q_proj)[0], dims(module.v_proj)[1]
    L = spec.L if spec is not None else 5
    lead = (L,) if batch is None else (batch, L)
    x = entries(rng, (*lead, d_model))
    y = entries(rng, (*lead, d_v))
    out = module(tensor(x))
    loss_t = 0.5 * ((out - tensor(y)) ** 2).sum() / (1 if batch is None else batch)  # 1/(2N) sum over the batch
    loss_t.backward()
    problem, info = attention_problem(module, x, y)
    ref = reference.to_float(reference.loss_and_grads(problem, dps=40))
    bounds = attention_error_bounds(problem)
    lo = compare(np.array([loss_t.item()]), np.array([ref.loss]), np.array([bounds["loss"]]))
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
        oa = compare(dA_paper, ref.grads[f"A_{key}"], bounds[f"A_{key}"])
        oa.detail = f"A_{key}"
        ob = compare(dB_paper, refB, bB)
        ob.detail = f"B_{key}"
        outs += [oa, ob]
    return lo, worst(outs)


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

        o = guard(go)
        t_total += time.perf_counter() - t0
        if res:
            losses.append(res[0][0])
            grads.append(res[0][1])
        else:
            losses.append(o)
            grads.append(o)
    return [aggregate("attention_loss", case.name, losses, t_total / 2),
            aggregate("attention_grads", case.name, grads, t_total / 2)]
