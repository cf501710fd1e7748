"""Detection by structure and behaviour, not names (imports torch): :func:`structural_view`.

For a module that follows none of the known conventions (:mod:`.conventions`) the audit finds

* the **base operator**: the module's own 2-D ``weight``, a child layer (``.base_layer``, ``.linear``,
  ``.conv`` or any single child ``nn.Linear`` / ``nn.Embedding`` / transformers ``Conv1D``), or the
  ``original`` of a ``torch.nn.utils.parametrize`` parametrization of ``weight``;
* the **low-rank factor pair**: two 2-D trainable tensors anywhere in the module (parameters, or
  weights of child ``nn.Linear`` layers) whose shapes are ``A`` (r x d_in) and ``B`` (d_out x r), each
  possibly stored transposed; names (``lora_A/B``, ``lora_a/b``, ``lora_down/up``, ``down/up``) only
  break ties when shapes cannot (square layers);
* the **declared hyperparameters**: ``scaling``/``scale``/``lora_scale``, ``lora_alpha``/``alpha``/
  ``network_alpha``, ``r``/``rank``, ``use_rslora``; the scale used is the declared one, and the
  effective scale measured from ``Delta W = W_eff - W`` is what the ``scaling`` check compares with it;
* the **merge operations**: ``merge``/``unmerge``, ``_fuse_lora``/``_unfuse_lora``,
  ``fuse_lora``/``unfuse_lora``, ``fuse``/``unfuse``, or loralib-style ``merge_weights`` (merge on
  ``eval()``); a :class:`~.spec.LoraSpec` overrides any of these.

A refusal is one line: what was found and what is missing.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..errors import AuditError
from .conventions import dropout_is_declared
from .spec import LoraSpec
from .views import LayerView

__all__ = ["StructuralView", "structural_view", "resolve_path", "MERGE_PAIRS", "unnamed_pair_hint"]

MERGE_PAIRS = (("merge", "unmerge"), ("_fuse_lora", "_unfuse_lora"), ("fuse_lora", "unfuse_lora"),
               ("fuse", "unfuse"), ("merge_lora", "unmerge_lora"))
BASE_CHILDREN = ("base_layer", "linear", "conv", "base", "layer", "original_layer", "wrapped", "orig")
A_NAMES = ("lora_a", "lora_down", "down", "a", "lora_a_weight", "down_proj", "w_a")
B_NAMES = ("lora_b", "lora_up", "up", "b", "lora_b_weight", "up_proj", "w_b")
SCALE_ATTRS = ("scaling", "scale", "lora_scale")
ALPHA_ATTRS = ("lora_alpha", "alpha", "network_alpha")
RANK_ATTRS = ("r", "rank", "lora_rank")


def resolve_path(root: nn.Module, path: str):
    """The object at dotted ``path`` under ``root`` (``AuditError`` naming the missing part)."""
    obj = root
    for part in path.split("."):
        if isinstance(obj, (nn.ModuleDict, nn.ParameterDict, dict)) and part in obj:
            obj = obj[part]
        elif hasattr(obj, part):
            obj = getattr(obj, part)
        else:
            raise AuditError(f"{type(root).__name__}: no {part!r} on the path {path!r}")
    return obj


def _weight_path(root: nn.Module, path: str) -> str:
    obj = resolve_path(root, path)
    if isinstance(obj, nn.Module):
        if not isinstance(getattr(obj, "weight", None), torch.Tensor):
            raise AuditError(f"{type(root).__name__}: {path!r} is a module without a 'weight' tensor")
        return f"{path}.weight"
    if not isinstance(obj, torch.Tensor):
        raise AuditError(f"{type(root).__name__}: {path!r} is {type(obj).__name__}, not a tensor or module")
    return path


def _is_conv1d_hf(m: nn.Module) -> bool:
    return type(m).__name__ == "Conv1D" and hasattr(m, "nf")


def _find_base(module: nn.Module, spec: LoraSpec) -> tuple[str, str | None, str]:
    """(weight path, bias path or None, kind) with kind 'linear', 'linear_t' (stored in x out) or 'embedding'."""
    if spec.base is not None:
        wp = _weight_path(module, spec.base)
        owner = resolve_path(module, wp.rsplit(".", 1)[0]) if "." in wp else module
        kind = "embedding" if isinstance(owner, nn.Embedding) else "linear_t" if (
            _is_conv1d_hf(owner) or spec.fan_in_fan_out) else "linear"
        bp = spec.base_bias or (wp.rsplit(".", 1)[0] + ".bias" if "." in wp else "bias")
        return wp, bp if _tensor_or_none(module, bp) is not None else None, kind
    pz = getattr(module, "parametrizations", None)
    if pz is not None and "weight" in pz:
        return "parametrizations.weight.original", "bias" if _tensor_or_none(module, "bias") is not None else None, (
            "embedding" if isinstance(module, nn.Embedding) else "linear")
    if isinstance(getattr(module, "weight", None), torch.Tensor) and module.weight.dim() == 2:
        kind = "embedding" if isinstance(module, nn.Embedding) else "linear_t" if (
            _is_conv1d_hf(module) or getattr(module, "fan_in_fan_out", False)) else "linear"
        return "weight", "bias" if _tensor_or_none(module, "bias") is not None else None, kind
    kids = dict(module.named_children())
    found = [n for n in BASE_CHILDREN if n in kids and isinstance(getattr(kids[n], "weight", None), torch.Tensor)]
    if not found:
        found = [n for n, c in kids.items() if isinstance(c, (nn.Linear, nn.Embedding)) or _is_conv1d_hf(c)]
        found = [n for n in found if not any(n.lower() == x for x in A_NAMES + B_NAMES)]
    convs = [n for n, c in kids.items() if isinstance(c, nn.modules.conv._ConvNd)]
    if not found:
        what = f"a convolution child {convs[0]!r}" if convs else "no 2-D weight and no child layer holding one"
        raise AuditError(f"{type(module).__name__}: found {what}; missing: a linear or embedding base operator "
                         "(convolutions are not supported yet). Fix: LoraSpec(base='path.to.weight')")
    if len(found) > 1:
        raise AuditError(f"{type(module).__name__}: found several candidate base layers {found}; missing: which "
                         "one is the frozen base. Fix: LoraSpec(base='<child>')")
    child = kids[found[0]]
    if isinstance(child, nn.modules.conv._ConvNd):
        shapes = {n: tuple(p.shape) for n, p in module.named_parameters(recurse=False)}
        raise AuditError(f"{type(module).__name__}: found a convolution base {found[0]!r} and factors {shapes}; "
                         "missing: a mapping for this convolution LoRA (supported: PEFT's conv LoRA, A = conv with "
                         "the base kernel and B = 1x1, and loralib's ConvLoRA on Conv2d)")
    kind = "embedding" if isinstance(child, nn.Embedding) else "linear_t" if _is_conv1d_hf(child) else "linear"
    bp = f"{found[0]}.bias"
    return f"{found[0]}.weight", bp if _tensor_or_none(module, bp) is not None else None, kind


def _tensor_or_none(module: nn.Module, path: str):
    try:
        t = resolve_path(module, path)
    except AuditError:
        return None
    return t if isinstance(t, torch.Tensor) else None


def _leaf(path: str) -> str:
    parts = [p for p in path.lower().split(".") if p not in ("weight", "default", "parametrizations", "0")]
    return parts[-1] if parts else path.lower()


def _find_factors(module: nn.Module, spec: LoraSpec, base_w: str, d_in: int, d_out: int):
    """(A path, B path, A stored transposed, B stored transposed, r)."""
    if spec.lora_a is not None and spec.lora_b is not None:
        pa, pb = _weight_path(module, spec.lora_a), _weight_path(module, spec.lora_b)
        A, B = resolve_path(module, pa), resolve_path(module, pb)
        r = spec.rank if spec.rank is not None else min(A.shape)
        return pa, pb, tuple(A.shape) == (d_in, r) and (r, d_in) != (d_in, r), tuple(B.shape) == (r, d_out) and (
            d_out, r) != (r, d_out), int(r)
    cands = [(n, p) for n, p in module.named_parameters() if p.dim() == 2 and n != base_w and not n.endswith(
        "original")]
    pairs = []
    for na, A in cands:
        for nb, B in cands:
            if na == nb:
                continue
            for at in (False, True):
                ra, ca = (A.shape[1], A.shape[0]) if at else tuple(A.shape)
                if ca != d_in:
                    continue
                for bt in (False, True):
                    rows, cols = (B.shape[1], B.shape[0]) if bt else tuple(B.shape)
                    if rows == d_out and cols == ra and ra < max(d_in, d_out):
                        pairs.append((na, nb, at, bt, int(ra)))
    named = [p for p in pairs if _leaf(p[0]) in A_NAMES and _leaf(p[1]) in B_NAMES]
    if named:
        pairs = named
    pairs = list(dict.fromkeys(pairs))
    # a pair stored in its natural orientation wins over the same pair read transposed
    if len({(p[0], p[1]) for p in pairs}) == 1 and len(pairs) > 1:
        pairs = sorted(pairs, key=lambda p: (p[2], p[3]))[:1]
    if not pairs:
        names = [f"{n} {tuple(p.shape)}" for n, p in cands]
        raise AuditError(f"{type(module).__name__}: base weight {base_w!r} (d_in={d_in}, d_out={d_out}) found; "
                         f"missing: a factor pair A (r x {d_in}) and B ({d_out} x r) among {names or 'no 2-D tensors'}"
                         ". Fix: LoraSpec(lora_a=..., lora_b=...)")
    if len(pairs) > 1 and len({frozenset(p[:2]) for p in pairs}) == 1:
        pairs = _by_behaviour(module, base_w, pairs, d_in, d_out)  # the same two tensors, roles unclear
    if len(pairs) > 1:
        raise AuditError(f"{type(module).__name__}: found several factor pairs {[(p[0], p[1]) for p in pairs]}; "
                         "missing: which is (A, B). Fix: LoraSpec(lora_a=..., lora_b=...)")
    return pairs[0]


def _by_behaviour(module: nn.Module, base_w: str, pairs: list, d_in: int, d_out: int) -> list:
    """The candidate (A, B) readings whose ``s B A`` reproduces the measured ``Delta W = W_eff - W``.

    On a float64 copy with ``W = 0`` and positive random factors, the layer's output at ``X = I`` is
    ``Delta W^T``; a reading fits when ``Delta W`` is a scalar multiple of its ``B A`` up to rounding.
    """
    import copy

    import numpy as np

    fits = []
    for cand in pairs:
        twin = copy.deepcopy(module).to(torch.float64)
        rng = np.random.default_rng(1)
        with torch.no_grad():
            resolve_path(twin, base_w).zero_()
            tensors = [resolve_path(twin, cand[0]), resolve_path(twin, cand[1])]
            for t in tensors:
                t.copy_(torch.as_tensor(rng.uniform(0.5, 1.0, tuple(t.shape))))
            A = (tensors[0].T if cand[2] else tensors[0]).clone()
            B = (tensors[1].T if cand[3] else tensors[1]).clone()
            twin.eval()
            eye = torch.eye(d_in, dtype=torch.float64)
            try:
                y1 = twin(eye)
                tensors[1].zero_()
                y0 = twin(eye)  # the base branch alone (its bias included)
            except Exception:  # noqa: BLE001 - a reading the module cannot run is not a fit
                continue
            dw = (y1 - y0).T.detach().numpy()
        z = (B @ A).detach().numpy()
        s = float(np.sum(dw * z) / np.sum(z * z))
        if np.allclose(dw, s * z, rtol=1e-12, atol=1e-12 * float(np.abs(dw).max(initial=1))):
            fits.append(cand)
    return fits or pairs


MAGNITUDE_NAMES = ("magnitude", "m", "mag", "lora_magnitude", "lora_magnitude_vector", "weight_m", "dora_scale")


def _find_magnitude(module: nn.Module, d_out: int, taken: tuple[str, ...]) -> str | None:
    """Path of a 1-D trainable tensor of length d_out named like DoRA's magnitude, or None."""
    for n, p in module.named_parameters():
        if n in taken or p.dim() != 1 or p.shape[0] != d_out:
            continue
        if _leaf(n) in MAGNITUDE_NAMES or "magnitude" in n.lower():
            return n
    return None


