"""The audit's uniform handle on one LoRA layer (imports torch): :class:`LayerView` and the paper mapping.

**Canonical (torch) orientation.** A LoRA layer computes
``Y = c (X W^T + b) + s sum_g P_g (X A_g^T B_g^T + 1 bB_g^T)`` with ``W`` (d_out x d_in), ``A_g``
(r x d_in), ``B_g`` (m_g x r), ``P_g`` placing block ``g``'s ``m_g`` outputs into the output columns
``rows_g`` (one block with every column, except for fused q/k/v layers) and ``c`` the base layer's
output scale (1 except for scaled embeddings). An embedding is the same layer on one-hot inputs:
``X`` = one-hot rows (N x V) and ``W`` = ``weight.T`` (d x V), so ``X W^T`` selects rows of the table.

**The paper's orientation** (docs/design.md section 2) is ``Q = X W_paper`` with ``W_paper`` (d_in x d_out)
and ``W_paper + s B_paper A_paper``, ``B_paper`` (d_in x r), ``A_paper`` (r x d_out). Transposing
``X W^T + s X A^T B^T = X (W^T + s A^T B^T)`` and matching term by term gives::

    W_paper = W^T = weight.T,    B_paper = A^T = lora_A.T,    A_paper = B^T = lora_B.T

so PyTorch's ``lora_A`` is the paper's ``B`` and vice versa. Gradients map the same way:
``dL/dA_paper = (dL/d lora_B)^T`` and ``dL/dB_paper = (dL/d lora_A)^T``.

Subclasses (:mod:`.conventions`, :mod:`.structural`) say where the tensors live; detection
(:mod:`.adapters`) picks one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..errors import AuditError
from .error_bounds import LayerArrays

__all__ = ["LayerView", "Block", "to_paper", "PAPER_MAPPING", "call_method", "bound_dtype"]

PAPER_MAPPING = "paper W = weight.T, paper B = lora_A.T (d_in x r), paper A = lora_B.T (r x d_out)"


def bound_dtype(view: "LayerView", dtype: str) -> str:
    """The dtype whose unit roundoff bounds a run of ``view`` in ``dtype``: the wider of ``dtype`` and the
    adapter dtype the layer declares (Keras keeps its LoRA factors in float32 in a float64 layer)."""
    from .error_bounds import unit_roundoff_of

    ad = getattr(view, "adapter_dtype", None)
    if ad is None or ad not in ("float64", "float32", "bfloat16", "float16"):
        return dtype
    return ad if unit_roundoff_of(ad) > unit_roundoff_of(dtype) else dtype


def call_method(module: nn.Module, name: str) -> None:
    """Call ``module.<name>()`` (a dotted name reaches a child), as a merge or unmerge."""
    obj = module
    *path, last = name.split(".")
    for p in path:
        obj = getattr(obj, p)
    getattr(obj, last)()


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().to(torch.float64).cpu().numpy().copy()


def _assign(param: torch.Tensor, value: np.ndarray) -> None:
    with torch.no_grad():
        param.copy_(torch.as_tensor(np.ascontiguousarray(value), dtype=torch.float64).to(param.dtype))


@dataclass
class Block:
    """Where one LoRA block's parameters live: row slices of the stored A and B tensors."""

    a_rows: slice
    b_rows: slice
    declared_cols: np.ndarray  # output columns the convention says this block writes


