"""What the audit runs its checks on (imports torch): cases, drawn problems and examples.

A *case* is a factory of fresh modules plus a way to draw non-degenerate problems. For every
example (a seeded draw: alpha != r, r >= 2, d_in != d_out, B != 0, entries bounded away from 0,
bias on and off alternately, 2-D and 3-D inputs) every check builds its own fresh module through
:meth:`Example.fresh`, which writes the drawn values through the layout mapping (:mod:`.adapters`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from ..errors import AuditError
from .adapters import LayerView, detect_layer
from .error_bounds import LayerArrays
from .outcome import Outcome

__all__ = ["LayerSpec", "AttentionSpec", "LayerCase", "AttentionCase", "LayerValues", "Example",
           "draw_layer_spec", "draw_attention_spec", "draw_values", "entries", "tensor", "flat_out",
           "TORCH_DTYPES"]

TORCH_DTYPES = {"float64": torch.float64, "float32": torch.float32, "bfloat16": torch.bfloat16,
                "float16": torch.float16}


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
    """Shapes and flags of one drawn single-head attention problem (what a factory may accept)."""

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
    """A non-degenerate attention draw: d_head != d_model, 2 <= r, alpha != r; bias on for even i."""
    r = int(rng.integers(2, 4))
    d_model = int(rng.integers(r + 1, 7))
    d_head = int(rng.integers(r + 1, 7))
    if d_head == d_model:  # square projections hide transposition bugs
        d_head += 1
    d_v = int(rng.integers(2, 6))
    alpha = float(rng.choice([a for a in ALPHAS if a != r]))
    return AttentionSpec(d_model=d_model, d_head=d_head, d_v=d_v, r=r, alpha=alpha, bias=i % 2 == 0,
                         use_rslora=rslora and i % 2 == 1, L=int(rng.integers(3, 7)))


def entries(rng: np.random.Generator, shape, scale: float = 1.0) -> np.ndarray:
    """Entries with |x| in [0.25, 1] * scale and random signs: never 0 (B != 0), no underflow in fp16."""
    mag = rng.uniform(0.25, 1.0, size=shape)
    sign = rng.choice([-1.0, 1.0], size=shape)
    return scale * mag * sign


@dataclass
class LayerValues:
    """Drawn values of one layer example: weight, bias, adapter blocks ``[(A, B, bB)]``, input, upstream grad."""

    W: np.ndarray
    bias: np.ndarray | None
    blocks: list  # [(A, B, bB)]
    x: np.ndarray
    g: np.ndarray
    m: np.ndarray | None = None  # DoRA magnitude, drawn independently of the norms (moved off its init)


def draw_values(rng: np.random.Generator, view: LayerView, lead: tuple[int, ...]) -> LayerValues:
    """Draw every value of ``view``'s layer and an input with leading shape ``lead``."""
    blocks = []
    for blk in ([] if hasattr(view, "draw_blocks") else view.blocks()):
        m = blk.b_rows.stop - blk.b_rows.start
        a = entries(rng, (view.r, view.d_in), 0.6)
        b = entries(rng, (m, view.r), 0.6)
        bb = entries(rng, (m,), 0.5) if view.has_lora_bias() else None
        blocks.append((a, b, bb))
    if hasattr(view, "draw_blocks"):  # factors with a shared structure (loralib ConvLoRA)
        blocks = view.draw_blocks(rng, entries)
    if view.input_kind == "index":  # an embedding: one-hot rows of token ids, every id distinct where possible
        n = int(np.prod(lead))
        ids = rng.permutation(max(n, view.d_in))[:n] % view.d_in
        x = np.eye(view.d_in)[ids].reshape(*lead, view.d_in)
    else:
        x = entries(rng, view.input_shape(lead))
    m = None if view.magnitude_tensor() is None else rng.uniform(0.5, 2.0, view.d_out)
    return LayerValues(W=entries(rng, (view.d_out, view.d_in), 0.6),
                       bias=entries(rng, (view.d_out,), 0.5) if view.has_bias() else None,
                       blocks=blocks, x=x, g=entries(rng, view.output_shape(x.shape)), m=m)


