"""Layer checks of training-time behaviour: dropout semantics and the caller's input left untouched."""

from __future__ import annotations

import numpy as np
import torch

from ..cases import Example, flat_out, tensor
from ..error_bounds import layer_bounds
from ..layer_reference import layer_reference
from ..outcome import Outcome, compare, worst
from ..registry import check

__all__: list[str] = []


@check("dropout", doc="dropout only on the LoRA branch; eval deterministic; acts in training",
       bug_classes="dropout semantics: dropout ignored on some code path, applied to the base branch too, or "
                   "still active (or baked into a merge) in eval mode")
def check_dropout(ex: Example) -> Outcome:
    p = 0.5
    outs = []
    x = tensor(ex.values.x)
    # (a) eval: deterministic and equal to the no-dropout reference (auto-merge off: dropout alone)
    view = ex.fresh()
    view.disable_auto_merge()
    view.set_dropout(p)
    view.module.eval()
    arrays = view.read()
    ref = layer_reference(arrays, ex.values.x)
    bnd = layer_bounds(arrays, ex.values.x, np.ones((*ex.lead, view.d_out)), "float64")["Y"]
    with torch.no_grad():
        torch.manual_seed(1)
        ya = flat_out(view.module(x.clone()), view.d_out)
        torch.manual_seed(2)
        yb = flat_out(view.module(x.clone()), view.d_out)
    if not np.array_equal(ya, yb):
        outs.append(Outcome(False, float(np.max(np.abs(ya - yb))), 0.0, "eval output changes between calls"))
    o = compare(ya, ref.Y, bnd)
    if not o.passed:
        o.detail = "eval output differs from the no-dropout reference"
    outs.append(o)
    # (b) train with B = 0: output must be the undropped base branch
    v0 = ex.fresh(write=False)
    v0.set_dropout(p)
    vals = ex.values
    v0.write(vals.W, vals.bias, [(a, np.zeros_like(b), None if bb is None else np.zeros_like(bb))
                                 for a, b, bb in vals.blocks])
    arr0 = v0.read()
    ref0 = layer_reference(arr0, vals.x)
    bnd0 = layer_bounds(arr0, vals.x, np.ones((*ex.lead, view.d_out)), "float64")["Y"]
    with torch.no_grad():
        torch.manual_seed(3)
        y0 = flat_out(v0.module(x.clone()), view.d_out)
    o = compare(y0, ref0.Y, bnd0)
    if not o.passed:
        o.detail = "training output with B = 0 differs from X W^T + b: dropout reaches the base branch"
    outs.append(o)
    # (c) train with B != 0: dropout acts (two seeds give different outputs)
    v1 = ex.fresh()
    v1.set_dropout(p)
    with torch.no_grad():
        ys = []
        for seed in (4, 5, 6):
            torch.manual_seed(seed)
            ys.append(flat_out(v1.module(x.clone()), view.d_out))
    if all(np.array_equal(ys[0], y) for y in ys[1:]):
        outs.append(Outcome(False, 0.0, 0.0, f"dropout p={p} never changes the training output"))
    return worst(outs)


@check("input_unchanged", doc="the input tensor is not mutated by forward/backward",
       bug_classes="in-place input mutation: a forward or backward (typically a fused kernel with an in-place "
                   "option) overwrites the caller's input tensor")
def check_input_unchanged(ex: Example) -> Outcome:
    outs = []
    for grad in (False, True):
        view = ex.fresh()
        x0 = tensor(ex.values.x, requires_grad=grad)
        x = x0.clone() if grad else x0
        before = x.detach().clone()
        y = view.module(x)
        (y * tensor(ex.values.g)).sum().backward()
        diff = float(torch.max(torch.abs(x.detach() - before)).item())
        same = torch.equal(x.detach(), before)
        outs.append(Outcome(same, diff, 0.0, "" if same else
                            f"input modified in place ({'non-leaf input requiring grad' if grad else 'plain input'})"))
    return worst(outs)
