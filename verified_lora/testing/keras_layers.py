"""Keras 3 LoRA layers for the audit (Keras is imported when a factory runs, with the torch backend).

* :func:`keras_dense`: ``keras.layers.Dense`` with Keras' own ``enable_lora(rank, lora_alpha=...)``, as
  written: ``verified-lora audit verified_lora.testing.keras_layers:keras_dense``.
* :func:`keras_einsum_dense`: ``keras.layers.EinsumDense("ab,bc->ac")`` with ``enable_lora``, as written;
* :func:`keras_einsum_heads`: ``EinsumDense("abc,cde->abde")`` (a per-head projection) with ``enable_lora``,
  which the audit refuses: Keras factors that update over the kernel's last axis, not between input and output;
* :func:`keras_dense_sqrt_scale`: a deliberately broken Keras-style layer, a ``Dense`` subclass whose
  ``kernel`` applies ``lora_alpha / sqrt(lora_rank)`` while it declares Keras' ``lora_alpha / lora_rank``;
  it must fail ``scaling`` and nothing else (:data:`EXPECTED_FAILURE`).

Keras reads ``KERAS_BACKEND`` when it is first imported; the factories set it to ``torch`` when it is
unset and refuse another backend (its layers would not be torch modules).
"""

from __future__ import annotations

import os
from typing import Any

__all__ = ["keras_dense", "keras_einsum_dense", "keras_einsum_heads", "keras_dense_sqrt_scale", "EXPECTED_FAILURE"]

EXPECTED_FAILURE = {"keras_dense_sqrt_scale": "scaling"}


def _keras() -> Any:
    os.environ.setdefault("KERAS_BACKEND", "torch")
    import keras

    if keras.backend.backend() != "torch":
        from ..errors import AuditError

        raise AuditError(f"Keras runs on its {keras.backend.backend()!r} backend; these factories need "
                         "KERAS_BACKEND=torch, set before Keras is first imported")
    return keras


def keras_dense(d_in: int, d_out: int, r: int, alpha: float, bias: bool) -> Any:
    """``keras.layers.Dense(d_out)`` built for ``d_in`` inputs, then ``enable_lora(r, lora_alpha=alpha)``."""
    keras = _keras()
    layer = keras.layers.Dense(d_out, use_bias=bias)
    layer.build((None, d_in))
    layer.enable_lora(r, lora_alpha=alpha)
    return layer


def keras_einsum_dense(d_in: int, d_out: int, r: int, alpha: float, bias: bool) -> Any:
    """``keras.layers.EinsumDense("ab,bc->ac", output_shape=d_out)`` (bias on axis ``c``), then ``enable_lora``."""
    keras = _keras()
    layer = keras.layers.EinsumDense("ab,bc->ac", output_shape=d_out, bias_axes="c" if bias else None)
    layer.build((None, d_in))
    layer.enable_lora(r, lora_alpha=alpha)
    return layer


def keras_einsum_heads(d_in: int, r: int, alpha: float) -> Any:
    """``EinsumDense("abc,cde->abde", output_shape=(None, 2, 3))`` (2 heads of width 3) with ``enable_lora``."""
    keras = _keras()
    layer = keras.layers.EinsumDense("abc,cde->abde", output_shape=(None, 2, 3), bias_axes="e")
    layer.build((None, 4, d_in))
    layer.enable_lora(r, lora_alpha=alpha)
    return layer


def _sqrt_scale_class() -> type:
    keras = _keras()
    from keras import ops

    class SqrtScaleDense(keras.layers.Dense):
        """Broken on purpose: the LoRA update is scaled by lora_alpha / sqrt(lora_rank)."""

        @property
        def kernel(self):
            k = self._kernel
            if self.lora_enabled:
                s = self.lora_alpha / self.lora_rank ** 0.5
                k = ops.cast(ops.add(k, s * ops.matmul(self.lora_kernel_a, self.lora_kernel_b)), self.compute_dtype)
            return k

    return SqrtScaleDense


def keras_dense_sqrt_scale(d_in: int, d_out: int, r: int, alpha: float, bias: bool) -> Any:
    """A Keras ``Dense`` subclass applying ``lora_alpha / sqrt(lora_rank)`` (declares ``lora_alpha / lora_rank``)."""
    layer = _sqrt_scale_class()(d_out, use_bias=bias)
    layer.build((None, d_in))
    layer.enable_lora(r, lora_alpha=alpha)
    return layer
