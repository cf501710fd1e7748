"""Views of the LoRA layers whose convention is known by its attributes: PEFT, loralib, torchtune (imports torch).

* PEFT ``LoraLayer``: ``lora_A``/``lora_B`` ``ModuleDict`` of ``nn.Linear`` keyed by adapter name (or, for
  ``Embedding``, ``lora_embedding_A`` (r x V) / ``lora_embedding_B`` (d x r) ``ParameterDict``), a
  ``scaling`` dict, ``base_layer``; ``fan_in_fan_out`` means the base weight is stored (in x out)
  (transformers ``Conv1D``); optional LoRA bias ``lora_B[name].bias``; ``merge()``/``unmerge()``.
  An embedding's base output scale ``embed_scale`` (scaled embeddings) is read as ``c``.
* loralib: ``lora_A`` (r x d_in) and ``lora_B`` (d_out x r) ``Parameter``s, a float ``scaling``,
  ``merge_weights`` (``train(False)`` merges, ``train(True)`` unmerges), ``fan_in_fan_out``;
  ``MergedLinear`` adds ``enable_lora`` (slices of ``d_out``, equal unless declared; block ``g`` uses
  rows ``g r:(g+1) r`` of ``lora_A`` and its slice's rows of ``lora_B``); ``Embedding`` is the same on
  one-hot inputs with the table stored (V x d). An optional boolean ``use_rslora`` declares rsLoRA.
* torchtune ``LoRALinear``: ``weight``/``bias``, ``lora_a``/``lora_b`` ``nn.Linear``, ``rank``, ``alpha``,
  ``dropout``, ``s = alpha / rank``; no in-module merge.
"""

from __future__ import annotations

import numpy as np
from torch import nn

from ..errors import AuditError
from .views import Block, LayerView

__all__ = ["PeftView", "LoralibView", "TorchtuneView", "dropout_is_declared", "equal_or_declared_slices"]


def dropout_is_declared(slot: object) -> bool:
    """Whether a dropout slot holds a dropout with p > 0 (Identity, a lambda or p = 0 is no dropout)."""
    if isinstance(slot, nn.ModuleDict):
        return any(dropout_is_declared(m) for m in slot.values())
    return isinstance(slot, nn.modules.dropout._DropoutNd) and float(slot.p) > 0


