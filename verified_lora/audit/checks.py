"""The audit's named checks (imports torch). Each is tied to the bug classes of
``lora_implementations.md`` section 10 (listed in :data:`CHECKS`).

A *case* is a factory of fresh modules plus a way to draw non-degenerate problems. For every
example (a seeded draw: alpha != r, r >= 2, d_in != d_out, B != 0, entries bounded away from 0,
bias on and off alternately, 2-D and 3-D inputs) every check builds its own fresh module, writes
the drawn values through the layout mapping (:mod:`.adapters`) and compares with the mpmath
reference (:mod:`.layer_reference`) under the derived bounds of :mod:`.error_bounds`.

Structural checks (``layout``, ``qkv_slices``) *detect* how the module actually stores and places
its adapters; the numerical checks then use the detected layout, so that one bug fails one check.
``scaling`` compares the measured scale with the claimed convention, while ``forward`` and the
gradient checks use the scale the layer declares (its ``scaling`` attribute).
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import AuditError
from .adapters import PAPER_MAPPING, LayerView, detect_layer
from .error_bounds import LayerArrays, layer_bounds, roundtrip_bound, scale_bound, unit_roundoff_of
from .layer_reference import effective_scale, layer_reference

__all__ = ["CHECKS", "LayerSpec", "AttentionSpec", "LayerCase", "AttentionCase", "CheckResult", "run_case"]

TORCH_DTYPES = {"float64": torch.float64, "float32": torch.float32, "bfloat16": torch.bfloat16,
                "float16": torch.float16}

CHECKS: dict[str, tuple[str, str]] = {
    "layout": ("stored orientation of weight, lora_A, lora_B matches the declared convention "
               "(fan_in_fan_out / transposed layouts)", "s10 #8; bugs #5 #6 #7 #15 #25 #28"),
    "qkv_slices": ("each fused-qkv LoRA block lands exactly in its enable_lora slice",
                   "s10 #9; bugs #15 #18 #19 #20 #27"),
    "scaling": ("effective s measured from the output matches the claimed alpha/r or alpha/sqrt(r)",
                "s10 #1; bugs #1 #2 #4 #24 #25"),
    "forward": ("output vs mpmath reference, per entry", "s10 #2; bugs #9 #11 #14"),
    "grad_A": ("dL/d lora_A vs mpmath reference", "s10 #3; bugs #10 #30, custom backward kernels"),
    "grad_B": ("dL/d lora_B (and LoRA bias) vs mpmath reference", "s10 #3; bugs #10 #30, custom backward kernels"),
    "grad_input": ("dL/dX vs mpmath reference", "s10 #3; custom backward kernels"),
    "grad_nonzero": ("every adapter tensor receives a gradient above rounding level", "s10 #4; bugs #10 #30"),
    "merge_forward": ("merged forward = unmerged forward (float64 and bfloat16)",
                      "s10 #5; bugs #1 #5 #6 #8 #9 #14 #15 #22 #28"),
    "merge_roundtrip": ("merge then unmerge restores weight and bias (float64 and bfloat16)",
                        "s10 #6; bugs #5 #8 #13"),
    "double_merge": ("a second merge is rejected or a no-op", "s10 #6; bug #8"),
    "dropout": ("dropout only on the LoRA branch; eval deterministic; acts in training",
                "s10 #7; bugs #12 #26 #29"),
    "input_unchanged": ("the input tensor is not mutated by forward/backward", "s10 #12 (Unsloth inplace)"),
    "precision_float32": ("float32 gradients as accurate as float32 warrants vs the module's float64 gradients",
                          "s10 #11; Unsloth dtype caveat, #22"),
    "precision_bfloat16": ("bfloat16 gradients as accurate as bfloat16 warrants", "s10 #11"),
    "precision_float16": ("float16 gradients as accurate as float16 warrants", "s10 #11"),
    "precision_mixed": ("float32 adapters on a bfloat16 base: adapter gradients float32-accurate, not 16-bit",
                        "s10 #11; Unsloth computes dA, dB in the activation dtype"),
    "attention_loss": ("attention loss of the module vs mpmath reference (verified_lora.reference)",
                       "s10 #2 at attention level"),
    "attention_grads": ("adapter gradients of the attention module, mapped to the paper, vs mpmath reference",
                        "s10 #3 at attention level; layout mapping"),
}

LAYER_CHECKS = [k for k in CHECKS if not k.startswith("attention_")]
ATTENTION_CHECKS = ["attention_loss", "attention_grads"]


# ------------------------------------------------------------------------------------ problems
@dataclass(frozen=True)
class LayerSpec:
    """Shapes and flags of one drawn linear-layer problem (what a factory may accept)."""

    d_in: int
    d_out: int
    r: int
    alpha: float
    bias: bool
    use_rslora: bool = False
    fan_in_fan_out: bool = False
    enable_lora: tuple[bool, ...] | None = None
    lora_bias: bool = False
    lead: tuple[int, ...] = (4,)


@dataclass(frozen=True)
class AttentionSpec:
    d_model: int
    d_head: int
    d_v: int
    r: int
    alpha: float
    bias: bool
    use_rslora: bool = False
    L: int = 5


ALPHAS = (0.5, 1.5, 3.0, 5.0, 7.0)
MASKS = ((True, False, True), (False, True, False), (True, True, False), (True, False, False),
         (False, False, True), (False, True, True), (True, True, True))


def draw_layer_spec(rng: np.random.Generator, i: int, *, rslora: bool = False, merged: bool = False,
                    fan_in_fan_out: bool = False, lora_bias: bool = False) -> LayerSpec:
    """A non-degenerate draw: d_in != d_out, 2 <= r < min(d_in, d_out), alpha != r; bias on for even i."""
    r = int(rng.integers(2, 4))
    d_in = int(rng.integers(r + 1, 8))
    if merged:
        m = int(rng.integers(2, 4))
        d_out = 3 * m
        if d_out == d_in:
            d_in += 1
    else:
        d_out = int(rng.integers(r + 1, 9))
        if d_out == d_in:
            d_out += 1
    alpha = float(rng.choice([a for a in ALPHAS if a != r]))
    lead = (int(rng.integers(2, 6)),) if i % 2 == 0 else (2, int(rng.integers(2, 4)))
    bias = i % 2 == 0
    return LayerSpec(d_in=d_in, d_out=d_out, r=r, alpha=alpha, bias=bias, use_rslora=rslora and i % 2 == 1,
                     fan_in_fan_out=fan_in_fan_out, enable_lora=MASKS[i % len(MASKS)] if merged else None,
                     lora_bias=lora_bias and bias and i % 4 == 0, lead=lead)


def draw_attention_spec(rng: np.random.Generator, i: int, *, rslora: bool = False) -> AttentionSpec:
    r = int(rng.integers(2, 4))
    d_model = int(rng.integers(r + 1, 7))
    d_head = int(rng.integers(r + 1, 7))
    if d_head == d_model:  # square projections hide transposition bugs
        d_head += 1
    d_v = int(rng.integers(2, 6))
    alpha = float(rng.choice([a for a in ALPHAS if a != r]))
    return AttentionSpec(d_model=d_model, d_head=d_head, d_v=d_v, r=r, alpha=alpha, bias=i % 2 == 0,
                         use_rslora=rslora and i % 2 == 1, L=int(rng.integers(3, 7)))


def _entries(rng: np.random.Generator, shape, scale: float = 1.0) -> np.ndarray:
    """Entries with |x| in [0.25, 1] * scale and random signs: never 0 (B != 0), no underflow in fp16."""
    mag = rng.uniform(0.25, 1.0, size=shape)
    sign = rng.choice([-1.0, 1.0], size=shape)
    return scale * mag * sign


@dataclass
class LayerValues:
    W: np.ndarray
    bias: np.ndarray | None
    blocks: list  # [(A, B, bB)]
    x: np.ndarray
    g: np.ndarray


def draw_values(rng: np.random.Generator, view: LayerView, lead: tuple[int, ...]) -> LayerValues:
    blocks = []
    for blk in view.blocks():
        m = blk.b_rows.stop - blk.b_rows.start
        a = _entries(rng, (view.r, view.d_in), 0.6)
        b = _entries(rng, (m, view.r), 0.6)
        bb = _entries(rng, (m,), 0.5) if view.has_lora_bias() else None
        blocks.append((a, b, bb))
    return LayerValues(W=_entries(rng, (view.d_out, view.d_in), 0.6),
                       bias=_entries(rng, (view.d_out,), 0.5) if view.has_bias() else None,
                       blocks=blocks, x=_entries(rng, (*lead, view.d_in)), g=_entries(rng, (*lead, view.d_out)))


# ------------------------------------------------------------------------------------ outcomes
@dataclass
class Outcome:
    """One check on one example: ``passed`` None = not applicable (``detail`` says why)."""

    passed: bool | None
    error: float | None = None
    bound: float | None = None
    detail: str = ""

    @property
    def ratio(self) -> float:
        if self.error is None or self.bound is None:
            return 0.0
        return math.inf if self.bound == 0 and self.error > 0 else (self.error / self.bound if self.bound else 0.0)


@dataclass
class CheckResult:
    """A check aggregated over examples: the worst example's error and bound are reported."""

    check: str
    case: str
    passed: bool | None
    max_error: float | None
    bound: float | None
    detail: str
    examples: int
    seconds: float = 0.0

    @property
    def verdict(self) -> str:
        return {True: "PASS", False: "FAIL", None: "N/A"}[self.passed]

    @property
    def explanation(self) -> str:
        return CHECKS[self.check][0]

    @property
    def bug_classes(self) -> str:
        return CHECKS[self.check][1]


