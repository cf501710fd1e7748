"""Audit targets: the installed PEFT, the installed loralib, and ``module.path:factory`` user code.

A target resolves to a list of cases (:class:`~.cases.LayerCase`, :class:`~.cases.AttentionCase`).

* ``peft``: PEFT ``Linear`` (bias on/off, rsLoRA on alternate draws, LoRA bias on some draws),
  PEFT on a transformers ``Conv1D`` (``fan_in_fan_out=True``) when transformers is importable, and a
  :class:`~.torch_models.TinyAttention` with LoRA on q_proj/v_proj and on q_proj/k_proj/v_proj.
* ``loralib``: ``Linear``, ``Linear(fan_in_fan_out=True)`` and ``MergedLinear`` with ``enable_lora``
  masks swept over all seven non-empty masks (partial ones first).
* ``module.path:factory``: ``factory(**kwargs)`` returns a LoRA layer, a single-head attention module
  (``q_proj``/``k_proj``/``v_proj`` and ``beta``), or any module containing LoRA layers. The factory
  receives those of ``d_in, d_out, r, alpha, bias, use_rslora, fan_in_fan_out, enable_lora`` (layers)
  or ``d_model, d_head, d_v, r, alpha, bias, use_rslora`` (attention, chosen when it accepts
  ``d_model``) that it accepts; a factory taking none is audited at its own shapes.
"""

from __future__ import annotations

import importlib
import inspect
import os
import sys
from dataclasses import dataclass, field, replace
from collections.abc import Callable
from typing import Any

from ..errors import AuditError

__all__ = ["resolve", "resolve_target", "factory_target", "factory_cases", "Resolved", "builtin_available",
           "BUILTIN_TARGETS"]

BUILTIN_TARGETS = ("peft", "loralib")


def builtin_available(name: str) -> tuple[bool, str]:
    """Whether torch and the named library import, with the reason when they do not."""
    try:
        importlib.import_module("torch")
    except Exception as exc:  # pragma: no cover - depends on the environment
        return False, f"torch is not importable ({type(exc).__name__}: {exc})"
    try:
        importlib.import_module(name)
    except Exception as exc:
        return False, f"{name} is not importable ({type(exc).__name__}: {str(exc)[:120]})"
    return True, ""


def _peft_cases() -> list:
    import torch  # noqa: F401
    from peft import LoraConfig, inject_adapter_in_model
    from torch import nn

    from .cases import AttentionCase, LayerCase, draw_attention_spec, draw_layer_spec
    from .torch_models import Holder, TinyAttention

    def linear(spec):
        model = Holder(nn.Linear(spec.d_in, spec.d_out, bias=spec.bias))
        cfg = LoraConfig(r=spec.r, lora_alpha=spec.alpha, target_modules=["proj"], lora_dropout=0.0,
                         init_lora_weights=False, use_rslora=spec.use_rslora, lora_bias=spec.lora_bias)
        return inject_adapter_in_model(cfg, model)

    cases: list = [LayerCase("peft Linear", linear,
                             lambda rng, i: draw_layer_spec(rng, i, rslora=True, lora_bias=True),
                             select=lambda m: m.proj)]
    try:
        from transformers.pytorch_utils import Conv1D
    except Exception:  # pragma: no cover - transformers is a peft dependency
        Conv1D = None
    if Conv1D is not None:
        def conv1d(spec):
            model = Holder(Conv1D(spec.d_out, spec.d_in))  # transformers' Conv1D always has a bias
            cfg = LoraConfig(r=spec.r, lora_alpha=spec.alpha, target_modules=["proj"], lora_dropout=0.0,
                             init_lora_weights=False, use_rslora=spec.use_rslora, fan_in_fan_out=True)
            return inject_adapter_in_model(cfg, model)

        cases.append(LayerCase("peft Conv1D (fan_in_fan_out)", conv1d,
                               lambda rng, i: replace(draw_layer_spec(rng, i, rslora=True, fan_in_fan_out=True),
                                                      bias=True),
                               select=lambda m: m.proj))

    def attention(targets):
        def build(spec):
            model = TinyAttention(spec.d_model, spec.d_head, spec.d_v, bias=spec.bias)
            cfg = LoraConfig(r=spec.r, lora_alpha=spec.alpha, target_modules=list(targets), lora_dropout=0.0,
                             init_lora_weights=False, use_rslora=spec.use_rslora)
            return inject_adapter_in_model(cfg, model)
        return build

    for targets in (("q_proj", "v_proj"), ("q_proj", "k_proj", "v_proj")):
        cases.append(AttentionCase(f"peft attention LoRA on {','.join(t[0] for t in targets)}", attention(targets),
                                   lambda rng, i: draw_attention_spec(rng, i, rslora=True)))
    return cases


