"""DoRA (weight-decomposed LoRA): mpmath reference and derived per-entry bounds (NumPy + mpmath, no torch).

**Formula** (DoRA paper, Liu et al. 2024, eq. (5) with section 4.3's detached norm; PEFT's
``DoraLinearLayer``), torch orientation, ``V = W + s B A`` (d_out x d_in), the column norm of the
paper's ``W_paper = V^T`` is the row norm ``n_j = ||V[j, :]||_2`` (one per output), ``k = m / n``::

    Y   = (X V^T) diag(k) + b                        (the bias is not rescaled)
    dA  = s B^T (G diag(k))^T X,   dB = s (G diag(k))^T X A^T           (n treated as a constant)
    dm  = sum_tokens G * (X V^T) / n,                 dX = (G diag(k)) V

so the adapter gradients are plain LoRA's with ``G`` replaced by ``G diag(k)``.
:func:`dora_reference` evaluates these at 40 digits from the float64 inputs; the norm is taken over
the axis the ``dora_norm`` probe detected (``norm_axis`` 1 = per output, the paper's; 0 = per
input, a wrong axis that only a square layer survives) and the bias is scaled by ``k`` when the
``dora_bias`` probe found the layer doing so (``bias_scaled``), so that each of those mistakes fails
its own check only.

**Bounds.** The implementation forms ``V`` (``r + 3`` roundings per entry: ``|e_V| <= gamma_{r+3} M_V``,
``M_V = |W| + |s||B||A|``), ``n^2`` (``d_in`` more), ``sqrt``, ``k = m / n`` and then the layer; with
``delta_n = (E2 / n^2) + u`` bounding the relative error of ``n`` (``E2 = sum 2|V| e_V + e_V^2 +
gamma_{d_in} sum (|V| + e_V)^2``; ``|sqrt(1+d) - 1| <= |d|``) and ``delta_k = (delta_n + 2u) / (1 - delta_n)``
that of ``k``, every output entry is within ``gamma_K M_Y + delta_k |k| M_0`` of the reference, where
``M_Y = (1 + |k - 1| + |k|)(|X||W|^T + |b|) + |k||s||X||A|^T|B|^T`` covers both PEFT's evaluation
``base + (k - 1)(base - b) + k s Z`` and the direct one, and ``M_0 = |X||W|^T + |s||X||A|^T|B|^T``.
Gradients follow the same pattern with ``|G||k|`` in place of ``|G|``.
"""

from __future__ import annotations

import numpy as np

from ..error_bounds import EXTRA_ROUNDINGS, LayerArrays, gamma, underflow_unit, unit_roundoff_of
from ..layer_reference import DPS, LayerReference, _mm, _mp_rows, _t, _to_f

__all__ = ["dora_reference", "dora_bounds", "row_norms"]


def row_norms(arrays: LayerArrays, axis: int = 1) -> np.ndarray:
    """``||V||`` per output (axis 1) or per input (axis 0), ``V = W + s sum_g P_g B_g A_g``, in float64."""
    import mpmath

    with mpmath.workdps(DPS):
        V = _v_mp(arrays)
        rows = V if axis == 1 else _t(V)
        return np.array([float(mpmath.sqrt(mpmath.fsum(v * v for v in row))) for row in rows])


def _v_mp(arrays: LayerArrays):
    import mpmath

    s = mpmath.mpf(float(arrays.s))
    V = _mp_rows(arrays.W)
    for rows, a, b, _ in arrays.blocks:
        BA = _mm(_mp_rows(b), _t(_mp_rows(a)))
        for i, j in enumerate(rows):
            V[j] = [V[j][c] + s * BA[i][c] for c in range(len(V[j]))]
    return V


def dora_reference(arrays: LayerArrays, x: np.ndarray, g: np.ndarray | None = None) -> LayerReference:
    """Reference ``Y`` (and with ``g``: ``dX``, per-block ``dA``, ``dB``, and ``dm`` in block 0) of a DoRA layer."""
    import mpmath

    X = np.asarray(x, dtype=np.float64).reshape(-1, x.shape[-1])
    N, d_out = X.shape[0], arrays.d_out
    with mpmath.workdps(DPS):
        s = mpmath.mpf(float(arrays.s))
        V = _v_mp(arrays)
        norm_rows = V if arrays.norm_axis == 1 else _t(V)
        n = [mpmath.sqrt(mpmath.fsum(v * v for v in row)) for row in norm_rows]
        if len(n) != d_out:
            raise ValueError("a per-input norm needs a square layer")
        k = [mpmath.mpf(float(mj)) / nj for mj, nj in zip(arrays.m, n)]
        Xr = _mp_rows(X)
        XV = _mm(Xr, V)  # N x d_out
        bias = [mpmath.mpf(0)] * d_out if arrays.bias is None else [mpmath.mpf(float(v)) for v in arrays.bias]
        if arrays.bias_scaled:
            Y = [[k[j] * (XV[t][j] + bias[j]) for j in range(d_out)] for t in range(N)]
        else:
            Y = [[k[j] * XV[t][j] + bias[j] for j in range(d_out)] for t in range(N)]
        XW = _mm(Xr, _mp_rows(arrays.W))
        Z = [[(Y[t][j] - XW[t][j] - bias[j]) / s for j in range(d_out)] for t in range(N)]
        blocks, dX = [], None
        if g is not None:
            G = _mp_rows(np.asarray(g, dtype=np.float64).reshape(N, d_out))
            Gk = [[G[t][j] * k[j] for j in range(d_out)] for t in range(N)]
            dX = _mm(Gk, _t(V))
            Gkt = _t(Gk)
            for rows, a, b, bb in arrays.blocks:
                Ar, Br = _mp_rows(a), _mp_rows(b)
                Ggt = [Gkt[j] for j in rows]
                dA = [[s * v for v in row] for row in _mm(_mm(_t(Br), _t(Ggt)), _t(Xr))]
                dB = [[s * v for v in row] for row in _mm(Ggt, _t(_mm(Xr, Ar)))]
                blocks.append({"dA": _to_f(dA, a.shape), "dB": _to_f(dB, b.shape), "dbB": None})
            dm = []
            for j in range(d_out):
                extra = bias[j] if arrays.bias_scaled else 0
                dm.append(mpmath.fsum(G[t][j] * (XV[t][j] + extra) for t in range(N)) / n[j])
            blocks[0]["dm"] = np.array([float(v) for v in dm])
        return LayerReference(Y=_to_f(Y, (N, d_out)), Z=_to_f(Z, (N, d_out)), base=_to_f(XW, (N, d_out)),
                              dX=None if dX is None else _to_f(dX, X.shape), blocks=blocks, Z_mp=Z, base_mp=XW)