def _compare(computed: np.ndarray, reference: np.ndarray, bound: np.ndarray) -> Outcome:
    c = np.asarray(computed, dtype=np.float64).reshape(reference.shape)
    err = np.abs(c - reference)
    bnd = np.broadcast_to(np.asarray(bound, dtype=np.float64), err.shape)
    if not np.all(np.isfinite(c)):
        return Outcome(False, math.inf, float(np.max(bnd)), "non-finite values")
    ratio = np.where(bnd > 0, err / np.where(bnd > 0, bnd, 1), np.where(err > 0, np.inf, 0))
    k = int(np.argmax(ratio)) if ratio.size else 0
    e, b = (float(err.flat[k]), float(bnd.flat[k])) if ratio.size else (0.0, 0.0)
    return Outcome(bool(np.all(err <= bnd)), e, b)


def _worst(outcomes: list[Outcome]) -> Outcome:
    """Combine sub-comparisons: fail if any fails; report the one closest to (or furthest over) its bound."""
    real = [o for o in outcomes if o.passed is not None]
    if not real:
        return outcomes[0] if outcomes else Outcome(None, detail="nothing to compare")
    worst = max(real, key=lambda o: (o.passed is False, o.ratio))
    passed = all(o.passed for o in real)
    details = "; ".join(o.detail for o in real if o.detail and (o.passed is False or o is worst))
    return Outcome(passed, worst.error, worst.bound, details)


