"""Derived per-entry error bounds for the LoRA audit (NumPy only; no torch, no guessed constants).

Every tolerance the audit applies is ``unit roundoff x a derived condition factor``, computed per
entry from the data of the problem at hand. The model is the standard one (Higham, *Accuracy
and Stability of Numerical Algorithms*, 2nd ed., section 2.2 and chapter 3): each floating-point
operation returns ``(exact result)(1 + delta)`` with ``|delta| <= u``, plus, for a multiplication
whose result falls in the subnormal range, an absolute error at most ``eta`` (half the smallest
subnormal; additions of floats are exact in that range).

**Linear layer (torch orientation, docs/design.md section 2.2).** With ``X`` (N x d_in),
``W`` (d_out x d_in), bias ``b``, blocks ``g`` placing ``X A_g^T B_g^T + 1 bB_g^T`` into the output
columns ``rows_g`` (one block with every column for an ordinary layer), and the implementation's
scale ``s``::

    Y     = X W^T + b + s sum_g P_g (X A_g^T B_g^T + 1 bB_g^T)
    dA_g  = s B_g^T G_g^T X            dB_g = s G_g^T (X A_g^T)          dbB_g = s 1^T G_g
    dX    = G W + s sum_g G_g B_g A_g                                     (G = dL/dY, G_g = G[:, rows_g])

Each entry is a sum of products. Whatever the summation order, blocking, FMA use, or whether the
implementation evaluates the merged form ``X (W + s B A)^T`` or the unmerged one, every product term
passes through at most ``K`` roundings, so (Higham, Lemma 3.1 and eq. (3.5) applied term by term)::

    |computed - exact| <= gamma_K * M + underflow,     gamma_K = K u / (1 - K u),

where ``M`` is the same expression evaluated with absolute values (``|X||W|^T + |b| + |s| sum_g P_g
(|X||A_g|^T|B_g|^T + |bB_g|)`` for ``Y``; the merged form has the same ``M`` because
``|B A| <= |B||A|``). ``K`` is the longest chain: the inner-product lengths on the path (``d_in + r``
for ``Y``, plus one for a base output scale ``c != 1``; ``m_g + N`` for ``dA``; ``d_in + N`` for ``dB``; ``d_out + r`` for ``dX``) plus
``EXTRA_ROUNDINGS = 6`` single operations, which bound every variant met in PEFT, loralib and
torchtune: the bias add, the LoRA-bias add, the multiplication by ``s``, the conversion of the
Python float ``s`` to the working dtype, the final add of the two branches, and one dtype cast of
the result (PEFT's ``result.to(dtype)``; the fp32 delta cast back to bf16 in its CPU merge).

``underflow`` bounds the extra absolute errors of multiplications that underflow: each such error is
at most ``eta``, is later multiplied by at most three further factors (``s`` and two operands,
each at most ``m = max(1, max|operand|)``), and the additions it passes through only scale it by
``1 + gamma_K <= 2``. With ``n`` multiplications per entry at most ``(d_in+1)(d_out+1)(r+1)(N+1)``,
``underflow = 2 n eta max(1,|s|) m^3``. It matters only for float16 (``eta = 2^-25``).

**Merge round trip.** ``W' = fl(W + D1)`` then ``W'' = fl(W' - D2)`` with ``D1, D2`` two evaluations of
``s B A`` (``r + 3`` roundings each, one more if formed in fp32 and cast): ``W'' - W = (D1 - D2)
+ delta1 (W + D1)`` up to the last rounding, hence ``|W'' - W| <= gamma_{r+6} (2|W| + 3|s||B||A|)``.

**Effective scale.** With ``Z`` the exact LoRA branch without ``s`` and ``Y_hat = Y_base + s_impl Z
+ e``, ``|e| <= E``, the least-squares scale ``s_eff = <Y_hat - Y_base, Z> / <Z, Z>`` (evaluated in
mpmath) satisfies ``|s_eff - s_impl| <= sum E |Z| / sum Z^2``.

**Attention.** :func:`attention_error_bounds` runs the same model through the single-head attention
forward and backward pass (docs/design.md section 3) as a running error analysis: every intermediate
carries ``(value, magnitude, error bound)``; matrix products use ``gamma_{n+2}`` times the product of
magnitudes (covering a scalar folded into either factor), elementwise operations one rounding
each, the softmax ``exp`` an assumed library error of at most 1 ulp (``2u`` relative; Sleef's
``u10`` and glibc's ``exp`` guarantee this), and the row normalisation a division or a
multiplication by a reciprocal (two roundings). Both softmax-backward orders, ``f*q - f*(f.q)`` and
``f*(q - f.q)``, are bounded and the larger bound kept.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..numerics.rounding import DTYPES, gamma, underflow_unit, unit_roundoff

__all__ = [
    "EXTRA_ROUNDINGS",
    "AUDIT_DTYPES",
    "unit_roundoff_of",
    "underflow_unit",
    "gamma",
    "LayerArrays",
    "layer_bounds",
    "roundtrip_bound",
    "scale_bound",
    "attention_error_bounds",
]

EXTRA_ROUNDINGS = 6
"""Single roundings outside the inner products (listed in the module docstring)."""

# unit roundoff u, eta (half the smallest subnormal) and gamma_k (rounded up) per dtype, bfloat16
# included: one implementation, in the numerics base
AUDIT_DTYPES = DTYPES
unit_roundoff_of = unit_roundoff


@dataclass(frozen=True)
class LayerArrays:
    """One linear LoRA layer in torch orientation, as float64 arrays (see the module docstring).

    ``blocks`` is a list of ``(rows, A_g, B_g, bB_g)``: output columns (int array), ``A_g`` (r x d_in),
    ``B_g`` (m_g x r), LoRA bias ``bB_g`` (m_g,) or ``None``.
    """

    W: np.ndarray
    bias: np.ndarray | None
    blocks: list
    s: float
    c: float = 1.0  # the base branch's output scale (scaled embeddings): Y = c (X W^T + b) + s Z
    m: np.ndarray | None = None  # DoRA magnitude (d_out,); None for plain LoRA (see audit.variants.dora)
    norm_axis: int = 1  # DoRA: the axis of V = W + s B A whose norm divides m (1 = per output, the paper's)
    bias_scaled: bool = False  # DoRA: whether the layer rescales the bias by m / n (detected by a probe)

    @property
    def d_out(self) -> int:
        return self.W.shape[0]

    @property
    def d_in(self) -> int:
        return self.W.shape[1]

    @property
    def r(self) -> int:
        return max(a.shape[0] for _, a, _, _ in self.blocks)

    def max_abs(self) -> float:
        vals = [np.max(np.abs(self.W))]
        if self.bias is not None:
            vals.append(np.max(np.abs(self.bias)))
        for _, a, b, bb in self.blocks:
            vals += [np.max(np.abs(a)), np.max(np.abs(b))]
            if bb is not None:
                vals.append(np.max(np.abs(bb)))
        return float(max(vals))


def _flat(x: np.ndarray) -> np.ndarray:
    return np.asarray(x, dtype=np.float64).reshape(-1, x.shape[-1])


def layer_bounds(layer: LayerArrays, x: np.ndarray, g: np.ndarray, dtype: str) -> dict[str, object]:
    """Per-entry bounds ``gamma_K M + underflow`` for ``Y``, ``dX`` and every block's ``dA``, ``dB``, ``dbB``.

    ``x`` is ``(..., d_in)``, ``g`` is ``(..., d_out)``; leading axes are flattened into ``N`` tokens.
    Returns ``{"Y": (N x d_out), "dX": (N x d_in), "blocks": [{"dA":, "dB":, "dbB":}, ...]}`` with
    ``Y``/``dX`` in the flattened shape.
    """
    u, eta = unit_roundoff_of(dtype), underflow_unit(dtype)
    X, G = np.abs(_flat(x)), np.abs(_flat(g))
    N = X.shape[0]
    s = abs(layer.s)
    W = np.abs(layer.W)
    d_out, d_in, r = layer.d_out, layer.d_in, layer.r
    m = max(1.0, layer.max_abs(), float(X.max(initial=0)), float(G.max(initial=0)))
    n_mult = (d_in + 1) * (d_out + 1) * (r + 1) * (N + 1)
    under = 2 * n_mult * eta * max(1.0, s) * m**3

    c = abs(layer.c)
    MY = X @ W.T
    if layer.bias is not None:
        MY = MY + np.abs(layer.bias)
    MY = c * MY
    MX = c * (G @ W)
    blocks = []
    for rows, a, b, bb in layer.blocks:
        A, B = np.abs(a), np.abs(b)
        lora = X @ A.T @ B.T
        if bb is not None:
            lora = lora + np.abs(bb)
        MY[:, rows] += s * lora
        Gg = G[:, rows]
        MX += s * (Gg @ B @ A)
        mg = len(rows)
        blocks.append({
            "dA": gamma(mg + N + EXTRA_ROUNDINGS, u) * (s * (B.T @ Gg.T @ X)) + under,
            "dB": gamma(d_in + N + EXTRA_ROUNDINGS, u) * (s * (Gg.T @ (X @ A.T))) + under,
            "dbB": None if bb is None else gamma(N + EXTRA_ROUNDINGS, u) * (s * Gg.sum(axis=0)) + under,
        })
    extra = EXTRA_ROUNDINGS + (layer.c != 1.0)  # one more rounding: the multiplication by c
    return {
        "Y": gamma(d_in + r + extra, u) * MY + under,
        "dX": gamma(d_out + r + extra, u) * MX + under,
        "blocks": blocks,
        "magnitude_Y": MY,
        "magnitude_dX": MX,
    }


def roundtrip_bound(layer: LayerArrays, dtype: str) -> tuple[np.ndarray, np.ndarray | None]:
    """Bounds on ``|W'' - W|`` and ``|b'' - b|`` after merge then unmerge (module docstring)."""
    u = unit_roundoff_of(dtype)
    s = abs(layer.s)
    delta = np.zeros_like(layer.W)
    dbias = None if layer.bias is None else np.zeros_like(layer.bias)
    for rows, a, b, bb in layer.blocks:
        delta[rows] += s * (np.abs(b) @ np.abs(a))
        if bb is not None and dbias is not None:
            dbias[rows] += s * np.abs(bb)
    gw = gamma(layer.r + 6, u) * (2 * np.abs(layer.W) + 3 * delta)
    gb = None if layer.bias is None else gamma(6, u) * (2 * np.abs(layer.bias) + 3 * dbias)
    return gw, gb


def scale_bound(forward_bound: np.ndarray, z: np.ndarray) -> float:
    """``sum E |Z| / sum Z^2``: how far the least-squares scale may sit from the implementation's ``s``."""
    zz = float(np.sum(np.asarray(z, dtype=np.float64) ** 2))
    if zz == 0:
        return math.inf
    return float(np.sum(forward_bound * np.abs(z))) / zz * (1 + 2.0**-40)  # fp64 evaluation of the ratio


