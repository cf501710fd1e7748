"""Convolutions as linear layers on patches (imports torch): the geometry the conv LoRA views use.

A ``Conv1d``/``Conv2d`` with ``groups = 1`` computes, at every output position, ``y = W_flat p + b``
where ``p`` is the input patch (channels major, then kernel positions: the order of
``weight.view(C_out, -1)``) and ``W_flat`` is the (C_out x C_in k) weight. PEFT's conv LoRA puts a
conv with the base's kernel, stride, padding and dilation and ``r`` output channels (``A``) before a
1x1 conv (``B``), so the layer is the canonical linear LoRA on patches: ``X`` = every patch of every
image (``torch.nn.functional.unfold``, an exact copy of input values), ``W = W_flat``,
``A = A_flat`` (r x C_in k), ``B`` (C_out x r). The input gradient is the *fold* (overlap-add) of the
patch gradients; :func:`fold` sums them, and the checks widen the bound by those additions.
``padding='valid'`` and a symmetric ``padding='same'`` are the same numeric zero padding; grouped
convolutions, other padding modes and asymmetric ``'same'`` padding are refused, each in one line.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import AuditError

__all__ = ["ConvGeom", "conv_geom", "numeric_padding"]


@dataclass(frozen=True)
class ConvGeom:
    """Kernel, stride, padding, dilation (one entry per spatial dim) and channel counts of a base conv."""

    c_in: int
    c_out: int
    kernel: tuple[int, ...]
    stride: tuple[int, ...]
    padding: tuple[int, ...]
    dilation: tuple[int, ...]

    @property
    def dims(self) -> int:
        return len(self.kernel)

    @property
    def patch(self) -> int:
        return self.c_in * int(np.prod(self.kernel))

    def _2d(self, t: tuple[int, ...], fill: int) -> tuple[int, int]:
        return (fill, t[0]) if self.dims == 1 else (t[0], t[1])

    def input_shape(self, n: int, extra: int) -> tuple[int, ...]:
        """An input with ``extra + 1`` output positions per spatial dim."""
        sp = [max(1, d * (k - 1) + 1 + s * extra - 2 * p) for k, s, p, d in
              zip(self.kernel, self.stride, self.padding, self.dilation)]
        return (n, self.c_in, *sp)

    def unfold(self, x: np.ndarray) -> np.ndarray:
        """Every patch of ``x`` (N, C_in, *spatial) as rows (N L, C_in k), in ``weight.view`` order."""
        t = torch.as_tensor(np.asarray(x, dtype=np.float64))
        if self.dims == 1:
            t = t.unsqueeze(2)
        cols = F.unfold(t, self._2d(self.kernel, 1), dilation=self._2d(self.dilation, 1),
                        padding=self._2d(self.padding, 0), stride=self._2d(self.stride, 1))
        return cols.transpose(1, 2).reshape(-1, self.patch).numpy()

    def fold(self, rows: np.ndarray, x_shape: tuple[int, ...]) -> np.ndarray:
        """Overlap-add patch rows (N L, C_in k) back to an input-shaped array (float64 additions)."""
        n = x_shape[0]
        sp = (1, *x_shape[2:]) if self.dims == 1 else tuple(x_shape[2:])
        t = torch.as_tensor(np.asarray(rows, dtype=np.float64)).reshape(n, -1, self.patch).transpose(1, 2)
        out = F.fold(t, sp, self._2d(self.kernel, 1), dilation=self._2d(self.dilation, 1),
                     padding=self._2d(self.padding, 0), stride=self._2d(self.stride, 1))
        return out.reshape(x_shape).numpy()

    def overlap(self) -> int:
        """The most patches one input entry belongs to (additions in a fold)."""
        return int(np.prod([-(-d * (k - 1) // s) + 1 if k > 1 else 1
                            for k, s, d in zip(self.kernel, self.stride, self.dilation)]))


def conv_geom(base: nn.Module) -> ConvGeom:
    """The geometry of a ``Conv1d``/``Conv2d`` base layer (``AuditError`` for what is not supported)."""
    if not isinstance(base, (nn.Conv1d, nn.Conv2d)):
        raise AuditError(f"found a {type(base).__name__} base; missing: support for it (Conv1d and Conv2d are)")
    name = type(base).__name__
    if base.groups != 1:
        raise AuditError(f"{name}: found groups={base.groups} (a grouped convolution: the weight acts on "
                         f"{base.groups} separate channel groups); missing: a reference for grouped convolutions "
                         "(supported: groups=1)")
    if base.padding_mode != "zeros":
        raise AuditError(f"{name}: found padding_mode={base.padding_mode!r} (the padded border repeats input entries, "
                         "so the input gradient is not the zero-padded fold); missing: support for it "
                         "(supported: padding_mode='zeros')")
    return ConvGeom(base.in_channels, base.out_channels, tuple(base.kernel_size), tuple(base.stride),
                    numeric_padding(base), tuple(base.dilation))


def numeric_padding(base: nn.Module) -> tuple[int, ...]:
    """The per-dimension zero padding of ``base``; ``padding='valid'`` is 0, ``padding='same'`` (stride 1) is
    ``d (k - 1) / 2`` on each side when that total is even (``AuditError`` when torch pads asymmetrically)."""
    pad, k, d = base.padding, tuple(base.kernel_size), tuple(base.dilation)
    if not isinstance(pad, str):
        return tuple(pad)
    if pad == "valid":
        return (0,) * len(k)
    total = [dd * (kk - 1) for kk, dd in zip(k, d)]
    if pad != "same" or any(t % 2 for t in total):
        raise AuditError(f"{type(base).__name__}: found padding={pad!r} with kernel {k}, dilation {d}: torch pads "
                         f"{total} in total per dimension, unevenly on the two sides; missing: support for asymmetric "
                         "padding (supported: numeric padding, 'valid', and 'same' with an odd effective kernel)")
    return tuple(t // 2 for t in total)