def _loralib_cases() -> list:
    import loralib

    from .cases import LayerCase, draw_layer_spec

    def linear(spec):
        return loralib.Linear(spec.d_in, spec.d_out, r=spec.r, lora_alpha=spec.alpha, bias=spec.bias,
                              fan_in_fan_out=spec.fan_in_fan_out, merge_weights=True)

    def merged(spec):
        return loralib.MergedLinear(spec.d_in, spec.d_out, r=spec.r, lora_alpha=spec.alpha, bias=spec.bias,
                                    enable_lora=list(spec.enable_lora), fan_in_fan_out=spec.fan_in_fan_out,
                                    merge_weights=True)

    return [
        LayerCase("loralib Linear", linear, lambda rng, i: draw_layer_spec(rng, i)),
        LayerCase("loralib Linear (fan_in_fan_out)", linear,
                  lambda rng, i: draw_layer_spec(rng, i, fan_in_fan_out=True)),
        LayerCase("loralib MergedLinear", merged,
                  lambda rng, i: draw_layer_spec(rng, i, merged=True, fan_in_fan_out=i % 3 == 2)),
    ]


LAYER_KWARGS = ("d_in", "d_out", "r", "alpha", "bias", "use_rslora", "fan_in_fan_out", "enable_lora", "lora_bias")
ATTENTION_KWARGS = ("d_model", "d_head", "d_v", "r", "alpha", "bias", "use_rslora")