# ----------------------------------------------------------------------------------- attention
@dataclass
class _T:
    """A tracked intermediate: value, magnitude (absolute-value evaluation) and error bound."""

    v: np.ndarray
    m: np.ndarray
    e: np.ndarray


def _exact(x) -> _T:
    x = np.asarray(x, dtype=np.float64)
    return _T(x, np.abs(x), np.zeros_like(x))


def _inexact(x, rel: float) -> _T:
    x = np.asarray(x, dtype=np.float64)
    return _T(x, np.abs(x), rel * np.abs(x))


class _Tracker:
    def __init__(self, u: float):
        self.u = u

    def mm(self, a: _T, b: _T) -> _T:
        n = a.v.shape[-1]
        prop = a.e @ (np.abs(b.v) + b.e) + np.abs(a.v) @ b.e
        return _T(a.v @ b.v, a.m @ b.m, prop + gamma(n + 2, self.u) * ((a.m + a.e) @ (b.m + b.e)))

    def add(self, a: _T, b: _T, sign: float = 1.0) -> _T:
        m = a.m + b.m
        e = a.e + b.e
        return _T(a.v + sign * b.v, m, e + self.u * (m + e))

    def scal(self, c: float, a: _T) -> _T:
        c = abs(c)
        return _T(c * a.v if c else 0 * a.v, c * a.m, c * a.e + self.u * c * (a.m + a.e))

    def signed_scal(self, c: float, a: _T) -> _T:
        out = self.scal(c, a)
        out.v = c * a.v
        return out

    def mul(self, a: _T, b: _T) -> _T:
        m = a.m * b.m
        prop = a.e * (np.abs(b.v) + b.e) + np.abs(a.v) * b.e
        return _T(a.v * b.v, m, prop + self.u * (m + (a.m + a.e) * (b.m + b.e) - m))

    def transpose(self, a: _T) -> _T:
        return _T(a.v.T, a.m.T, a.e.T)

    def rowsum(self, a: _T) -> _T:
        ones = _exact(np.ones((a.v.shape[-1], 1)))
        return self.mm(a, ones)

    def softmax(self, s: _T) -> _T:
        """Row softmax with the max subtracted; exp within 1 ulp; division or reciprocal-multiply."""
        u = self.u
        shift = s.v.max(axis=1, keepdims=True)
        d = s.v - shift
        e_d = 2 * s.e + u * (np.abs(d) + 2 * s.e)  # error of fl(S - max S) (max carries S's error)
        ex = np.exp(d)
        e_ex = ex * np.expm1(e_d) + 2 * u * ex * np.exp(e_d)  # |exp(d_hat)(1+2u) - exp(d)|
        E = _T(ex, ex, e_ex)
        sig = self.rowsum(E)
        f = ex / sig.v
        rel = (E.e / np.maximum(E.v, np.finfo(np.float64).tiny) + sig.e / (sig.v - sig.e))
        err = f * rel / np.maximum(1 - sig.e / sig.v, 0.5) + 2 * u * f * (1 + rel)
        return _T(f, f, err)