def equal_or_declared_slices(d_out: int, n: int, slices: tuple[int, ...] | None, where: str) -> list[int]:
    """Output slice widths of a fused layer: the declared ``slices`` or ``n`` equal ones."""
    if slices is not None:
        if len(slices) != n or sum(slices) != d_out:
            raise AuditError(f"{where}: declared slices {tuple(slices)} do not split out_features={d_out} into "
                             f"{n} parts. Fix: LoraSpec(slices=...) with {n} widths summing to {d_out}")
        return [int(w) for w in slices]
    if d_out % n:
        raise AuditError(f"{where}: out_features={d_out} is not divisible by len(enable_lora)={n} and no slice "
                         "widths are declared. Fix: LoraSpec(slices=(q, k, v)) or a 'qkv_shapes' attribute")
    return [d_out // n] * n


class PeftView(LayerView):
    convention = "peft"
    merge_mode = "explicit"

    def __init__(self, module: nn.Module):
        super().__init__(module)
        self.embedding = len(getattr(module, "lora_embedding_A", {})) > 0
        keys = module.lora_embedding_A if self.embedding else module.lora_A
        active = getattr(module, "active_adapters", None) or list(keys.keys())
        names = [a for a in active if a in keys]
        if not names:
            raise AuditError(f"PEFT {type(module).__name__}: no active adapter among {list(keys.keys())}")
        self.name = names[0]
        variant = getattr(module, "lora_variant", {}).get(self.name)
        is_dora = getattr(module, "use_dora", {}).get(self.name, False)
        if (variant is not None and type(variant).__name__ != "DoraLinearVariant") or (
                is_dora and variant is None) or (is_dora and getattr(module, "fan_in_fan_out", False)):
            raise AuditError(f"PEFT layer {type(module).__name__}: found adapter {self.name!r} with a LoRA variant "
                             f"({type(variant).__name__ if variant is not None else 'DoRA'}); missing: a reference "
                             "for that variant (supported: plain LoRA, DoRA on Linear)")
        if is_dora:
            self.variant = "dora"
        base = module.get_base_layer()
        if isinstance(base, nn.modules.conv._ConvNd):
            from .conv import conv_geom

            self.conv = conv_geom(base)
            self.input_kind = "conv"
            self.convention = f"peft-{type(base).__name__.lower()}"
            self.d_in, self.d_out = self.conv.patch, self.conv.c_out
            self.fan_in_fan_out = False
        elif self.embedding:
            self.convention = "peft-embedding"
            self.input_kind = "index"
            self.d_in, self.d_out = int(base.num_embeddings), int(base.embedding_dim)
            self.fan_in_fan_out = True  # the table is stored (V x d) = (in x out)
            scale = getattr(base, "embed_scale", None)
            self.base_scale = 1.0 if scale is None else float(scale)
            self.lora_factor = self.base_scale
        else:
            self.d_in = int(module.in_features)
            self.d_out = int(module.out_features)
            self.fan_in_fan_out = bool(getattr(module, "fan_in_fan_out", False))
        if self.conv is not None and self.variant == "dora":
            raise AuditError(f"PEFT layer {type(module).__name__}: found a LoRA variant (DoRA) on a convolution; "
                             "missing: a reference for it (supported: DoRA on Linear)")
        self.r = int(module.r[self.name])
        self.alpha = float(module.lora_alpha[self.name])
        self.declared_scale = float(module.scaling[self.name])
        self.claimed_scaling = "rslora" if getattr(module, "use_rslora", {}).get(self.name, False) else "lora"
        self.declared = {"r": self.r, "lora_alpha": self.alpha, "scaling": self.declared_scale}
        self.dropout_declared = dropout_is_declared(getattr(module, "lora_dropout", None))

    def _tensors(self):
        base = self.module.get_base_layer()
        if self.embedding:
            return (base.weight, None, self.module.lora_embedding_A[self.name],
                    self.module.lora_embedding_B[self.name], None)
        lb = self.module.lora_B[self.name]
        if self.conv is not None:  # flattened views share storage: writes reach the parameters
            return (base.weight.view(self.d_out, -1), getattr(base, "bias", None),
                    self.module.lora_A[self.name].weight.view(self.r, -1), lb.weight.view(self.d_out, -1),
                    getattr(lb, "bias", None))
        return (base.weight, getattr(base, "bias", None), self.module.lora_A[self.name].weight, lb.weight,
                getattr(lb, "bias", None))

    def grads(self) -> list[dict]:
        if self.conv is None:
            return super().grads()
        A, B = self.module.lora_A[self.name].weight, self.module.lora_B[self.name].weight
        lb = getattr(self.module.lora_B[self.name], "bias", None)
        f = lambda t, shape: None if t is None or t.grad is None else t.grad.detach().double().reshape(shape).numpy()  # noqa: E731
        return [{"dA": f(A, (self.r, -1)), "dB": f(B, (self.d_out, -1)), "dbB": f(lb, (-1,))}]

    def lora_parameters(self) -> dict:
        if self.conv is None:
            return super().lora_parameters()
        out = {"A": self.module.lora_A[self.name].weight, "B": self.module.lora_B[self.name].weight}
        lb = getattr(self.module.lora_B[self.name], "bias", None)
        if lb is not None:
            out["bB"] = lb
        return out

    def set_dropout(self, p: float) -> None:
        self.module.lora_dropout[self.name] = nn.Dropout(p) if p > 0 else nn.Identity()

    def magnitude_tensor(self):
        if self.variant != "dora":
            return None
        return self.module.lora_magnitude_vector[self.name].weight

    def dropout_slot(self) -> tuple[object, str]:
        return self.module.lora_dropout, self.name


class LoralibView(LayerView):
    convention = "loralib"

    def __init__(self, module: nn.Module, slices: tuple[int, ...] | None = None):
        super().__init__(module)
        m = module
        if isinstance(m, nn.Embedding):
            self.convention = "loralib-embedding"
            self.input_kind = "index"
            self.d_in, self.d_out = int(m.num_embeddings), int(m.embedding_dim)
            self.fan_in_fan_out = True  # the table is stored (V x d)
        else:
            self.d_in = int(getattr(m, "in_features"))
            self.d_out = int(getattr(m, "out_features"))
            self.fan_in_fan_out = bool(getattr(m, "fan_in_fan_out", False))
        self.r = int(m.r)
        self.alpha = float(m.lora_alpha)
        self.declared_scale = float(m.scaling)
        self.claimed_scaling = "rslora" if bool(getattr(m, "use_rslora", False)) else "lora"
        self.merge_mode = "train_eval" if getattr(m, "merge_weights", False) else "none"
        self.enable = list(getattr(m, "enable_lora", [True]))
        self.slices = slices if slices is not None else _declared_slices(m)
        if hasattr(m, "enable_lora"):
            self.convention = "loralib-merged"
        self.declared = {"r": self.r, "lora_alpha": self.alpha, "scaling": self.declared_scale}
        if self.slices is not None:
            self.declared["slices"] = tuple(self.slices)
        self.dropout_declared = dropout_is_declared(getattr(m, "lora_dropout", None))

    @property
    def merge_skip_reason(self) -> str | None:
        return None if self.merge_mode != "none" else "merge_weights=False: this layer never merges"

    def blocks(self) -> list[Block]:
        if self.convention != "loralib-merged":
            return super().blocks()
        widths = equal_or_declared_slices(self.d_out, len(self.enable), self.slices,
                                          f"{type(self.module).__name__} (fused)")
        starts = np.concatenate([[0], np.cumsum(widths)])
        out, g, b0 = [], 0, 0
        for j, on in enumerate(self.enable):
            if on:
                w = widths[j]
                out.append(Block(slice(g * self.r, (g + 1) * self.r), slice(b0, b0 + w),
                                 np.arange(starts[j], starts[j] + w)))
                g += 1
                b0 += w
        return out

    def _tensors(self):
        m = self.module
        return m.weight, getattr(m, "bias", None), m.lora_A, m.lora_B, None

    def set_dropout(self, p: float) -> None:
        self.module.lora_dropout = nn.Dropout(p) if p > 0 else nn.Identity()

    def dropout_slot(self) -> tuple[object, str]:
        return self.module, "lora_dropout"

    def disable_auto_merge(self) -> None:
        if hasattr(self.module, "merge_weights"):
            self.module.merge_weights = False
            self.merge_mode = "none"


def _declared_slices(m: nn.Module) -> tuple[int, ...] | None:
    """Slice widths a fused layer declares: ``qkv_shapes`` (litgpt), ``slices`` or ``split_sizes``."""
    for name in ("qkv_shapes", "slices", "split_sizes", "out_slices"):
        v = getattr(m, name, None)
        if isinstance(v, (list, tuple)) and v and all(isinstance(w, (int, np.integer)) for w in v):
            return tuple(int(w) for w in v)
    return None


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
        self.declared = {"rank": self.r, "alpha": self.alpha}
        self.dropout_declared = dropout_is_declared(getattr(m, "dropout", None))

    def _tensors(self):
        m = self.module
        return m.weight, getattr(m, "bias", None), m.lora_a.weight, m.lora_b.weight, None

    def set_dropout(self, p: float) -> None:
        self.module.dropout = nn.Dropout(p) if p > 0 else nn.Identity()

    def dropout_slot(self) -> tuple[object, str]:
        return self.module, "dropout"
