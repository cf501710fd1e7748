"""Factories of real third-party LoRA layers, as written, for the audit matrix and the CLI (imports torch lazily).

Each factory builds one layer of an installed library with the library's own API and returns it
unchanged (no alias, no wrapper class): ``verified-lora audit verified_lora.testing.library_layers:NAME``.
The audit passes the drawn ``d_in, d_out, r, alpha, bias`` (those each factory accepts).
PEFT layers are created with ``init_lora_weights=False`` so that ``B != 0`` from the start.

* PEFT: :func:`peft_linear` (rsLoRA on alternate draws), :func:`peft_lora_bias`,
  :func:`peft_conv1d_hf` (transformers ``Conv1D``, ``fan_in_fan_out``), :func:`peft_embedding`,
  :func:`peft_dora` (PEFT's Conv1d/Conv2d are ``verified_lora.testing.broken_variants:peft_conv1d``/``peft_conv2d``);
* loralib: :func:`loralib_linear`, :func:`loralib_merged`, :func:`loralib_embedding`, :func:`loralib_conv2d`,
  :func:`loralib_conv1d`;
* torchtune: :func:`torchtune_lora`, :func:`torchtune_dora`;
* diffusers: :func:`diffusers_linear` (``LoRACompatibleLinear`` with a ``LoRALinearLayer``).
"""

from __future__ import annotations

import warnings
from typing import Any

__all__ = ["peft_linear", "peft_lora_bias", "peft_conv1d_hf", "peft_embedding", "peft_dora", "loralib_linear",
           "loralib_merged", "loralib_embedding", "loralib_conv2d", "loralib_conv1d", "torchtune_lora", "torchtune_dora",
           "diffusers_linear"]


def _inject(base: Any, **cfg: Any) -> Any:
    from peft import LoraConfig, inject_adapter_in_model

    from ..audit.torch_models import Holder

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PEFT's fan_in_fan_out notice for Conv1D
        return inject_adapter_in_model(LoraConfig(target_modules=["proj"], init_lora_weights=False, **cfg),
                                       Holder(base)).proj


def peft_linear(d_in: int, d_out: int, r: int, alpha: float, bias: bool, use_rslora: bool = False) -> Any:
    """PEFT ``lora.Linear`` on ``nn.Linear``; rsLoRA (``s = alpha / sqrt(r)``) when the audit draws it."""
    from torch import nn

    return _inject(nn.Linear(d_in, d_out, bias=bias), r=r, lora_alpha=alpha, use_rslora=use_rslora)


def peft_lora_bias(d_in: int, d_out: int, r: int, alpha: float) -> Any:
    """PEFT ``lora.Linear`` with ``lora_bias=True`` (a bias on ``lora_B``, scaled by s in forward and merge)."""
    from torch import nn

    return _inject(nn.Linear(d_in, d_out, bias=True), r=r, lora_alpha=alpha, lora_bias=True)


def peft_conv1d_hf(d_in: int, d_out: int, r: int, alpha: float) -> Any:
    """PEFT on transformers' ``Conv1D`` (weight stored in x out, ``fan_in_fan_out=True``)."""
    from transformers.pytorch_utils import Conv1D

    return _inject(Conv1D(d_out, d_in), r=r, lora_alpha=alpha, fan_in_fan_out=True)


def peft_embedding(d_in: int, d_out: int, r: int, alpha: float) -> Any:
    """PEFT ``lora.Embedding`` on ``nn.Embedding(d_in, d_out)`` (d_in is the vocabulary)."""
    from torch import nn

    return _inject(nn.Embedding(d_in, d_out), r=r, lora_alpha=alpha)


def peft_dora(d_in: int, d_out: int, r: int, alpha: float, bias: bool) -> Any:
    """PEFT DoRA (``use_dora=True``) on ``nn.Linear``."""
    from torch import nn

    return _inject(nn.Linear(d_in, d_out, bias=bias), r=r, lora_alpha=alpha, use_dora=True)


def loralib_linear(d_in: int, d_out: int, r: int, alpha: float, bias: bool) -> Any:
    """loralib ``Linear`` (merges on ``eval()``)."""
    import loralib

    return loralib.Linear(d_in, d_out, r=r, lora_alpha=alpha, bias=bias, merge_weights=True)


def loralib_merged(d_in: int, d_out: int, r: int, alpha: float, bias: bool, enable_lora: Any) -> Any:
    """loralib ``MergedLinear`` (fused q/k/v, ``enable_lora`` mask drawn by the audit)."""
    import loralib

    return loralib.MergedLinear(d_in, d_out, r=r, lora_alpha=alpha, bias=bias, enable_lora=list(enable_lora),
                                merge_weights=True)


def loralib_embedding(d_in: int, d_out: int, r: int, alpha: float) -> Any:
    """loralib ``Embedding(d_in, d_out)``."""
    import loralib

    return loralib.Embedding(d_in, d_out, r=r, lora_alpha=alpha)


def loralib_conv2d(d_out: int, r: int, alpha: float) -> Any:
    """loralib ``Conv2d`` (its ``ConvLoRA``), 2 input channels, 3 x 3 kernel, padding 1."""
    import loralib

    return loralib.Conv2d(2, d_out, kernel_size=3, r=r, lora_alpha=alpha, padding=1)


def loralib_conv1d(d_out: int, r: int, alpha: float) -> Any:
    """loralib ``Conv1d`` (its ``ConvLoRA`` on a 1-D convolution), 2 input channels, kernel 3, padding 1."""
    import loralib

    return loralib.Conv1d(2, d_out, kernel_size=3, r=r, lora_alpha=alpha, padding=1)


def torchtune_lora(d_in: int, d_out: int, r: int, alpha: float, bias: bool) -> Any:
    """torchtune ``LoRALinear``."""
    from torchtune.modules.peft import LoRALinear

    return LoRALinear(d_in, d_out, rank=r, alpha=alpha, use_bias=bias)


def torchtune_dora(d_in: int, d_out: int, r: int, alpha: float, bias: bool) -> Any:
    """torchtune ``DoRALinear`` with its magnitude initialised (``initialize_dora_magnitude``)."""
    from torchtune.modules.peft import DoRALinear

    layer = DoRALinear(d_in, d_out, rank=r, alpha=alpha, use_bias=bias)
    layer.initialize_dora_magnitude()
    return layer


def diffusers_linear(d_in: int, d_out: int, r: int, alpha: float, bias: bool) -> Any:
    """diffusers ``LoRACompatibleLinear`` with a ``LoRALinearLayer`` (``network_alpha`` = alpha)."""
    from diffusers.models.lora import LoRACompatibleLinear, LoRALinearLayer

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the deprecation notice of the non-PEFT LoRA classes
        layer = LoRACompatibleLinear(d_in, d_out, bias=bias)
        layer.set_lora_layer(LoRALinearLayer(d_in, d_out, rank=r, network_alpha=alpha))
    return layer