# ------------------------------------------------------------------------------------ cases
@dataclass
class LayerCase:
    """A family of fresh LoRA layers: ``build(spec)`` returns a module whose LoRA layer is ``select(module)``."""

    name: str
    build: Callable[[LayerSpec | None], nn.Module]
    draw: Callable[[np.random.Generator, int], LayerSpec] | None
    select: Callable[[nn.Module], nn.Module] = lambda m: m
    notes: list[str] = field(default_factory=list)


@dataclass
class AttentionCase:
    """A family of single-head attention modules with q_proj/k_proj/v_proj (LoRA layers or nn.Linear)."""

    name: str
    build: Callable[[AttentionSpec | None], nn.Module]
    draw: Callable[[np.random.Generator, int], AttentionSpec] | None
    notes: list[str] = field(default_factory=list)


class _Example:
    """One example of a layer case: the spec, the drawn values, the detected layout."""

    def __init__(self, case: LayerCase, spec: LayerSpec | None, seed: int):
        self.case, self.spec, self.seed = case, spec, seed
        self.placement: list[np.ndarray] | None = None
        self.placement_outcome: Outcome | None = None
        view = self.fresh(probe=False, write=False)
        lead = getattr(spec, "lead", (4,))
        self.values = draw_values(np.random.default_rng(seed), view, lead)
        self.lead = lead

    def fresh(self, dtype: str = "float64", *, probe: bool = True, write: bool = True,
              values: LayerValues | None = None) -> LayerView:
        module = self.case.build(self.spec)
        layer = self.case.select(module)
        view = detect_layer(layer)
        if view is None:
            raise AuditError(f"{self.case.name}: the factory's module contains no supported LoRA layer")
        view.set_dropout(0.0)
        layer.train(True)
        if probe and self.placement is not None:
            view.placement = self.placement
        if dtype != "float64":
            layer.to(TORCH_DTYPES[dtype])
        else:
            layer.to(torch.float64)
        if write:
            v = values or self.values
            view.write(v.W, v.bias, v.blocks)
        view.root = module
        return view

    def arrays(self, view: LayerView) -> LayerArrays:
        return view.read()


