"""Structural layer checks: how the module stores its adapters and where each block writes.

They *detect* the actual layout first, so that the numerical checks can use it and one bug fails
one check: ``layout`` compares the stored orientation with the declared convention, ``qkv_slices``
probes which output columns each fused block reaches and records that placement on the example.
"""

from __future__ import annotations

import numpy as np
import torch

from ..views import PAPER_MAPPING, LayerView
from ..cases import Example, tensor
from ..error_bounds import layer_bounds, scale_bound
from ..outcome import Outcome
from ..registry import check

__all__: list[str] = []


@check("layout", takes="view",
       doc="stored orientation of weight, lora_A, lora_B matches the declared convention "
           "(fan_in_fan_out / transposed layouts)",
       bug_classes="transposed storage: a weight stored (in x out) (transformers Conv1D, fan_in_fan_out) or "
                   "adapters stored transposed, while merge, norms or initialisation assume the other "
                   "orientation")
def check_layout(ex: Example, view: LayerView) -> Outcome:
    lay = view.layout()
    bad = {k: v for k, v in lay.items() if v != "declared"}
    fifo = f"fan_in_fan_out={view.fan_in_fan_out}"
    if not view.orientation_declared:  # no convention declares it: the orientation found is the layout
        return Outcome(True, None, None, "orientation inferred from shapes: " + ", ".join(
            f"{k} {'stored transposed' if v == 'transposed' else 'as canonical'}" for k, v in lay.items()))
    if bad:
        return Outcome(False, None, None, f"{fifo}; stored differently from the {view.convention} convention: "
                       + ", ".join(f"{k} {v}" for k, v in bad.items()))
    return Outcome(True, None, None, f"{fifo}; {getattr(view, 'paper_mapping', PAPER_MAPPING)}")


@check("qkv_slices", takes="probe",
       doc="each fused-qkv LoRA block lands exactly in its enable_lora slice",
       bug_classes="fused-projection placement: the update of a fused q/k/v weight lands in the wrong output "
                   "columns (partial enable_lora masks, unequal q and k/v widths, interleaved layouts, padding "
                   "along the wrong axis)")
def probe_placement(ex: Example) -> Outcome:
    """Probe where each block writes: W = 0, A_g = [I_r | 0], B_g[i] = (i+1, 1, 0, ...), X = I."""
    view = ex.fresh(probe=False, write=False)
    blocks = view.blocks()
    if len(blocks) == 1 and len(blocks[0].declared_cols) == view.d_out:
        return Outcome(None, detail="single LoRA block over every output column: nothing to place")
    if getattr(view, "shared_a", False):
        return Outcome(None, detail="blocks share one A over every output column (a conv kernel): nothing to place")
    if view.r < 2 or view.d_in < view.r:
        return Outcome(None, detail="probe needs r >= 2 and d_in >= r")
    zeros = np.zeros((view.d_out, view.d_in))
    detected: list[np.ndarray] = []
    problems = []
    for g, blk in enumerate(blocks):
        m = blk.b_rows.stop - blk.b_rows.start
        vals = []
        for h, other in enumerate(blocks):
            mm = other.b_rows.stop - other.b_rows.start
            a = np.zeros((view.r, view.d_in))
            b = np.zeros((mm, view.r))
            if h == g:
                a[:, :view.r] = np.eye(view.r)
                b[:, 0] = np.arange(1, mm + 1)
                b[:, 1] = 1.0
            vals.append((a, b, None if not view.has_lora_bias() else np.zeros(mm)))
        v = ex.fresh(probe=False, write=False)
        v.write(zeros, None if not v.has_bias() else np.zeros(view.d_out), vals)
        with torch.no_grad():
            y = v.flat(v.call(tensor(np.eye(view.d_in))))  # y[i, j] = s dW[j, i]
        cols = np.full(m, -1)
        for j in range(view.d_out):
            c0, c1 = y[0, j], y[1, j]
            if c0 == 0 and c1 == 0 and not np.any(y[:, j]):
                continue
            i = int(round(c0 / c1)) - 1 if c1 != 0 else -1
            if not (0 <= i < m) or cols[i] != -1:
                problems.append(f"block {g}: output column {j} is not a single row of B")
                continue
            cols[i] = j
        if np.any(cols < 0):
            problems.append(f"block {g}: rows {np.flatnonzero(cols < 0).tolist()} of B reach no output column")
        detected.append(cols)
    if problems:
        return Outcome(False, None, None, "; ".join(problems[:3]))
    ex.placement = detected
    wrong = [(g, blk.declared_cols, c) for g, (blk, c) in enumerate(zip(blocks, detected))
             if not np.array_equal(blk.declared_cols, c)]
    if wrong:
        g, d, c = wrong[0]
        return Outcome(False, float(sum(np.sum(d != c) for _, d, c in wrong)), 0.0,
                       f"block {g} declared at output columns {d.tolist()} but writes {c.tolist()}")
    return Outcome(True, 0.0, 0.0, f"{len(blocks)} blocks at their enable_lora slices")


@check("embed_scale", takes="probe",
       doc="a scaled embedding's output scale c multiplies the LoRA branch as it does the base (PEFT, Gemma)",
       bug_classes="embedding scale missing: the base embedding multiplies its output by embed_scale but the LoRA "
                   "branch does not, so the adapter is under- or over-scaled by that factor")
def probe_embed_scale(ex: Example) -> Outcome:
    """W = 0, X = every token id: the output is ``k s Z``; ``k`` must be the base scale ``c``, not 1."""
    view = ex.fresh(probe=False, write=False)
    c = float(view.base_scale)
    if c == 1.0:
        return Outcome(None, detail="no base output scale (embed_scale) on this layer")
    vals = ex.values
    view.write(np.zeros((view.d_out, view.d_in)), None if not view.has_bias() else np.zeros(view.d_out),
               vals.blocks)
    with torch.no_grad():
        y = view.flat(view.call(tensor(np.eye(view.d_in))))
    z = np.zeros_like(y)
    for blk, (a, b, bb) in zip(view.blocks(), vals.blocks):
        z[:, blk.declared_cols] += a.T @ b.T + (0 if bb is None else bb)
    s = float(view.declared_scale)
    k = float(np.sum(y * z) / np.sum(z * z)) / s
    err = abs(k - c)
    view.lora_factor = c  # the bound for the correct layer: |s_eff - s c| <= sum E|Z| / sum Z^2
    e = layer_bounds(view.read(), np.eye(view.d_in), np.ones((view.d_in, view.d_out)), "float64")["Y"]
    bound = scale_bound(e, z) / abs(s) + 4 * 2.0**-53 * abs(c)  # plus the roundings of the ratio and division
    if err <= bound:
        ex.lora_factor = c
        return Outcome(True, err, bound, f"LoRA branch scaled by embed_scale c = {c:.6g}, as the base")
    ex.lora_factor = k
    return Outcome(False, err, bound, f"LoRA branch scaled by {k:.6g}; the base by embed_scale c = {c:.6g}")