def attention_error_bounds(problem, u: float = 2.0**-53) -> dict[str, np.ndarray | float]:
    """Running error bounds (float64 evaluation) for the loss and every adapter gradient of ``problem``.

    The implementation may evaluate the projections merged or unmerged; the bound for each
    projection is the larger of the two orders. Inputs are taken as exact except the adapters'
    ``b``, which the audit may have rescaled by one rounding when mapping the layer's scale onto the
    problem's (one ``u`` relative error). Batched problems bound each item and the ``1/N`` mean.
    ``u`` is the unit roundoff of the arithmetic being bounded (float64 by default).
    Returns ``{"loss": float, "A_Q": array, "B_Q": array, ...}`` (only adapted keys).
    """
    t = _Tracker(u)
    n_items = problem.n_batch if problem.batched else 1
    keys = problem.adapted
    out: dict[str, np.ndarray | float] = {"loss": 0.0}
    for k in keys:
        out[f"A_{k}"] = 0.0
        out[f"B_{k}"] = 0.0
    for x_q, x_k, x_v, y in problem.items():
        xs = {"Q": _exact(x_q), "K": _exact(x_k), "V": _exact(x_v)}
        weights: dict[str, _T] = {}
        proj: dict[str, _T] = {}
        for key in ("Q", "K", "V"):
            w = _exact(problem.frozen_weight(key))
            X = xs[key]
            if key in problem.adapters:
                ad = problem.adapters[key]
                s = problem.scale(key)
                b, a = _inexact(ad.b, u), _exact(ad.a)
                w_eff = t.add(w, t.scal(s, t.mm(b, a)))
                merged = t.mm(X, w_eff)
                unmerged = t.add(t.mm(X, w), t.scal(s, t.mm(t.mm(X, b), a)))
                P = _T(X.v @ w_eff.v, merged.m, np.maximum(merged.e, unmerged.e))
                weights[key] = w_eff
            else:
                P = t.mm(X, w)
                weights[key] = w
            proj[key] = P
        Qm, Km, Vm = proj["Q"], proj["K"], proj["V"]
        S = t.signed_scal(problem.beta, t.mm(Qm, t.transpose(Km)))
        f = t.softmax(S)
        c = t.add(t.mm(f, Vm), _exact(y), sign=-1.0)
        loss_terms = t.mul(c, c)
        loss = t.rowsum(t.transpose(t.rowsum(loss_terms)))
        loss_err = float(loss.e.sum()) * 0.5 / n_items + u * 0.5 * float(loss.m.sum()) / n_items * 3
        # backward: q = c V^T; p = f*q - f*(rowsum(f*q)) or f*(q - rowsum(f*q))
        q = t.mm(c, t.transpose(Vm))
        p1 = t.mul(f, q)
        rvec = t.rowsum(p1)
        rb = _T(np.broadcast_to(rvec.v, f.v.shape), np.broadcast_to(rvec.m, f.v.shape),
                np.broadcast_to(rvec.e, f.v.shape))
        p_a = t.add(p1, t.mul(f, rb), sign=-1.0)
        p_b = t.mul(f, t.add(q, rb, sign=-1.0))
        p = _T(p_a.v, np.maximum(p_a.m, p_b.m), np.maximum(p_a.e, p_b.e))
        beta = problem.beta
        gw = {
            "Q": t.signed_scal(beta, t.mm(t.mm(t.transpose(xs["Q"]), p), Km)),
            "K": t.signed_scal(beta, t.mm(t.mm(t.transpose(xs["K"]), t.transpose(p)), Qm)),
            "V": t.mm(t.mm(t.transpose(xs["V"]), t.transpose(f)), c),
        }
        # torch may instead form dW from dP = p K etc. first: the magnitude products are the same
        # matrices multiplied in the other association, whose gamma covers both inner lengths.
        for key in ("Q", "K"):
            alt = t.signed_scal(beta, t.mm(t.transpose(xs[key]),
                                           t.mm(p if key == "Q" else t.transpose(p), Km if key == "Q" else Qm)))
            gw[key] = _T(gw[key].v, np.maximum(gw[key].m, alt.m), np.maximum(gw[key].e, alt.e))
        altv = t.mm(t.transpose(xs["V"]), t.mm(t.transpose(f), c))
        gw["V"] = _T(gw["V"].v, np.maximum(gw["V"].m, altv.m), np.maximum(gw["V"].e, altv.e))
        # mean over the batch: 1/N scaling is one more rounding
        scale_n = 1.0 / n_items
        out["loss"] = float(out["loss"]) + loss_err
        for key in keys:
            ad = problem.adapters[key]
            s = problem.scale(key)
            g = gw[key]
            dA = t.scal(s, t.mm(t.transpose(_inexact(ad.b, u)), g))
            dB = t.scal(s, t.mm(g, t.transpose(_exact(ad.a))))
            # torch may fold s into G first or compute (X B)^T dP: same magnitudes, same gamma order
            out[f"A_{key}"] = out[f"A_{key}"] + scale_n * (dA.e + 2 * u * (dA.m + dA.e))
            out[f"B_{key}"] = out[f"B_{key}"] + scale_n * (dB.e + 2 * u * (dB.m + dB.e))
    return out
