"""Hand check, in float64 from the published formula, of diffusers' deprecated ``LoRACompatibleLinear``
``_fuse_lora()`` / ``_unfuse_lora()`` round trip (evidence for benchmarks/results/diffusers_unfuse.md).

LoRA (Hu et al. 2021, eq. 3; diffusers' own ``LoRALinearLayer.forward``): with ``s = network_alpha / rank``,
``Y = X W^T + b + s X A^T B^T`` (``A = down.weight``, ``B = up.weight``). Fusing must give
``W' = W + s B A`` with the same output; unfusing must give back ``W`` and the same (unfused) output.
Everything below is computed with NumPy in float64 from the weights the layer holds, not by the audit.

    python3 benchmarks/diffusers_unfuse_check.py
"""

from __future__ import annotations

import sys
import warnings

import numpy as np


def main() -> int:
    import diffusers
    import torch
    from diffusers.models.lora import LoRACompatibleLinear, LoRALinearLayer

    warnings.simplefilter("ignore")
    torch.manual_seed(0)
    d_in, d_out, r, alpha = 5, 4, 2, 3.0
    layer = LoRACompatibleLinear(d_in, d_out, bias=True).double()
    lora = LoRALinearLayer(d_in, d_out, rank=r, network_alpha=alpha).double()
    with torch.no_grad():
        lora.up.weight.copy_(torch.randn(d_out, r, dtype=torch.float64))  # B != 0, as after training
    layer.set_lora_layer(lora)
    x = torch.randn(3, d_in, dtype=torch.float64)

    W = layer.weight.detach().numpy().copy()
    b = layer.bias.detach().numpy().copy()
    A = lora.down.weight.detach().numpy().copy()
    B = lora.up.weight.detach().numpy().copy()
    X = x.numpy()
    s = alpha / r
    ref = X @ W.T + b + s * X @ A.T @ B.T          # the LoRA output, published formula
    base = X @ W.T + b                             # the base layer alone

    with torch.no_grad():
        y0 = layer(x).numpy()
        layer._fuse_lora()
        y_fused = layer(x).numpy()
        W_fused = layer.weight.detach().numpy().copy()
        layer._unfuse_lora()
        y_unfused = layer(x).numpy()
        W_unfused = layer.weight.detach().numpy().copy()

    rows = [
        ("unfused output before fusing vs formula", np.abs(y0 - ref).max()),
        ("fused weight vs W + s B A", np.abs(W_fused - (W + s * B @ A)).max()),
        ("fused output vs formula", np.abs(y_fused - ref).max()),
        ("weight after _unfuse_lora vs W", np.abs(W_unfused - W).max()),
        ("output after _unfuse_lora vs formula (LoRA on)", np.abs(y_unfused - ref).max()),
        ("output after _unfuse_lora vs base layer alone", np.abs(y_unfused - base).max()),
        ("size of the LoRA term s X A^T B^T", np.abs(s * X @ A.T @ B.T).max()),
    ]
    print(f"diffusers {diffusers.__version__}, torch {torch.__version__}; float64; d_in={d_in}, d_out={d_out}, "
          f"r={r}, network_alpha={alpha} (s = {s})")
    print(f"lora_layer after _unfuse_lora: {layer.lora_layer!r}")
    for name, value in rows:
        print(f"  {name:50s} max |diff| = {value:.3e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