def _t(a: np.ndarray, dtype: str = "float64", requires_grad: bool = False) -> torch.Tensor:
    t = torch.as_tensor(np.ascontiguousarray(a), dtype=torch.float64).to(TORCH_DTYPES[dtype])
    if requires_grad:
        t.requires_grad_(True)
    return t


def _flat_out(y: torch.Tensor, d_out: int) -> np.ndarray:
    return y.detach().to(torch.float64).reshape(-1, d_out).numpy()


# ---------------------------------------------------------------------------------- layer checks
def _check_layout(ex: _Example, view: LayerView) -> Outcome:
    lay = view.layout()
    bad = {k: v for k, v in lay.items() if v != "declared"}
    fifo = f"fan_in_fan_out={view.fan_in_fan_out}"
    if bad:
        return Outcome(False, None, None, f"{fifo}; stored differently from the {view.convention} convention: "
                       + ", ".join(f"{k} {v}" for k, v in bad.items()))
    return Outcome(True, None, None, f"{fifo}; {PAPER_MAPPING}")


def _probe_placement(ex: _Example) -> Outcome:
    """Probe where each block writes: W = 0, A_g = [I_r | 0], B_g[i] = (i+1, 1, 0, ...), X = I."""
    view = ex.fresh(probe=False, write=False)
    blocks = view.blocks()
    if len(blocks) == 1 and len(blocks[0].declared_cols) == view.d_out:
        return Outcome(None, detail="single LoRA block over every output column: nothing to place")
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
            y = _flat_out(v.module(_t(np.eye(view.d_in))), view.d_out)  # y[i, j] = s dW[j, i]
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


@dataclass
class _Pass:
    view: LayerView
    arrays: LayerArrays
    y: np.ndarray
    grads: list
    dx: np.ndarray | None
    ref: Any
    bounds: dict


def _standard_pass(ex: _Example) -> _Pass:
    view = ex.fresh()
    x0 = _t(ex.values.x, requires_grad=True)
    x = x0.clone()
    y = view.module(x.clone())
    (y * _t(ex.values.g)).sum().backward()
    arrays = view.read()
    ref = layer_reference(arrays, ex.values.x, ex.values.g)
    bounds = layer_bounds(arrays, ex.values.x, ex.values.g, "float64")
    dx = None if x0.grad is None else x0.grad.detach().numpy().reshape(-1, view.d_in)
    return _Pass(view, arrays, _flat_out(y, view.d_out), view.grads(), dx, ref, bounds)


def _claimed_scale(view: LayerView) -> float:
    import mpmath

    with mpmath.workdps(40):
        s = mpmath.mpf(view.alpha) / (mpmath.sqrt(view.r) if view.claimed_scaling == "rslora" else view.r)
        return float(s)


