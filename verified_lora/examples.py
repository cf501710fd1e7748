"""Reproducible example problems: the built-in default of ``verified-lora verify`` and random ones.

Fixtures deliberately avoid the degenerate choices that hid real bugs in LoRA libraries
(docs/design.md section 7): ``alpha != r``, ``B != 0``, non-square weights, ``r >= 2``.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from .problem import ADAPTER_KEYS, Adapter, LoraAttention

__all__ = ["random_problem", "default_problem", "rescaled_to"]


def random_problem(seed: int | np.random.Generator = 0, *, L: int = 8, L_k: int | None = None,
                   d_model: int = 5, d_head: int = 4, d_v: int = 3, r: int = 2,
                   adapters: Iterable[str] = ADAPTER_KEYS, alpha: float = 3.0, beta: float = 0.7,
                   scaling: str = "lora", n_batch: int | None = None, scale: float = 0.5,
                   dtype: str = "float64") -> LoraAttention:
    """A random problem with entries of size about ``scale``.

    ``L_k`` different from ``L`` (or given at all) makes a cross-attention problem with its own
    ``x_k`` and ``x_v``. ``n_batch`` adds a leading batch axis.
    """
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    lead = () if n_batch is None else (n_batch,)

    def draw(*shape: int) -> np.ndarray:
        return (scale * rng.standard_normal(shape)).astype(dtype)

    cross = L_k is not None
    L_k = L if L_k is None else L_k
    d_out = {"Q": d_head, "K": d_head, "V": d_v}
    ads = {k: Adapter(a=draw(r, d_out[k]), b=draw(d_model, r)) for k in adapters}
    return LoraAttention(
        x_q=draw(*lead, L, d_model), y=draw(*lead, L, d_v),
        w_q=draw(d_model, d_head), w_k=draw(d_model, d_head), w_v=draw(d_model, d_v),
        x_k=draw(*lead, L_k, d_model) if cross else None, x_v=draw(*lead, L_k, d_model) if cross else None,
        adapters=ads, alpha=alpha, beta=beta, scaling=scaling,
    )


def default_problem() -> LoraAttention:
    """The built-in problem of ``verified-lora verify``.

    Cross-attention with all three adapters, rectangular weights (d_model=6, d_head=4, d_v=3),
    r=2, alpha=3 (so alpha != r), beta=0.5, L=10 queries and L_k=7 keys; seed 2025.
    """
    return random_problem(2025, L=10, L_k=7, d_model=6, d_head=4, d_v=3, r=2, alpha=3.0, beta=0.5,
                          scale=0.6)


def rescaled_to(problem: LoraAttention, R: float) -> LoraAttention:
    """``problem`` with ``x_q`` scaled so the certified score bound is ``R`` (scores are linear in ``x_q``)."""
    from .bounds import score_bound

    r0 = score_bound(problem).R
    if not r0 > 0 or r0 <= R:
        return problem
    return problem.replace(x_q=problem.x_q * (R / r0), x_k=problem.x_k, x_v=problem.x_v)
