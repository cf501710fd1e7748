"""Hand check, in float64, of torchtune's ``DoRALinear`` with a base bias (evidence for
benchmarks/results/third_party_findings.md).

DoRA (Liu et al. 2024, eq. 5) re-normalises the weight: ``W' = m (W + s B A) / ||W + s B A||_c`` with
the norm taken per output row, ``s = alpha / r``. The paper's layer has no bias; a bias added after the
linear map stays ``+ b``, which is what PEFT's DoRA computes and what a merged checkpoint
(``W'`` and the untouched ``b``) computes. Everything below is NumPy float64 from the weights the layer
holds; torchtune's own merge, ``get_merged_lora_ckpt``, is run on its state dict.

    python3 benchmarks/torchtune_dora_bias_check.py
"""

from __future__ import annotations

import sys
import warnings

import numpy as np


def main() -> int:
    import torch
    import torchtune
    from torchtune.modules.peft import DoRALinear, get_merged_lora_ckpt

    warnings.simplefilter("ignore")
    torch.manual_seed(0)
    d_in, d_out, r, alpha = 5, 4, 2, 3.0
    layer = DoRALinear(d_in, d_out, rank=r, alpha=alpha, use_bias=True).double()
    with torch.no_grad():
        layer.bias.copy_(torch.randn(d_out, dtype=torch.float64))
        layer.lora_b.weight.copy_(torch.randn(d_out, r, dtype=torch.float64))  # B != 0, as after training
    layer.initialize_dora_magnitude()
    with torch.no_grad():
        layer.magnitude.mul_(torch.linspace(0.7, 1.3, d_out, dtype=torch.float64))  # m moved by training
    x = torch.randn(3, d_in, dtype=torch.float64)

    W = layer.weight.detach().numpy().copy()
    b = layer.bias.detach().numpy().copy()
    A = layer.lora_a.weight.detach().numpy().copy()
    B = layer.lora_b.weight.detach().numpy().copy()
    m = layer.magnitude.detach().numpy().copy()
    X = x.numpy()
    s = alpha / r
    V = W + s * B @ A
    n = np.linalg.norm(V, axis=1)
    W_dora = (m / n)[:, None] * V
    paper = X @ W_dora.T + b                      # DoRA weight, bias added after: PEFT's convention
    scaled_bias = X @ W_dora.T + (m / n) * b      # the same with the bias multiplied by m / n

    with torch.no_grad():
        y_tt = layer(x).numpy()
    sd = {f"proj.{k}": v.clone() for k, v in layer.state_dict().items()}  # as inside a model
    merged = get_merged_lora_ckpt(sd, rank=r, alpha=alpha)
    y_merged = X @ merged["proj.weight"].numpy().T + merged["proj.bias"].numpy()

    rows = [
        ("torchtune forward vs W_dora x + b (paper / PEFT)", np.abs(y_tt - paper).max()),
        ("torchtune forward vs W_dora x + (m/n) b", np.abs(y_tt - scaled_bias).max()),
        ("torchtune merged checkpoint vs W_dora x + b", np.abs(y_merged - paper).max()),
        ("torchtune forward vs its own merged checkpoint", np.abs(y_tt - y_merged).max()),
        ("size of the difference (m/n - 1) b", np.abs((m / n - 1) * b).max()),
    ]
    print(f"torchtune {torchtune.__version__}, torch {torch.__version__}; float64; d_in={d_in}, d_out={d_out}, "
          f"r={r}, alpha={alpha}; m/n = {np.round(m / n, 4).tolist()}")
    for name, value in rows:
        print(f"  {name:50s} max |diff| = {value:.3e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
