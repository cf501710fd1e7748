"""Detection: which LoRA layer a module is, and a :class:`~.views.LayerView` on it (imports torch).

Known conventions are recognised by their attributes first (:mod:`.conventions`: PEFT ``LoraLayer``
including its ``Embedding``, loralib ``Linear``/``MergedLinear``/``Embedding``, torchtune
``LoRALinear``); anything else goes through detection by structure and behaviour
(:mod:`.structural`): a frozen base operator wherever it lives, a low-rank factor pair whatever it is
called. An explicit :class:`~.spec.LoraSpec` takes precedence over both. A layer declaring rank 0 is
a disabled adapter (:class:`DisabledAdapter`), not an unsupported one. DoRA is recognised by its
magnitude vector (PEFT's ``lora_magnitude_vector``, or a 1-D ``magnitude`` parameter). Keras 3 layers
(torch backend) with ``enable_lora`` are recognised first (:mod:`.keras_layers`). Conventions still
refused, each with a one-line reason: PEFT's other LoRA variants, DoRA on embeddings and
convolutions, convolutions with groups > 1, a padding mode other than zeros or asymmetric
``padding='same'``, loralib's ConvLoRA on non-square or 1-D kernels, custom (non-PEFT, non-loralib)
convolution LoRA layers, Keras ``EinsumDense`` equations that are not a dense layer on the last axis,
quantized Keras kernels and Keras layers inside a whole model.

The canonical orientation and the mapping to the paper are documented in :mod:`.views`.
"""

from __future__ import annotations

from torch import nn

from ..errors import AuditError
from .conventions import LoralibView, PeftView, TorchtuneView
from .keras_layers import is_keras_layer, keras_view
from .loralib_conv import LoralibConvView, is_loralib_conv
from .spec import LoraSpec
from .structural import StructuralView, structural_view
from .views import PAPER_MAPPING, Block, LayerView, to_paper

__all__ = ["LayerView", "Block", "detect_layer", "find_lora_layers", "scan_model", "to_paper", "PAPER_MAPPING",
           "DisabledAdapter", "StructuralView"]


class DisabledAdapter(AuditError):
    """The module is a LoRA layer with rank 0: a disabled adapter, with nothing to audit."""


def _lora_names(module: nn.Module) -> list[str]:
    names = [n for n in vars(module) if n.lower().startswith("lora")]
    names += [n for n, _ in module.named_parameters(recurse=False) if n.lower().startswith("lora")]
    names += [n for n, _ in module.named_children() if n.lower().startswith("lora")]
    return sorted(set(names))


def _has_factor_names(module: nn.Module) -> bool:
    from .structural import A_NAMES, B_NAMES

    kids = {n.lower() for n, _ in module.named_children()} | {
        n.lower() for n, _ in module.named_parameters(recurse=False)}
    pz = getattr(module, "parametrizations", None)
    if pz is not None and "weight" in pz:
        for p in pz["weight"]:
            kids |= {n.lower() for n, _ in p.named_parameters(recurse=False)}
    deep = {n.rsplit(".", 2)[-2].lower() for n, _ in module.named_parameters() if n.count(".") >= 1}
    return bool((kids | deep) & set(A_NAMES)) and bool((kids | deep) & set(B_NAMES))


def _disabled(module: nn.Module) -> str | None:
    for n in ("r", "rank", "lora_rank"):
        v = getattr(module, n, None)
        if isinstance(v, int) and not isinstance(v, bool) and v == 0:
            return f"{type(module).__name__}: {n} = 0 declares a disabled adapter (no LoRA factors); nothing to audit"
    r = getattr(module, "r", None)
    if isinstance(r, dict) and r and all(v == 0 for v in r.values()):
        return f"{type(module).__name__}: every adapter has r = 0 (disabled); nothing to audit"
    return None


