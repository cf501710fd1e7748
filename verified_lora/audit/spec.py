"""An explicit description of one LoRA layer, for anything detection cannot settle on its own.

Detection (``verified_lora.audit.detect``) finds the frozen base operator and the trainable low-rank
factors by structure and behaviour.  When a layer is ambiguous, or a user wants to pin the mapping, a
:class:`LoraSpec` names every piece explicitly; the CLI flags ``--base``, ``--lora-a``, ``--lora-b``,
``--alpha``, ``--rank``, ``--merge`` fill the same fields.  Paths are dotted attribute paths relative to
the audited module (``"base_layer.weight"``, ``"lora_A.default.weight"``, ``"lora_down.weight"``).

This module is pure Python (no torch) so that the CLI can build a spec before importing torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace

from ..errors import AuditError

__all__ = ["LoraSpec", "VARIANTS", "SCALINGS"]

VARIANTS = ("lora", "dora")
SCALINGS = ("lora", "rslora")


def _merge_pair(text: str) -> tuple[str, str]:
    parts = [p.strip() for p in text.split(",")]
    if len(parts) != 2 or not all(parts):
        raise AuditError(f"merge={text!r}: expected 'MERGE,UNMERGE' method names (e.g. 'merge,unmerge' or "
                         "'_fuse_lora,_unfuse_lora')")
    return parts[0], parts[1]


@dataclass(frozen=True)
class LoraSpec:
    """Explicit mapping of one LoRA layer onto the audit's canonical form; every field optional.

    Attributes:
        base: dotted path to the frozen base weight tensor (``"weight"``, ``"base_layer.weight"``,
            ``"linear.weight"``) or to the base module holding it (``"base_layer"``).
        base_bias: dotted path to the base bias (``None``: take ``<base module>.bias`` if present).
        lora_a: dotted path to the down-projection factor (input side, r rows) or its module.
        lora_b: dotted path to the up-projection factor (output side, r columns) or its module.
        alpha: declared ``lora_alpha``.
        rank: declared rank ``r`` (0 declares a disabled adapter).
        scaling: explicit scale ``s`` (overrides alpha/rank when given).
        rslora: ``True`` for ``s = alpha / sqrt(r)``, ``False`` for ``s = alpha / r``, ``None``: read it.
        merge: name of the in-module merge method (``"merge"``, ``"_fuse_lora"``, ``"fuse"``), or
            ``"train_eval"`` for loralib-style merging on ``eval()``; ``"none"`` declares no merge.
        unmerge: name of the matching unmerge method (required with a ``merge`` method name).
        slices: fused output slice widths in output order (e.g. ``(64, 16, 16)`` for q, k, v of a
            grouped-query attention); ``None``: one block, or read from the layer.
        enable: which slices carry LoRA (loralib's ``enable_lora``); ``None``: all of them.
        magnitude: dotted path to DoRA's magnitude vector (``variant="dora"`` only).
        variant: ``"lora"`` or ``"dora"``; ``None``: detect.
        fan_in_fan_out: ``True`` if the base weight is stored (in x out), as transformers' ``Conv1D``.
    """

    base: str | None = None
    base_bias: str | None = None
    lora_a: str | None = None
    lora_b: str | None = None
    alpha: float | None = None
    rank: int | None = None
    scaling: float | None = None
    rslora: bool | None = None
    merge: str | None = None
    unmerge: str | None = None
    slices: tuple[int, ...] | None = None
    enable: tuple[bool, ...] | None = None
    magnitude: str | None = None
    variant: str | None = None
    fan_in_fan_out: bool | None = None
    extra: dict = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if self.variant is not None and self.variant not in VARIANTS:
            raise AuditError(f"LoraSpec.variant={self.variant!r}: expected one of {VARIANTS}")
        if self.rank is not None and (int(self.rank) != self.rank or self.rank < 0):
            raise AuditError(f"LoraSpec.rank={self.rank!r}: expected an integer >= 0")
        if self.alpha is not None and not float(self.alpha) == float(self.alpha):
            raise AuditError("LoraSpec.alpha is NaN; give a finite number")
        if self.scaling is not None and not abs(float(self.scaling)) < float("inf"):
            raise AuditError(f"LoraSpec.scaling={self.scaling!r}: give a finite number")
        if self.slices is not None and (not self.slices or any(int(w) <= 0 for w in self.slices)):
            raise AuditError(f"LoraSpec.slices={self.slices!r}: expected positive widths, e.g. (64, 16, 16)")
        if self.enable is not None and self.slices is not None and len(self.enable) != len(self.slices):
            raise AuditError(f"LoraSpec.enable has {len(self.enable)} entries but slices has {len(self.slices)}")
        if self.merge not in (None, "none", "train_eval") and self.unmerge is None:
            raise AuditError(f"LoraSpec.merge={self.merge!r} needs unmerge=<method name> as well")
        if self.unmerge is not None and self.merge in (None, "none", "train_eval"):
            raise AuditError("LoraSpec.unmerge given without a merge method name")

    @classmethod
    def from_flags(cls, *, base: str | None = None, lora_a: str | None = None, lora_b: str | None = None,
                   alpha: float | None = None, rank: int | None = None, merge: str | None = None,
                   **kw) -> "LoraSpec":
        """Build a spec from CLI-style flags; ``merge`` is ``"MERGE,UNMERGE"``, ``"train_eval"`` or ``"none"``."""
        m = u = None
        if merge is not None:
            if merge in ("none", "train_eval"):
                m = merge
            else:
                m, u = _merge_pair(merge)
        return cls(base=base, lora_a=lora_a, lora_b=lora_b, alpha=alpha, rank=rank, merge=m, unmerge=u, **kw)

    def is_empty(self) -> bool:
        """True when no field is set (pure auto-detection)."""
        return all(getattr(self, f.name) in (None, {}) for f in fields(self))

    def with_(self, **kw) -> "LoraSpec":
        """A copy with some fields replaced."""
        return replace(self, **kw)
