"""Hypothesis strategies for LoRA-attention problems (small shapes, bounded entries).

Sizes, flags and magnitudes are drawn by hypothesis; entries come from a NumPy generator
seeded by a drawn integer, which keeps examples fast and reproducible. Fixtures never use the
degenerate choices that hid real bugs (docs/design.md section 7): B is never zero, alpha != r.
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from verified_lora import ADAPTER_KEYS, Adapter, LoraAttention

adapter_sets = st.sampled_from([("Q",), ("K",), ("V",), ("Q", "V"), ("Q", "K"), ("K", "V"), ("Q", "K", "V")])


@st.composite
def problems(draw, *, max_L: int = 12, max_d: int = 6, max_r: int = 3, adapters=adapter_sets,
             cross=st.booleans(), scaling=st.sampled_from(["lora", "rslora"]),
             beta=st.sampled_from([1.0, 0.5, -0.75, 1.25]), scale=st.floats(0.1, 1.0),
             batch=st.sampled_from([None, None, None, 2]), dtype: str = "float64") -> LoraAttention:
    """A random valid :class:`LoraAttention` with ``L, L_k <= max_L``, dims ``<= max_d``, ``r <= max_r``."""
    L = draw(st.integers(1, max_L))
    is_cross = draw(cross)
    L_k = draw(st.integers(1, max_L)) if is_cross else L
    d_model, d_head, d_v = (draw(st.integers(1, max_d)) for _ in range(3))
    r = draw(st.integers(1, max_r))
    keys = draw(adapters)
    alpha = draw(st.sampled_from([0.5, 1.5, 3.0, 4.0, 7.0]))
    if alpha == r:
        alpha += 0.5
    seed = draw(st.integers(0, 2**32 - 1))
    entry = draw(scale)
    n = draw(batch)
    rng = np.random.default_rng(seed)
    lead = () if n is None else (n,)

    def arr(*shape: int) -> np.ndarray:
        return (entry * rng.standard_normal(shape)).astype(dtype)

    def nonzero(*shape: int) -> np.ndarray:
        a = arr(*shape)
        a[np.abs(a) < 1e-3] = entry  # B = 0 hides A-gradient bugs: keep every entry away from 0
        return a

    d_out = {"Q": d_head, "K": d_head, "V": d_v}
    ads = {k: Adapter(a=arr(r, d_out[k]), b=nonzero(d_model, r)) for k in ADAPTER_KEYS if k in keys}
    return LoraAttention(
        x_q=arr(*lead, L, d_model), y=arr(*lead, L, d_v),
        w_q=arr(d_model, d_head), w_k=arr(d_model, d_head), w_v=arr(d_model, d_v),
        x_k=arr(*lead, L_k, d_model) if is_cross else None,
        x_v=arr(*lead, L_k, d_model) if is_cross else None,
        adapters=ads, alpha=alpha, beta=draw(beta), scaling=draw(scaling),
    )
