"""Keras 3's built-in LoRA, audited as written (imports torch; Keras only through the layer it is given).

``keras.layers.Dense.enable_lora(rank, lora_alpha=...)`` adds two trainable variables to a built
``Dense`` and freezes its kernel. Under the **torch backend** (``KERAS_BACKEND=torch``, set before
Keras is imported) a Keras layer is a ``torch.nn.Module`` whose variables hold ``torch.nn.Parameter``
values, so the audit's checks run on it unchanged. Other backends are refused (their layers are not
torch modules).

**Storage (Keras orientation).** ``kernel`` (d_in x d_out), frozen once LoRA is enabled;
``lora_kernel_a`` (d_in x r); ``lora_kernel_b`` (r x d_out); ``bias`` (d_out). The layer computes
``Y = X (kernel + s lora_kernel_a lora_kernel_b) + bias`` with ``s = lora_alpha / lora_rank`` (the
``kernel`` property merges the update, then casts to the compute dtype). In the canonical (torch)
orientation of :mod:`.views`: ``W = kernel^T``, ``A = lora_kernel_a^T``, ``B = lora_kernel_b^T``;
in the paper's: ``W_paper = kernel``, ``B_paper = lora_kernel_a``, ``A_paper = lora_kernel_b``.

**Declared adapter dtype.** ``enable_lora`` creates both factors in float32 whatever the layer's
dtype policy (Keras' stated reason: no under- or overflow while fine-tuning), so a float64 layer
forms ``s A B`` in float32. The view declares ``adapter_dtype = "float32"``; checks bound a float64
run with the float32 unit roundoff (:func:`~.views.bound_dtype`), and the report states it.

**The scale.** Keras declares ``lora_alpha`` and ``lora_rank`` but stores no scale: the scale the
layer applies is measured at detection (``W = 0``, ``A = [I_r; 0]``, ``B`` small integers, ``X = I``,
least squares), so that a layer applying another scale fails ``scaling`` alone.

**EinsumDense.** ``EinsumDense.enable_lora`` factors the update over the kernel's last axis:
``lora_kernel_a`` has the kernel's other axes and ``r``. For an equation ``<x>i,io-><x>o`` (a dense layer on
the input's last axis, bias over the output axis) that is the layer above, and it is audited the same way
(the input is passed at the rank the layer was built for); other equations are refused with one line.

**Merging.** Keras has no merge/unmerge pair. Its one merge is the serialization path:
``save_own_variables`` stores ``kernel + s A B`` (the ``kernel`` property) and ``load_own_variables``
into a LoRA-enabled layer assigns that kernel and zeroes both factors. The view's ``merge()`` is that
save-then-load on the layer itself; there is no unmerge, so ``merge_roundtrip`` is N/A with that reason.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import numpy as np
import torch
from torch import nn

from ..errors import AuditError
from .views import LayerView

__all__ = ["KerasDenseView", "KerasEinsumDenseView", "is_keras_layer", "keras_view", "dtype_scope",
           "dense_like_equation", "keras_model_refusal"]


def is_keras_layer(obj: object) -> bool:
    """Whether ``obj`` is a Keras layer (checked by its class' module; Keras is not imported)."""
    return any(c.__module__.split(".")[0] == "keras" for c in type(obj).__mro__ if c.__module__)


def _backend() -> str:
    import keras

    return str(keras.backend.backend())


def require_torch_backend(where: str) -> None:
    """Raise :class:`AuditError` unless Keras runs on its torch backend."""
    active = _backend()
    if active != "torch":
        raise AuditError(f"{where}: Keras runs on its {active!r} backend; the audit needs the torch backend (its "
                         "layers are torch modules there). Fix: set KERAS_BACKEND=torch before Python starts "
                         f"(now KERAS_BACKEND={os.environ.get('KERAS_BACKEND')!r})")


@contextlib.contextmanager
def dtype_scope(dtype: str) -> Iterator[None]:
    """Keras' global dtype policy set to ``dtype`` while a factory builds its layer, then restored.

    A Keras layer takes its variable and compute dtypes from its policy (a torch ``.to()`` would leave
    Keras casting the inputs to the old compute dtype), so the audit builds each module in the dtype a
    check needs. The LoRA factors stay float32, as ``enable_lora`` declares.
    """
    import keras

    old = keras.config.dtype_policy()
    keras.config.set_dtype_policy(dtype)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(old)


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().to(torch.float64).cpu().numpy().copy()


class KerasDenseView(LayerView):
    """A ``keras.layers.Dense`` with ``enable_lora`` (torch backend); see the module docstring."""

    convention = "keras-dense"
    fan_in_fan_out = True  # Keras stores the kernel (in x out)
    merge_mode = "keras_save"
    adapter_dtype = "float32"
    paper_mapping = ("Keras stores kernel (in x out), lora_kernel_a (in x r), lora_kernel_b (r x out): paper W = "
                     "kernel, paper B = lora_kernel_a, paper A = lora_kernel_b")
    dtype_scope = staticmethod(dtype_scope)

    def __init__(self, module: nn.Module):
        super().__init__(module)
        name = type(module).__name__
        require_torch_backend(f"Keras {name}")
        if getattr(module, "quantization_mode", None) is not None:
            raise AuditError(f"Keras {name}: found LoRA on a {module.quantization_mode!r}-quantized kernel; missing: a "
                             "reference for quantized kernels (supported: float kernels)")
        kernel = module._kernel.value
        if kernel.dim() != 2:
            raise AuditError(f"Keras {name}: found a kernel of shape {tuple(kernel.shape)}; missing: a 2-D kernel")
        self.d_in, self.d_out = (int(n) for n in kernel.shape)
        self.r = int(module.lora_rank)
        self.alpha = float(module.lora_alpha)
        self.claimed_value = self.alpha / self.r
        self.layer_dtype = str(module.variable_dtype)
        self.compute_dtype = str(module.compute_dtype)
        self.declared = {"lora_rank": self.r, "lora_alpha": module.lora_alpha,
                         "adapter dtype": str(module.lora_kernel_a.dtype), "layer dtype": self.layer_dtype}
        self.adapter_dtype = str(module.lora_kernel_a.dtype)
        self.dropout_declared = False
        self.declared_scale = self._measure_scale()

    def _tensors(self):
        m = self.module
        bias = None if m.bias is None else m.bias.value
        return m._kernel.value, bias, m.lora_kernel_a.value, m.lora_kernel_b.value, None

    def layout(self) -> dict[str, object]:
        W, _, A, B, _ = self._tensors()
        found = {}
        for name, t, decl in (("weight", W, (self.d_in, self.d_out)), ("A", A, (self.d_in, self.r)),
                              ("B", B, (self.r, self.d_out))):
            found[name] = "declared" if tuple(t.shape) == decl else f"unexpected shape {tuple(t.shape)} (declared {decl})"
        return found

    def _orient(self) -> dict[str, bool]:
        bad = {k: v for k, v in self.layout().items() if v != "declared"}
        if bad:
            raise AuditError(f"{self.convention}: cannot map {bad} onto the canonical layout")
        return {"W": True, "A": True, "B": True}

    def set_dropout(self, p: float) -> None:
        """Keras' LoRA has no dropout of its own (``dropout`` is N/A)."""

    def _measure_scale(self) -> float:
        """The scale the layer applies: ``W = 0``, bias 0, ``A = [I_r; 0]``, ``B`` = small integers, ``X = I``.

        Every operand is exact in any dtype; the layer's own values are restored afterwards.
        """
        W, bias, A, B, _ = self._tensors()
        saved = [t.detach().clone() for t in (W, A, B)] + ([] if bias is None else [bias.detach().clone()])
        a = np.zeros((self.r, self.d_in))
        a[:, :self.r] = np.eye(self.r)
        b = (np.arange(self.d_out * self.r).reshape(self.d_out, self.r) % 3) + 1.0
        try:
            self.write(np.zeros((self.d_out, self.d_in)), None if bias is None else np.zeros(self.d_out),
                       [(a, b, None)])
            dtype = W.dtype if W.dtype.is_floating_point else torch.float32
            with torch.no_grad():
                y = self.flat(self.call(torch.eye(self.d_in, dtype=dtype)))  # y = s A^T B^T = s (B A)^T
        finally:
            with torch.no_grad():
                for t, v in zip([W, A, B] + ([] if bias is None else [bias]), saved):
                    t.copy_(v)
        z = (b @ a).T
        return float(np.sum(y * z) / np.sum(z * z))

    # -- merging: Keras' save/load path ---------------------------------------------------------
    def merge(self) -> None:
        store: dict = {}
        self.module.save_own_variables(store)
        self.module.load_own_variables(store)

    def unmerge(self) -> None:
        raise AuditError(self.unmerge_skip_reason)

    unmerge_skip_reason = ("Keras has no unmerge: its merge (save_own_variables, then load_own_variables into the LoRA "
                  "layer) writes kernel + s A B and zeroes both factors for good")

    @property
    def merge_skip_reason(self) -> str | None:
        return None

    def describe(self) -> str:
        return super().describe() + f", LoRA factors {self.adapter_dtype} (declared by enable_lora)"


def dense_like_equation(equation: str) -> bool:
    """Whether an ``EinsumDense`` equation is a dense layer on the input's last axis: ``<x>i,io-><x>o``.

    Keras factors an EinsumDense LoRA update as (every kernel axis but the last) x r x (the last axis);
    that is a rank-r update between the layer's input and output only for such equations.
    """
    eq = equation.replace(" ", "")
    if "->" not in eq or eq.count(",") != 1:
        return False
    lhs, out = eq.split("->")
    x, k = lhs.split(",")
    if len(k) != 2 or not x or not out:
        return False
    i, o = k
    return x[-1] == i and out[-1] == o and out[:-1] == x[:-1] and i not in out and o not in x


class KerasEinsumDenseView(KerasDenseView):
    """A ``keras.layers.EinsumDense`` with ``enable_lora`` and a dense-like equation (see :func:`dense_like_equation`)."""

    convention = "keras-einsumdense"

    def __init__(self, module: nn.Module):
        bias = module.bias
        d_out = int(module._kernel.value.shape[-1])
        if bias is not None and tuple(bias.shape) != (d_out,):
            raise AuditError(f"Keras EinsumDense: found a bias of shape {tuple(bias.shape)} (bias_axes="
                             f"{module.bias_axes!r}); missing: a bias over the output axis only (d_out={d_out})")
        self._ndim = getattr(getattr(module, "input_spec", None), "ndim", None)
        super().__init__(module)
        self.declared["equation"] = module.equation

    def call(self, x: torch.Tensor) -> torch.Tensor:
        """The layer on ``x``; rows are passed as the fixed input rank the layer was built for."""
        if self._ndim is not None and x.dim() != self._ndim:
            lead = x.shape[:-1]
            y = self.module(x.reshape(*([1] * (self._ndim - 2)), -1, self.d_in))
            return y.reshape(*lead, self.d_out)
        return self.module(x)


def keras_view(module: nn.Module) -> LayerView | None:
    """The view of a Keras layer with LoRA enabled; ``None`` when LoRA is not enabled on it."""
    name = type(module).__name__
    if not isinstance(module, nn.Module):
        raise AuditError(f"Keras {name}: not a torch module. Fix: set KERAS_BACKEND=torch before Python starts")
    if not getattr(module, "lora_enabled", False):
        return None
    if hasattr(module, "equation"):
        if not dense_like_equation(module.equation):
            shapes = [tuple(v.value.shape) for v in (module._kernel, module.lora_kernel_a, module.lora_kernel_b)]
            raise AuditError(f"Keras {name}: found enable_lora on equation {module.equation!r} (kernel, lora_kernel_a, "
                             f"lora_kernel_b shapes {shapes}); Keras factors the update over the kernel's last axis, "
                             "which is not a rank-r update between input and output here; missing: a reference for "
                             "that factorization (supported: equations '<x>i,io-><x>o', e.g. 'ab,bc->ac')")
        return KerasEinsumDenseView(module)
    if not all(hasattr(module, n) for n in ("_kernel", "lora_kernel_a", "lora_kernel_b", "lora_rank")):
        raise AuditError(f"Keras {name}: lora_enabled is set; missing: _kernel, lora_kernel_a, lora_kernel_b, "
                         "lora_rank (supported: keras.layers.Dense)")
    return KerasDenseView(module)


def keras_model_refusal(model: object) -> str:
    """One line on a Keras model (or any Keras layer without LoRA): what it holds, and how to audit it.

    A Keras model keeps its layers' variables in its own parameter store, not as torch submodules, so the
    whole-model walk cannot reach them; its LoRA layers are audited one at a time through a factory.
    """
    layers = [lay for lay in getattr(model, "_flatten_layers", lambda **_: [])(include_self=False)]
    lora = [lay.name for lay in layers if getattr(lay, "lora_enabled", False)]
    name = type(model).__name__
    if not lora:
        return (f"Keras {name}: no layer with enable_lora found (looked at {len(layers)} sublayers; Keras LoRA is "
                "Dense/EinsumDense.enable_lora)")
    return (f"Keras {name}: found LoRA layers {lora[:4]}{' ...' if len(lora) > 4 else ''}; missing: a whole-model "
            "walk of Keras models (their layers are not torch submodules). Fix: audit a factory returning one "
            "such layer, built and enable_lora'd the same way (e.g. verified_lora.testing.keras_layers:keras_dense)")
