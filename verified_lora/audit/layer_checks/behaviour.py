"""Layer checks of training-time behaviour: dropout semantics and the caller's input left untouched."""

from __future__ import annotations

import numpy as np
import torch

from ..cases import Example, tensor
from ..variants import bounds, reference
from ..outcome import Outcome, compare, worst
from ..registry import check

__all__: list[str] = []


class _Recorder(torch.nn.Module):
    """Stands in a dropout slot: records what it is applied to, returns it unchanged."""

    def __init__(self):
        super().__init__()
        self.seen: list[torch.Tensor] = []

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        self.seen.append(t.detach().clone())
        return t


def _put(slot: tuple[object, str], module: torch.nn.Module) -> None:
    container, key = slot
    if isinstance(container, torch.nn.ModuleDict):
        container[key] = module
    else:
        setattr(container, key, module)


PAPER_PLACEMENT = "on the adapter input (LoRA paper)"


def _placement(ex: Example) -> str | None:
    """Where the layer applies its dropout slot: a placement name, or None when forward never calls it."""
    view = ex.fresh()
    rec = _Recorder()
    _put(view.dropout_slot(), rec)
    x = tensor(ex.values.x)
    with torch.no_grad():
        view.call(x.clone())
    if not rec.seen:
        return None
    t = rec.seen[0].to(torch.float64)
    shape = tuple(t.shape)
    A = view.lora_parameters()["A"]
    if t.numel() == x.numel() and torch.equal(t.reshape(x.shape), x):
        return PAPER_PLACEMENT
    if shape in (tuple(A.shape), tuple(view.lora_parameters()["B"].shape)):
        return "per feature (on a factor: one mask shared by every token)"
    if shape[-1:] == (view.d_out,):
        return "after the up-projection"
    if shape[-1:] == (view.r,):
        return "between the down- and up-projection"
    return f"on a tensor of shape {shape}"


@check("dropout", doc="dropout only on the LoRA branch; eval deterministic; acts in training; placement reported",
       bug_classes="dropout semantics: dropout ignored on some code path, applied to the base branch too, or "
                   "still active (or baked into a merge) in eval mode; a placement other than the paper's "
                   "(adapter input) is a named deviation (WARN)")
def check_dropout(ex: Example) -> Outcome:
    p = 0.5
    outs = []
    x = tensor(ex.values.x)
    probe = ex.fresh()
    if probe.dropout_slot() is None:
        return Outcome(None, detail="the layer has no dropout")
    placement = _placement(ex)
    if placement is None:  # the slot is never called: does dropout act some other way?
        probe.set_dropout(p)
        with torch.no_grad():
            ys = []
            for seed in (4, 5):
                torch.manual_seed(seed)
                ys.append(probe.flat(probe.call(x.clone())))
        if np.array_equal(ys[0], ys[1]):
            if probe.dropout_declared:
                return Outcome(False, 0.0, 0.0, "the layer declares a dropout but its forward never applies it")
            return Outcome(None, detail="the layer has no dropout (its dropout slot is never applied)")
        placement = "not through its dropout slot"
    # (a) eval: deterministic and equal to the no-dropout reference (auto-merge off: dropout alone)
    view = ex.fresh()
    view.disable_auto_merge()
    view.set_dropout(p)
    view.module.eval()
    arrays = view.read()
    ref = reference(arrays, ex.cx)
    bnd = bounds(arrays, ex.cx, np.ones((ex.cx.shape[0], view.d_out)), "float64")["Y"]
    with torch.no_grad():
        torch.manual_seed(1)
        ya = view.flat(view.call(x.clone()))
        torch.manual_seed(2)
        yb = view.flat(view.call(x.clone()))
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
    if vals.m is not None:  # DoRA at the identity: m = ||W|| per output, so m / n = 1
        v0.write_magnitude(np.sqrt(np.sum(vals.W**2, axis=1)))
    arr0 = v0.read()
    ref0 = reference(arr0, ex.cx)
    bnd0 = bounds(arr0, ex.cx, np.ones((ex.cx.shape[0], view.d_out)), "float64")["Y"]
    with torch.no_grad():
        torch.manual_seed(3)
        y0 = v0.flat(v0.call(x.clone()))
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
            ys.append(v1.flat(v1.call(x.clone())))
    if all(np.array_equal(ys[0], y) for y in ys[1:]):
        outs.append(Outcome(False, 0.0, 0.0, f"dropout p={p} never changes the training output"))
    out = worst(outs)
    if out.passed and placement != PAPER_PLACEMENT:
        out.warn = True
        out.detail = f"dropout placed {placement}; the LoRA paper applies it on the adapter input"
    elif out.passed:
        out.detail = f"dropout placed {placement}"
    return out


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
        y = view.call(x)
        (y * tensor(ex.values.g)).sum().backward()
        diff = float(torch.max(torch.abs(x.detach() - before)).item())
        same = torch.equal(x.detach(), before)
        outs.append(Outcome(same, diff, 0.0, "" if same else
                            f"input modified in place ({'non-leaf input requiring grad' if grad else 'plain input'})"))
    return worst(outs)