def detect_layer(module: nn.Module, spec: LoraSpec | None = None) -> LayerView | None:
    """The view of ``module`` if it is a LoRA layer; ``None`` if it shows no sign of one.

    Raises :class:`DisabledAdapter` for a rank-0 adapter and :class:`AuditError` (one line: what was
    found, what is missing) for a LoRA layer the audit cannot map.
    """
    if is_keras_layer(module):
        if spec is not None and not spec.is_empty():
            raise AuditError(f"Keras {type(module).__name__}: an explicit mapping (LoraSpec) applies to torch "
                             "layers; Keras' enable_lora layers are detected from their own attributes")
        return keras_view(module)
    if spec is not None and not spec.is_empty():
        if isinstance(getattr(module, "lora_A", None), nn.Parameter) and spec.slices is not None and hasattr(
                module, "enable_lora"):
            return LoralibView(module, slices=spec.slices)
        return structural_view(module, spec)
    la, lb = getattr(module, "lora_A", None), getattr(module, "lora_B", None)
    ea = getattr(module, "lora_embedding_A", None)
    if isinstance(la, nn.ModuleDict) and isinstance(lb, nn.ModuleDict):
        if not isinstance(getattr(module, "scaling", None), dict) or not hasattr(module, "get_base_layer"):
            raise AuditError(f"{type(module).__name__}: found lora_A/lora_B ModuleDicts; missing: PEFT's scaling "
                             "dict and get_base_layer(). Fix: LoraSpec(base=..., lora_a=..., lora_b=...)")
        if len(la) or (isinstance(ea, nn.ParameterDict) and len(ea)):
            return PeftView(module)
        why = _disabled(module)
        if why:
            raise DisabledAdapter(why)
        return None
    if is_loralib_conv(module):
        return LoralibConvView(module)
    if any("magnitude" in n.lower() for n, _ in module.named_parameters(recurse=False)):
        return structural_view(module)  # DoRA in a custom convention: the structural view finds the magnitude
    if isinstance(la, nn.Parameter) and isinstance(lb, nn.Parameter) and isinstance(
            getattr(module, "scaling", None), (int, float)) and isinstance(getattr(module, "weight", None), nn.Parameter):
        return LoralibView(module)
    ta, tb = getattr(module, "lora_a", None), getattr(module, "lora_b", None)
    if isinstance(ta, nn.Linear) and isinstance(tb, nn.Linear) and all(
            hasattr(module, n) for n in ("rank", "alpha", "weight")):
        return TorchtuneView(module)
    why = _disabled(module)
    if why and _lora_names(module):
        raise DisabledAdapter(why)
    lora = _lora_names(module)
    if lora or _has_factor_names(module) or _parametrized_lora(module):
        try:
            return structural_view(module)
        except DisabledAdapter:
            raise
        except AuditError as exc:
            raise AuditError(f"{exc} (LoRA attributes {lora})" if lora else str(exc)) from None
    return None


def _parametrized_lora(module: nn.Module) -> bool:
    pz = getattr(module, "parametrizations", None)
    return pz is not None and "weight" in pz and any(
        p.dim() == 2 for q in pz["weight"] for p in q.parameters(recurse=False))


def scan_model(model: nn.Module) -> tuple[list[tuple[str, LayerView]], list[tuple[str, str]], list[tuple[str, str]]]:
    """Every LoRA layer in ``model``: ``(found, disabled, refused)`` with ``(name, view)`` and ``(name, reason)``.

    Outermost first; the children of a found, disabled or refused layer are not visited.
    """
    found: list[tuple[str, LayerView]] = []
    disabled: list[tuple[str, str]] = []
    refused: list[tuple[str, str]] = []
    taken: list[str] = []
    for name, mod in model.named_modules():
        if any(name == t or name.startswith(t + ".") for t in taken):
            continue
        try:
            view = detect_layer(mod)
        except DisabledAdapter as exc:
            disabled.append((name, str(exc)))
            taken.append(name)
            continue
        except AuditError as exc:
            refused.append((name, str(exc)))
            taken.append(name)
            continue
        if view is not None and getattr(view, "dtype_scope", None) is not None:
            refused.append((name, f"{view.convention}: a Keras layer inside a model is not audited in place (its "
                            "dtype comes from Keras' dtype policy at build time). Fix: audit a factory of that layer"))
            taken.append(name)
        elif view is not None:
            found.append((name, view))
            taken.append(name)
    return found, disabled, refused


def find_lora_layers(model: nn.Module) -> list[tuple[str, LayerView]]:
    """Every supported LoRA layer inside ``model`` (outermost first); the first refusal raises."""
    found, _, refused = scan_model(model)
    if refused:
        name, why = refused[0]
        raise AuditError(f"{name or type(model).__name__}: {why}")
    return found
