"""loralib's ``ConvLoRA`` (``Conv2d``) as a sum of LoRA blocks on patch chunks (imports torch).

loralib convolves with ``W + s reshape(B A)`` where ``A`` is (r k x C_in k), ``B`` is (C_out k x r k) and
the reshape views the (C_out k x C_in k) product as the (C_out x C_in x k x k) kernel (square kernel
``k``, groups 1). Flattening the kernel per output row (``weight.view(C_out, -1)``), row ``o`` of the
update is ``[B_0 A | B_1 A | ... | B_{k-1} A][o]`` with ``B_j = B[j::k]``: ``k`` LoRA blocks of rank
``r k``, block ``j`` reading the ``j``-th chunk (``C_in k`` columns) of every patch and writing every
output, all sharing ``A``. The canonical arrays hold block ``j``'s ``A`` zero-padded outside its
chunk; the gradient of the shared ``A`` is the sum of the blocks' chunks (:meth:`reduce`), whose
bound widens the per-block chains to the shared one (``N + C_out k`` products) and adds the
float64 roundings of that sum.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..errors import AuditError
from .conv import conv_geom
from .conventions import dropout_is_declared
from .error_bounds import EXTRA_ROUNDINGS, LayerArrays, gamma, unit_roundoff_of
from .views import Block, LayerView, _assign, _np

__all__ = ["LoralibConvView"]


class LoralibConvView(LayerView):
    convention = "loralib-conv"
    input_kind = "conv"
    shared_a = True

    def __init__(self, module: nn.Module):
        super().__init__(module)
        conv = module.conv
        if not isinstance(conv, nn.Conv2d):
            raise AuditError(f"loralib {type(module).__name__}: found ConvLoRA on {type(conv).__name__}; missing: "
                             "support (only Conv2d: loralib 0.1.2 sizes its factors for square 2-D kernels)")
        self.conv = conv_geom(conv)
        k = self.conv.kernel
        if len(set(k)) != 1:
            raise AuditError(f"loralib ConvLoRA: found kernel {k}; missing: a square kernel")
        self.k = k[0]
        self.d_in, self.d_out = self.conv.patch, self.conv.c_out
        self.r = int(module.lora_A.shape[0])  # rank of each block: r k
        self.alpha = float(module.lora_alpha)
        self.declared_scale = float(module.scaling)
        self.claimed_scaling = "lora"
        self.lora_rank = int(module.r)
        self.declared = {"r": int(module.r), "lora_alpha": self.alpha, "scaling": self.declared_scale}
        self.merge_mode = "train_eval" if getattr(module, "merge_weights", False) else "none"
        self.dropout_declared = dropout_is_declared(getattr(module, "lora_dropout", None))

    def set_dropout(self, p: float) -> None:
        self.module.lora_dropout = nn.Dropout(p) if p > 0 else nn.Identity()

    def dropout_slot(self) -> tuple[object, str]:
        return self.module, "lora_dropout"

    def disable_auto_merge(self) -> None:
        self.module.merge_weights = False
        self.merge_mode = "none"

    @property
    def merge_skip_reason(self) -> str | None:
        return None if self.merge_mode != "none" else "merge_weights=False: this layer never merges"

    def _chunk(self, j: int) -> slice:
        w = self.conv.c_in * self.k
        return slice(j * w, (j + 1) * w)

    def blocks(self) -> list[Block]:
        return [Block(slice(0, self.r), slice(j, None, self.k), np.arange(self.d_out)) for j in range(self.k)]

    def _tensors(self):
        m = self.module
        return m.conv.weight.view(self.d_out, -1), m.conv.bias, m.lora_A, m.lora_B, None

    def layout(self) -> dict[str, object]:
        return {"weight": "declared", "A": "declared", "B": "declared"}

    def _orient(self) -> dict[str, bool]:
        return {"W": False, "A": False, "B": False}

    def claimed_rank(self) -> int:
        return self.lora_rank

    def read(self) -> LayerArrays:
        W, bias, A, B, _ = self._tensors()
        An, Bn = _np(A), _np(B)
        blocks = []
        for j in range(self.k):
            a = np.zeros((self.r, self.d_in))
            a[:, self._chunk(j)] = An
            blocks.append((np.arange(self.d_out), a, Bn[j::self.k], None))
        return LayerArrays(W=_np(W), bias=None if bias is None else _np(bias), blocks=blocks,
                           s=float(self.declared_scale))

    def draw_blocks(self, rng: np.random.Generator, entries) -> list:
        """Blocks that share one ``A`` (zero outside each block's chunk), as the layer stores them."""
        a0 = entries(rng, (self.r, self.conv.c_in * self.k), 0.6)
        out = []
        for j in range(self.k):
            a = np.zeros((self.r, self.d_in))
            a[:, self._chunk(j)] = a0
            out.append((a, entries(rng, (self.d_out, self.r), 0.6), None))
        return out

    def write(self, W, bias, blocks) -> None:
        Wt, bt, At, Bt, _ = self._tensors()
        _assign(Wt, W)
        if bt is not None and bias is not None:
            _assign(bt, bias)
        a0 = blocks[0][0][:, self._chunk(0)]
        for j, (a, _, _) in enumerate(blocks):
            if not np.array_equal(a[:, self._chunk(j)], a0) or np.count_nonzero(a) != np.count_nonzero(a0):
                raise AuditError("loralib ConvLoRA: every block must share A (zero outside its chunk)")
        Bn = np.zeros(tuple(Bt.shape))
        for j, (_, b, _) in enumerate(blocks):
            Bn[j::self.k] = b
        _assign(At, a0)
        _assign(Bt, Bn)

    def grads(self) -> list[dict]:
        A, B = self.module.lora_A, self.module.lora_B
        f = lambda t: None if t.grad is None else t.grad.detach().double().numpy()  # noqa: E731
        return [{"dA": f(A), "dB": f(B), "dbB": None}]

    def reduce(self, ref_blocks: list, bnd_blocks: list, n_tokens: int, dtype: str) -> tuple[list, list]:
        """Per-block reference gradients and bounds summed into the stored ``A`` and ``B`` layouts."""
        u = unit_roundoff_of(dtype)
        k, w = self.k, self.conv.c_in * self.k
        dA = sum(rb["dA"][:, self._chunk(j)] for j, rb in enumerate(ref_blocks))
        dB = np.zeros((self.d_out * k, self.r))
        bA = np.zeros((self.r, w))
        bB = np.zeros_like(dB)
        widen = gamma(n_tokens + self.d_out * k + EXTRA_ROUNDINGS, u) / gamma(self.d_out + n_tokens + EXTRA_ROUNDINGS, u)
        for j, (rb, bb) in enumerate(zip(ref_blocks, bnd_blocks)):
            dB[j::k] = rb["dB"]
            bB[j::k] = bb["dB"]
            bA += widen * bb["dA"][:, self._chunk(j)]
        bA += gamma(k, 2.0**-53) * sum(np.abs(rb["dA"][:, self._chunk(j)]) for j, rb in enumerate(ref_blocks))
        return [{"dA": dA, "dB": dB, "dbB": None}], [{"dA": bA, "dB": bB, "dbB": None}]


def is_loralib_conv(module: nn.Module) -> bool:
    """loralib's ConvLoRA: a ``conv`` child, ``lora_A``/``lora_B`` Parameters and a float ``scaling``."""
    return (isinstance(getattr(module, "conv", None), nn.modules.conv._ConvNd)
            and isinstance(getattr(module, "lora_A", None), torch.nn.Parameter)
            and isinstance(getattr(module, "lora_B", None), torch.nn.Parameter)
            and isinstance(getattr(module, "scaling", None), (int, float)))