# ------------------------------------------------------------------------------------ cases
@dataclass
class LayerCase:
    """A family of fresh LoRA layers: ``build(spec)`` returns a module whose LoRA layer is ``select(module)``."""

    name: str
    build: Callable[[LayerSpec | None], nn.Module]
    draw: Callable[[np.random.Generator, int], LayerSpec] | None
    select: Callable[[nn.Module], nn.Module] = lambda m: m
    notes: list[str] = field(default_factory=list)
    #: explicit mapping of the layer (:class:`~.spec.LoraSpec`), passed to detection; None: detect
    lora_spec: object | None = None
    #: ``values(rng, view, lead)`` replacing :func:`draw_values` (e.g. a model's own trained weights)
    values: Callable[[np.random.Generator, LayerView, tuple[int, ...]], "LayerValues"] | None = None
    #: ``dtype_scope(dtype)``: a context in which ``build`` makes its module in ``dtype`` (Keras' dtype
    #: policy); None: the module is built once and converted with ``.to(dtype)``
    dtype_scope: Callable[[str], object] | None = None


@dataclass
class AttentionCase:
    """A family of single-head attention modules with q_proj/k_proj/v_proj (LoRA layers or nn.Linear)."""

    name: str
    build: Callable[[AttentionSpec | None], nn.Module]
    draw: Callable[[np.random.Generator, int], AttentionSpec] | None
    notes: list[str] = field(default_factory=list)


class Example:
    """One example of a layer case: the spec, the drawn values, the detected layout."""

    def __init__(self, case: LayerCase, spec: LayerSpec | None, seed: int):
        self.case, self.spec, self.seed = case, spec, seed
        self.placement: list[np.ndarray] | None = None
        self.lora_factor: float | None = None  # detected factor on the LoRA branch (embed_scale probe)
        self.norm_axis: int | None = None  # DoRA: detected norm axis (dora_norm probe)
        self.bias_scaled: bool | None = None  # DoRA: detected bias handling (dora_bias probe)
        self.placement_outcome: Outcome | None = None
        view = self.fresh(probe=False, write=False)
        lead = getattr(spec, "lead", (4,))
        self.values = (case.values or draw_values)(np.random.default_rng(seed), view, lead)
        self.lead = lead
        self.cx = view.canonical(self.values.x)  # canonical input rows X (N x d_in): patches for a conv
        self.cg = view.flat(torch.as_tensor(self.values.g))  # canonical upstream gradient rows G (N x d_out)

    def fresh(self, dtype: str = "float64", *, probe: bool = True, write: bool = True,
              values: LayerValues | None = None) -> LayerView:
        """A new module of the case in ``dtype``, dropout 0, training mode, the drawn (or given) values written."""
        if self.case.dtype_scope is not None:
            with self.case.dtype_scope(dtype):
                module = self.case.build(self.spec)
        else:
            module = self.case.build(self.spec)
        layer = self.case.select(module)
        view = detect_layer(layer, self.case.lora_spec)
        if view is None:
            raise AuditError(f"{self.case.name}: the factory's module contains no supported LoRA layer")
        view.set_dropout(0.0)
        layer.train(True)
        if probe and self.placement is not None:
            view.placement = self.placement
        if probe and self.lora_factor is not None:
            view.lora_factor = self.lora_factor
        if probe and self.norm_axis is not None:
            view.norm_axis = self.norm_axis
        if probe and self.bias_scaled is not None:
            view.bias_scaled = self.bias_scaled
        if self.case.dtype_scope is not None:
            built = getattr(view, "layer_dtype", dtype)
            if built != dtype:
                raise AuditError(f"{self.case.name}: asked for a {dtype} layer, the factory built a {built} one. "
                                 "Fix: let the factory's layer follow the global dtype policy (no dtype= argument)")
        elif dtype != "float64":
            layer.to(TORCH_DTYPES[dtype])
        else:
            layer.to(torch.float64)
        if write:
            v = values or self.values
            view.write(v.W, v.bias, v.blocks)
            view.write_magnitude(v.m)
        view.root = module
        return view

    def arrays(self, view: LayerView) -> LayerArrays:
        return view.read()


def tensor(a: np.ndarray, dtype: str = "float64", requires_grad: bool = False) -> torch.Tensor:
    """``a`` as a torch tensor rounded to ``dtype`` (optionally requiring grad)."""
    t = torch.as_tensor(np.ascontiguousarray(a), dtype=torch.float64).to(TORCH_DTYPES[dtype])
    if requires_grad:
        t.requires_grad_(True)
    return t


def flat_out(y: torch.Tensor, d_out: int) -> np.ndarray:
    """A layer's output as a float64 array of shape (N, d_out)."""
    return y.detach().to(torch.float64).reshape(-1, d_out).numpy()
