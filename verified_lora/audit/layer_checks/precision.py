"""Layer checks of low-precision gradients: as accurate as the dtype warrants, and no more lossy.

``precision_<dtype>`` compares the module's gradients in ``dtype`` with the same module's float64
gradients on the same (rounded) values, under the sum of both derived bounds. ``precision_mixed``
holds float32 adapters on a bfloat16 base to the float32 bound against the mpmath reference.
"""

from __future__ import annotations

import math
from dataclasses import replace

import torch

from ..cases import Example, LayerValues, tensor
from ..error_bounds import unit_roundoff_of
from ..variants import bounds, reference
from ..outcome import Outcome, compare, worst
from ..registry import check
from ..views import bound_dtype

__all__: list[str] = []

LOW_PRECISION_BUGS = ("gradients less accurate than the dtype allows: a cast to a lower precision, or an "
                      "accumulation in one, inside the forward or a hand-written backward")


def _check_precision(ex: Example, dtype: str) -> Outcome:
    view = ex.fresh(dtype)
    arrays = view.read()  # the values as rounded to dtype: exact in float64
    x0 = tensor(ex.values.x, dtype, requires_grad=True)
    g = tensor(ex.values.g, dtype)
    xr, gr = x0.detach().to(torch.float64).numpy(), g.to(torch.float64).numpy()
    y = view.call(x0.clone())
    (y * g).sum().backward()
    low = view.grads()
    dx_low = x0.grad
    # the same module in float64 on the same (rounded) values
    vals = LayerValues(W=arrays.W, bias=arrays.bias, blocks=[(a, b, bb) for _, a, b, bb in arrays.blocks],
                       x=xr, g=gr, m=arrays.m)
    v64 = ex.fresh("float64", values=vals)
    x64 = tensor(xr, requires_grad=True)
    y64 = v64.call(x64.clone())
    (y64 * tensor(gr)).sum().backward()
    high = v64.grads()
    d_low, d_64 = bound_dtype(view, dtype), bound_dtype(v64, "float64")  # declared adapter dtypes (Keras)
    b_low = bounds(arrays, view.canonical(xr), view.flat(torch.from_numpy(gr)), d_low)
    b_64 = bounds(arrays, view.canonical(xr), view.flat(torch.from_numpy(gr)), d_64)
    if getattr(view, "shared_a", False):  # the module-vs-module comparison is in the stored layout
        n = view.canonical(xr).shape[0]
        b_low = {**b_low, "blocks": view.reduce(b_low["blocks"], b_low["blocks"], n, d_low)[1]}
        b_64 = {**b_64, "blocks": view.reduce(b_64["blocks"], b_64["blocks"], n, d_64)[1]}
    outs = []
    u = unit_roundoff_of(dtype)
    for gi, (lo, hi, bl, bh) in enumerate(zip(low, high, b_low["blocks"], b_64["blocks"])):
        for n in ("dA", "dB", "dbB", "dm"):
            if bl.get(n) is None or hi.get(n) is None:
                continue
            if lo[n] is None:
                outs.append(Outcome(False, math.inf, None, f"no {dtype} gradient for {n}"))
                continue
            o = compare(lo[n], hi[n], bl[n] + bh[n])
            o.detail = f"{n}: worst error = {o.error / u:.3g} u_{dtype} (allowed {o.bound / u:.3g} u)" if o.error else ""
            outs.append(o)
    if dx_low is not None and x64.grad is not None and view.input_kind != "conv":
        o = compare(dx_low.to(torch.float64).numpy().reshape(-1, view.d_in), x64.grad.numpy().reshape(-1, view.d_in),
                    b_low["dX"] + b_64["dX"])
        o.detail = f"dX: worst error = {o.error / u:.3g} u_{dtype}" if o.error else ""
        outs.append(o)
    return worst(outs)


@check("precision_float32", doc="float32 gradients as accurate as float32 warrants vs the module's float64 gradients",
       bug_classes=LOW_PRECISION_BUGS)
def check_precision_float32(ex: Example) -> Outcome:
    return _check_precision(ex, "float32")


@check("precision_bfloat16", doc="bfloat16 gradients as accurate as bfloat16 warrants", bug_classes=LOW_PRECISION_BUGS)
def check_precision_bfloat16(ex: Example) -> Outcome:
    return _check_precision(ex, "bfloat16")


@check("precision_float16", doc="float16 gradients as accurate as float16 warrants", bug_classes=LOW_PRECISION_BUGS)
def check_precision_float16(ex: Example) -> Outcome:
    return _check_precision(ex, "float16")