def _name_scale(s: float, view: LayerView, tol: float) -> str:
    a, r = view.alpha, view.r
    for name, value in (("alpha/r", a / r), ("alpha/sqrt(r)", a / math.sqrt(r)), ("alpha (no 1/r)", a),
                        ("1", 1.0), ("alpha/r^2", a / r**2), ("r/alpha", r / a)):
        if abs(s - value) <= tol + 4 * abs(value) * 2.0**-52:
            return name
    return "other"


def _check_scaling(p: _Pass) -> Outcome:
    view = p.view
    s_eff = effective_scale(p.ref, p.y)
    tol = scale_bound(p.bounds["Y"], p.ref.Z)
    s_claim = _claimed_scale(view)
    found = _name_scale(s_eff, view, tol)
    claim = "alpha/sqrt(r)" if view.claimed_scaling == "rslora" else "alpha/r"
    err = abs(s_eff - s_claim)
    bound = tol + abs(s_claim) * 2.0**-52
    detail = (f"effective s = {s_eff:.6g} ({found}); claimed {claim} = {s_claim:.6g} "
              f"(alpha={view.alpha:g}, r={view.r})")
    return Outcome(err <= bound, err, bound, detail)


def _check_forward(p: _Pass) -> Outcome:
    o = _compare(p.y, p.ref.Y, p.bounds["Y"])
    o.detail = f"s = {p.arrays.s:.6g} (declared)"
    return o


def _check_grad(p: _Pass, key: str) -> Outcome:
    outs = []
    for g, (got, ref, bnd) in enumerate(zip(p.grads, p.ref.blocks, p.bounds["blocks"])):
        names = ["dA"] if key == "A" else ["dB", "dbB"]
        for n in names:
            if ref[n] is None:
                continue
            if got[n] is None:
                outs.append(Outcome(False, math.inf, float(np.max(bnd[n])), f"no gradient reached {n} of block {g}"))
                continue
            o = _compare(got[n], ref[n], bnd[n])
            o.detail = f"{n} of block {g}" if len(p.grads) > 1 else n
            outs.append(o)
    return _worst(outs)


def _check_grad_input(p: _Pass) -> Outcome:
    if p.dx is None:
        return Outcome(False, math.inf, None, "no gradient reached the input")
    return _compare(p.dx, p.ref.dX, p.bounds["dX"])


def _check_grad_nonzero(p: _Pass) -> Outcome:
    outs = []
    for g, (got, bnd) in enumerate(zip(p.grads, p.bounds["blocks"])):
        for n in ("dA", "dB", "dbB"):
            if bnd[n] is None:
                continue
            if got[n] is None:
                outs.append(Outcome(False, 0.0, float(np.max(bnd[n])), f"{n} of block {g} has no gradient"))
                continue
            big = float(np.max(np.abs(got[n])))
            level = float(np.max(bnd[n]))
            # pass when the gradient is above rounding level: report (level, |g|) so ratio < 1 is a pass
            outs.append(Outcome(big > level, level, big, f"{n} block {g}: max|grad| {big:.3g}"))
    o = _worst(outs)
    o.detail = "error column = rounding level, bound column = largest |grad| (must exceed it)"
    return o


def _merge_pair(ex: _Example, dtype: str) -> Outcome:
    view = ex.fresh(dtype)
    if view.merge_skip_reason:
        return Outcome(None, detail=view.merge_skip_reason)
    arrays = view.read()
    x = _t(ex.values.x, dtype)
    xr = x.to(torch.float64).numpy()
    with torch.no_grad():
        y0 = _flat_out(view.module(x.clone()), view.d_out)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            view.merge()
        y1 = _flat_out(view.module(x.clone()), view.d_out)
    bound = 2 * layer_bounds(arrays, xr, np.ones((*ex.lead, view.d_out)), dtype)["Y"]
    o = _compare(y1, y0, bound)
    o.detail = f"merged vs unmerged output ({dtype})"
    return o


