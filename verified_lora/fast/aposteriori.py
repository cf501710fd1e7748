r"""A-posteriori approximation bound from per-row moments under the approximate softmax ``pi~``.

Step (2) of :mod:`.rounding_bound` (``G_fac(P^, K^, V^)`` against ``G_hyb``) bounded from quantities
the fast path can form in ``O((L + L_k) k (d + d_v))``: for every query row ``i`` the moments of
``V`` and ``K`` under ``pi~_i`` (``pi~_il = P(S^_il) / D_i``), from the key-side product
``Phi_V^T [V, V o V, K, K o K, X_K o X_K, X_V o X_V, 1]`` contracted with ``Phi_U`` (:func:`row_moments`).

Notation, row ``i`` fixed: ``pi`` the exact softmax of ``S``, ``pi~`` the approximate one;
``E~``, ``sd~`` the mean and standard deviation under ``pi~``; ``sd_j = sd~(V_j)``,
``sk_b = sd~(K_b)``, ``mk2_b = E~[K_b^2]``; ``c = pi V - Y_i`` (exact), ``c~ = pi~ V - Y_i``,
``Delta = c~ - c``; ``h_l = <c, V_l - pi V>``, ``h~_l = <c~, V_l - pi~ V>``.

**(A0) density ratio.** ``pi_l / pi~_l = abar / a_l`` with ``a_l = P(S^_l) e^{-S_l}`` in
``[1 - e, 1 + e]`` (``e = eps_A'``, the score-perturbed error) and ``abar`` a ``pi``-average of them,
so ``|pi_l / pi~_l - 1| <= delta = 2e / (1 - e)``.

**(A1) means.** For any ``F`` with ``F' = F - E~F``: ``E_pi F - E~F = sum_l pi~_l (pi_l / pi~_l - 1) F'_l``,
so ``|E_pi F - E~ F| <= delta E~|F'| <= delta sd~(F)`` (Cauchy-Schwarz). Hence ``|Delta_j| <= delta sd_j``.

**(A2) covariances.** ``Cov_pi(F, G) = E_pi[F'G'] - E_pi[F'] E_pi[G']`` and (A1) give
``|Cov_pi(F, G) - Cov~(F, G)| <= delta (1 + delta) sd~(F) sd~(G)``.

**(GQ, paper).** ``sum_l p_l K_l = Cov_pi(<c, V>, K)`` and ``sum_l p~_l K_l = Cov~(<c~, V>, K)``, so

    |sum_l (p~_l - p_l) K_lb| <= |Cov~(<Delta, V>, K_b)| + |Cov~(<c, V>, K_b) - Cov_pi(<c, V>, K_b)|
                              <= sk_b [ sum_j |Delta_j| sd_j + delta (1 + delta) sum_j |c_j| sd_j ]
                              <= sk_b [ delta S2 + delta (1 + delta) (C1 + delta S2) ]  =: rowQ_ib

with ``S2 = sum_j sd_j^2``, ``C1 = sum_j |c~_j| sd_j`` (``|c_j| <= |c~_j| + |Delta_j|``).

**(GQ, factored).** ``p^fac_l = pi~_l (1 + zeta_l) h~_l`` with ``1 + zeta_l = P'(S^_l) / P(S^_l)``,
``|zeta_l| <= zeta = (eps_A + eps_D) / (1 - eps_A)`` (both at the same point ``S^``), so
``|sum_l (p^fac_l - p~_l) K_lb| <= zeta E~|h~ K_b| <= zeta sd~(<c~, V>) sqrt(mk2_b) <= zeta C1 sqrt(mk2_b)``,
added to (GQ, paper).

**(GK).** Entrywise ``|p~_l - p_l| = pi~_l |h~_l - (pi_l / pi~_l) h_l| <= pi~_l (|h~_l - h_l| + delta |h_l|)`` with
``h~_l - h_l = <Delta, V_l - pi~ V> - <c, Delta>``, ``|h_l| <= sum_j |c_j| (|V_lj - E~V_j| + |Delta_j|)``;
weighting row ``l`` by ``|X_K,la|``, Cauchy-Schwarz under ``pi~_i`` gives
``sum_l pi~_il |X_K,la| |V_lj - E~V_j| <= xk_ia sd_j`` and ``sum_l pi~_il |X_K,la| <= xk_ia`` with
``xk_ia = sqrt(E~_i[X_K,a^2])`` (a per-row moment, capped by ``max_l |X_K,la|``), so
``sum_l |X_K,la| |sum_i (p~_il - p_il) P_ib| <= sum_i xk_ia |P_ib| rowK_i``,
``rowK_i = sum_j [|Delta_j| (sd_j + |c_j|) + delta |c_j| (sd_j + |Delta_j|)]``; factored adds
``zeta sum_j |c~_j| sd_j`` (``|h~_l| <= sum_j |c~_j| |V_lj - E~V_j|``).

**(GV).** ``f~^T c~ - f^T c = sum_i pi~_il (Delta_i + (1 - pi_il / pi~_il) c_i)``, so
``|dG_V,aj| <= sum_i xv_ia (|Delta_ij| + delta |c_ij|)`` with ``xv_ia = sqrt(E~_i[X_V,a^2])
>= sum_l pi~_il |X_V,la|`` (capped by ``max_l |X_V,la|``).

**Floating point.** The moments are computed in float64 with the running-error bound of
:mod:`.rounding_bound` (``|m^ - m| <= e_rel * (column max)``, ``e_rel = 2 delta_D / (1 - delta_D) + 2u``);
``sd`` is taken as ``sqrt(max(0, m2^ - m1^2 + err))`` rounded up, every quantity above is rounded
upward, and ``|c~| <= |c~^| + err``. Entries of ``X``, ``P^``, ``K^``, ``V^`` enter through the
enclosure magnitudes of :mod:`.rounding_bound`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..bounds import _rigorous as rg
from .chunked import tmatmul

__all__ = ["row_moments", "moment_columns", "split_moments", "aposteriori_weight_bounds"]

U = rg.U


def moment_columns(Kmat: Any, Vmat: Any, extra: Any, xp: Any) -> Any:
    """The key-side columns whose means under ``pi~`` the certificate needs besides ``E~V``:
    ``[V o V, K, K o K, extra o extra]`` (``L_k x (d_v + 2 d + m)``, float64; ``extra`` may be ``None``).

    The squares are computed in float64 (``fl(x^2)``); :func:`_x_rms` and :func:`_sd_up` account for that.
    """
    parts = [Vmat * Vmat, Kmat, Kmat * Kmat] + ([] if extra is None else [extra * extra])
    return xp.concatenate(parts, axis=1)


def split_moments(means: Any, D: Any, dv: int, d: int) -> dict[str, Any]:
    """The moment dict from the row means of ``[V] + moment_columns`` (``L x (2 d_v + 2 d + m)``) and ``D~``."""
    return {"v1": means[:, :dv], "v2": means[:, dv:2 * dv], "k1": means[:, 2 * dv:2 * dv + d],
            "k2": means[:, 2 * dv + d:2 * dv + 2 * d], "x2": means[:, 2 * dv + 2 * d:], "D": D}


def row_moments(P: Any, Kmat: Any, Vmat: Any, weights: Any, g: int, *, block: int, xp: Any,
                scale: float = 1.0, extra: Any = None) -> dict[str, Any]:
    """Float64 moments under ``pi~`` per query row: ``D``, ``E~V``, ``E~V^2``, ``E~K``, ``E~K^2``
    and, when ``extra`` (``L_k x m`` key-side columns, e.g. ``[X_K, X_V]``) is given, ``E~[extra^2]`` (``"x2"``).

    The features are built from ``P scale`` and ``K / scale`` (the fast path's exact power-of-two
    balancing, :func:`verified_lora.fast.rounding_bound.balance_scale`); the moments are of ``K`` itself.
    """
    from .. import features as F

    L, d = P.shape
    Lk, dv = Vmat.shape
    w = xp.asarray(weights, dtype=np.float64)[:, None]
    k = int(w.shape[0])
    KT = xp.ascontiguousarray(Kmat.T / scale)
    PT = xp.ascontiguousarray(P.T * scale)
    m = 0 if extra is None else int(extra.shape[1])
    cols = 2 * dv + 2 * d + m + 1
    H = xp.zeros((k, cols), dtype=np.float64)
    buf = xp.empty((k, min(block, max(L, Lk))), dtype=np.float64)
    for j0 in range(0, Lk, block):
        j1 = min(Lk, j0 + block)
        M = F.monomials_t(KT[:, j0:j1], g, out=buf[:, :j1 - j0])
        ex = None if extra is None else extra[j0:j1]
        parts = [Vmat[j0:j1], moment_columns(Kmat[j0:j1], Vmat[j0:j1], ex, xp), xp.ones((j1 - j0, 1))]
        H += M @ xp.concatenate(parts, axis=1)
    Hw = w * H
    out = xp.empty((L, cols), dtype=np.float64)
    for i0 in range(0, L, block):
        i1 = min(L, i0 + block)
        M = F.monomials_t(PT[:, i0:i1], g, out=buf[:, :i1 - i0])
        O = tmatmul(M, Hw)                     # chunked like the core (rounding depth, fast/chunked.py)
        out[i0:i1, :cols - 1] = O[:, :cols - 1] / O[:, cols - 1:]
        out[i0:i1, cols - 1] = O[:, cols - 1]
    return split_moments(out[:, :cols - 1], out[:, -1], dv, d)


def _sd_up(m1: np.ndarray, m2: np.ndarray, e1: np.ndarray, e2: np.ndarray) -> np.ndarray:
    """Upper bound of ``sqrt(m2 - m1^2)`` for exact moments within ``e1``, ``e2`` of the floats ``m1``, ``m2``.

    ``m1^2 >= m1^^2 - 2 |m1^| e1``, so ``m2 - m1^2 <= (m2^ - m1^^2) + e2 + 2 |m1^| e1``; the float
    evaluation of ``m2^ - m1^^2`` is off by at most ``4u (|m2^| + m1^^2)``.
    """
    var = rg.add_up(rg.add_up(rg.up(m2 - m1 * m1), e2),
                    rg.add_up(rg.mul_up(rg.mul_up(2.0, np.abs(m1)), e1),
                              rg.mul_up(4 * U, rg.add_up(np.abs(m2), rg.mul_up(m1, m1)))))
    return rg.sqrt_up(np.maximum(var, 0.0))


def _x_rms(mo: dict, xk: np.ndarray, xv: np.ndarray, e_rel: float) -> tuple[np.ndarray, np.ndarray]:
    """Per query row, upper bounds of ``sqrt(E~[X_K,a^2])`` and ``sqrt(E~[X_V,a^2])`` (``L x d_model``).

    ``E~[x^2]`` is a computed moment of the computed squares ``fl(x^2) = x^2 (1 + theta)``: the exact
    moment is ``<= (m^ + e_rel max fl(x^2)) / (1 - u) <= (m^ + e_rel max|x|^2)(1 + 4u)``. Each is capped by the global ``max |x|`` (the
    bound without moments), which is also used when the moments lack the ``"x2"`` columns.
    """
    L = mo["D"].shape[0]
    kmax, vmax = np.max(np.abs(xk), axis=0), np.max(np.abs(xv), axis=0)
    x2 = mo.get("x2")
    if x2 is None or x2.shape[1] != xk.shape[1] + xv.shape[1]:
        return np.broadcast_to(kmax, (L, kmax.size)), np.broadcast_to(vmax, (L, vmax.size))
    cmax = np.concatenate([kmax, vmax])
    sq = rg.mul_up(rg.add_up(np.maximum(x2, 0.0), rg.mul_up(e_rel, rg.mul_up(cmax, cmax))[None, :]), 1 + 4 * U)
    r = np.minimum(rg.sqrt_up(sq), cmax[None, :])
    return r[:, :kmax.size], r[:, kmax.size:]


def aposteriori_weight_bounds(problem: Any, items: list[dict[str, Any]], method: str, eps_A: float,
                              eps_D: float | None, eps_A_in: float, e_rel: float) -> dict[str, np.ndarray]:
    """Entrywise bounds of step (2) per weight gradient from per-row moments (module docstring).

    ``items``: per batch item, the float64 ``x_q, x_k, x_v, y`` arrays (NumPy), the magnitude
    bounds ``Pm``, ``Km``, ``Vm`` of the projections, and the moments of :func:`row_moments` (NumPy); ``e_rel`` the
    relative (to the column max) error bound of a computed moment.
    """
    e = float(eps_A_in)
    if not e < 1:
        raise ValueError("eps_A' must be < 1")
    delta = float(rg.div_up(rg.mul_up(2.0, e), float(rg.down(1.0 - e))))
    zeta = 0.0
    if method == "factored":
        zeta = float(rg.div_up(rg.add_up(eps_A, eps_D), float(rg.down(1.0 - eps_A))))
    dp1 = float(rg.mul_up(delta, rg.add_up(1.0, delta)))
    acc: dict[str, np.ndarray] = {}
    beta = abs(float(problem.beta))
    for it in items:
        xq, xk, xv, y, Pm, mo = it["x_q"], it["x_k"], it["x_v"], it["y"], it["Pm"], it["moments"]
        vmax = np.max(it["Vm"], axis=0)
        kmax = np.max(it["Km"], axis=0)
        ev = rg.mul_up(e_rel, vmax)                       # per column
        ev2 = rg.mul_up(e_rel, rg.mul_up(vmax, vmax))
        ek = rg.mul_up(e_rel, kmax)
        ek2 = rg.mul_up(e_rel, rg.mul_up(kmax, kmax))
        sd = _sd_up(mo["v1"], mo["v2"], ev[None, :], ev2[None, :])
        sk = _sd_up(mo["k1"], mo["k2"], ek[None, :], ek2[None, :])
        mk2 = rg.add_up(mo["k2"], ek2[None, :])
        cabs = rg.add_up(rg.up(np.abs(mo["v1"] - y) * (1 + 2 * U)), ev[None, :])   # >= |c~|
        Delta = rg.mul_up(delta, sd)                       # >= |Delta| (A1)
        cex = rg.add_up(cabs, Delta)                       # >= |c|
        S2 = rg.sum_up(rg.mul_up(sd, sd), axis=1)
        C1 = rg.sum_up(rg.mul_up(cabs, sd), axis=1)
        rowQ_s = rg.add_up(rg.mul_up(delta, S2), rg.mul_up(dp1, rg.add_up(C1, rg.mul_up(delta, S2))))
        rowQ = rg.mul_up(rowQ_s[:, None], sk)
        rowK = rg.sum_up(rg.add_up(rg.mul_up(Delta, rg.add_up(sd, cex)), rg.mul_up(delta, rg.mul_up(cex, rg.add_up(sd, Delta)))),
                         axis=1)
        if method == "factored":
            rowQ = rg.add_up(rowQ, rg.mul_up(zeta, rg.mul_up(C1[:, None], rg.sqrt_up(mk2))))
            rowK = rg.add_up(rowK, rg.mul_up(zeta, C1))
        gq = rg.mul_up(beta, rg.matmul_up(np.abs(xq).T, rowQ))
        xk_row, xv_row = _x_rms(mo, xk, xv, e_rel)                       # >= sqrt(E~[X^2]) per row, or the max
        gk = rg.mul_up(beta, rg.matmul_up(xk_row.T, rg.mul_up(rowK[:, None], Pm)))   # sum_i Xk_ia rowK_i |P_ib|
        gv = rg.matmul_up(xv_row.T, rg.add_up(Delta, rg.mul_up(delta, cex)))      # sum_i Xv_ia (|Delta_ij| + delta |c_ij|)
        for key, m in (("Q", gq), ("K", gk), ("V", gv)):
            acc[key] = m if key not in acc else rg.add_up(acc[key], m)
    n = problem.n_batch
    if n > 1:
        acc = {k: rg.div_up(v, float(n)) for k, v in acc.items()}
    return acc
