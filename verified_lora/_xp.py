"""Array-namespace detection: NumPy by default, CuPy only when the caller already uses it.

The numerical code (``exact``, ``fast``) is written against the subset of the array API
that NumPy and CuPy share, and receives the namespace from :func:`array_namespace`.
CuPy is never imported here: an array from CuPy can only exist once the caller imported it,
so we find the module through ``sys.modules``.
"""

from __future__ import annotations

import sys
from types import ModuleType
from typing import Any

import numpy as np

from .errors import InputError

__all__ = ["array_namespace", "is_cupy_array", "to_numpy"]


def is_cupy_array(x: Any) -> bool:
    """True when ``x`` is a ``cupy.ndarray`` (without importing cupy)."""
    return type(x).__module__.split(".", 1)[0] == "cupy"


def array_namespace(*arrays: Any) -> ModuleType:
    """Return ``numpy`` or ``cupy`` for a set of arrays; mixing the two is an error."""
    kinds = {is_cupy_array(a) for a in arrays if a is not None}
    if len(kinds) > 1:
        raise InputError(
            "arrays",
            "all arrays on one device (all NumPy or all CuPy)",
            "a mix of NumPy and CuPy arrays",
            "move them with cupy.asarray(...) or cupy.asnumpy(...)",
        )
    if kinds == {True}:
        return sys.modules["cupy"]
    return np


def to_numpy(x: Any) -> np.ndarray:
    """A NumPy copy of ``x`` (NumPy or CuPy array); NumPy input is returned as is."""
    if is_cupy_array(x):
        return x.get()
    return np.asarray(x)