def _check_merge_forward(ex: _Example) -> Outcome:
    return _worst([_merge_pair(ex, "float64"), _merge_pair(ex, "bfloat16")])


def _roundtrip(ex: _Example, dtype: str) -> Outcome:
    view = ex.fresh(dtype)
    if view.merge_skip_reason:
        return Outcome(None, detail=view.merge_skip_reason)
    before = view.read()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        view.merge()
        view.unmerge()
    after = view.read()
    gw, gb = roundtrip_bound(before, dtype)
    outs = [_compare(after.W, before.W, gw)]
    outs[0].detail = f"weight ({dtype})"
    if gb is not None:
        ob = _compare(after.bias, before.bias, gb)
        ob.detail = f"bias ({dtype})"
        outs.append(ob)
    return _worst(outs)


def _check_roundtrip(ex: _Example) -> Outcome:
    return _worst([_roundtrip(ex, "float64"), _roundtrip(ex, "bfloat16")])


def _check_double_merge(ex: _Example) -> Outcome:
    view = ex.fresh()
    if view.merge_skip_reason:
        return Outcome(None, detail=view.merge_skip_reason)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        view.merge()
        once = view.read()
        try:
            view.merge()
        except Exception as exc:  # rejecting a second merge is acceptable
            return Outcome(True, 0.0, 0.0, f"second merge rejected: {type(exc).__name__}")
    twice = view.read()
    diff = float(np.max(np.abs(twice.W - once.W)))
    if once.bias is not None:
        diff = max(diff, float(np.max(np.abs(twice.bias - once.bias))))
    return Outcome(diff == 0.0, diff, 0.0, "second merge is a no-op" if diff == 0 else "second merge changed W")


def _check_dropout(ex: _Example) -> Outcome:
    p = 0.5
    outs = []
    x = _t(ex.values.x)
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
        ya = _flat_out(view.module(x.clone()), view.d_out)
        torch.manual_seed(2)
        yb = _flat_out(view.module(x.clone()), view.d_out)
    if not np.array_equal(ya, yb):
        outs.append(Outcome(False, float(np.max(np.abs(ya - yb))), 0.0, "eval output changes between calls"))
    o = _compare(ya, ref.Y, bnd)
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
        y0 = _flat_out(v0.module(x.clone()), view.d_out)
    o = _compare(y0, ref0.Y, bnd0)
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
            ys.append(_flat_out(v1.module(x.clone()), view.d_out))
    if all(np.array_equal(ys[0], y) for y in ys[1:]):
        outs.append(Outcome(False, 0.0, 0.0, f"dropout p={p} never changes the training output"))
    return _worst(outs)


def _check_input_unchanged(ex: _Example) -> Outcome:
    outs = []
    for grad in (False, True):
        view = ex.fresh()
        x0 = _t(ex.values.x, requires_grad=grad)
        x = x0.clone() if grad else x0
        before = x.detach().clone()
        y = view.module(x)
        (y * _t(ex.values.g)).sum().backward()
        diff = float(torch.max(torch.abs(x.detach() - before)).item())
        same = torch.equal(x.detach(), before)
        outs.append(Outcome(same, diff, 0.0, "" if same else
                            f"input modified in place ({'non-leaf input requiring grad' if grad else 'plain input'})"))
    return _worst(outs)


