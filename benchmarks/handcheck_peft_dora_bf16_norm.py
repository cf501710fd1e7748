"""Hand check (float64, from the DoRA formula): PEFT's DoRA rounds the weight norm to the base dtype.

DoRA (Liu et al. 2024, eq. (5), norm detached as in section 4.3): Y = (m / n) X V^T + b with
V = W + s B A and n_j = ||V[j, :]||, so dL/dm_j = sum_t G[t, j] (X V^T)[t, j] / n_j. With a bfloat16
base layer and float32 adapters (PEFT's default autocast_adapter_dtype), this script computes
dL/dm from the formula in float64 on the stored values (exact n), and again with n rounded to
bfloat16, and compares both with PEFT's gradient. Run: PYTHONPATH=. python benchmarks/handcheck_peft_dora_bf16_norm.py
"""

import numpy as np
import torch
from peft import LoraConfig, inject_adapter_in_model
from torch import nn

from verified_lora.audit.torch_models import Holder

torch.manual_seed(0)
rng = np.random.default_rng(0)
d_in, d_out, r, alpha = 7, 5, 3, 5.0
cfg = LoraConfig(r=r, lora_alpha=alpha, target_modules=["proj"], use_dora=True, init_lora_weights=False)
layer = inject_adapter_in_model(cfg, Holder(nn.Linear(d_in, d_out, bias=False))).proj
layer.to(torch.bfloat16)
for p in (layer.lora_A["default"].weight, layer.lora_B["default"].weight, layer.lora_magnitude_vector["default"].weight):
    p.data = p.data.to(torch.float32)
with torch.no_grad():
    layer.base_layer.weight.copy_(torch.tensor(rng.uniform(-1, 1, (d_out, d_in))))
    layer.lora_A["default"].weight.copy_(torch.tensor(rng.uniform(-0.6, 0.6, (r, d_in))))
    layer.lora_B["default"].weight.copy_(torch.tensor(rng.uniform(-0.6, 0.6, (d_out, r))))
    layer.lora_magnitude_vector["default"].weight.copy_(torch.tensor(rng.uniform(0.5, 2.0, d_out)))
x = torch.tensor(rng.uniform(-1, 1, (4, d_in))).to(torch.bfloat16)
g = torch.tensor(rng.uniform(-1, 1, (4, d_out))).to(torch.bfloat16)
y = layer(x)
(y * g.to(y.dtype)).sum().backward()
dm_peft = layer.lora_magnitude_vector["default"].weight.grad.double().numpy()

f64 = lambda t: t.detach().double().numpy()  # noqa: E731
W, A, B = f64(layer.base_layer.weight), f64(layer.lora_A["default"].weight), f64(layer.lora_B["default"].weight)
X, G, s = f64(x), f64(g), layer.scaling["default"]
V = W + s * B @ A
n = np.sqrt((V**2).sum(axis=1))
n_bf16 = torch.tensor(n).to(torch.bfloat16).double().numpy()
dm_exact = (G * (X @ V.T)).sum(axis=0) / n
dm_bf16n = (G * (X @ V.T)).sum(axis=0) / n_bf16
u32, u16 = 2.0**-24, 2.0**-8
print("PEFT dm          :", np.array2string(dm_peft, precision=9))
print("exact-n dm (f64) :", np.array2string(dm_exact, precision=9))
print("bf16-n dm (f64)  :", np.array2string(dm_bf16n, precision=9))
rel_exact = np.max(np.abs(dm_peft - dm_exact) / np.abs(dm_exact))
rel_bf16 = np.max(np.abs(dm_peft - dm_bf16n) / np.abs(dm_bf16n))
print(f"max rel. error vs exact-n formula: {rel_exact:.3e} = {rel_exact / u32:.3g} u_float32 = {rel_exact / u16:.3g} u_bfloat16")
print(f"max rel. error vs bf16-rounded n : {rel_bf16:.3e} = {rel_bf16 / u32:.3g} u_float32")
