"""Hand check, in float64 from the published formula, of Keras 3's ``Dense.enable_lora`` on its torch backend
(evidence for the Keras section of benchmarks/results/third_party_findings.md).

LoRA (Hu et al. 2021, eq. 3) in Keras' orientation: ``Y = X (K + s A B) + b`` with ``K`` = kernel (d_in x d_out),
``A`` = lora_kernel_a (d_in x r), ``B`` = lora_kernel_b (r x d_out), ``s = lora_alpha / lora_rank``. Everything
below is computed with NumPy in float64 from the values the layer holds, not by the audit.

    KERAS_BACKEND=torch python3 benchmarks/keras_lora_check.py
"""

from __future__ import annotations

import os
import sys

import numpy as np

os.environ.setdefault("KERAS_BACKEND", "torch")


def _layer(keras, dtype: str, d_in: int, d_out: int, r: int, alpha: float, rng):
    import torch

    layer = keras.layers.Dense(d_out, dtype=dtype)
    layer.build((None, d_in))
    layer.enable_lora(r, lora_alpha=alpha)
    with torch.no_grad():
        for v in (layer._kernel, layer.bias, layer.lora_kernel_a, layer.lora_kernel_b):
            t = v.value
            t.copy_(torch.as_tensor(rng.uniform(-1, 1, tuple(t.shape))).to(t.dtype))
    return layer


def _np(t) -> np.ndarray:
    return t.detach().double().numpy()


def main() -> int:
    import keras
    import torch

    rng = np.random.default_rng(0)
    d_in, d_out, r, alpha = 5, 4, 3, 5.0
    s = alpha / r
    print(f"keras {keras.__version__} (backend {keras.backend.backend()}), torch {torch.__version__}; "
          f"d_in={d_in}, d_out={d_out}, r={r}, lora_alpha={alpha} (s = {s!r})")

    # float64 policy: the factors are float32, the product s A B is formed in float32
    lay = _layer(keras, "float64", d_in, d_out, r, alpha, rng)
    K, b, A, B = (_np(v.value) for v in (lay._kernel, lay.bias, lay.lora_kernel_a, lay.lora_kernel_b))
    print(f"float64 policy: kernel {lay._kernel.value.dtype}, lora_kernel_a {lay.lora_kernel_a.value.dtype}, "
          f"lora_kernel_b {lay.lora_kernel_b.value.dtype}")
    X = rng.uniform(-1, 1, (6, d_in))
    y = _np(lay(torch.as_tensor(X)))
    ref = X @ (K + s * A @ B) + b
    print(f"  float64 output vs X (K + s A B) + b in float64      max |diff| = {np.abs(y - ref).max():.3e}")
    eff = _np(lay.kernel) - K
    s_ls = float(np.sum(eff * (A @ B)) / np.sum((A @ B) ** 2))
    print(f"  least-squares scale of kernel - K on A B             s = {s_ls!r} (alpha/r = {s!r})")

    # Keras' merge: save_own_variables stores kernel + s A B; load_own_variables zeroes the factors
    store: dict = {}
    lay.save_own_variables(store)
    lay.load_own_variables(store)
    y_m = _np(lay(torch.as_tensor(X)))
    print(f"  after save/load: factors zero? {not np.any(_np(lay.lora_kernel_a.value))}, "
          f"output vs before max |diff| = {np.abs(y_m - y).max():.3e}")

    # bfloat16 policy: bfloat16 kernel and compute, float32 factors; gradients of the factors vs float64
    lay = _layer(keras, "bfloat16", d_in, d_out, r, alpha, rng)
    K, b, A, B = (_np(v.value) for v in (lay._kernel, lay.bias, lay.lora_kernel_a, lay.lora_kernel_b))
    Xb = torch.as_tensor(rng.uniform(-1, 1, (6, d_in))).to(torch.bfloat16)
    G = torch.as_tensor(rng.uniform(-1, 1, (6, d_out))).to(torch.bfloat16)
    (lay(Xb).float() * G.float()).sum().backward()
    X, Gn = _np(Xb), _np(G)
    dA = s * X.T @ Gn @ B.T  # d/dA of sum(G * (X (K + s A B) + b))
    dB = s * A.T @ X.T @ Gn
    u32, u16 = 2.0**-24, 2.0**-8
    for name, got, want in (("dA", lay.lora_kernel_a.value.grad, dA), ("dB", lay.lora_kernel_b.value.grad, dB)):
        err = float(np.abs(_np(got) - want).max() / np.abs(want).max())
        print(f"  bfloat16 policy: {name} ({got.dtype}) relative error vs float64 = {err:.3e} "
              f"= {err / u32:.3g} u_float32 = {err / u16:.3g} u_bfloat16")
    return 0


if __name__ == "__main__":
    sys.exit(main())