def _check_precision(ex: _Example, dtype: str) -> Outcome:
    view = ex.fresh(dtype)
    arrays = view.read()  # the values as rounded to dtype: exact in float64
    x0 = _t(ex.values.x, dtype, requires_grad=True)
    g = _t(ex.values.g, dtype)
    xr, gr = x0.detach().to(torch.float64).numpy(), g.to(torch.float64).numpy()
    y = view.module(x0.clone())
    (y * g).sum().backward()
    low = view.grads()
    dx_low = x0.grad
    # the same module in float64 on the same (rounded) values
    vals = LayerValues(W=arrays.W, bias=arrays.bias, blocks=[(a, b, bb) for _, a, b, bb in arrays.blocks],
                       x=xr, g=gr)
    v64 = ex.fresh("float64", values=vals)
    x64 = _t(xr, requires_grad=True)
    y64 = v64.module(x64.clone())
    (y64 * _t(gr)).sum().backward()
    high = v64.grads()
    b_low = layer_bounds(arrays, xr, gr, dtype)
    b_64 = layer_bounds(arrays, xr, gr, "float64")
    outs = []
    u = unit_roundoff_of(dtype)
    for gi, (lo, hi, bl, bh) in enumerate(zip(low, high, b_low["blocks"], b_64["blocks"])):
        for n in ("dA", "dB", "dbB"):
            if bl[n] is None or hi[n] is None:
                continue
            if lo[n] is None:
                outs.append(Outcome(False, math.inf, None, f"no {dtype} gradient for {n}"))
                continue
            o = _compare(lo[n], hi[n], bl[n] + bh[n])
            o.detail = f"{n}: worst error = {o.error / u:.3g} u_{dtype} (allowed {o.bound / u:.3g} u)" if o.error else ""
            outs.append(o)
    if dx_low is not None and x64.grad is not None:
        o = _compare(dx_low.to(torch.float64).numpy().reshape(-1, view.d_in), x64.grad.numpy().reshape(-1, view.d_in),
                     b_low["dX"] + b_64["dX"])
        o.detail = f"dX: worst error = {o.error / u:.3g} u_{dtype}" if o.error else ""
        outs.append(o)
    return _worst(outs)


def _check_precision_mixed(ex: _Example) -> Outcome:
    """bfloat16 base weight, bias and input; float32 adapters (PEFT's default autocast_adapter_dtype).

    The adapter gradients depend only on float32 arithmetic on values that are exact in float32
    (bfloat16 inputs and upstream gradients), so they are held to the float32 bound against the
    mpmath reference on the stored values. A layer that rejects the mixed dtypes is not applicable.
    """
    view = ex.fresh("bfloat16")
    for t in view.lora_parameters().values():
        t.data = t.data.to(torch.float32)
    v = ex.values
    view.write(v.W, v.bias, v.blocks)  # W, b rounded to bfloat16; A, B (and bB) to float32
    arrays = view.read()
    x0 = _t(v.x, "bfloat16", requires_grad=True)
    g = _t(v.g, "bfloat16")
    xr, gr = x0.detach().to(torch.float64).numpy(), g.to(torch.float64).numpy()
    try:
        y = view.module(x0.clone())
        (y * g.to(y.dtype)).sum().backward()
    except RuntimeError as exc:
        return Outcome(None, detail=f"float32 adapters on a bfloat16 base not supported: {str(exc).splitlines()[0][:100]}")
    ref = layer_reference(arrays, xr, gr)
    bnd = layer_bounds(arrays, xr, gr, "float32")
    outs = []
    for gi, (got, rb, bb) in enumerate(zip(view.grads(), ref.blocks, bnd["blocks"])):
        for n in ("dA", "dB", "dbB"):
            if rb[n] is None:
                continue
            if got[n] is None:
                outs.append(Outcome(False, math.inf, None, f"no gradient for {n}"))
                continue
            o = _compare(got[n], rb[n], bb[n])
            u = unit_roundoff_of("float32")
            o.detail = f"{n}: worst error = {o.error / u:.3g} u_float32 (allowed {o.bound / u:.3g} u)" if o.error else n
            outs.append(o)
    return _worst(outs)


# ------------------------------------------------------------------------------------ runner
def _guard(fn: Callable[[], Outcome]) -> Outcome:
    try:
        return fn()
    except AuditError:
        raise
    except Exception as exc:  # an implementation that raises fails the check, with the reason
        return Outcome(False, None, None, f"raised {type(exc).__name__}: {str(exc).splitlines()[0][:160]}")