def _attr(objs: list, names: tuple[str, ...], kinds: tuple[type, ...]):
    for o in objs:
        for n in names:
            v = getattr(o, n, None)
            if isinstance(v, bool):
                continue
            if isinstance(v, kinds):
                return n, v
    return None, None


class StructuralView(LayerView):
    """A LoRA layer found by :func:`structural_view`: tensors addressed by dotted paths under the module."""

    orientation_declared = False

    def __init__(self, module: nn.Module, *, w: str, bias: str | None, a: str, b: str, a_t: bool, b_t: bool,
                 kind: str, r: int, spec: LoraSpec):
        super().__init__(module)
        self.paths = {"W": w, "bias": bias, "A": a, "B": b}
        self.a_t, self.b_t, self.kind = a_t, b_t, kind
        W = resolve_path(module, w)
        self.fan_in_fan_out = kind in ("linear_t", "embedding")
        self.d_out, self.d_in = (W.shape[1], W.shape[0]) if self.fan_in_fan_out else tuple(W.shape)
        self.d_in, self.d_out, self.r = int(self.d_in), int(self.d_out), int(r)
        if kind == "embedding":
            self.input_kind = "index"
            owner = resolve_path(module, w.rsplit(".", 1)[0]) if "." in w else module
            scale = getattr(owner, "embed_scale", None)
            if scale is not None:
                self.base_scale = self.lora_factor = float(scale)
        prefixes = {".".join(p.split(".")[:k]) for p in (a, b) for k in range(1, p.count(".") + 1)}
        owners = [module] + [o for o in (resolve_path(module, q) for q in sorted(prefixes, key=len))
                             if isinstance(o, nn.Module)]
        pz = getattr(module, "parametrizations", None)
        if pz is not None and "weight" in pz:
            owners += list(pz["weight"])
        self._read_hyper(owners, spec)
        self.magnitude_path = spec.magnitude or _find_magnitude(module, self.d_out, (w, a, b))
        if spec.variant == "lora":
            self.magnitude_path = None
        if self.magnitude_path is not None:
            self.variant = "dora"
        self._find_merge(spec)
        self._find_dropout(owners)
        self.convention = f"structural ({'embedding' if kind == 'embedding' else 'linear'}: W={w}, A={a}, B={b})"

    # -- hyperparameters -------------------------------------------------------------------
    def _read_hyper(self, owners: list, spec: LoraSpec) -> None:
        sn, scale = _attr(owners, SCALE_ATTRS, (int, float))
        an, alpha = _attr(owners, ALPHA_ATTRS, (int, float))
        rn, rank = _attr(owners, RANK_ATTRS, (int,))
        rs = spec.rslora if spec.rslora is not None else bool(next(
            (getattr(o, "use_rslora") for o in owners if isinstance(getattr(o, "use_rslora", None), bool)), False))
        alpha = spec.alpha if spec.alpha is not None else alpha
        scale = spec.scaling if spec.scaling is not None else scale
        self.declared = {k: v for k, v in ((sn or "scaling", scale), (an or "alpha", alpha), (rn or "rank", rank))
                         if v is not None}
        if rank is not None and int(rank) != self.r:
            raise AuditError(f"{type(self.module).__name__}: declares {rn}={rank} but its factors have rank {self.r}")
        self.claimed_scaling = "rslora" if rs else "lora"
        self.alpha = float(alpha) if alpha is not None else float("nan")
        if alpha is not None:
            claim = float(alpha) / (math.sqrt(self.r) if rs else self.r)
            self.claimed_value = claim
            self.declared_scale = float(scale) if scale is not None else claim
        elif scale is not None:
            self.claimed_scaling = "declared scale"
            self.claimed_value = float(scale)
            self.declared_scale = float(scale)
        else:
            self.claimed_scaling = "none declared"
            self.claimed_value = None
            self.declared_scale = 1.0
            self.declared_scale = self._measure_scale()

    def _measure_scale(self) -> float:
        """Least-squares ``s`` from ``Delta W = W_eff - W`` on a float64 copy (W = 0, random A and B, X = I)."""
        import copy

        import numpy as np

        twin = copy.deepcopy(self.module).to(torch.float64)
        view = StructuralView.__new__(StructuralView)
        view.__dict__.update(self.__dict__)
        view.module = twin
        rng = np.random.default_rng(0)
        a, b = rng.uniform(0.5, 1, (self.r, self.d_in)), rng.uniform(0.5, 1, (self.d_out, self.r))
        view.write(np.zeros((self.d_out, self.d_in)), None if not view.has_bias() else np.zeros(self.d_out),
                   [(a, b, None if not view.has_lora_bias() else np.zeros(self.d_out))])
        twin.eval()
        with torch.no_grad():
            y = view.call(torch.eye(self.d_in, dtype=torch.float64)).reshape(self.d_in, self.d_out).numpy()
        z = (b @ a).T
        return float(np.sum(y * z) / np.sum(z * z))

    def _find_merge(self, spec: LoraSpec) -> None:
        m = self.module
        if spec.merge == "none":
            self.merge_mode = "none"
        elif spec.merge == "train_eval":
            self.merge_mode = "train_eval"
        elif spec.merge is not None:
            self.merge_mode, self.merge_names = "explicit", (spec.merge, spec.unmerge)
        else:
            pair = next((p for p in MERGE_PAIRS if callable(getattr(m, p[0], None)) and callable(getattr(m, p[1], None))),
                        None)
            if pair is not None:
                self.merge_mode, self.merge_names = "explicit", pair
            elif getattr(m, "merge_weights", False) is True:
                self.merge_mode = "train_eval"

    @property
    def merge_skip_reason(self) -> str | None:
        if self.merge_mode != "none":
            return None
        return ("no merge/unmerge, _fuse_lora/_unfuse_lora, fuse/unfuse or merge_weights found; declare one with "
                "LoraSpec(merge=..., unmerge=...) / --merge")

    def _find_dropout(self, owners: list) -> None:
        self._dropout = None
        for o in owners:
            for n in list(vars(o)) + [k for k, _ in o.named_children()]:
                if "dropout" in n.lower() and callable(getattr(o, n, None)):
                    self._dropout = (o, n)
                    self.dropout_declared = dropout_is_declared(getattr(o, n))
                    return

    def dropout_slot(self) -> tuple[object, str] | None:
        return self._dropout

    def set_dropout(self, p: float) -> None:
        if self._dropout is not None:
            setattr(self._dropout[0], self._dropout[1], nn.Dropout(p) if p > 0 else nn.Identity())

    def magnitude_tensor(self):
        return None if self.magnitude_path is None else resolve_path(self.module, self.magnitude_path)

    # -- storage -------------------------------------------------------------------------------
    def layout(self) -> dict[str, object]:
        W, _, A, B, _ = self._tensors()
        return {"weight": "transposed" if self.fan_in_fan_out else "declared",
                "A": "transposed" if self.a_t else "declared", "B": "transposed" if self.b_t else "declared"}

    def _orient(self) -> dict[str, bool]:
        return {"W": self.fan_in_fan_out, "A": self.a_t, "B": self.b_t}

    def _base_tensors(self):
        m, p = self.module, self.paths
        return resolve_path(m, p["W"]), None if p["bias"] is None else resolve_path(m, p["bias"])

    def _tensors(self):
        m, p = self.module, self.paths
        b = resolve_path(m, p["B"])
        owner = resolve_path(m, p["B"].rsplit(".", 1)[0]) if "." in p["B"] else None
        lb = getattr(owner, "bias", None) if isinstance(owner, nn.Linear) else None
        return (resolve_path(m, p["W"]), None if p["bias"] is None else resolve_path(m, p["bias"]),
                resolve_path(m, p["A"]), b, lb)


