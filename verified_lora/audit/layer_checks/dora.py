"""DoRA probes (imports torch): which norm divides the magnitude, and whether the bias is rescaled.

Both run before the numerical checks and record what they detect on the example, so that a DoRA layer
with its norm over the wrong axis fails ``dora_norm`` alone and one that rescales its bias fails
``dora_bias`` alone (the forward and gradient checks then compare with a reference of what the layer
does). The paper's convention (DoRA, Liu et al. 2024, eq. (5); PEFT): ``n_j = ||(W + s B A)[j, :]||``,
one norm per output, and ``Y = (m / n) * (X (W + s B A)^T) + b`` with the bias not rescaled.
"""

from __future__ import annotations

import numpy as np
import torch

from ..cases import Example, tensor
from ..outcome import Outcome
from ..registry import check
from ..variants.dora import dora_bounds, row_norms

__all__: list[str] = []


@check("dora_bias", takes="probe", doc="DoRA: the base bias is added after the magnitude rescaling, not rescaled",
       bug_classes="DoRA bias handled wrongly: the bias multiplied by m / n (or subtracted twice) along with the "
                   "weight, where DoRA and PEFT rescale only X (W + s B A)^T")
def probe_dora_bias(ex: Example) -> Outcome:
    """X = 0: the output must be the bias itself; ``(m / n) b`` means the bias is rescaled."""
    view = ex.fresh(probe=False)
    if view.magnitude_tensor() is None:
        return Outcome(None, detail="plain LoRA: no magnitude vector")
    if not view.has_bias():
        return Outcome(None, detail="DoRA layer without a bias")
    arrays = view.read()
    with torch.no_grad():
        y = view.flat(view.call(tensor(np.zeros((1, view.d_in)))))[0]
    bnd = dora_bounds(arrays, np.zeros((1, view.d_in)), np.ones((1, view.d_out)), "float64")["Y"][0]
    err = np.abs(y - arrays.bias)
    if np.all(err <= bnd):
        ex.bias_scaled = False
        return Outcome(True, float(err.max()), float(bnd.max()), "bias added after the rescaling (paper, PEFT)")
    ex.bias_scaled = True
    k = arrays.m / row_norms(arrays)
    return Outcome(False, float(err.max()), float(bnd.max()),
                   "bias rescaled with the weight: output at X = 0 is "
                   + ("(m / n) b" if np.allclose(y, k * arrays.bias, rtol=1e-12, atol=0) else "not b"))


@check("dora_norm", takes="probe", doc="DoRA: m is divided by the norm of W + s B A per output (the paper's axis)",
       bug_classes="DoRA norm over the wrong axis: the norm taken per input (over the output axis of the "
                   "(out x in) weight, or of a transposed Conv1D weight), silent only for square layers")
def probe_dora_norm(ex: Example) -> Outcome:
    """X = I: column j of the output is ``k_j V[j, :]``; ``m_j / k_j`` is the norm the layer used."""
    view = ex.fresh(probe=False)
    if view.magnitude_tensor() is None:
        return Outcome(None, detail="plain LoRA: no magnitude vector")
    arrays = view.read()
    eye = np.eye(view.d_in)
    with torch.no_grad():
        y = view.flat(view.call(tensor(eye)))
    b = np.zeros(view.d_out) if arrays.bias is None else arrays.bias
    V = arrays.W.copy()
    for rows, a, bm, _ in arrays.blocks:
        V[rows] += arrays.s * (bm @ a)
    m = arrays.m
    outs = {}
    for axis in ((1, 0) if view.d_in == view.d_out else (1,)):
        n = row_norms(arrays, axis)
        k = m / n
        pred = V.T * k + (k * b if ex.bias_scaled else b)
        trial = type(arrays)(**{**arrays.__dict__, "norm_axis": axis, "bias_scaled": bool(ex.bias_scaled)})
        bnd = dora_bounds(trial, eye, np.ones((view.d_in, view.d_out)), "float64")["Y"]
        err = np.abs(y - pred)
        outs[axis] = (bool(np.all(err <= bnd)), float(err.max()), float(bnd.max()))
    if outs[1][0]:
        ex.norm_axis = 1
        return Outcome(True, outs[1][1], outs[1][2], "norm per output row of W + s B A (DoRA paper, PEFT)")
    if 0 in outs and outs[0][0]:
        ex.norm_axis = 0
        return Outcome(False, outs[1][1], outs[1][2], "norm taken per input (over the wrong axis of W + s B A)")
    return Outcome(False, outs[1][1], outs[1][2], "the magnitude is divided by neither norm of W + s B A")
