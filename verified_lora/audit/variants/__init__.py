"""References and derived bounds of LoRA variants beyond plain LoRA (NumPy + mpmath; no torch)."""

from __future__ import annotations


import numpy as np

from ..error_bounds import LayerArrays, layer_bounds
from ..layer_reference import LayerReference, layer_reference
from .dora import dora_bounds, dora_reference

__all__ = ["reference", "bounds"]


def reference(arrays: LayerArrays, x: np.ndarray, g: np.ndarray | None = None) -> LayerReference:
    """The mpmath reference of the layer's variant: plain LoRA, or DoRA when it has a magnitude."""
    return layer_reference(arrays, x, g) if arrays.m is None else dora_reference(arrays, x, g)


def bounds(arrays: LayerArrays, x: np.ndarray, g: np.ndarray, dtype: str) -> dict[str, object]:
    """The derived per-entry bounds of the layer's variant (see :func:`reference`)."""
    return layer_bounds(arrays, x, g, dtype) if arrays.m is None else dora_bounds(arrays, x, g, dtype)