class LayerView:
    """A uniform handle on one LoRA layer: read/write canonical arrays, grads, merge, dropout."""

    convention = "?"

    def __init__(self, module: nn.Module):
        self.module = module
        self.placement: list[np.ndarray] | None = None  # detected output columns per block

    # -- to override ---------------------------------------------------------------------
    def _tensors(self) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """(stored weight, bias, stored A, stored B, lora bias) as live tensors."""
        raise NotImplementedError

    d_in: int
    d_out: int
    r: int
    alpha: float
    declared_scale: float
    claimed_scaling: str = "lora"
    fan_in_fan_out = False
    merge_mode = "none"  # "explicit" (merge()/unmerge()), "train_eval" (loralib), "none"
    merge_names = ("merge", "unmerge")  # the methods an "explicit" merge calls
    input_kind = "dense"  # "dense": X is the input; "index": X is one-hot rows of token ids (embeddings)
    orientation_declared = True  # False: storage orientation inferred from shapes (no convention to violate)
    base_scale = 1.0  # c: the base layer's output scale (scaled embeddings)
    lora_factor = 1.0  # detected extra factor on the LoRA branch (c when the branch carries it)
    declared: dict = {}  # hyperparameters as the layer declares them (name -> value), for the report
    dropout_declared = True  # False: the layer was built without dropout (its slot is a no-op)
    adapter_dtype: str | None = None  # a dtype the layer declares for its LoRA factors (None: the layer's)
    unmerge_skip_reason: str | None = None  # set when the layer merges but cannot unmerge (Keras)

    conv = None  # ConvGeom for a convolution (input_kind "conv"): the layer is linear on patches

    def canonical(self, x: np.ndarray) -> np.ndarray:
        """The canonical input rows ``X`` (N x d_in) of a module-layout input (patches for a conv)."""
        if self.input_kind == "conv":
            return self.conv.unfold(x)
        return np.asarray(x, dtype=np.float64).reshape(-1, self.d_in)

    def flat(self, y: torch.Tensor) -> np.ndarray:
        """A module-layout output (or upstream gradient) as float64 rows (N x d_out)."""
        y = torch.as_tensor(y).detach().to(torch.float64)
        if self.input_kind == "conv":
            y = y.movedim(1, -1)
        return y.reshape(-1, self.d_out).numpy()

    def input_shape(self, lead: tuple[int, ...]) -> tuple[int, ...]:
        """The module-layout shape of a drawn input with leading shape ``lead``."""
        if self.input_kind == "conv":
            return self.conv.input_shape(min(int(lead[0]), 2), 1 + (len(lead) > 1))
        return (*lead, self.d_in)

    def output_shape(self, x_shape: tuple[int, ...]) -> tuple[int, ...]:
        """The module-layout shape of the output for an input of ``x_shape``."""
        if self.input_kind == "conv":
            g = self.conv
            sp = [(n + 2 * p - d * (k - 1) - 1) // s + 1 for n, k, s, p, d in
                  zip(x_shape[2:], g.kernel, g.stride, g.padding, g.dilation)]
            return (x_shape[0], self.d_out, *sp)
        return (*x_shape[:-1], self.d_out)

    def call(self, x: torch.Tensor) -> torch.Tensor:
        """The layer applied to canonical input ``x`` (..., d_in); one-hot rows become ids for embeddings."""
        if self.input_kind == "index":
            return self.module(x.detach().argmax(dim=-1))
        return self.module(x)

    @property
    def has_input_grad(self) -> bool:
        """Whether the layer's input is differentiable (not for integer token ids)."""
        return self.input_kind != "index"

    def blocks(self) -> list[Block]:
        return [Block(slice(0, self.r), slice(0, self.d_out), np.arange(self.d_out))]

    def set_dropout(self, p: float) -> None:
        raise NotImplementedError

    def dropout_slot(self) -> tuple[object, str] | None:
        """Where the layer keeps its LoRA dropout, as ``(container, key)``; ``None`` if it has none."""
        return None

    def merge(self) -> None:
        if self.merge_mode == "explicit":
            call_method(self.module, self.merge_names[0])
        elif self.merge_mode == "train_eval":
            self.module.train(False)
        else:
            raise AuditError(f"{self.convention}: this layer has no in-module merge")

    def unmerge(self) -> None:
        if self.merge_mode == "explicit":
            call_method(self.module, self.merge_names[1])
        elif self.merge_mode == "train_eval":
            self.module.train(True)
        else:
            raise AuditError(f"{self.convention}: this layer has no in-module merge")

    @property
    def merge_skip_reason(self) -> str | None:
        return None if self.merge_mode != "none" else f"{self.convention} layers have no in-module merge"

    def disable_auto_merge(self) -> None:
        """loralib merges on ``eval()``; the dropout check turns that off to test dropout alone."""

    # -- layout ----------------------------------------------------------------------------
    def layout(self) -> dict[str, object]:
        """Declared vs detected storage orientation of the base weight and of A and B."""
        W, _, A, B, _ = self._tensors()
        n_a = sum(b.a_rows.stop - b.a_rows.start for b in self.blocks())
        n_b = sum(b.b_rows.stop - b.b_rows.start for b in self.blocks())
        w_decl = (self.d_in, self.d_out) if self.fan_in_fan_out else (self.d_out, self.d_in)
        w_other = (self.d_out, self.d_in) if self.fan_in_fan_out else (self.d_in, self.d_out)
        found = {}
        for name, t, decl, other in (("weight", W, w_decl, w_other), ("A", A, (n_a, self.d_in), (self.d_in, n_a)),
                                     ("B", B, (n_b, self.r), (self.r, n_b))):
            shape = tuple(t.shape)
            if shape == decl:
                found[name] = "declared"
            elif shape == other and shape != decl:
                found[name] = "transposed"
            else:
                found[name] = f"unexpected shape {shape} (declared {decl})"
        return found

    def _orient(self) -> dict[str, bool]:
        lay = self.layout()
        bad = [k for k, v in lay.items() if v not in ("declared", "transposed")]
        if bad:
            raise AuditError(f"{self.convention} layer: cannot map {bad} onto the canonical layout: {lay}")
        w_t = (lay["weight"] == "declared") == self.fan_in_fan_out  # stored (in x out)?
        return {"W": w_t, "A": lay["A"] == "transposed", "B": lay["B"] == "transposed"}

    # -- canonical arrays --------------------------------------------------------------------
    def read(self) -> LayerArrays:
        W, bias, A, B, bB = self._tensors()
        o = self._orient()
        Wn = _np(W).T if o["W"] else _np(W)
        An = _np(A).T if o["A"] else _np(A)
        Bn = _np(B).T if o["B"] else _np(B)
        bBn = None if bB is None else _np(bB)
        blocks = []
        cols = self.placement or [b.declared_cols for b in self.blocks()]
        for blk, c in zip(self.blocks(), cols):
            blocks.append((np.asarray(c), An[blk.a_rows], Bn[blk.b_rows], None if bBn is None else bBn[blk.b_rows]))
        mag = self.magnitude_tensor()
        return LayerArrays(W=Wn, bias=None if bias is None else _np(bias), blocks=blocks,
                           s=float(self.declared_scale) * self.lora_factor, c=float(self.base_scale),
                           m=None if mag is None else _np(mag).reshape(-1), norm_axis=self.norm_axis,
                           bias_scaled=self.bias_scaled)

    def _base_tensors(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(stored base weight, bias) as live tensors; overridden where the factors may be gone."""
        W, bias, *_ = self._tensors()
        return W, bias

    def read_base(self) -> tuple[np.ndarray, np.ndarray | None]:
        """Canonical ``W`` and ``bias`` alone, without touching the factors: after a merge that deletes
        them (diffusers' ``_fuse_lora`` sets ``lora_layer = None``) the base weight is still readable."""
        W, bias = self._base_tensors()
        Wn = _np(W).T if self._orient()["W"] else _np(W)
        return Wn, None if bias is None else _np(bias)

    # -- DoRA ------------------------------------------------------------------------------------
    variant = "lora"
    norm_axis = 1  # DoRA: detected norm axis (set from the dora_norm probe)
    bias_scaled = False  # DoRA: detected bias handling (set from the dora_bias probe)

    def magnitude_tensor(self) -> torch.Tensor | None:
        """DoRA's magnitude vector (d_out,) as a live tensor; ``None`` for plain LoRA."""
        return None

    def write_magnitude(self, m: np.ndarray | None) -> None:
        t = self.magnitude_tensor()
        if t is not None and m is not None:
            _assign(t, np.asarray(m).reshape(tuple(t.shape)))

    def write(self, W: np.ndarray, bias: np.ndarray | None, blocks: list[tuple[np.ndarray, np.ndarray, np.ndarray | None]]) -> None:
        """Write canonical ``W``, ``bias`` and per-block ``(A_g, B_g, bB_g)`` into the module's storage."""
        Wt, bt, At, Bt, bBt = self._tensors()
        o = self._orient()
        _assign(Wt, W.T if o["W"] else W)
        if bt is not None and bias is not None:
            _assign(bt, bias)
        An = np.zeros((At.shape[1], At.shape[0]) if o["A"] else tuple(At.shape))
        Bn = np.zeros((Bt.shape[1], Bt.shape[0]) if o["B"] else tuple(Bt.shape))
        bBn = None if bBt is None else np.zeros(tuple(bBt.shape))
        for blk, (a, b, bb) in zip(self.blocks(), blocks):
            An[blk.a_rows] = a
            Bn[blk.b_rows] = b
            if bBn is not None and bb is not None:
                bBn[blk.b_rows] = bb
        _assign(At, An.T if o["A"] else An)
        _assign(Bt, Bn.T if o["B"] else Bn)
        if bBt is not None:
            _assign(bBt, bBn)

    def lora_parameters(self) -> dict[str, torch.Tensor]:
        _, _, A, B, bB = self._tensors()
        out = {"A": A, "B": B}
        if self.magnitude_tensor() is not None:
            out["m"] = self.magnitude_tensor()
        if bB is not None:
            out["bB"] = bB
        return out

    def grads(self) -> list[dict[str, np.ndarray | None]]:
        """Per block ``{"dA": (r x d_in), "dB": (m x r), "dbB"}`` in canonical orientation (None if no grad)."""
        _, _, A, B, bB = self._tensors()
        o = self._orient()

        def g(t, transposed):
            if t is None or t.grad is None:
                return None
            a = _np(t.grad)
            return a.T if transposed else a

        gA, gB, gbB = g(A, o["A"]), g(B, o["B"]), g(bB, False)
        mag = self.magnitude_tensor()
        extra = {} if mag is None else {"dm": None if g(mag, False) is None else g(mag, False).reshape(-1)}
        return [{**(extra if i == 0 else {}), "dA": None if gA is None else gA[blk.a_rows],
                 "dB": None if gB is None else gB[blk.b_rows],
                 "dbB": None if gbB is None else gbB[blk.b_rows]} for i, blk in enumerate(self.blocks())]

    def has_lora_bias(self) -> bool:
        return self._tensors()[4] is not None

    def has_bias(self) -> bool:
        return self._tensors()[1] is not None

    def describe(self) -> str:
        decl = ", ".join(f"{k}={v}" for k, v in self.declared.items())
        return (f"{self.convention}{' [' + decl + ']' if decl else ''}: d_in={self.d_in}, d_out={self.d_out}, r={self.r}, alpha={self.alpha:g}, "
                f"s={self.declared_scale:.6g} ({self.claimed_scaling}), bias={'yes' if self.has_bias() else 'no'}"
                + (", fan_in_fan_out" if self.fan_in_fan_out else "")
                + (f", {len(self.blocks())} blocks" if len(self.blocks()) > 1 else ""))


def to_paper(arrays: LayerArrays) -> dict[str, np.ndarray]:
    """The layer in the paper's orientation (single block only): ``w`` (d_in x d_out), ``b`` (d_in x r), ``a`` (r x d_out)."""
    if len(arrays.blocks) != 1:
        raise AuditError("a fused (multi-block) layer cannot be one projection of the paper's attention")
    rows, A, B, _ = arrays.blocks[0]
    if not np.array_equal(rows, np.arange(arrays.d_out)):
        raise AuditError("layer's LoRA block does not cover every output column")
    return {"w": arrays.W.T, "b": A.T, "a": B.T}
