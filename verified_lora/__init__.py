"""verified_lora: a verification-backed reference for LoRA attention gradients.

Implements and checks "Computational Limits of Low-Rank Adaptation (LoRA) Fine-Tuning for
Transformer Models" (Hu, Su, Kuo, Song, Liu; ICLR 2025). The public surface is small:

* :class:`LoraAttention` and :class:`Adapter` describe a problem (paper orientation);
* :mod:`verified_lora.exact`, :mod:`verified_lora.reference` and :mod:`verified_lora.fast`
  compute its loss and gradients (each imported on first use);
* every deliberate error derives from :class:`VerifiedLoraError`.

Importing this package imports NumPy only (SymPy, mpmath, torch, CuPy and matplotlib load
when a feature needs them).
"""

from __future__ import annotations

from ._lazy import lazy_exports
from .errors import (AuditError, CertificationError, CodegenError, InputError, OverflowInputError, RegimeError,
                     VerifiedLoraError)
from .problem import ADAPTER_KEYS, GRAD_KEYS, Adapter, LoraAttention, lora_scale
from .result import GradientResult

__version__ = "0.1.0"

__all__ = [
    "ADAPTER_KEYS",
    "GRAD_KEYS",
    "Adapter",
    "AuditError",
    "CertificationError",
    "CodegenError",
    "GradientResult",
    "InputError",
    "LoraAttention",
    "OverflowInputError",
    "RegimeError",
    "VerifiedLoraError",
    "lora_scale",
    "__version__",
]


# Submodules load lazily: ``verified_lora.exact`` works without an explicit import.
__getattr__ = lazy_exports(__name__, submodules=("exact", "reference", "fast", "bounds", "approx", "symbolic",
                                                 "codegen", "kernels", "audit", "examples", "overflow",
                                                 "progress"))