@check("precision_mixed", doc="float32 adapters on a bfloat16 base: adapter gradients float32-accurate, not 16-bit",
       bug_classes="adapter gradients in the activation dtype: float32 adapters on a 16-bit base receive "
                   "gradients computed in 16 bit (as fused LoRA kernels that compute dA, dB in the activation "
                   "dtype do)")
def check_precision_mixed(ex: Example) -> Outcome:
    """bfloat16 base weight, bias and input; float32 adapters (PEFT's default autocast_adapter_dtype).

    The adapter gradients depend only on float32 arithmetic on values that are exact in float32
    (bfloat16 inputs and upstream gradients), so they are held to the float32 bound against the
    mpmath reference on the stored values. A layer that rejects the mixed dtypes is not applicable.
    A layer that declares bfloat16 arithmetic (``compute_dtype``, Keras' dtype policy) and misses the
    float32 bound is held to the bfloat16 bound instead: WARN (a named deviation) when it meets it.
    """
    view = ex.fresh("bfloat16")
    if view.magnitude_tensor() is not None:
        return Outcome(None, detail="DoRA: every gradient depends on X W^T and ||W + s B A||, which a bfloat16 base "
                       "computes in bfloat16; float32 accuracy is unattainable by design (precision_bfloat16 "
                       "holds DoRA to the bfloat16 bound)")
    for t in view.lora_parameters().values():
        t.data = t.data.to(torch.float32)
    v = ex.values
    if view.magnitude_tensor() is not None:
        view.magnitude_tensor().data = view.magnitude_tensor().data.to(torch.float32)
    view.write(v.W, v.bias, v.blocks)  # W, b rounded to bfloat16; A, B (and bB) to float32
    view.write_magnitude(v.m)
    arrays = view.read()
    x0 = tensor(v.x, "bfloat16", requires_grad=True)
    g = tensor(v.g, "bfloat16")
    xr, gr = x0.detach().to(torch.float64).numpy(), g.to(torch.float64).numpy()
    try:
        y = view.call(x0.clone())
        (y * g.to(y.dtype)).sum().backward()
    except RuntimeError as exc:
        return Outcome(None, detail=f"float32 adapters on a bfloat16 base not supported: {str(exc).splitlines()[0][:100]}")
    grads = view.grads()
    out = _mixed_grads(view, arrays, xr, gr, grads, "float32")
    compute = getattr(view, "compute_dtype", None)
    if out.passed is False and compute == "bfloat16":
        # the layer declares bfloat16 arithmetic (Keras' dtype policy): float32 factors, bfloat16 compute
        in16 = _mixed_grads(view, arrays, xr, gr, grads, "bfloat16")
        if in16.passed:
            u, u16 = unit_roundoff_of("float32"), unit_roundoff_of("bfloat16")
            return Outcome(True, in16.error, in16.bound,
                           f"float32 factors get gradients computed in the layer's declared compute dtype "
                           f"bfloat16 (worst {out.error / u:.3g} u_float32 = {out.error / u16:.3g} u_bfloat16, "
                           f"within the bfloat16 bound; float32 accuracy would allow {out.bound / u:.3g} u_float32)",
                           warn=True)
    return out


def _mixed_grads(view, arrays, xr, gr, grads, dtype: str) -> Outcome:
    """The adapter gradients ``grads`` against the mpmath reference under the ``dtype`` bound."""
    ref = reference(arrays, view.canonical(xr), view.flat(torch.from_numpy(gr)))
    bnd = bounds(arrays, view.canonical(xr), view.flat(torch.from_numpy(gr)), dtype)
    if getattr(view, "shared_a", False):
        rb, bb = view.reduce(ref.blocks, bnd["blocks"], view.canonical(xr).shape[0], dtype)
        ref, bnd = replace(ref, blocks=rb), {**bnd, "blocks": bb}
    outs = []
    u = unit_roundoff_of(dtype)
    for gi, (got, rb, bb) in enumerate(zip(grads, ref.blocks, bnd["blocks"])):
        for n in ("dA", "dB", "dbB", "dm"):
            if rb.get(n) is None:
                continue
            if got[n] is None:
                outs.append(Outcome(False, math.inf, None, f"no gradient for {n}"))
                continue
            o = compare(got[n], rb[n], bb[n])
            o.detail = f"{n}: worst error = {o.error / u:.3g} u_{dtype} (allowed {o.bound / u:.3g} u)" if o.error else n
            outs.append(o)
    return worst(outs)
