"""mpmath reference for one linear LoRA layer (torch orientation), independent of torch.

Every input is a float64 array, i.e. an exact binary rational. At ``dps = 40`` (133 bits) each
product of two doubles is exact and each ``mpmath.fdot`` of at most a few hundred such products is
correct to about 10^-38 relative, so after rounding to float64 the reference is the correctly
rounded exact value up to one float64 ulp. Formulas (docs/design.md section 2.2, with
blocks as in :class:`~verified_lora.audit.error_bounds.LayerArrays`)::

    Y    = c (X W^T + b) + s sum_g P_g (X A_g^T B_g^T + 1 bB_g^T)
    dA_g = s B_g^T G_g^T X,   dB_g = s G_g^T (X A_g^T),   dbB_g = s 1^T G_g,   dX = c G W + s sum_g G_g B_g A_g

(``c`` is the base layer's output scale, 1 except for scaled embeddings.)

The lora branch without ``s`` (``Z``) is returned too; it defines the effective scale.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .error_bounds import LayerArrays

__all__ = ["LayerReference", "layer_reference", "effective_scale"]

DPS = 40


@dataclass(frozen=True)
class LayerReference:
    """Reference values rounded to float64 (``Y``, ``Z``, ``base`` are ``N x d_out`` over flattened tokens)."""

    Y: np.ndarray
    Z: np.ndarray
    base: np.ndarray
    dX: np.ndarray
    blocks: list  # [{"dA":, "dB":, "dbB":}]
    Z_mp: list  # exact-ish mpf rows of Z (used for the effective scale)
    base_mp: list


def _mp_rows(a: np.ndarray):
    import mpmath

    return [[mpmath.mpf(float(v)) for v in row] for row in np.asarray(a, dtype=np.float64)]


def _mm(a, b_cols):
    """``a`` as rows, ``b_cols`` as columns (i.e. rows of b^T): returns rows of ``a @ b``."""
    import mpmath

    return [[mpmath.fdot(row, col) for col in b_cols] for row in a]


def _t(rows):
    return [list(c) for c in zip(*rows)] if rows else rows


def _to_f(rows, shape) -> np.ndarray:
    return np.array([[float(v) for v in row] for row in rows], dtype=np.float64).reshape(shape)


def layer_reference(layer: LayerArrays, x: np.ndarray, g: np.ndarray | None = None) -> LayerReference:
    """Reference forward (and, with cotangent ``g``, gradients) of ``layer`` at input ``x`` (..., d_in)."""
    import mpmath

    X = np.asarray(x, dtype=np.float64).reshape(-1, x.shape[-1])
    N = X.shape[0]
    with mpmath.workdps(DPS):
        s = mpmath.mpf(float(layer.s))
        Xr = _mp_rows(X)
        Wr = _mp_rows(layer.W)  # rows of W = columns of W^T
        base = _mm(Xr, Wr)
        if layer.bias is not None:
            for row in base:
                for j, bj in enumerate(layer.bias):
                    row[j] += mpmath.mpf(float(bj))
        c = mpmath.mpf(float(layer.c))
        if layer.c != 1.0:
            base = [[c * v for v in row] for row in base]
        d_out = layer.W.shape[0]
        Z = [[mpmath.mpf(0)] * d_out for _ in range(N)]
        H = []
        for rows, a, b, bb in layer.blocks:
            Ar, Br = _mp_rows(a), _mp_rows(b)
            h = _mm(Xr, Ar)  # N x r
            H.append(h)
            zb = _mm(h, Br)  # N x m
            for n in range(N):
                for i, j in enumerate(rows):
                    Z[n][j] += zb[n][i] + (mpmath.mpf(float(bb[i])) if bb is not None else 0)
        Y = [[base[n][j] + s * Z[n][j] for j in range(d_out)] for n in range(N)]
        out_blocks = []
        dX = None
        if g is not None:
            G = _mp_rows(np.asarray(g, dtype=np.float64).reshape(N, d_out))
            Gt = _t(G)  # d_out x N
            Wt_cols = _t(Wr)  # columns of W = rows of W^T
            dX = [[c * v for v in row] for row in _mm(G, Wt_cols)]  # c G @ W
            for (rows, a, b, bb), h in zip(layer.blocks, H):
                Ar, Br = _mp_rows(a), _mp_rows(b)
                Ggt = [Gt[j] for j in rows]  # m x N  (G_g^T)
                # dA = s B^T G_g^T X: (r x m)(m x N)(N x d_in)
                BtG = _mm(_t(Br), _t(Ggt))  # r x N
                dA = [[s * v for v in row] for row in _mm(BtG, _t(Xr))]
                dB = [[s * v for v in row] for row in _mm(Ggt, _t(h))]  # (m x N)(N x r)
                dbB = None
                if bb is not None:
                    dbB = [s * mpmath.fsum(row) for row in Ggt]
                GB = _mm(_t(Ggt), _t(Br))  # N x r  (G_g B_g)
                GBA = _mm(GB, _t(Ar))  # N x d_in
                for n in range(N):
                    for i in range(len(dX[n])):
                        dX[n][i] += s * GBA[n][i]
                out_blocks.append({
                    "dA": _to_f(dA, a.shape), "dB": _to_f(dB, b.shape),
                    "dbB": None if dbB is None else np.array([float(v) for v in dbB]),
                })
        return LayerReference(
            Y=_to_f(Y, (N, d_out)), Z=_to_f(Z, (N, d_out)), base=_to_f(base, (N, d_out)),
            dX=None if dX is None else _to_f(dX, X.shape), blocks=out_blocks, Z_mp=Z, base_mp=base,
        )


def effective_scale(ref: LayerReference, y_impl: np.ndarray) -> float:
    """Least-squares ``s_eff = <Y_impl - base, Z> / <Z, Z>`` evaluated in mpmath (exact inputs)."""
    import mpmath

    Y = np.asarray(y_impl, dtype=np.float64).reshape(ref.Y.shape)
    with mpmath.workdps(DPS):
        num = mpmath.mpf(0)
        den = mpmath.mpf(0)
        for n, row in enumerate(ref.Z_mp):
            for j, z in enumerate(row):
                num += (mpmath.mpf(float(Y[n, j])) - ref.base_mp[n][j]) * z
                den += z * z
        return float(num / den) if den != 0 else float("nan")
