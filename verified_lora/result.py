"""The result type shared by every gradient engine (exact, reference, fast)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

__all__ = ["GradientResult", "adapter_grads"]


@dataclass(frozen=True)
class GradientResult:
    """Loss and gradients of one :class:`~verified_lora.LoraAttention` problem.

    Attributes
    ----------
    loss:
        ``1/(2N) sum_n ||f_n V_n - Y_n||_F^2`` (``N = 1`` for an unbatched problem).
    grads:
        Adapter gradients keyed "A_Q", "B_Q", "A_K", "B_K", "A_V", "B_V"; only the adapted
        weights appear, each with its parameter's shape.
    weight_grads:
        ``dL/dW_mu`` for the effective weights, keyed "Q", "K", "V" (all three, adapted or not).
    method:
        Which engine produced the numbers ("exact", "reference", "factored", "paper", ...).
    info:
        Engine-specific details (block size, precision, ...).
    """

    loss: Any
    grads: Mapping[str, Any]
    weight_grads: Mapping[str, Any]
    method: str
    info: Mapping[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        """Compact: the loss, each gradient's shape and max |entry|, scalar fields; never whole arrays."""
        parts = []
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "info":
                continue
            text = _brief(value)
            if text is not None:
                parts.append(f"{f.name}={text}")
        return f"{type(self).__name__}({', '.join(parts)})"


def _brief(value: Any) -> str | None:
    """A short description of a field value (``None``: leave the field out)."""
    if value is None or isinstance(value, (bool, int, str)):
        return repr(value if not isinstance(value, str) or len(value) <= 80 else value[:77] + "...")
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, Mapping):
        items = []
        for k, v in value.items():
            shape = getattr(v, "shape", None)
            if shape is not None:
                items.append(f"{k}: {tuple(shape)} max|.|={_max_abs(v)}")
            elif isinstance(v, float):
                items.append(f"{k}: {v:.3g}")
            else:
                items.append(f"{k}: {type(v).__name__}")
        return "{" + ", ".join(items) + "}"
    shape = getattr(value, "shape", None)
    if shape is not None and tuple(shape):
        return f"array{tuple(shape)}"
    try:
        return f"{float(value):.10g}"   # mpf and numpy scalars
    except (TypeError, ValueError):
        return type(value).__name__


def _max_abs(v: Any) -> str:
    try:
        import numpy as np

        return f"{float(np.max(np.abs(np.asarray(v, dtype=np.float64)))):.3g}"
    except (TypeError, ValueError):
        return "?"


def adapter_grads(problem, weight_grads: Mapping[str, Any]) -> dict[str, Any]:
    """Chain rule from ``dL/dW_mu`` to the adapters (Lemma 3.2, corrected; see ERRATA).

    ``W_mu = W*_mu + s B_mu A_mu`` gives ``dL/dA_mu = s B_mu^T dL/dW_mu`` and
    ``dL/dB_mu = s dL/dW_mu A_mu^T``. Works for any array type with ``@`` and ``.T``.
    """
    grads: dict[str, Any] = {}
    for key in problem.adapted:
        ad, s, g = problem.adapters[key], problem.scale(key), weight_grads[key]
        grads[f"A_{key}"] = s * (ad.b.T @ g)
        grads[f"B_{key}"] = s * (g @ ad.a.T)
    return grads
