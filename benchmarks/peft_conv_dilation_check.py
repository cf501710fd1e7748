"""Hand check of PEFT's LoRA on a dilated convolution (evidence for benchmarks/results/third_party_findings.md).

The LoRA branch of a conv layer must see the same patches as the base conv (Hu et al. 2021 apply
``W + s B A`` to the base operator; PEFT's ``get_delta_weight`` merges ``B A`` into the base kernel, which
is only the same layer when ``A`` is applied with the base's stride, padding and dilation). This script
prints the geometry of the base conv and of PEFT's ``lora_A`` and the output lengths of both branches.

    python3 benchmarks/peft_conv_dilation_check.py
"""

from __future__ import annotations

import sys
import warnings


def main() -> int:
    import peft
    import torch
    from torch import nn

    from verified_lora.testing.broken_variants import peft_conv1d_dilated

    warnings.simplefilter("ignore")
    layer = peft_conv1d_dilated(4, 2, 3.0, True).double()
    base, lora_a = layer.base_layer, layer.lora_A["default"]
    x = torch.randn(1, 3, 6, dtype=torch.float64)
    print(f"peft {peft.__version__}, torch {torch.__version__}")
    for name, m in (("base conv", base), ("lora_A", lora_a)):
        print(f"  {name:10s} kernel {m.kernel_size}, stride {m.stride}, padding {m.padding}, dilation {m.dilation}"
              f" -> output length {m(x).shape[-1]} for input length {x.shape[-1]}")
    merged = nn.functional.conv1d(x, base.weight + layer.get_delta_weight("default"), base.bias,
                                  dilation=base.dilation)
    print(f"  merged kernel (base + get_delta_weight) applied with the base's dilation -> length {merged.shape[-1]}")
    try:
        layer(x)
        print("  forward: ran")
    except RuntimeError as exc:
        print(f"  forward: RuntimeError: {str(exc).splitlines()[0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
