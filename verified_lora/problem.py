"""The problem model: single-head attention with LoRA adapters on any subset of {Q, K, V}.

Conventions (the paper's orientation, docs/design.md section 2):

* ``Q = X_Q W_Q``, ``K = X_K W_K``, ``V = X_V W_V``; every ``X`` is ``(L x d_model)`` (``L_k`` rows
  for ``X_K`` and ``X_V``) and every ``W`` is ``(d_model x d_out)``.
* An adapted weight is ``W_mu = W*_mu + s * B_mu @ A_mu`` with ``B_mu`` ``(d_model x r)`` and
  ``A_mu`` ``(r x d_out)``; ``s = alpha / r`` ("lora") or ``alpha / sqrt(r)`` ("rslora").
* Scores ``S = beta * Q K^T``; ``f = softmax_rows(S)``; loss ``1/2 ||f V - Y||_F^2``.
  A batch of ``N`` problems (leading axis on ``x_*`` and ``y``, weights shared) uses
  ``1/(2N)`` times the sum.

Validation is strict: every malformed input raises :class:`~verified_lora.errors.InputError`
naming the field. Nothing is broadcast or cast silently.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ._xp import array_namespace, is_cupy_array, to_numpy
from .errors import InputError

__all__ = [
    "ADAPTER_KEYS",
    "GRAD_KEYS",
    "SCALINGS",
    "SUPPORTED_DTYPES",
    "Adapter",
    "LoraAttention",
    "lora_scale",
]

ADAPTER_KEYS: tuple[str, ...] = ("Q", "K", "V")
"""The weights that can carry an adapter, in canonical order."""

GRAD_KEYS: tuple[str, ...] = ("A_Q", "B_Q", "A_K", "B_K", "A_V", "B_V")
"""Names of the adapter gradients, in canonical order."""

SCALINGS: tuple[str, ...] = ("lora", "rslora")
"""Supported scale conventions: ``alpha/r`` (LoRA) and ``alpha/sqrt(r)`` (rsLoRA)."""

SUPPORTED_DTYPES: tuple[str, ...] = ("float32", "float64")


def lora_scale(alpha: float, r: int, scaling: str = "lora") -> float:
    """The adapter scale ``s``: ``alpha / r`` for "lora", ``alpha / sqrt(r)`` for "rslora"."""
    if scaling == "lora":
        return alpha / r
    if scaling == "rslora":
        return alpha / math.sqrt(r)
    raise InputError("scaling", f"one of {SCALINGS}", repr(scaling))


@dataclass(frozen=True, eq=False)
class Adapter:
    """A LoRA adapter in the paper's shapes: ``b`` is ``(d_model x r)``, ``a`` is ``(r x d_out)``.

    The adapted weight is ``W = W* + s * b @ a``. Shapes are checked when the adapter is
    attached to a :class:`LoraAttention`, where the expected sizes are known.
    """

    a: Any
    b: Any

    def __post_init__(self) -> None:
        # nested lists/tuples become NumPy arrays (the same rule as LoraAttention's fields); other types
        # are checked when the adapter is attached
        for name in ("a", "b"):
            value = getattr(self, name)
            if isinstance(value, (list, tuple)):
                object.__setattr__(self, name, np.asarray(value))

    @property
    def r(self) -> int:
        """The adapter rank (rows of ``a``)."""
        shape = getattr(self.a, "shape", None)
        if not shape:
            raise InputError("Adapter.a", "a 2-D (r x d_out) array", _describe(self.a))
        return int(shape[0])

    def __repr__(self) -> str:
        return f"Adapter(a={_describe(self.a)}, b={_describe(self.b)})"


def _describe(x: Any) -> str:
    shape = getattr(x, "shape", None)
    dtype = getattr(x, "dtype", None)
    if shape is None:
        return f"{type(x).__name__}"
    return f"array of shape {tuple(shape)} and dtype {dtype}"


def _as_array(name: str, x: Any) -> Any:
    """Accept NumPy/CuPy arrays as they are; nested lists become NumPy arrays (no casting)."""
    if x is None:
        raise InputError(name, "an array", "None")
    if isinstance(x, np.ndarray) and type(x) is not np.ndarray:
        # subclasses change semantics (np.matrix products, masked entries that isfinite would skip)
        kind = ("a masked array" if isinstance(x, np.ma.MaskedArray) else
                "a numpy.matrix" if isinstance(x, np.matrix) else f"an ndarray subclass {type(x).__name__}")
        fix = ("fill or drop the masked entries and pass a plain array, e.g. x.filled(0.0)"
               if isinstance(x, np.ma.MaskedArray) else "pass numpy.asarray(x)")
        raise InputError(name, "a plain numpy.ndarray", kind, fix)
    if isinstance(x, np.ndarray) or is_cupy_array(x):
        return x
    if isinstance(x, (list, tuple)):
        return np.asarray(x)
    raise InputError(name, "a NumPy or CuPy array", type(x).__name__, "pass numpy.asarray(...)")


def _check_real_scalar(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise InputError(name, "a real number", f"{type(value).__name__} {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise InputError(name, "a finite real number", repr(value))
    return value


@dataclass(frozen=True, eq=False, kw_only=True)
class LoraAttention:
    """Single-head attention with LoRA on any subset of {Q, K, V}; see the module docstring.

    Parameters
    ----------
    x_q:
        Query-side input, ``(L x d_model)`` or a batch ``(N x L x d_model)``.
    y:
        Target, ``(L x d_v)`` (or ``(N x L x d_v)``).
    w_q, w_k, w_v:
        Frozen weights ``(d_model x d_head)``, ``(d_model x d_head)``, ``(d_model x d_v)``.
    x_k, x_v:
        Key and value inputs, ``(L_k x d_model)``. ``x_k`` defaults to ``x_q`` (self-attention) and
        ``x_v`` defaults to ``x_k``, so giving only ``x_k`` is the paper's cross-attention
        ``X_K = X_V != X_Q`` (Remark 2.1).
    adapters:
        Mapping from "Q", "K", "V" to :class:`Adapter`.
    alpha, beta:
        LoRA hyper-parameter and score scale (``beta = 1`` in the paper).
    scaling:
        "lora" (``s = alpha/r``) or "rslora" (``s = alpha/sqrt(r)``).

    All arrays must share one dtype (float32 or float64) and one device (NumPy or CuPy).
    The arrays are copied at construction (NumPy copies are read-only), so later changes to
    the caller's arrays cannot bypass validation.
    """

    x_q: Any
    y: Any
    w_q: Any
    w_k: Any
    w_v: Any
    x_k: Any = None
    x_v: Any = None
    adapters: Mapping[str, Adapter] = field(default_factory=dict)
    alpha: float = 1.0
    beta: float = 1.0
    scaling: str = "lora"

    # ------------------------------------------------------------------ validation
    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "alpha", _check_real_scalar("alpha", self.alpha))
        set_(self, "beta", _check_real_scalar("beta", self.beta))
        if self.scaling not in SCALINGS:
            raise InputError("scaling", f"one of {SCALINGS}", repr(self.scaling))
        if not isinstance(self.adapters, Mapping):
            raise InputError("adapters", 'a mapping from "Q"/"K"/"V" to Adapter', type(self.adapters).__name__)
        unknown = [k for k in self.adapters if k not in ADAPTER_KEYS]
        if unknown:
            raise InputError(
                "adapters", f"keys among {ADAPTER_KEYS}", f"unknown key(s) {unknown!r}",
                'use upper-case "Q", "K", "V"',
            )

        arrays: dict[str, Any] = {}
        for name in ("x_q", "y", "w_q", "w_k", "w_v"):
            arrays[name] = _as_array(name, getattr(self, name))
        for name, default in (("x_k", "x_q"), ("x_v", "x_k")):
            value = getattr(self, name)
            arrays[name] = arrays[default] if value is None else _as_array(name, value)
        adapters: dict[str, Adapter] = {}
        for key in ADAPTER_KEYS:
            if key not in self.adapters:
                continue
            ad = self.adapters[key]
            if not isinstance(ad, Adapter):
                raise InputError(f"adapters[{key!r}]", "an Adapter(a, b)", type(ad).__name__)
            adapters[key] = Adapter(
                a=_as_array(f"adapters[{key!r}].a", ad.a), b=_as_array(f"adapters[{key!r}].b", ad.b)
            )

        named = dict(arrays)
        for key, ad in adapters.items():
            named[f"adapters[{key!r}].a"] = ad.a
            named[f"adapters[{key!r}].b"] = ad.b
        array_namespace(*named.values())  # raises on a NumPy/CuPy mix
        self._check_dtypes(named)
        self._check_shapes(arrays, adapters)
        self._check_finite(named)

        copies: dict[int, Any] = {}  # defaulted x_k/x_v stay the same object as their default
        for name, value in arrays.items():
            if id(value) not in copies:
                copies[id(value)] = _frozen_copy(value)
            set_(self, name, copies[id(value)])
        set_(self, "adapters", {k: Adapter(a=_frozen_copy(ad.a), b=_frozen_copy(ad.b)) for k, ad in adapters.items()})

    @staticmethod
    def _check_dtypes(named: Mapping[str, Any]) -> None:
        first_name, first = next(iter(named.items()))
        for name, x in named.items():
            kind = np.dtype(x.dtype)
            if kind.kind == "c":
                raise InputError(name, "a real floating dtype (float32 or float64)", f"complex dtype {kind}",
                                 "complex attention is not supported")
            if kind.name not in SUPPORTED_DTYPES:
                raise InputError(name, "dtype float32 or float64", f"dtype {kind}",
                                 "convert explicitly, e.g. x.astype(numpy.float64)")
            if x.size == 0:
                raise InputError(name, "a non-empty array", _describe(x))
        dtypes = {np.dtype(x.dtype) for x in named.values()}
        if len(dtypes) > 1:
            for name, x in named.items():
                if np.dtype(x.dtype) != np.dtype(first.dtype):
                    raise InputError(name, f"dtype {first.dtype} (the dtype of {first_name})", f"dtype {x.dtype}",
                                     "give every array the same dtype; nothing is cast silently")

    @staticmethod
    def _check_shapes(arrays: Mapping[str, Any], adapters: Mapping[str, Adapter]) -> None:
        x_q = arrays["x_q"]
        if x_q.ndim not in (2, 3):
            raise InputError("x_q", "a 2-D (L x d_model) or 3-D (N x L x d_model) array", _describe(x_q))
        batched = x_q.ndim == 3
        lead = tuple(x_q.shape[:1]) if batched else ()
        L, d_model = x_q.shape[-2:]

        def need(name: str, shape: tuple[int, ...], what: str) -> None:
            got = tuple(arrays[name].shape) if name in arrays else None
            if got != shape:
                raise InputError(name, f"shape {shape} ({what})", _describe(arrays[name]))

        for name in ("w_q", "w_k", "w_v"):
            if arrays[name].ndim != 2:
                raise InputError(name, "a 2-D (d_model x d_out) array (weights are shared across the batch)",
                                 _describe(arrays[name]))
            if arrays[name].shape[0] != d_model:
                raise InputError(name, f"{d_model} rows (d_model, from x_q)", _describe(arrays[name]),
                                 "weights use the paper's (d_model x d_out) orientation; transpose a "
                                 "PyTorch (out x in) weight")
        d_head = arrays["w_q"].shape[1]
        need("w_k", (d_model, d_head), "d_model x d_head; w_q and w_k must share d_head")
        d_v = arrays["w_v"].shape[1]
        x_k = arrays["x_k"]
        if x_k.ndim != x_q.ndim:
            raise InputError("x_k", f"a {x_q.ndim}-D array like x_q", _describe(x_k))
        L_k = x_k.shape[-2]
        need("x_k", lead + (L_k, d_model), "[N x] L_k x d_model")
        need("x_v", lead + (L_k, d_model), "[N x] L_k x d_model; x_k and x_v must have the same rows")
        need("y", lead + (L, d_v), "[N x] L x d_v")
        d_out = {"Q": d_head, "K": d_head, "V": d_v}
        for key, ad in adapters.items():
            a, b = ad.a, ad.b
            if b.ndim != 2 or b.shape[0] != d_model:
                raise InputError(f"adapters[{key!r}].b", f"shape ({d_model}, r) (d_model x r)", _describe(b),
                                 "the paper's B is (d_model x r); map PyTorch/PEFT layouts as the README's "
                                 "layout table shows")
            r = b.shape[1]
            if a.ndim != 2 or a.shape[1] != d_out[key]:
                raise InputError(f"adapters[{key!r}].a", f"shape (r, {d_out[key]}) (r x d_out)", _describe(a))
            if a.shape[0] != r:
                raise InputError(f"adapters[{key!r}].a", f"{r} rows (r, the columns of adapters[{key!r}].b)",
                                 _describe(a), "a and b must share the rank r")

    @staticmethod
    def _check_finite(named: Mapping[str, Any]) -> None:
        for name, x in named.items():
            xp = array_namespace(x)
            if not bool(xp.all(xp.isfinite(x))):
                raise InputError(name, "finite entries", "NaN or Inf entries", "clean the input first")

    def __repr__(self) -> str:  # compact: sizes and settings, never the arrays
        return f"LoraAttention({self.describe()})"

    # ------------------------------------------------------------------ derived sizes
    @property
    def xp(self):
        """The array namespace (``numpy`` or ``cupy``) of this problem."""
        return array_namespace(self.x_q)

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(self.x_q.dtype)

    @property
    def batched(self) -> bool:
        return self.x_q.ndim == 3

    @property
    def n_batch(self) -> int:
        return int(self.x_q.shape[0]) if self.batched else 1

    @property
    def L(self) -> int:
        return int(self.x_q.shape[-2])

    @property
    def L_k(self) -> int:
        return int(self.x_k.shape[-2])

    @property
    def d_model(self) -> int:
        return int(self.x_q.shape[-1])

    @property
    def d_head(self) -> int:
        return int(self.w_q.shape[1])

    @property
    def d_v(self) -> int:
        return int(self.w_v.shape[1])

    @property
    def adapted(self) -> tuple[str, ...]:
        """Keys of the adapted weights, in canonical order."""
        return tuple(k for k in ADAPTER_KEYS if k in self.adapters)

    @property
    def grad_keys(self) -> tuple[str, ...]:
        """Names of the adapter gradients this problem has, e.g. ("A_Q", "B_Q")."""
        return tuple(g for g in GRAD_KEYS if g[-1] in self.adapters)

    @property
    def is_cross_attention(self) -> bool:
        return self.x_k is not self.x_q or self.x_v is not self.x_q

    # ------------------------------------------------------------------ weights
    def scale(self, key: str) -> float:
        """The adapter scale ``s`` of adapter ``key`` (alpha/r or alpha/sqrt(r))."""
        return lora_scale(self.alpha, self.adapters[key].r, self.scaling)

    def frozen_weight(self, key: str) -> Any:
        """The frozen weight ``W*_key``."""
        return {"Q": self.w_q, "K": self.w_k, "V": self.w_v}[key]

    def weight(self, key: str) -> Any:
        """The effective weight ``W_key = W*_key + s * B_key @ A_key`` (``W*`` when not adapted)."""
        w = self.frozen_weight(key)
        if key not in self.adapters:
            return w
        ad = self.adapters[key]
        return w + self.scale(key) * (ad.b @ ad.a)

    def items(self) -> Iterator[tuple[Any, Any, Any, Any]]:
        """Yield ``(x_q, x_k, x_v, y)`` as 2-D arrays for each problem of the batch."""
        if not self.batched:
            yield self.x_q, self.x_k, self.x_v, self.y
            return
        for n in range(self.n_batch):
            yield self.x_q[n], self.x_k[n], self.x_v[n], self.y[n]

    def replace(self, **changes: Any) -> "LoraAttention":
        """A new, re-validated problem with some fields changed."""
        fields = dict(x_q=self.x_q, y=self.y, w_q=self.w_q, w_k=self.w_k, w_v=self.w_v,
                      x_k=None if self.x_k is self.x_q else self.x_k,
                      x_v=None if self.x_v is self.x_k else self.x_v,
                      adapters=self.adapters, alpha=self.alpha, beta=self.beta, scaling=self.scaling)
        fields.update(changes)
        return LoraAttention(**fields)

    def to_numpy(self) -> "LoraAttention":
        """The same problem with NumPy arrays (a no-op for NumPy problems)."""
        if self.xp is np:
            return self
        adapters = {k: Adapter(a=to_numpy(ad.a), b=to_numpy(ad.b)) for k, ad in self.adapters.items()}
        return self.replace(x_q=to_numpy(self.x_q), y=to_numpy(self.y), w_q=to_numpy(self.w_q),
                            w_k=to_numpy(self.w_k), w_v=to_numpy(self.w_v),
                            x_k=None if self.x_k is self.x_q else to_numpy(self.x_k),
                            x_v=None if self.x_v is self.x_k else to_numpy(self.x_v),
                            adapters=adapters)

    def astype(self, dtype: str | np.dtype) -> "LoraAttention":
        """The same problem with every array converted to ``dtype`` (an explicit, visible cast).

        Widening float32 to float64 is exact, so ``problem.astype("float64")`` is the natural
        reference-grade twin of a float32 problem.
        """
        dtype = np.dtype(dtype)
        if dtype.name not in SUPPORTED_DTYPES:
            raise InputError("dtype", f"one of {SUPPORTED_DTYPES}", str(dtype))
        if dtype == self.dtype:
            return self
        cast = lambda x: x.astype(dtype)  # noqa: E731
        adapters = {k: Adapter(a=cast(ad.a), b=cast(ad.b)) for k, ad in self.adapters.items()}
        return self.replace(x_q=cast(self.x_q), y=cast(self.y), w_q=cast(self.w_q), w_k=cast(self.w_k),
                            w_v=cast(self.w_v), x_k=None if self.x_k is self.x_q else cast(self.x_k),
                            x_v=None if self.x_v is self.x_k else cast(self.x_v), adapters=adapters)

    def describe(self) -> str:
        """One line: sizes, adapters, scale convention."""
        ranks = ", ".join(f"{k}(r={self.adapters[k].r})" for k in self.adapted) or "none"
        batch = f"N={self.n_batch}, " if self.batched else ""
        kind = "cross" if self.is_cross_attention else "self"
        return (f"{kind}-attention {batch}L={self.L}, L_k={self.L_k}, d_model={self.d_model}, "
                f"d_head={self.d_head}, d_v={self.d_v}, adapters {ranks}, alpha={self.alpha:g}, "
                f"beta={self.beta:g}, scaling={self.scaling}, dtype={self.dtype}")

    # ------------------------------------------------------------------ storage
    def save_npz(self, path: str) -> None:
        """Store the problem in an ``.npz`` file (keys: see :meth:`load_npz`)."""
        data: dict[str, Any] = {
            "x_q": to_numpy(self.x_q), "y": to_numpy(self.y), "w_q": to_numpy(self.w_q),
            "w_k": to_numpy(self.w_k), "w_v": to_numpy(self.w_v),
            "alpha": np.float64(self.alpha), "beta": np.float64(self.beta), "scaling": np.str_(self.scaling),
        }
        if self.x_k is not self.x_q:
            data["x_k"] = to_numpy(self.x_k)
        if self.x_v is not self.x_k:
            data["x_v"] = to_numpy(self.x_v)
        for key, ad in self.adapters.items():
            data[f"a_{key.lower()}"] = to_numpy(ad.a)
            data[f"b_{key.lower()}"] = to_numpy(ad.b)
        np.savez(path, **data)

    @classmethod
    def load_npz(cls, path: str) -> "LoraAttention":
        """Load a problem from ``.npz``.

        Keys: ``x_q``, ``y``, ``w_q``, ``w_k``, ``w_v`` (required); ``x_k`` (optional, default ``x_q``),
        ``x_v`` (optional, default ``x_k``); ``a_q``/``b_q``, ``a_k``/``b_k``, ``a_v``/``b_v`` (each pair optional,
        both or neither); ``alpha``, ``beta`` (scalars, default 1); ``scaling`` ("lora" or "rslora").
        """
        known = {"x_q", "y", "w_q", "w_k", "w_v", "x_k", "x_v", "alpha", "beta", "scaling",
                 "a_q", "b_q", "a_k", "b_k", "a_v", "b_v"}
        from ._npz import read_npz

        data = read_npz(path)
        unknown = sorted(set(data) - known)
        if unknown:
            raise InputError(f"{path}", f"keys among {sorted(known)}", f"unknown key(s) {unknown}")
        missing = [k for k in ("x_q", "y", "w_q", "w_k", "w_v") if k not in data]
        if missing:
            raise InputError(f"{path}", "keys x_q, y, w_q, w_k, w_v", f"missing {missing}")
        adapters = {}
        for key in ADAPTER_KEYS:
            a, b = data.get(f"a_{key.lower()}"), data.get(f"b_{key.lower()}")
            if (a is None) != (b is None):
                raise InputError(f"{path}", f"both a_{key.lower()} and b_{key.lower()} or neither",
                                 "only one of them")
            if a is not None:
                adapters[key] = Adapter(a=a, b=b)
        scalars = {}
        for name in ("alpha", "beta"):
            if name in data:
                if data[name].shape != ():
                    raise InputError(f"{path}:{name}", "a scalar", f"shape {data[name].shape}")
                if data[name].dtype.kind not in "fiu":
                    raise InputError(f"{path}:{name}", "a real number", f"dtype {data[name].dtype}")
                scalars[name] = data[name].item()
        scaling = str(data["scaling"]) if "scaling" in data else "lora"
        return cls(x_q=data["x_q"], y=data["y"], w_q=data["w_q"], w_k=data["w_k"], w_v=data["w_v"],
                   x_k=data.get("x_k"), x_v=data.get("x_v"), adapters=adapters, scaling=scaling, **scalars)


def _frozen_copy(x: Any) -> Any:
    """A private copy; NumPy copies are made read-only."""
    y = x.copy()
    if isinstance(y, np.ndarray):
        y.flags.writeable = False
    return y