def load_factory(target: str) -> Callable[..., Any]:
    """Import ``module.path:factory``; :class:`AuditError` with the reason when that fails."""
    if ":" not in target:
        raise AuditError(f"audit target {target!r}: expected 'peft', 'loralib' or 'module.path:factory'")
    mod_name, _, attr = target.partition(":")
    if not mod_name or not attr:
        raise AuditError(f"audit target {target!r}: expected 'module.path:factory'")
    added = False
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
        added = True
    try:
        module = importlib.import_module(mod_name)
    except Exception as exc:
        raise AuditError(f"audit target {target!r}: module {mod_name!r} is not importable "
                         f"({type(exc).__name__}: {exc}). Fix: run from the directory that contains it "
                         "or install it") from exc
    finally:
        if added:
            sys.path.remove(os.getcwd())
    obj = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise AuditError(f"audit target {target!r}: {mod_name} has no attribute {attr!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise AuditError(f"audit target {target!r}: {attr} is not callable (expected a factory returning a module)")
    return obj


def _accepted(factory: Callable[..., Any], names: tuple[str, ...]) -> tuple[str, ...]:
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return ()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return names
    return tuple(n for n in names if n in params)


@dataclass
class Resolved:
    """What a target resolved to: the ``cases`` to run and, for a whole model, the modules it does not
    audit (``unaudited``: ``(name, reason)``, they make the verdict PARTIAL), the ``disabled`` rank-0
    adapters and ``notes`` on the model as a whole."""

    cases: list
    model: bool = False
    unaudited: list = field(default_factory=list)
    disabled: list = field(default_factory=list)
    notes: list = field(default_factory=list)


def factory_cases(factory: Callable[..., Any], label: str, lora_spec: Any = None) -> list:
    """Cases for a user factory (see the module docstring); a whole model's unaudited modules are
    not in this list: use :func:`factory_target`."""
    return factory_target(factory, label, lora_spec).cases


def factory_target(factory: Callable[..., Any], label: str, lora_spec: Any = None) -> Resolved:
    """Resolve a user factory: one layer, one attention module, or a whole model (see the module docstring).

    ``lora_spec`` (a :class:`~.spec.LoraSpec`) is the explicit mapping of a single layer; detection
    uses it instead of its own conventions.
    """
    import numpy as np
    from torch import nn

    from .adapters import DisabledAdapter, detect_layer
    from .cases import AttentionCase, LayerCase, draw_attention_spec, draw_layer_spec

    attention_kw = _accepted(factory, ATTENTION_KWARGS)
    is_attention_spec = "d_model" in attention_kw
    kw = attention_kw if is_attention_spec else _accepted(factory, LAYER_KWARGS)
    shaped = bool({"d_in", "d_out", "d_model"} & set(kw))
    rslora = "use_rslora" in kw
    merged = "enable_lora" in kw

    if is_attention_spec:
        def draw(rng, i):
            return draw_attention_spec(rng, i, rslora=rslora)
    elif shaped:
        def draw(rng, i):
            return draw_layer_spec(rng, i, rslora=rslora, merged=merged)
    else:
        draw = None

    def build(spec):
        kwargs = {} if spec is None else {k: getattr(spec, k) for k in kw if hasattr(spec, k)}
        if "enable_lora" in kwargs and kwargs["enable_lora"] is None:
            kwargs.pop("enable_lora")
        try:
            module = factory(**kwargs)
        except AuditError:
            raise
        except Exception as exc:
            raise AuditError(f"{label}: the factory raised {type(exc).__name__}: {exc}") from exc
        if not isinstance(module, nn.Module):
            from .keras_layers import is_keras_layer, require_torch_backend

            if is_keras_layer(module):
                require_torch_backend(label)
            raise AuditError(f"{label}: the factory returned {type(module).__name__}, not a torch.nn.Module")
        return module

    probe = build(draw(np.random.default_rng(0), 0) if draw else None)
    spec = lora_spec if lora_spec is not None and not lora_spec.is_empty() else None
    root_error: AuditError | None = None
    try:
        view = detect_layer(probe, spec)
    except DisabledAdapter:
        raise
    except AuditError as exc:
        if spec is not None:
            raise AuditError(f"{label}: {exc}") from None
        root_error, view = exc, None
    if view is not None:
        return Resolved([LayerCase(label, build, draw, notes=_degenerate_notes(view), lora_spec=spec,
                                   dtype_scope=getattr(view, "dtype_scope", None))])
    if spec is not None:
        raise AuditError(f"{label}: the explicit mapping (--base/--lora-a/--lora-b) describes one LoRA layer, "
                         f"but the factory returned {type(probe).__name__}, which is not one. Fix: a factory "
                         "returning that layer")
    if root_error is None and all(hasattr(probe, a) for a in ("q_proj", "k_proj", "v_proj")):
        if not isinstance(getattr(probe, "beta", None), (int, float)):
            raise AuditError(f"{label}: attention module {type(probe).__name__} has q_proj/k_proj/v_proj but no float "
                             "attribute 'beta' (the score scale, S = beta Q K^T); unsupported convention. "
                             "Fix: set module.beta")
        cases: list = []
        for attr in ("q_proj", "k_proj", "v_proj"):
            v = detect_layer(getattr(probe, attr))
            if v is not None:
                cases.append(LayerCase(f"{label} {attr}", build, draw, select=_getter(attr), notes=_degenerate_notes(v)))
        if not cases:
            raise AuditError(f"{label}: no LoRA layers found (q_proj, k_proj and v_proj are plain layers)")
        cases.append(AttentionCase(f"{label} attention", build, draw))
        return Resolved(cases)
    from .keras_layers import is_keras_layer, keras_model_refusal

    if root_error is None and is_keras_layer(probe):
        raise AuditError(f"{label}: {keras_model_refusal(probe)}")
    from .whole_model import inventory, model_cases

    inv = inventory(probe)
    real_refusals = [u for u in inv.unaudited if u[0] != "(trainable parameters)"]
    if not inv.audited and not inv.disabled and not real_refusals:
        if root_error is not None:
            raise AuditError(f"{label}: {root_error}") from None
        from .structural import unnamed_pair_hint

        hint = unnamed_pair_hint(probe)
        if hint:
            raise AuditError(f"{label}: {hint}")
        raise AuditError(f"{label}: no LoRA layers found in {type(probe).__name__} (looked for PEFT LoraLayer, "
                         "loralib, torchtune, factor pairs such as lora_A/B, lora_down/up, down/up, and "
                         "parametrizations)")
    return Resolved(model_cases(probe, label, inv), model=True, unaudited=inv.unaudited, disabled=inv.disabled,
                    notes=[inv.summary()] + inv.notes)


def _getter(name: str):
    def select(module):
        return module.get_submodule(name)
    return select


def _degenerate_notes(view) -> list[str]:
    notes = []
    if view.alpha == view.r:
        notes.append(f"fixture degenerate: alpha == r == {view.r} (s = 1 hides scale bugs); accept alpha/r kwargs")
    if view.d_in == view.d_out:
        notes.append("fixture degenerate: square weight hides transposition bugs")
    if view.r < 2:
        notes.append("fixture degenerate: r < 2")
    return notes


def resolve_target(target: str, lora_spec: Any = None) -> Resolved:
    """What ``target`` (``peft``, ``loralib`` or ``module.path:factory``) resolves to (see :class:`Resolved`)."""
    if target in BUILTIN_TARGETS:
        if lora_spec is not None and not lora_spec.is_empty():
            raise AuditError(f"audit target {target!r}: an explicit mapping applies to a 'module.path:factory' target")
        ok, why = builtin_available(target)
        if not ok:
            raise AuditError(f"audit target {target!r}: {why}. Fix: pip install 'verified-lora[audit]'")
        return Resolved(_peft_cases() if target == "peft" else _loralib_cases())
    ok, why = builtin_available("torch")
    if not ok:
        raise AuditError(f"audit target {target!r}: {why}")
    factory = load_factory(target)
    return factory_target(factory, target.partition(":")[2], lora_spec)


def resolve(target: str) -> list:
    """The cases of ``target`` (``peft``, ``loralib`` or ``module.path:factory``)."""
    return resolve_target(target).cases