def _norm_rel(arrays: LayerArrays, u: float) -> np.ndarray:
    """``delta_k``: bound on the relative error of the computed ``k = m / n`` (module docstring)."""
    s = abs(arrays.s)
    W = np.abs(arrays.W)
    MV = W.copy()
    V = arrays.W.copy()
    for rows, a, b, _ in arrays.blocks:
        MV[rows] += s * (np.abs(b) @ np.abs(a))
        V[rows] += arrays.s * (b @ a)
    eV = gamma(arrays.r + 3, u) * MV
    d_in = arrays.d_in
    ax = 1 if arrays.norm_axis == 1 else 0
    Va = np.abs(V)
    # |V| itself is known only up to its float64 evaluation here: widen by eV and by a float64 gamma
    Va = Va + eV + gamma(arrays.r + 3, 2.0**-53) * MV
    E2 = np.sum(2 * Va * eV + eV**2, axis=ax) + gamma(max(d_in, arrays.d_out), u) * np.sum((Va + eV) ** 2, axis=ax)
    n2 = np.maximum(np.sum((np.abs(V) - gamma(arrays.r + 3, 2.0**-53) * MV).clip(min=0) ** 2, axis=ax), 1e-300)
    dn = E2 / n2 + u
    return (dn + 2 * u) / np.maximum(1 - dn, 0.5)


def dora_bounds(arrays: LayerArrays, x: np.ndarray, g: np.ndarray, dtype: str) -> dict[str, object]:
    """Per-entry bounds for ``Y``, ``dX`` and every block's ``dA``, ``dB`` (and ``dm``) of a DoRA layer."""
    u, eta = unit_roundoff_of(dtype), underflow_unit(dtype)
    X = np.abs(np.asarray(x, dtype=np.float64).reshape(-1, x.shape[-1]))
    G = np.abs(np.asarray(g, dtype=np.float64).reshape(X.shape[0], -1))
    N, d_in, d_out, r = X.shape[0], arrays.d_in, arrays.d_out, arrays.r
    s = abs(arrays.s)
    W = np.abs(arrays.W)
    n = np.maximum(row_norms(arrays, arrays.norm_axis), 1e-300)
    k = np.abs(np.asarray(arrays.m, dtype=np.float64)) / n
    dk = _norm_rel(arrays, u)
    m_abs = max(1.0, arrays.max_abs(), float(np.max(np.abs(arrays.m))), float(X.max(initial=0)),
                float(G.max(initial=0)), float(k.max(initial=0)))
    under = 2 * (d_in + 1) * (d_out + 1) * (r + 1) * (N + 1) * eta * max(1.0, s) * m_abs**4
    b = np.zeros(d_out) if arrays.bias is None else np.abs(arrays.bias)
    XW = X @ W.T
    MZ = np.zeros_like(XW)
    MBA = np.zeros_like(W)
    for rows, a, bm, _ in arrays.blocks:
        MZ[:, rows] += X @ np.abs(a).T @ np.abs(bm).T
        MBA[rows] += np.abs(bm) @ np.abs(a)
    K = d_in + r + EXTRA_ROUNDINGS + 4
    MY = (1 + np.abs(k - 1) + k) * (XW + b) + k * s * MZ
    M0 = XW + s * MZ + (b if arrays.bias_scaled else 0)
    Gk = G * k
    MX = (1 + np.abs(k - 1) + k) * G @ W + s * (Gk @ MBA)
    blocks = []
    for rows, a, bm, _ in arrays.blocks:
        A, B = np.abs(a), np.abs(bm)
        Gg = Gk[:, rows]
        dkg = dk[rows]
        blocks.append({
            "dA": (gamma(len(rows) + N + K, u) * s * (B.T @ Gg.T @ X)
                   + s * (B.T @ (Gg * dkg).T @ X) + under),
            "dB": (gamma(d_in + N + K, u) * s * (Gg.T @ (X @ A.T))
                   + s * ((Gg * dkg).T @ (X @ A.T)) + under),
            "dbB": None,
        })
    MV = W + s * MBA
    dm_mag = (G * (X @ MV.T + (b if arrays.bias_scaled else 0))).sum(axis=0) / n
    blocks[0]["dm"] = gamma(N + d_in + K, u) * dm_mag + dk * dm_mag + under
    return {
        "Y": gamma(K, u) * MY + dk * k * M0 + under,
        "dX": gamma(d_out + r + K, u) * MX + (G * k * dk) @ MV + under,
        "blocks": blocks,
        "magnitude_Y": MY,
    }
