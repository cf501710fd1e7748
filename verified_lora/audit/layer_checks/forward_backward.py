"""Layer checks on one forward/backward pass in float64, against the mpmath reference.

The pass (:func:`standard_pass`) is run once per example and shared by ``scaling``, ``forward``
and the gradient checks. ``scaling`` compares the measured scale with the claimed convention,
while ``forward`` and the gradient checks use the scale the layer declares (its ``scaling``
attribute), so a wrong convention fails ``scaling`` alone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from ..views import LayerView, bound_dtype
from ..cases import Example, tensor
from ..error_bounds import LayerArrays, scale_bound
from ..layer_reference import effective_scale
from ..variants import bounds as variant_bounds
from ..variants import reference
from ..outcome import Outcome, compare, worst
from ..registry import check

__all__ = ["Pass", "standard_pass"]

ADAPTER_GRADIENT_BUGS = ("wrong or missing adapter gradients: hand-written backward passes that drop a factor or "
                         "a transpose, inputs lost when gradient checkpointing recomputes the forward, fused losses "
                         "that read the frozen base weight instead of the adapted one")


@dataclass
class Pass:
    """One float64 forward/backward of an example: outputs, gradients, reference and bounds."""

    view: LayerView
    arrays: LayerArrays
    y: np.ndarray
    grads: list
    dx: np.ndarray | None
    ref: Any
    bounds: dict


def standard_pass(ex: Example) -> Pass:
    """Forward and backward (loss ``sum(Y * G)``) of a fresh float64 module, with reference and bounds."""
    view = ex.fresh()
    x0 = tensor(ex.values.x, requires_grad=view.has_input_grad)
    x = x0.clone()
    y = view.call(x.clone())
    (y * tensor(ex.values.g)).sum().backward()
    arrays = view.read()
    ref = reference(arrays, ex.cx, ex.cg)
    bounds = variant_bounds(arrays, ex.cx, ex.cg, bound_dtype(view, "float64"))
    if getattr(view, "shared_a", False):  # blocks sharing one stored A: compare in the stored layout
        rb, bb = view.reduce(ref.blocks, bounds["blocks"], ex.cx.shape[0], bound_dtype(view, "float64"))
        ref = replace(ref, blocks=rb)
        bounds = {**bounds, "blocks": bb}
    dx = None if x0.grad is None else x0.grad.detach().numpy()
    if dx is not None and view.input_kind != "conv":
        dx = dx.reshape(-1, view.d_in)
    return Pass(view, arrays, view.flat(y), view.grads(), dx, ref, bounds)


def _claimed_scale(view: LayerView) -> float:
    import mpmath

    if getattr(view, "claimed_value", 0.0) is None:
        return math.nan
    if getattr(view, "claimed_value", None) is not None and view.claimed_scaling == "declared scale":
        return float(view.claimed_value) * view.lora_factor

    r = getattr(view, "lora_rank", view.r)  # the declared rank (loralib ConvLoRA's blocks have rank r k)
    with mpmath.workdps(40):
        s = mpmath.mpf(view.alpha) / (mpmath.sqrt(r) if view.claimed_scaling == "rslora" else r)
        return float(s * mpmath.mpf(view.lora_factor))


def _name_scale(s: float, view: LayerView, tol: float) -> str:
    a, r = view.alpha, view.r
    for name, value in (("alpha/r", a / r), ("alpha/sqrt(r)", a / math.sqrt(r)), ("alpha (no 1/r)", a),
                        ("1", 1.0), ("alpha/r^2", a / r**2), ("r/alpha", r / a)):
        if abs(s - value) <= tol + 4 * abs(value) * 2.0**-52:
            return name
    return "other"


@check("scaling", takes="pass",
       doc="effective s measured from the output matches the claimed alpha/r or alpha/sqrt(r)",
       bug_classes="scale convention: the layer applies alpha, alpha/r or alpha/sqrt(r) where another is "
                   "declared (rsLoRA ignored by a loader or a rescale, raw alpha used as the scale, scale lost "
                   "when the rank changes); tests with alpha = r cannot see it")
def check_scaling(p: Pass) -> Outcome:
    view = p.view
    if p.arrays.m is not None:  # DoRA: the output is not linear in s (n depends on it); compare declarations
        s_claim = _claimed_scale(view)
        if math.isnan(s_claim):
            return Outcome(None, detail="DoRA with no alpha or scale declared")
        err = abs(view.declared_scale * view.lora_factor - s_claim)
        bound = abs(s_claim) * 2.0**-52
        return Outcome(err <= bound, err, bound, f"DoRA: declared scaling {view.declared_scale:.6g} vs claimed "
                       f"{s_claim:.6g} (alpha={view.alpha:g}, r={view.r}); the forward check confirms its use")
    s_eff = effective_scale(p.ref, p.y)
    tol = scale_bound(p.bounds["Y"], p.ref.Z)
    s_claim = _claimed_scale(view)
    found = _name_scale(s_eff, view, tol)
    if math.isnan(s_claim):
        return Outcome(None, detail=f"no alpha or scale declared: measured s = {s_eff:.6g} ({found}), used as is")
    claim = {"rslora": "alpha/sqrt(r)", "declared scale": "the declared scale"}.get(view.claimed_scaling, "alpha/r")
    if view.lora_factor != 1.0:
        claim += f" x base output scale {view.lora_factor:.6g}"
    err = abs(s_eff - s_claim)
    bound = tol + abs(s_claim) * 2.0**-52
    detail = (f"effective s = {s_eff:.6g} ({found}); claimed {claim} = {s_claim:.6g} "
              f"(alpha={view.alpha:g}, r={view.r})")
    return Outcome(err <= bound, err, bound, detail)


@check("forward", takes="pass", doc="output vs mpmath reference, per entry",
       bug_classes="wrong forward output: a missing factor, transpose or bias term in the LoRA branch, or a "
                   "base-layer factor (e.g. an embedding scale) not applied to the LoRA branch")
def check_forward(p: Pass) -> Outcome:
    o = compare(p.y, p.ref.Y, p.bounds["Y"])
    o.detail = f"s = {p.arrays.s:.6g} (declared)"
    if bound_dtype(p.view, "float64") != "float64":
        o.detail += f"; LoRA factors {p.view.adapter_dtype} as the layer declares: {p.view.adapter_dtype} bound"
    return o


def _check_grad(p: Pass, key: str) -> Outcome:
    outs = []
    for g, (got, ref, bnd) in enumerate(zip(p.grads, p.ref.blocks, p.bounds["blocks"])):
        names = ["dA"] if key == "A" else ["dB", "dbB"]
        for n in names:
            if ref[n] is None:
                continue
            if got[n] is None:
                outs.append(Outcome(False, math.inf, float(np.max(bnd[n])), f"no gradient reached {n} of block {g}"))
                continue
            o = compare(got[n], ref[n], bnd[n])
            o.detail = f"{n} of block {g}" if len(p.grads) > 1 else n
            outs.append(o)
    return worst(outs)


@check("grad_A", takes="pass", doc="dL/d lora_A vs mpmath reference", bug_classes=ADAPTER_GRADIENT_BUGS)
def check_grad_a(p: Pass) -> Outcome:
    return _check_grad(p, "A")


@check("grad_B", takes="pass", doc="dL/d lora_B (and LoRA bias) vs mpmath reference",
       bug_classes=ADAPTER_GRADIENT_BUGS)
def check_grad_b(p: Pass) -> Outcome:
    return _check_grad(p, "B")


@check("grad_input", takes="pass", doc="dL/dX vs mpmath reference",
       bug_classes="wrong input gradient: a hand-written backward pass that drops the LoRA term or "
                   "transposes a factor of dX")
def check_grad_input(p: Pass) -> Outcome:
    if not p.view.has_input_grad:
        return Outcome(None, detail="the input is integer token ids (embedding): no input gradient")
    if p.dx is None:
        return Outcome(False, math.inf, None, "no gradient reached the input")
    if p.view.input_kind == "conv":  # the input gradient is the overlap-add (fold) of the patch gradients
        return compare(p.dx, *fold_bound(p))
    return compare(p.dx, p.ref.dX, p.bounds["dX"])


def fold_bound(p: Pass) -> tuple[np.ndarray, np.ndarray]:
    """Reference and bound of a conv's input gradient: the fold of the patch ones, widened by its additions.

    The implementation's sums for one input entry run over at most ``overlap`` patches more than
    the patch-level chain, so its bound is ``gamma_{K + overlap}`` times the folded magnitude; the
    reference's own fold (float64 additions) adds ``gamma_overlap`` times the folded ``|dX|``.
    """
    from ..error_bounds import EXTRA_ROUNDINGS, gamma

    geom, shape = p.view.conv, p.dx.shape
    o = geom.overlap()
    u = 2.0**-53
    K = p.view.d_out + p.arrays.r + EXTRA_ROUNDINGS + 1
    ref = geom.fold(p.ref.dX, shape)
    mag = geom.fold(p.bounds["magnitude_dX"], shape)
    bnd = gamma(K + o, u) * mag + gamma(o + 1, u) * geom.fold(np.abs(p.ref.dX), shape) + geom.fold(p.bounds["dX"], shape)
    return ref, bnd


@check("grad_nonzero", takes="pass", doc="every adapter tensor receives a gradient above rounding level",
       bug_classes="silently frozen adapters: an adapter tensor gets a zero (or no) gradient without any "
                   "error, e.g. when the loss bypasses the adapter or checkpointing loses its inputs")
def check_grad_nonzero(p: Pass) -> Outcome:
    outs = []
    for g, (got, bnd) in enumerate(zip(p.grads, p.bounds["blocks"])):
        for n in ("dA", "dB", "dbB", "dm"):
            if bnd.get(n) is None:
                continue
            if got[n] is None:
                outs.append(Outcome(False, 0.0, float(np.max(bnd[n])), f"{n} of block {g} has no gradient"))
                continue
            big = float(np.max(np.abs(got[n])))
            level = float(np.max(bnd[n]))
            # pass when the gradient is above rounding level: report (level, |g|) so ratio < 1 is a pass
            outs.append(Outcome(big > level, level, big, f"{n} block {g}: max|grad| {big:.3g}"))
    o = worst(outs)
    o.detail = "error column = rounding level, bound column = largest |grad| (must exceed it)"
    return o


@check("grad_magnitude", takes="pass", doc="DoRA: dL/d magnitude vs mpmath reference (N/A for plain LoRA)",
       bug_classes="wrong DoRA magnitude gradient: the norm not treated as the constant of the DoRA paper, the "
                   "bias folded into the magnitude path, or the magnitude left out of the graph")
def check_grad_magnitude(p: Pass) -> Outcome:
    if p.arrays.m is None:
        return Outcome(None, detail="plain LoRA: no magnitude vector")
    got = p.grads[0].get("dm")
    if got is None:
        return Outcome(False, math.inf, None, "no gradient reached the magnitude")
    return compare(got, p.ref.blocks[0]["dm"], p.bounds["blocks"][0]["dm"])
