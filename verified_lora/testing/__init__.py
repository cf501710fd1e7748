"""Test helpers shared by the test suite and the benchmarks (and usable in your own tests).

Each submodule loads on first use, so importing this package pulls in neither hypothesis nor
torch; only the submodule you use needs its extra:

* :mod:`.strategies` (``test`` extra: hypothesis): :func:`problems`, random valid
  :class:`~verified_lora.LoraAttention` problems without the degenerate choices that hide bugs;
* :mod:`.dense`: an independent dense O(L L_k) implementation of the two approximate gradient
  algorithms (float64 or mpmath), written from the definitions rather than through feature maps;
* :mod:`.sampling`: :func:`sampled_max`, a dense high-precision sampling estimate of a polynomial's
  relative error against ``exp`` (a lower estimate, sharing no code with the certificates);
* :mod:`.broken_lora` (``audit`` extra: torch): correct LoRA layers and deliberately broken
  variants, each failing exactly one audit check (targets such as
  ``verified_lora.testing.broken_lora:wrong_scale``).
"""

from __future__ import annotations

from .._lazy import lazy_exports

__all__ = ["problems", "adapter_sets", "dense_grads", "item_matrices", "exp_of", "poly_of", "sampled_max",
           "strategies", "dense", "sampling", "broken_lora"]

__getattr__ = lazy_exports(__name__, {
    "problems": "strategies", "adapter_sets": "strategies",
    "dense_grads": "dense", "item_matrices": "dense", "exp_of": "dense", "poly_of": "dense",
    "sampled_max": "sampling",
}, submodules=("strategies", "dense", "sampling", "broken_lora"))
