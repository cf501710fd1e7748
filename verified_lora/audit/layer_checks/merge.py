"""Layer checks of merging the adapter into the base weight: same output, reversible, idempotent."""

from __future__ import annotations

import warnings

import numpy as np
import torch

from ..cases import Example, tensor
from ..error_bounds import gamma, roundtrip_bound, unit_roundoff_of
from ..variants import bounds
from ..views import bound_dtype
from ..outcome import Outcome, compare, worst
from ..registry import check

__all__: list[str] = []


def _merge_pair(ex: Example, dtype: str) -> Outcome:
    view = ex.fresh(dtype)
    if view.merge_skip_reason:
        return Outcome(None, detail=view.merge_skip_reason)
    arrays = view.read()
    x = tensor(ex.values.x, dtype)
    xr = view.canonical(x.to(torch.float64).numpy())
    with torch.no_grad():
        y0 = view.flat(view.call(x.clone()))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            view.merge()
        y1 = view.flat(view.call(x.clone()))
        merged_w = view.read_base()[0]  # the merge may delete the factors (diffusers' _fuse_lora)
    bdt = bound_dtype(view, dtype)
    bound = 2 * bounds(arrays, xr, np.ones((ex.cx.shape[0], view.d_out)), bdt)["Y"]
    o = compare(y1, y0, bound)
    o.detail = f"merged vs unmerged output ({dtype}" + (f"; {view.adapter_dtype} adapters, as declared)"
                                                       if bdt != dtype else ")")
    if dtype == "float64" and o.passed is False:
        narrow = _merge_dtype(arrays, merged_w)
        if narrow:
            o.detail += f"; the merged weight is only {narrow}-accurate: the merge computes in {narrow}"
    return o


def _merge_dtype(arrays, merged_w: np.ndarray) -> str | None:
    """The narrowest dtype whose merge bound covers ``|W_merged - (W + s sum B A)|`` (None: none does)."""
    delta = np.zeros_like(arrays.W)
    mag = np.abs(arrays.W).copy()
    for rows, a, b, _ in arrays.blocks:
        delta[rows] += arrays.s * (b @ a)
        mag[rows] += abs(arrays.s) * (np.abs(b) @ np.abs(a))
    err = np.abs(merged_w - (arrays.W + delta))
    for dt in ("float64", "float32", "bfloat16", "float16"):
        if np.all(err <= gamma(arrays.r + 8, unit_roundoff_of(dt)) * mag):
            return None if dt == "float64" else dt
    return None


@check("merge_forward", doc="merged forward = unmerged forward (float64 and bfloat16); names a merge computed "
                            "in a narrower dtype than the weights",
       bug_classes="merge differs from the adapter it merges: a term merged without the scale (LoRA bias), a "
                   "missing transpose (fan_in_fan_out, embeddings), fused slices padded wrongly, a merge done "
                   "in a lower precision or onto a different base weight")
def check_merge_forward(ex: Example) -> Outcome:
    return worst([_merge_pair(ex, "float64"), _merge_pair(ex, "bfloat16")])


def _roundtrip(ex: Example, dtype: str) -> Outcome:
    view = ex.fresh(dtype)
    if view.merge_skip_reason or view.unmerge_skip_reason:
        return Outcome(None, detail=view.merge_skip_reason or view.unmerge_skip_reason)
    before = view.read()
    x = tensor(ex.values.x, dtype)
    xr = view.canonical(x.to(torch.float64).numpy())
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        y0 = view.flat(view.call(x.clone()))
        view.merge()
        view.unmerge()
        y2 = view.flat(view.call(x.clone()))
    after_w, after_b = view.read_base()  # the factors may be gone after the round trip
    bdt = bound_dtype(view, dtype)
    gw, gb = roundtrip_bound(before, bdt)
    outs = [compare(after_w, before.W, gw)]
    outs[0].detail = f"weight ({dtype})"
    if outs[0].passed is False and dtype == "float64":
        for narrow in ("float32", "bfloat16"):
            if compare(after_w, before.W, roundtrip_bound(before, narrow)[0]).passed:
                outs[0].detail += f" restored only to {narrow} accuracy: the merge and unmerge compute in {narrow}"
                break
    if gb is not None:
        ob = compare(after_b, before.bias, gb)
        ob.detail = f"bias ({dtype})"
        outs.append(ob)
    # the forward after unmerge: the restored weight's drift (<= gw, gb) plus two forward evaluations
    drift = (np.abs(xr) @ gw.T + (0 if gb is None else gb)) * abs(before.c)
    by = 2 * bounds(before, xr, np.ones((xr.shape[0], view.d_out)), bdt)["Y"] + drift
    oy = compare(y2, y0, by)
    oy.detail = f"output after unmerge vs before merge ({dtype})"
    if not oy.passed:
        # the base layer alone, with the weight and bias it holds now
        base = before.c * (xr @ after_w.T + (0 if after_b is None else after_b))
        dropped = compare(y2, base, by).passed
        oy.detail += (": the adapter is dropped: after unmerge the layer computes the base layer alone, X W^T + b"
                      if dropped else ": the adapter is altered by merge/unmerge")
    outs.append(oy)
    return worst(outs)


@check("merge_roundtrip", doc="merge then unmerge restores weight, bias and the forward output (float64 and bfloat16)",
       bug_classes="irreversible merge: unmerge is not the inverse of merge (a transpose or factor applied on "
                   "one side only), so the base weight is silently corrupted")
def check_roundtrip(ex: Example) -> Outcome:
    return worst([_roundtrip(ex, "float64"), _roundtrip(ex, "bfloat16")])


@check("double_merge", doc="a second merge is rejected or a no-op",
       bug_classes="non-idempotent merge: merging twice (e.g. implicitly, through merge-and-unload) adds the "
                   "update twice")
def check_double_merge(ex: Example) -> Outcome:
    view = ex.fresh()
    if view.merge_skip_reason:
        return Outcome(None, detail=view.merge_skip_reason)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        view.merge()
        once_w, once_b = view.read_base()
        try:
            view.merge()
        except Exception as exc:  # rejecting a second merge is acceptable
            return Outcome(True, 0.0, 0.0, f"second merge rejected: {type(exc).__name__}")
    twice_w, twice_b = view.read_base()
    parts = [np.abs(twice_w - once_w).ravel()]
    if once_b is not None:
        parts.append(np.abs(twice_b - once_b).ravel())
    diff = float(np.max(np.concatenate(parts)))  # np.max keeps a NaN (Python's max would drop it)
    return Outcome(diff == 0.0, diff, 0.0, "second merge is a no-op" if diff == 0 else "second merge changed W")