def run_layer_case(case: LayerCase, *, seed: int, examples: int, checks: list[str] | None = None,
                   progress: Callable[[str], None] | None = None) -> list[CheckResult]:
    wanted = [c for c in LAYER_CHECKS if checks is None or c in checks]
    per_check: dict[str, list[Outcome]] = {c: [] for c in wanted}
    seconds: dict[str, float] = {c: 0.0 for c in wanted}
    for i in range(examples):
        rng = np.random.default_rng([seed, i])
        spec = case.draw(rng, i) if case.draw is not None else None
        ex = _Example(case, spec, seed=int(rng.integers(2**31)))
        if progress:
            progress(f"{case.name}: example {i + 1}/{examples}")
        view0 = ex.fresh(probe=False)
        t0 = time.perf_counter()
        placement = _guard(lambda: _probe_placement(ex))
        if "qkv_slices" in per_check:
            per_check["qkv_slices"].append(placement)
            seconds["qkv_slices"] += time.perf_counter() - t0
        if "layout" in per_check:
            per_check["layout"].append(_guard(lambda: _check_layout(ex, view0)))
        pass_: list[_Pass | Outcome] = []

        def standard() -> Outcome:
            pass_.append(_standard_pass(ex))
            return Outcome(True)

        t0 = time.perf_counter()
        std = _guard(standard)
        t_std = time.perf_counter() - t0
        table: dict[str, Callable[[], Outcome]] = {
            "scaling": lambda: _check_scaling(pass_[0]),
            "forward": lambda: _check_forward(pass_[0]),
            "grad_A": lambda: _check_grad(pass_[0], "A"),
            "grad_B": lambda: _check_grad(pass_[0], "B"),
            "grad_input": lambda: _check_grad_input(pass_[0]),
            "grad_nonzero": lambda: _check_grad_nonzero(pass_[0]),
            "merge_forward": lambda: _check_merge_forward(ex),
            "merge_roundtrip": lambda: _check_roundtrip(ex),
            "double_merge": lambda: _check_double_merge(ex),
            "dropout": lambda: _check_dropout(ex),
            "input_unchanged": lambda: _check_input_unchanged(ex),
            "precision_float32": lambda: _check_precision(ex, "float32"),
            "precision_bfloat16": lambda: _check_precision(ex, "bfloat16"),
            "precision_float16": lambda: _check_precision(ex, "float16"),
            "precision_mixed": lambda: _check_precision_mixed(ex),
        }
        uses_std = {"scaling", "forward", "grad_A", "grad_B", "grad_input", "grad_nonzero"}
        for name in wanted:
            if name in ("layout", "qkv_slices"):
                continue
            t0 = time.perf_counter()
            if name in uses_std and not pass_:
                out = Outcome(False, None, None, std.detail or "forward/backward failed")
            else:
                out = _guard(table[name])
            seconds[name] += time.perf_counter() - t0 + (t_std / len(uses_std) if name in uses_std else 0)
            per_check[name].append(out)
    return [_aggregate(name, case.name, outs, seconds[name]) for name, outs in per_check.items()]


def _aggregate(check: str, case: str, outs: list[Outcome], seconds: float) -> CheckResult:
    real = [o for o in outs if o.passed is not None]
    if not real:
        return CheckResult(check, case, None, None, None, outs[0].detail if outs else "", len(outs), seconds)
    worst = max(real, key=lambda o: (o.passed is False, o.ratio))
    n_fail = sum(o.passed is False for o in real)
    detail = worst.detail
    if n_fail:
        detail = f"{n_fail}/{len(real)} examples fail; " + detail
    return CheckResult(check, case, n_fail == 0, worst.error, worst.bound, detail, len(real), seconds)


def run_case(case: LayerCase | AttentionCase, *, seed: int = 0, examples: int = 3, checks: list[str] | None = None,
             progress: Callable[[str], None] | None = None) -> list[CheckResult]:
    if isinstance(case, AttentionCase):
        from .attention import run_attention_case

        if checks is not None and not set(checks) & set(ATTENTION_CHECKS):
            return []
        return run_attention_case(case, seed=seed, examples=examples, progress=progress)
    return run_layer_case(case, seed=seed, examples=examples, checks=checks, progress=progress)