def unnamed_pair_hint(module: nn.Module) -> str | None:
    """For a module detection passed over (no LoRA names): a one-line hint when its tensors still fit a
    frozen base and a trainable factor pair, naming the flags that map it; ``None`` when they do not."""
    try:
        w, _, kind = _find_base(module, LoraSpec())
        W = resolve_path(module, w)
        if W.requires_grad:
            return None
        d_out, d_in = (W.shape[1], W.shape[0]) if kind in ("linear_t", "embedding") else tuple(W.shape)
        a, b, _, _, r = _find_factors(module, LoraSpec(), w, int(d_in), int(d_out))
    except AuditError as exc:
        return str(exc) if "several factor pairs" in str(exc) else None
    if not (resolve_path(module, a).requires_grad and resolve_path(module, b).requires_grad):
        return None
    return (f"{type(module).__name__}: found a frozen base {w!r} ({d_out} x {d_in}) and trainable tensors {a!r}, {b!r} "
            f"that fit a rank-{r} factor pair, but no name marks them as LoRA factors; missing: the mapping. "
            f"Fix: --lora-a {a} --lora-b {b} (LoraSpec(lora_a={a!r}, lora_b={b!r}))")


def structural_view(module: nn.Module, spec: LoraSpec | None = None) -> StructuralView:
    """Find base operator, factor pair, hyperparameters and merge operations of ``module`` (see module doc)."""
    spec = spec or LoraSpec()
    w, bias, kind = _find_base(module, spec)
    W = resolve_path(module, w)
    d_out, d_in = (W.shape[1], W.shape[0]) if kind in ("linear_t", "embedding") else tuple(W.shape)
    a, b, a_t, b_t, r = _find_factors(module, spec, w, int(d_in), int(d_out))
    return StructuralView(module, w=w, bias=bias, a=a, b=b, a_t=a_t, b_t=b_t, kind=kind, r=r, spec=spec)
