"""Whole models in place (imports torch): every LoRA-carrying module of a model, nothing skipped silently.

:func:`inventory` walks a model once and sorts every module that carries LoRA into one of

* **audited**: detection (:func:`~.adapters.detect_layer`) maps it onto the canonical layer;
* **disabled**: a rank-0 adapter, nothing to audit;
* **unaudited**: detection refuses it (the one-line reason is kept), or the model has trainable
  parameters that belong to no audited layer (they are listed by name: the audit checked nothing
  about them).

A refused module whose descendants hold audited or disabled layers is a container (``LlamaMLP``
holding ``gate_proj``/``up_proj``/``down_proj``), not a refusal; descendants of a refused module that
hold no LoRA layer are covered by its refusal. :func:`model_cases` turns each audited module into
two :class:`~.cases.LayerCase` s: one with the module's **own current weights** (as a trained model
has them; input and upstream gradient drawn) and one with **fresh non-degenerate draws** at the
module's shapes. Each case works on a deep copy of the module taken from the built model, so the
model itself is never modified.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np
from torch import nn

from ..errors import AuditError
from .adapters import DisabledAdapter, detect_layer
from .cases import LayerCase, LayerValues, draw_values

__all__ = ["Inventory", "inventory", "model_cases", "own_values"]


@dataclass
class Inventory:
    """What a model's LoRA-carrying modules are: ``audited`` ``(name, view)``, ``disabled`` and
    ``unaudited`` ``(name, reason)``."""

    audited: list = field(default_factory=list)
    disabled: list[tuple[str, str]] = field(default_factory=list)
    unaudited: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (f"{len(self.audited)} LoRA module(s) audited, {len(self.disabled)} disabled (r = 0), "
                f"{len(self.unaudited)} not audited")


def _inside(name: str, parent: str) -> bool:
    return parent == "" or name == parent or name.startswith(parent + ".")


def inventory(model: nn.Module) -> Inventory:
    """Sort every LoRA-carrying module of ``model`` (see the module docstring)."""
    found: list = []
    disabled: list[tuple[str, str]] = []
    refused: list[tuple[str, str]] = []
    for name, mod in model.named_modules():
        if name == "":
            continue  # the root is the model; the caller tried it as a single layer first
        if any(_inside(name, n) and name != n for n, _ in found + disabled):
            continue  # a part of a layer already sorted
        try:
            view = detect_layer(mod)
        except DisabledAdapter as exc:
            disabled.append((name, str(exc)))
            continue
        except AuditError as exc:
            refused.append((name, str(exc)))
            continue
        if view is not None and getattr(view, "dtype_scope", None) is not None:
            refused.append((name, f"{view.convention}: a Keras layer inside a model is not audited in place (its "
                           "dtype comes from Keras' dtype policy at build time). Fix: audit a factory of that layer"))
        elif view is not None:
            found.append((name, view))
    holders = [n for n, _ in found] + [n for n, _ in disabled]
    unaudited: list[tuple[str, str]] = []
    for name, why in refused:
        if any(_inside(h, name) and h != name for h in holders):
            continue  # a container of LoRA layers, not a LoRA layer
        if any(_inside(name, n) and n != name for n, _ in unaudited):
            continue  # covered by an enclosing refusal
        unaudited.append((name, why))
    covered = holders + [n for n, _ in unaudited]
    params = list(model.named_parameters())
    loose = [p for p, t in params if t.requires_grad and not any(_inside(p, c) for c in covered)]
    notes: list[str] = []
    if loose:
        shown = ", ".join(loose[:4]) + (f", ... ({len(loose)} in all)" if len(loose) > 4 else "")
        what = f"trainable parameters outside every detected LoRA layer: {shown}; the audit checked nothing about them"
        if any(not t.requires_grad for _, t in params):
            unaudited.append(("(trainable parameters)", what))
        else:  # nothing frozen: not set up for LoRA fine-tuning, so these are the base model's own weights
            notes.append(f"every parameter is trainable (no frozen base); {what}")
    return Inventory(found, disabled, unaudited, notes)


def own_values(rng: np.random.Generator, view, lead: tuple[int, ...]) -> LayerValues:
    """The module's own weights (read through ``view``), with the input and upstream gradient drawn."""
    drawn = draw_values(rng, view, lead)
    arrays = view.read()
    blocks = [(a, b, bb) for _, a, b, bb in arrays.blocks]
    return LayerValues(W=arrays.W, bias=arrays.bias, blocks=blocks, x=drawn.x, g=drawn.g)


def _copier(module: nn.Module, trainable: list[str]):
    def build(spec):
        twin = copy.deepcopy(module)
        for name in trainable:  # the audit checks the adapter's gradients even where the model froze it
            twin.get_parameter(name).requires_grad_(True)
        return twin
    return build


def _frozen_factors(module: nn.Module, view) -> list[str]:
    """Names (in ``module``) of the LoRA factors that do not require grad (e.g. an adapter loaded for inference)."""
    ids = {id(t) for t in view.lora_parameters().values()}
    return [n for n, p in module.named_parameters() if id(p) in ids and not p.requires_grad]


def model_cases(model: nn.Module, label: str, inv: Inventory) -> list[LayerCase]:
    """Two cases per audited module of ``model``: its own weights, then fresh draws."""
    cases: list[LayerCase] = []
    for name, view in inv.audited:
        sub = model.get_submodule(name)
        arrays = view.read()
        own_notes = (["own weights: B = 0 (an untrained adapter): the gradient of A is exactly 0 there"]
                     if any(not np.any(b) for _, _, b, _ in arrays.blocks) else [])
        frozen = _frozen_factors(sub, view)
        notes = ([f"the model holds this adapter frozen ({', '.join(frozen)} requires_grad=False, e.g. "
                  "PeftModel.from_pretrained without is_trainable=True); the audited copies are made trainable "
                  "so that the gradients can be checked"] if frozen else [])
        cases.append(LayerCase(f"{label} {name} [own weights]", _copier(sub, frozen), None, notes=own_notes + notes,
                               values=own_values))
        cases.append(LayerCase(f"{label} {name} [drawn]", _copier(sub, frozen), None, notes=list(notes)))
    return cases
