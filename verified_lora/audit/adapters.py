"""Layout mapping: PEFT, loralib and torchtune LoRA layers onto one canonical form (imports torch).

**Canonical (torch) orientation.** A linear LoRA layer computes
``Y = X W^T + b + s sum_g P_g (X A_g^T B_g^T + 1 bB_g^T)`` with ``W`` (d_out x d_in), ``A_g``
(r x d_in), ``B_g`` (m_g x r), and ``P_g`` placing block ``g``'s ``m_g`` outputs into the output
columns ``rows_g`` (one block with every column, except for loralib's fused ``MergedLinear``).

**The paper's orientation** (docs/design.md section 2) is ``Q = X W_paper`` with ``W_paper`` (d_in x d_out)
and ``W_paper + s B_paper A_paper``, ``B_paper`` (d_in x r), ``A_paper`` (r x d_out). Transposing
``X W^T + s X A^T B^T = X (W^T + s A^T B^T)`` and matching term by term gives::

    W_paper = W^T = weight.T,    B_paper = A^T = lora_A.T,    A_paper = B^T = lora_B.T

so PyTorch's ``lora_A`` is the paper's ``B`` and vice versa. Gradients map the same way:
``dL/dA_paper = (dL/d lora_B)^T`` and ``dL/dB_paper = (dL/d lora_A)^T``.

**Conventions recognised** (by attributes, so neither peft nor torchtune need be importable):

* PEFT ``LoraLayer``: ``lora_A``/``lora_B`` ``ModuleDict`` of ``nn.Linear`` keyed by adapter name, a
  ``scaling`` dict, ``base_layer``; ``fan_in_fan_out`` means the base weight is stored (in x out)
  (transformers ``Conv1D``); optional LoRA bias ``lora_B[name].bias``; ``merge()``/``unmerge()``.
* loralib: ``lora_A`` (r x d_in) and ``lora_B`` (d_out x r) ``Parameter``s, a float ``scaling``,
  ``merge_weights`` (``train(False)`` merges, ``train(True)`` unmerges), ``fan_in_fan_out`` (weight
  stored transposed); ``MergedLinear`` adds ``enable_lora`` (equal slices of ``d_out``; block ``g``
  uses rows ``g r:(g+1) r`` of ``lora_A`` and ``g m:(g+1) m`` of ``lora_B``). An optional boolean
  ``use_rslora`` attribute declares rsLoRA.
* torchtune ``LoRALinear``: ``weight``/``bias``, ``lora_a``/``lora_b`` ``nn.Linear``, ``rank``, ``alpha``,
  ``dropout``, ``s = alpha / rank``; no in-module merge.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..errors import AuditError
from .error_bounds import LayerArrays

__all__ = ["LayerView", "detect_layer", "find_lora_layers", "to_paper", "PAPER_MAPPING"]

PAPER_MAPPING = "paper W = weight.T, paper B = lora_A.T (d_in x r), paper A = lora_B.T (r x d_out)"


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

    def blocks(self) -> list[Block]:
        return [Block(slice(0, self.r), slice(0, self.d_out), np.arange(self.d_out))]

    def set_dropout(self, p: float) -> None:
        raise NotImplementedError

    def merge(self) -> None:
        if self.merge_mode == "explicit":
            self.module.merge()
        elif self.merge_mode == "train_eval":
            self.module.train(False)
        else:
            raise AuditError(f"{self.convention}: this layer has no in-module merge")

    def unmerge(self) -> None:
        if self.merge_mode == "explicit":
            self.module.unmerge()
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
            elif shape == other:
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
        return LayerArrays(W=Wn, bias=None if bias is None else _np(bias), blocks=blocks,
                           s=float(self.declared_scale))

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
        return [{"dA": None if gA is None else gA[blk.a_rows], "dB": None if gB is None else gB[blk.b_rows],
                 "dbB": None if gbB is None else gbB[blk.b_rows]} for blk in self.blocks()]

    def has_lora_bias(self) -> bool:
        return self._tensors()[4] is not None

    def has_bias(self) -> bool:
        return self._tensors()[1] is not None

    def describe(self) -> str:
        return (f"{self.convention}: d_in={self.d_in}, d_out={self.d_out}, r={self.r}, alpha={self.alpha:g}, "
                f"s={self.declared_scale:.6g} ({self.claimed_scaling}), bias={'yes' if self.has_bias() else 'no'}"
                + (", fan_in_fan_out" if self.fan_in_fan_out else "")
                + (f", {len(self.blocks())} blocks" if len(self.blocks()) > 1 else ""))


class PeftView(LayerView):
    convention = "peft"
    merge_mode = "explicit"

    def __init__(self, module: nn.Module):
        super().__init__(module)
        active = getattr(module, "active_adapters", None) or list(module.lora_A.keys())
        names = [a for a in active if a in module.lora_A]
        if not names:
            raise AuditError("PEFT LoraLayer with no active adapter present in lora_A")
        self.name = names[0]
        variant = getattr(module, "lora_variant", {}).get(self.name)
        if variant is not None or getattr(module, "use_dora", {}).get(self.name, False):
            raise AuditError(f"PEFT layer {type(module).__name__}: adapter {self.name!r} is a LoRA variant "
                             f"({type(variant).__name__ if variant is not None else 'DoRA'}); only plain LoRA is "
                             "supported by the audit")
        self.d_in = int(module.in_features)
        self.d_out = int(module.out_features)
        self.r = int(module.r[self.name])
        self.alpha = float(module.lora_alpha[self.name])
        self.declared_scale = float(module.scaling[self.name])
        self.claimed_scaling = "rslora" if getattr(module, "use_rslora", {}).get(self.name, False) else "lora"
        self.fan_in_fan_out = bool(getattr(module, "fan_in_fan_out", False))

    def _tensors(self):
        base = self.module.get_base_layer()
        lb = self.module.lora_B[self.name]
        return (base.weight, getattr(base, "bias", None), self.module.lora_A[self.name].weight, lb.weight,
                getattr(lb, "bias", None))

    def set_dropout(self, p: float) -> None:
        self.module.lora_dropout[self.name] = nn.Dropout(p) if p > 0 else nn.Identity()


class LoralibView(LayerView):
    convention = "loralib"

    def __init__(self, module: nn.Module):
        super().__init__(module)
        m = module
        self.d_in = int(getattr(m, "in_features"))
        self.d_out = int(getattr(m, "out_features"))
        self.r = int(m.r)
        self.alpha = float(m.lora_alpha)
        self.declared_scale = float(m.scaling)
        self.claimed_scaling = "rslora" if bool(getattr(m, "use_rslora", False)) else "lora"
        self.fan_in_fan_out = bool(getattr(m, "fan_in_fan_out", False))
        self.merge_mode = "train_eval" if getattr(m, "merge_weights", False) else "none"
        self.enable = list(getattr(m, "enable_lora", [True]))
        if hasattr(m, "enable_lora"):
            self.convention = "loralib-merged"

    @property
    def merge_skip_reason(self) -> str | None:
        return None if self.merge_mode != "none" else "merge_weights=False: this layer never merges"

    def blocks(self) -> list[Block]:
        if self.convention != "loralib-merged":
            return super().blocks()
        n = len(self.enable)
        if self.d_out % n:
            raise AuditError(f"MergedLinear: out_features={self.d_out} is not divisible by len(enable_lora)={n}")
        m = self.d_out // n
        out, g = [], 0
        for j, on in enumerate(self.enable):
            if on:
                out.append(Block(slice(g * self.r, (g + 1) * self.r), slice(g * m, (g + 1) * m),
                                 np.arange(j * m, (j + 1) * m)))
                g += 1
        return out

    def _tensors(self):
        m = self.module
        return m.weight, getattr(m, "bias", None), m.lora_A, m.lora_B, None

    def set_dropout(self, p: float) -> None:
        self.module.lora_dropout = nn.Dropout(p) if p > 0 else nn.Identity()

    def disable_auto_merge(self) -> None:
        if hasattr(self.module, "merge_weights"):
            self.module.merge_weights = False
            self.merge_mode = "none"


class TorchtuneView(LayerView):
    convention = "torchtune"

    def __init__(self, module: nn.Module):
        super().__init__(module)
        m = module
        self.d_in = int(getattr(m, "in_dim", m.lora_a.in_features))
        self.d_out = int(getattr(m, "out_dim", m.lora_b.out_features))
        self.r = int(m.rank)
        self.alpha = float(m.alpha)
        self.declared_scale = self.alpha / self.r
        self.claimed_scaling = "lora"

    def _tensors(self):
        m = self.module
        return m.weight, getattr(m, "bias", None), m.lora_a.weight, m.lora_b.weight, None

    def set_dropout(self, p: float) -> None:
        self.module.dropout = nn.Dropout(p) if p > 0 else nn.Identity()


def detect_layer(module: nn.Module) -> LayerView | None:
    """The view of ``module`` if it is a LoRA layer of a supported convention, ``None`` if it has no
    LoRA attributes, and :class:`AuditError` if it has LoRA attributes of an unsupported convention."""
    la, lb = getattr(module, "lora_A", None), getattr(module, "lora_B", None)
    if isinstance(la, nn.ModuleDict) and isinstance(lb, nn.ModuleDict):
        if not isinstance(getattr(module, "scaling", None), dict) or not hasattr(module, "get_base_layer"):
            raise AuditError(f"{type(module).__name__}: lora_A/lora_B ModuleDicts but no PEFT scaling dict or "
                             "base layer; unsupported convention")
        if not len(la):
            return None
        return PeftView(module)
    if isinstance(la, nn.Parameter) and isinstance(lb, nn.Parameter):
        if not isinstance(getattr(module, "scaling", None), (int, float)) or not hasattr(module, "weight"):
            raise AuditError(f"{type(module).__name__}: lora_A/lora_B Parameters but no float 'scaling' attribute "
                             "and 'weight' (loralib convention); unsupported convention. Fix: expose "
                             "scaling = s, r, lora_alpha, weight (and bias)")
        return LoralibView(module)
    ta, tb = getattr(module, "lora_a", None), getattr(module, "lora_b", None)
    if isinstance(ta, nn.Linear) and isinstance(tb, nn.Linear):
        if not (hasattr(module, "rank") and hasattr(module, "alpha") and hasattr(module, "weight")):
            raise AuditError(f"{type(module).__name__}: lora_a/lora_b Linears but no rank/alpha/weight "
                             "(torchtune LoRALinear convention); unsupported convention")
        return TorchtuneView(module)
    lora_attrs = [n for n in vars(module) if n.lower().startswith("lora")]
    lora_attrs += [n for n, _ in module.named_parameters(recurse=False) if n.lower().startswith("lora")]
    lora_attrs += [n for n, _ in module.named_children() if n.lower().startswith("lora")]
    if lora_attrs:
        raise AuditError(f"{type(module).__name__} has LoRA attributes {sorted(set(lora_attrs))} but follows no "
                         "supported convention (PEFT LoraLayer, loralib Linear/MergedLinear, torchtune "
                         "LoRALinear)")
    return None


def find_lora_layers(model: nn.Module) -> list[tuple[str, LayerView]]:
    """Every supported LoRA layer inside ``model`` (outermost first; a layer's children are skipped)."""
    found: list[tuple[str, LayerView]] = []
    taken: list[str] = []
    for name, mod in model.named_modules():
        if any(name == t or name.startswith(t + ".") for t in taken):
            continue
        view = detect_layer(mod)
        if view is not None:
            found.append((name, view))
            taken.append(name)
    return found


def to_paper(arrays: LayerArrays) -> dict[str, np.ndarray]:
    """The layer in the paper's orientation (single block only): ``w`` (d_in x d_out), ``b`` (d_in x r), ``a`` (r x d_out)."""
    if len(arrays.blocks) != 1:
        raise AuditError("a fused (multi-block) layer cannot be one projection of the paper's attention")
    rows, A, B, _ = arrays.blocks[0]
    if not np.array_equal(rows, np.arange(arrays.d_out)):
        raise AuditError("layer's LoRA block does not cover every output column")
    return {"w": arrays.W.T, "b": A.T, "a": B.T}
