r"""A-posteriori approximation bound from per-row moments under the approximate softmax ``pi~``.

Step (2) of :mod:`.rounding_bound` (``G_fac(P^, K^, V^)`` against ``G_hyb``) bounded from quantities
the fast path can form in ``O((L + L_k) k (d + d_v))``: for every query row ``i`` the moments of
``V`` and ``K`` under ``pi~_i`` (``pi~_il = P(S^_il) / D_i``), from the key-side product
``Phi_V^T [V, V o V, K, K o K, X_K o X_K, X_V o X_V, (more squared columns), V_j V_j' (j < j'), 1]``
contracted with ``Phi_U`` (:func:`row_moments`; the squared adapter columns of :mod:`.adapter_chain`).
Each row may use its own ``eps`` (:mod:`.row_radii`): every lemma below is per row.

Notation, row ``i`` fixed: ``pi`` the exact softmax of ``S``, ``pi~`` the approximate one;
``E~``, ``sd~`` the mean and standard deviation under ``pi~``; ``sd_j = sd~(V_j)``,
``sk_b = sd~(K_b)``, ``mk2_b = E~[K_b^2]``; ``c = pi V - Y_i`` (exact), ``c~ = pi~ V - Y_i``,
``Delta = c~ - c``; ``h_l = <c, V_l - pi V>``, ``h~_l = <c~, V_l - pi~ V>``.

**(A0) density ratio.** ``pi_l / pi~_l = abar / a_l`` with ``a_l = P(S^_l) e^{-S_l}`` in
``[1 - e, 1 + e]`` (``e = eps_A'``, the score-perturbed error) and ``abar`` a ``pi``-average of them,
so ``|pi_l / pi~_l - 1| <= delta = 2e / (1 - e)`` (the ratio ``r_l = pi_l / pi~_l`` lies in
``[abar / (1 + e), abar / (1 - e)]``, an interval of length ``2e abar / (1 - e^2) <= delta`` that contains 1,
because ``E~ r = sum_l pi_l = 1``).

**(A1) means (Popoviciu).** For any ``F`` with ``F' = F - E~F``: ``E_pi F - E~F = sum_l pi~_l (r_l - 1) F'_l
= Cov~(r, F)`` (``E~ r = 1``), so ``|E_pi F - E~ F| <= sd~(r) sd~(F)`` (Cauchy-Schwarz) and, by Popoviciu's
inequality (a variable in ``[m, M]`` has variance ``<= (M - m)^2 / 4``),
``sd~(r) <= e abar / (1 - e^2) <= e / (1 - e) =: delta1 = delta / 2`` (``abar <= 1 + e``). Hence
``|E_pi F - E~ F| <= delta1 sd~(F)`` and ``|Delta_j| <= delta1 sd_j``.

**(A2) covariances.** ``Cov_pi(F, G) = E_pi[F'G'] - E_pi[F'] E_pi[G']``; the first term moves by
``|sum_l pi~_l (r_l - 1) F'_l G'_l| <= delta E~|F'G'| <= delta sd~(F) sd~(G)`` ((A0) entrywise), the second
is ``<= delta1^2 sd~(F) sd~(G)`` by (A1), so ``|Cov_pi(F, G) - Cov~(F, G)| <= (delta + delta1^2) sd~(F) sd~(G)``.

**(GQ, paper).** ``sum_l p_l K_l = Cov_pi(<c, V>, K)`` and ``sum_l p~_l K_l = Cov~(<c~, V>, K)``, so

    |sum_l (p~_l - p_l) K_lb| <= |Cov~(<Delta, V>, K_b)| + |Cov~(<c, V>, K_b) - Cov_pi(<c, V>, K_b)|
                              <= sk_b [ sd~(<Delta, V>) + (delta + delta1^2) sd~(<c, V>) ]
                              <= sk_b [ delta1 S2 + (delta + delta1^2) (C1 + delta1 S2) ]  =: sk_b rowQ_s,i =: rowQ_ib

with ``S2 = sum_j sd_j^2`` and ``C1 >= sd~(<c~, V>)`` ((C1) below): ``sd~`` is a seminorm, so
``sd~(<Delta, V>) <= sum_j |Delta_j| sd_j <= delta1 S2`` and ``sd~(<c, V>) <= sd~(<c~, V>) + sd~(<Delta, V>)``.

**(C1) the spread of ``<c~, V>``.** Two upper bounds of ``sd~(<c~, V>)``, the smaller is used:
``sum_j |c~_j| sd_j`` (triangle inequality), and ``sqrt(c~^T Cov~(V) c~)`` itself, formed from the cross
moments ``E~[V_j V_j']`` (:func:`row_moments` with ``cross=True``, ``d_v (d_v - 1) / 2`` more columns):
with ``c^ = fl(E~V^ - Y_i)``, ``sd~(<c~, V>) <= sd~(<c^, V>) + sum_j |c~_j - c^_j| sd_j`` and
``Var~(<c^, V>) = c^T E~[V V^T] c^ - (c^ . E~V)^2``, each moment within its computed error
(:func:`_sd_quadratic`). On the benchmark problems the first is 1.8 to 3.4 times the second.

**(GQ, factored).** ``p^fac_l = pi~_l (1 + zeta_l) h~_l`` with ``1 + zeta_l = P'(S^_l) / P(S^_l)``,
``|zeta_l| <= zeta = (eps_A + eps_D) / (1 - eps_A)`` (both at the same point ``S^``), so
``|sum_l (p^fac_l - p~_l) K_lb| <= zeta E~|h~ K_b| <= zeta sd~(<c~, V>) sqrt(mk2_b) <= zeta C1 sqrt(mk2_b)``,
added to (GQ, paper).

**(GQ, antiderivative).** ``method="antiderivative"`` back-propagates through the features of ``Q``, ``Q' = P``
(:mod:`verified_lora.fast`): ``grad_u sum_l Q(beta <u, K_l>) w_l = beta sum_l P(beta <u, K_l>) w_l K_l`` (and
likewise in ``K_l``), so in exact arithmetic its ``p_l`` is ``pi~_l h~_l = p~_l``, the paper's: ``zeta = 0``, no
``eps_D`` anywhere in its bounds (certificate fast-antiderivative-gradient); its rounding is in :mod:`.rounding_bound`.

**(GK).** Entrywise ``|p~_l - p_l| = pi~_l |h~_l - (pi_l / pi~_l) h_l| <= pi~_l (|h~_l - h_l| + delta |h_l|)`` with
``h~_l - h_l = <Delta, V_l - pi~ V> - <c, Delta>``, ``|h_l| <= sum_j |c_j| (|V_lj - E~V_j| + |Delta_j|)``;
weighting row ``l`` by ``|X_K,la|``, Cauchy-Schwarz under ``pi~_i`` gives
``sum_l pi~_il |X_K,la| |V_lj - E~V_j| <= xk_ia sd_j`` and ``sum_l pi~_il |X_K,la| <= xk_ia`` with
``xk_ia = sqrt(E~_i[X_K,a^2])`` (a per-row moment, capped by ``max_l |X_K,la|``), so
``sum_l |X_K,la| |sum_i (p~_il - p_il) P_ib| <= sum_i xk_ia |P_ib| rowK_i``,
``rowK_i = sum_j [|Delta_j| (sd_j + |c_j|) + delta |c_j| (sd_j + |Delta_j|)]``; factored adds
``zeta C1`` (``sum_l pi~_l |X_K,la| |h~_l| <= xk_ia sqrt(E~[h~^2])`` and ``E~[h~^2] = Var~(<c~, V>)``). The signed sum
``T_ia = sum_l X_K,la (p~_il - p_il)`` is also a (GQ) sum with the key-side column ``X_K,a`` in place of
``K_b``, so ``|T_ia| <= rowQ_s,i sd~(X_K,a) + zeta C1_i sqrt(E~[X_K,a^2]) <= xk_ia (rowQ_s,i + zeta C1_i)``;
``dG_K,ab = beta sum_i P_ib T_ia``, so ``rowK_i`` is replaced by ``min(rowK_i, rowQ_s,i + zeta C1_i)``.

**(GV).** ``f~^T c~ - f^T c = sum_i pi~_il (Delta_i + (1 - pi_il / pi~_il) c_i)``, so
``sum_l X_V,la (f~^T c~ - f^T c)_lj = sum_i [Delta_ij E~_i X_V,a + c_ij (E~_i X_V,a - E_pi,i X_V,a)]`` and, by (A1),
``|dG_V,aj| <= sum_i (|E~_i X_V,a| |Delta_ij| + delta1 sd~_i(X_V,a) |c_ij|)``; both factors are at most
``xv_ia = sqrt(E~_i[X_V,a^2])`` (capped by ``max_l |X_V,la|``), which is used when the first moments ``E~[X_V]``
(:func:`row_moments` with ``lin``) are not formed. With zero-mean inputs ``|E~_i X_V,a|`` is far below ``xv_ia``.

**Proxy moments.** The certificate forms these moments with a cheap proxy polynomial ``P^``, not with ``P``
(:mod:`.proxy_moments`): every bound above is first formed for the proxy's ``pi^`` from its computed moments,
then transferred to ``pi~`` per row by (P1)-(P3) there (``sd~ <= sqrt(1 + eta) sd^``, ``E~G <= (1 + eta) E^G``
for ``G >= 0``, ``|E~F - E^F| <= (eta / 2) sd^F``; :func:`transfer`, :func:`pi_sd`, :func:`pi_second`,
:func:`pi_mean_err`), with ``eta`` of the row (``it["eta"]``); ``c~`` is the run's residual, bounded through
``E~V``. Without ``it["eta"]`` the moments are the run's own (``eta = 0``).

**Floating point.** The moments are computed in float64 with the running-error bound of
:mod:`.rounding_bound` (``|m^ - m| <= e_rel * (column max)``, ``e_rel = 2 delta_D / (1 - delta_D) + 4u``;
``+ 2u`` would not do for ``delta_D > 1/3``); a second moment is of the computed squares ``fl(x^2)``, so its
error against ``E~[x^2]`` is ``e2 = (e_rel (1 + 4u) + 2u) max^2`` (``fl(x^2) = x^2 (1 + theta)``, ``|theta| <= u``);
``sd`` is taken as ``sqrt(max(0, m2^ - m1^2 + err))`` rounded up, every quantity above is rounded
upward, and ``|c~| <= |c~^| + err``. Entries of ``X``, ``P^``, ``K^``, ``V^`` enter through the
enclosure magnitudes of :mod:`.rounding_bound`.

Algebraic steps machine-checked: verified_lora/proofs/fast_aposteriori_moments.py, fast_aposteriori_gradients.py,
certificates fast-a0-density-ratio, fast-a1-means, fast-a2-covariances, fast-moment-rounding, fast-gq-paper,
fast-c1-spread, fast-gq-factored, fast-gk, fast-gv; fast_antiderivative.py, fast-antiderivative-gradient.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..bounds import _rigorous as rg
from .chunked import tmatmul

__all__ = ["row_moments", "aposteriori_weight_bounds"]

U = rg.U


def row_moments(P: Any, Kmat: Any, Vmat: Any, weights: Any, g: int, *, block: int, xp: Any,
                scale: float = 1.0, extra: Any = None, cross: bool = False, lin: Any = None) -> dict[str, Any]:
    """Float64 moments under ``pi~`` per query row: ``D``, ``E~V``, ``E~V^2``, ``E~K``, ``E~K^2``
    and, when ``extra`` (``L_k x m`` key-side columns, e.g. ``[X_K, X_V]``) is given, ``E~[extra^2]`` (``"x2"``);
    with ``cross``, ``E~[V_j V_j']`` for ``j < j'`` (``"vv"``, columns in ``numpy.triu_indices(d_v, 1)`` order);
    with ``lin`` (``L_k x m'`` key-side columns, e.g. ``X_V``), their first moments ``E~[lin]`` (``"x1"``).

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
    iu, ju = np.triu_indices(dv, 1) if cross else (np.zeros(0, dtype=int), np.zeros(0, dtype=int))
    nl = 0 if lin is None else int(lin.shape[1])
    m += iu.size + nl
    cols = 2 * dv + 2 * d + m + 1
    H = xp.zeros((k, cols), dtype=np.float64)
    buf = xp.empty((k, min(block, max(L, Lk))), dtype=np.float64)
    for j0 in range(0, Lk, block):
        j1 = min(Lk, j0 + block)
        M = F.monomials_t(KT[:, j0:j1], g, out=buf[:, :j1 - j0])
        V, K = Vmat[j0:j1], Kmat[j0:j1]
        parts = [V, V * V, K, K * K] + ([] if extra is None else [extra[j0:j1] * extra[j0:j1]])
        if iu.size:
            parts.append(V[:, iu] * V[:, ju])
        if nl:
            parts.append(lin[j0:j1])
        H += M @ xp.concatenate(parts + [xp.ones((j1 - j0, 1))], axis=1)
    Hw = w * H
    x0, x1 = 2 * dv + 2 * d, cols - 1 - iu.size - nl
    spans = {"v1": (0, dv), "v2": (dv, 2 * dv), "k1": (2 * dv, 2 * dv + d), "k2": (2 * dv + d, x0), "x2": (x0, x1)}
    if iu.size:
        spans["vv"] = (x1, x1 + iu.size)
    if nl:
        spans["x1"] = (cols - 1 - nl, cols - 1)
    # one contiguous array per moment (the certificate makes dozens of elementwise passes over each), copied from
    # each block of `out` while it is in cache (copying strided column slices of the whole L x cols array afterwards
    # cost more than the pass itself). Measured at d = 4, L = 65536: with `out` as the staging array the certificate
    # that follows takes 12.9k page faults, 29k when the blocks are divided straight into the moment arrays (glibc's
    # dynamic mmap and trim thresholds depend on what was allocated and freed): 0.25 s CPU against 0.29-0.31.
    out = xp.empty((L, cols), dtype=np.float64)
    res = {name: xp.empty((L, b - a), dtype=np.float64) for name, (a, b) in spans.items()}
    res["D"] = xp.empty(L, dtype=np.float64)
    for i0 in range(0, L, block):
        i1 = min(L, i0 + block)
        M = F.monomials_t(PT[:, i0:i1], g, out=buf[:, :i1 - i0])
        O = tmatmul(M, Hw)                     # chunked like the core (rounding depth, fast/chunked.py)
        ob = out[i0:i1]
        xp.divide(O[:, :cols - 1], O[:, cols - 1:], out=ob[:, :cols - 1])
        ob[:, cols - 1] = O[:, cols - 1]
        for name, (a, b) in spans.items():
            res[name][i0:i1] = ob[:, a:b]
        res["D"][i0:i1] = ob[:, cols - 1]
    return res


def _sd_up(m1: np.ndarray, m2: np.ndarray, e1: np.ndarray, e2: np.ndarray) -> np.ndarray:
    """Upper bound of ``sqrt(m2 - m1^2)`` for exact moments within ``e1``, ``e2`` of the floats ``m1``, ``m2``.

    ``m1^2 >= m1^^2 - 2 |m1^| e1``, so ``m2 - m1^2 <= (m2^ - m1^^2) + e2 + 2 |m1^| e1``; the float
    evaluation of ``m2^ - m1^^2`` is off by at most ``4u (|m2^| + m1^^2)``. The non-negative part
    ``T = e2 + 2 |m1^| e1 + 4u (|m2^| + fl(m1^^2))`` is evaluated in round to nearest (at most 6 operations on a
    path, 4 products counting the twice-added one, each only added or scaled by ``4u`` afterwards) and raised once by :func:`~verified_lora.bounds._rigorous.inflate`
    (``_rigorous`` 4.); then ``fl(fl(m2^ - fl(m1^^2)) + T^)`` is rounded up.
    """
    sq = m1 * m1
    a = np.abs(m1)
    a *= e1
    t = np.abs(m2)
    t += sq
    t *= 4 * U
    t += a
    t += a
    t += e2
    var = m2 - sq
    var += rg.inflate_inplace(t, 6)
    # the exact bound is <= the float above fl(var); where fl(var) < 0 that is <= 0 and the sd is 0, so
    # clamping first and then raising a non-negative array (_rigorous 3.) is an upper bound of max(0, .)
    np.maximum(var, 0.0, out=var)
    return rg.sqrt_up(rg.up_nn(var))


def _sd_quadratic(mo: dict, y: np.ndarray, vmax: np.ndarray, ev: np.ndarray, ev2: np.ndarray, sd: np.ndarray,
                  e_rel: float, evr: Any = None, tr: dict | None = None) -> np.ndarray:
    """Per row, an upper bound of ``sd~(<c~, V>) = sqrt(c~^T Cov~(V) c~)`` (module docstring, (C1)).

    ``c^ = fl(v1 - Y)`` with ``|c~ - c^| <= ec = evr + 2u |c^|`` (``evr >= |E~V - v1|``, default ``ev``);
    ``sd~(<c~, V>) <= sd~(<c^, V>) + sum_j ec_j sd_j``;
    ``Var(<c^, V>) = c^T M2 c^ - (c^ . m)^2`` with ``M2 = E[V V^T]`` (diagonal ``v2``, off-diagonal ``vv``, each
    within ``E2`` of the exact) and ``m = E V`` (within ``ev`` of ``v1``): ``<= fl(c^T M2^ c^) + gamma_{d_v^2 + 2}
    |c^|^T |M2^| |c^| + |c^|^T E2 |c^| - max(0, |fl(c^ . v1)| - gamma_{d_v} |c^| . |v1| - |c^| . ev)^2``, under the
    distribution whose moments ``mo`` are (a proxy's, :mod:`.proxy_moments`: then ``sd~ <= sqrt(1 + eta) sd^``, (P2)).
    """
    L, dv = mo["v1"].shape
    iu, ju = np.triu_indices(dv, 1)
    vv_max = rg.mul_up(vmax[:, None], vmax[None, :])
    E2 = rg.mul_up(rg.add_up(rg.mul_up(e_rel, 1 + 4 * U), 2 * U), vv_max)     # cross moments: e_rel and the product
    E2[np.arange(dv), np.arange(dv)] = np.maximum(ev2, E2[np.arange(dv), np.arange(dv)])
    ch = mo["v1"] - y
    ca = np.abs(ch)
    # c^T M2 c = sum_j c_j^2 v2_j + 2 sum_{j<j'} c_j c_j' vv_jj' (the symmetric form, no d_v x d_v matrix per row):
    # at most 2 + d_v + d_v (d_v - 1) / 2 <= d_v^2 + 2 roundings per term, any order
    c2, a2 = ch * ch, ca * ca
    q = rg.row_dot(c2, mo["v2"])
    qa = rg.row_dot(a2, np.abs(mo["v2"]))
    qe = rg.mm(a2, np.diagonal(E2).copy())
    if iu.size:
        cp = ch[:, iu] * ch[:, ju]
        q += 2.0 * rg.row_dot(cp, mo["vv"])
        np.abs(cp, out=cp)
        qa += 2.0 * rg.row_dot(cp, np.abs(mo["vv"]))
        qe += 2.0 * rg.mm(cp, E2[iu, ju])
    n = dv * dv + 2                                   # products per term plus any summation order of dv^2 terms
    var = rg.add_up(rg.add_up(q, rg.mul_up(rg.inflate_inplace(qa, n, 2 * n), rg.gamma(n))), rg.inflate_inplace(qe, n, 2 * n))
    mean = np.abs(rg.row_dot(ch, mo["v1"]))
    mean_err = rg.add_up(rg.mul_up(rg.gamma(dv), rg.inflate_inplace(rg.row_dot(ca, np.abs(mo["v1"])), dv)),
                         rg.inflate_inplace(rg.mm(ca, ev), dv))
    low = np.maximum(rg.down(mean - mean_err), 0.0)
    var = rg.up(var - rg.down(low * low))
    # sum_j ec_j sd_j with ec = evr + 2u |c^|: round to nearest, one inflation (_rigorous 4.: 2 + d_v operations
    # on any path, products only added afterwards)
    ec = rg.scale_up(2 * U, ca)
    ec += ev[None, :] if evr is None else evr
    esd = rg.inflate_inplace(rg.row_dot(ec, sd), dv + 2, 2 * dv + 2)
    sq = rg.sqrt_up(np.maximum(var, 0.0))
    if tr is not None:
        sq = rg.mul_up_nn(tr["s"][:, 0], sq)
    return rg.add_up_nn(sq, esd)


def transfer(it: dict) -> dict | None:
    """The factors of :mod:`.proxy_moments` (P1)-(P3) for an item whose moments are a proxy's (``it["eta"]``,
    ``(L,)``): ``s >= sqrt(1 + eta)``, ``one >= 1 + eta``, ``half >= eta / 2`` as columns; ``None`` for the
    run's own moments (``eta = 0``, nothing to transfer)."""
    eta = it.get("eta")
    if eta is None:
        return None
    eta = np.asarray(eta, dtype=np.float64)
    one = rg.add_up_nn(1.0, eta)
    return {"s": _c(rg.sqrt_up(one)), "one": _c(one), "half": _c(0.5 * eta)}


def pi_sd(sd_hat: Any, tr: dict | None) -> Any:
    """``sd~ <= sqrt(1 + eta) sd^`` (:mod:`.proxy_moments` (P2)), up."""
    return sd_hat if tr is None else rg.mul_up_nn(tr["s"], sd_hat)


def pi_second(m2_up: Any, tr: dict | None) -> Any:
    """``E~[G] <= (1 + eta) E^[G]`` for ``G >= 0`` (:mod:`.proxy_moments` (P1)), up."""
    return m2_up if tr is None else rg.mul_up_nn(tr["one"], m2_up)


def pi_mean_err(e1: Any, sd_hat: Any, tr: dict | None) -> Any:
    """``|E~F - m^| <= e1 + (eta / 2) sd^(F)`` when ``|E^F - m^| <= e1`` (:mod:`.proxy_moments` (P3)), up."""
    return e1 if tr is None else rg.add_up_nn(e1, rg.mul_up_nn(tr["half"], sd_hat))


def xv_mean_sd(mo: dict, xk: np.ndarray, xv: np.ndarray, xv_row: np.ndarray,
               e_rel: float, tr: dict | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Per row, upper bounds of ``|E~[X_V,a]|`` and ``sd~(X_V,a)`` (``L x d_model``), each capped by ``xv_row``
    (``>= sqrt(E~[X_V,a^2])``), and of ``|E~[X_V,a] - x1_a|``; ``None`` without the first moments (``"x1"``).
    The first moment is within ``e_rel max|X_V,a|`` of the computed one; the second as in :func:`_x_rms`
    (plus ``4u`` of itself); proxy moments are transferred by ``tr`` (:func:`transfer`)."""
    x1, x2 = mo.get("x1"), mo.get("x2")
    nk, nv = xk.shape[1], xv.shape[1]
    if x1 is None or x1.shape[1] != nv or x2 is None or x2.shape[1] < nk + nv:
        return None
    xmax = rg.col_max(np.abs(xv))
    e1 = rg.mul_up(e_rel, xmax)[None, :]
    m2 = x2[:, nk:nk + nv]
    e2 = np.abs(m2)                      # 4u |m2| + (column term): 2 operations (_rigorous 4.)
    e2 *= 4 * U
    e2 += rg.mul_up(1 + 4 * U, rg.mul_up(e_rel, rg.mul_up(xmax, xmax)))[None, :]
    e2 = rg.inflate_inplace(e2, 2)
    sdh = _sd_up(x1, m2, e1, e2)
    e1r = np.broadcast_to(pi_mean_err(e1, sdh, tr), x1.shape)
    mean = np.minimum(rg.add_up_nn(np.abs(x1), e1r), xv_row)
    return mean, np.minimum(pi_sd(sdh, tr), xv_row), e1r


def _x_rms(mo: dict, xk: np.ndarray, xv: np.ndarray, e_rel: float,
           tr: dict | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per query row, upper bounds of ``sqrt(E~[X_K,a^2])`` and ``sqrt(E~[X_V,a^2])`` (``L x d_model``).

    ``E~[x^2]`` is a computed moment of the computed squares ``fl(x^2) = x^2 (1 + theta)``: the exact
    moment is ``<= (m^ + e_rel max fl(x^2)) / (1 - u) <= (m^ + e_rel max|x|^2)(1 + 4u)``. Each is capped by the global ``max |x|`` (the
    bound without moments), which is also used when the moments lack the ``"x2"`` columns.
    """
    L = mo["D"].shape[0]
    kmax, vmax = rg.col_max(np.abs(xk)), rg.col_max(np.abs(xv))
    x2 = mo.get("x2")
    if x2 is None or x2.shape[1] < xk.shape[1] + xv.shape[1]:
        return np.broadcast_to(kmax, (L, kmax.size)), np.broadcast_to(vmax, (L, vmax.size))
    x2 = x2[:, :xk.shape[1] + xv.shape[1]]   # [X_K, X_V] come first (fast/adapter_chain.py extra_layout)
    cmax = np.concatenate([kmax, vmax])
    sq = np.maximum(x2, 0.0)             # (max(m^, 0) + column term)(1 + 4u): 2 operations (_rigorous 4.)
    sq += rg.mul_up(e_rel, rg.mul_up(cmax, cmax))[None, :]
    sq *= 1 + 4 * U
    sq = pi_second(rg.inflate_inplace(sq, 2), tr)
    r = np.minimum(rg.sqrt_up(sq), cmax[None, :])
    return r[:, :kmax.size], r[:, kmax.size:]


def col_max(it: dict, name: str) -> np.ndarray:
    """``max_l it[name][l, :]`` (a column max of a non-negative magnitude array), memoised in the item."""
    key = ("_colmax", name)
    if key not in it:
        it[key] = rg.col_max(it[name])
    return it[key]


def item_x_rms(it: dict, e_rel: float, tr: dict | None) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_x_rms` of one batch item, memoised in the item (weight and adapter bounds share it)."""
    key = ("_x_rms", e_rel)
    if key not in it:
        it[key] = _x_rms(it["moments"], it["x_k"], it["x_v"], e_rel, tr)
    return it[key]


def item_xv_mean_sd(it: dict, xv_row: np.ndarray, e_rel: float, tr: dict | None) -> Any:
    """:func:`xv_mean_sd` of one batch item, memoised in the item."""
    key = ("_xv_mean_sd", e_rel)
    if key not in it:
        it[key] = xv_mean_sd(it["moments"], it["x_k"], it["x_v"], xv_row, e_rel, tr)
    return it[key]


def _c(x: Any) -> np.ndarray:
    """A per-row scalar (a float or an ``(L,)`` vector) as a column that broadcasts against ``L x n``."""
    return np.asarray(x, dtype=np.float64)[..., None]


def _scalars(method: str, eps_A: Any, eps_D: Any, eps_A_in: Any) -> tuple[Any, Any, Any, Any]:
    """``(delta, delta1, zeta, delta + delta1^2)`` rounded up (module docstring, (A0)-(A2), (GQ, factored);
    ``zeta = 0`` for "paper" and "antiderivative", (GQ, antiderivative));
    floats, or ``(L,)`` vectors for per-row errors (:mod:`.row_radii`)."""
    e = np.asarray(eps_A_in, dtype=np.float64)
    if not np.all(e < 1):
        raise ValueError("eps_A' must be < 1")
    one_m = rg.down(1.0 - e)
    delta = rg.div_up(rg.mul_up(2.0, e), one_m)
    delta1 = rg.div_up(e, one_m)
    zeta = np.zeros_like(e)
    if method == "factored":
        ea = np.asarray(eps_A, dtype=np.float64)
        zeta = rg.div_up(rg.add_up(ea, eps_D), rg.down(1.0 - ea))
    return delta, delta1, zeta, rg.add_up(delta, rg.mul_up(delta1, delta1))


def item_scalars(it: dict, method: str, eps_A: float, eps_D: float | None, eps_A_in: float) -> tuple[Any, ...]:
    """:func:`_scalars` of one batch item: per row when the item carries ``"row_eps"`` (:mod:`.row_radii`)."""
    key = ("_scalars", method, eps_A, eps_D, eps_A_in)
    if key not in it:  # memoised per item, so that :func:`_row_terms` recognises the same scalars
        r = it.get("row_eps")
        it[key] = (_scalars(method, eps_A, eps_D, eps_A_in) if r is None
                   else _scalars(method, r["eps_A"], r["eps_D"], r["eps_A_in"]))
    return it[key]


def _row_terms(it: dict, method: str, delta: Any, delta1: Any, zeta: Any, dp1: Any,
               e_rel: float) -> dict[str, Any]:
    """The per-row quantities of the module docstring for one batch item (all upper bounds); from a proxy's
    moments (``it["eta"]``) through :mod:`.proxy_moments` (P1)-(P3). ``ev``, ``ek`` (columns) bound the
    computed moments' own errors, ``evr`` (``L x d_v``) bounds ``|E~V - v1|``."""
    key, args = ("_row_terms", method, e_rel), (delta, delta1, zeta, dp1)
    hit = it.get(key)
    if hit is not None and all(a is b for a, b in zip(hit[0], args)):
        return hit[1]  # memoised per item (same scalar objects): the weight and the adapter bounds share these terms
    y, mo = it["y"], it["moments"]
    tr = transfer(it)
    vmax, kmax = col_max(it, "Vm"), col_max(it, "Km")
    ev = rg.mul_up(e_rel, vmax)                       # per column
    # second moments are of the computed squares: |m^ - E~[fl(x^2)]| <= e_rel max fl(x^2) <= e_rel (1 + u) max^2
    # and |E~[fl(x^2)] - E~[x^2]| <= u max^2, so e2 = (e_rel (1 + 4u) + 2u) max^2 (as for the cross moments)
    e2f = rg.add_up(rg.mul_up(e_rel, 1 + 4 * U), 2 * U)
    ev2 = rg.mul_up(e2f, rg.mul_up(vmax, vmax))
    ek = rg.mul_up(e_rel, kmax)
    ek2 = rg.mul_up(e2f, rg.mul_up(kmax, kmax))
    dv = ev.size
    sd_h = _sd_up(mo["v1"], mo["v2"], ev[None, :], ev2[None, :])
    sd = pi_sd(sd_h, tr)
    sk = pi_sd(_sd_up(mo["k1"], mo["k2"], ek[None, :], ek2[None, :]), tr)
    mk2 = rg.add_up(mo["k2"], ek2[None, :])
    np.maximum(mk2, 0.0, out=mk2)                      # an upper bound of E^[K^2] >= 0
    mk2 = pi_second(mk2, tr)
    evr = np.broadcast_to(pi_mean_err(ev[None, :], sd_h, tr), mo["v1"].shape)   # >= |E~V - v1|
    # |c~| <= |E~V - Y| + evr: |fl(v1 - Y)| + evr in round to nearest, 2 operations (_rigorous 4.)
    cabs = np.abs(mo["v1"] - y)
    cabs += evr
    cabs = rg.inflate_inplace(cabs, 2, 0)
    Delta = rg.mul_up_nn(_c(delta1), sd)               # >= |Delta| (A1)
    cex = rg.add_up_nn(cabs, Delta)                    # >= |c|
    # row sums of products of floats (each product only added): one inflation, depth d_v + 1 (_rigorous 2., 4.)
    S2 = rg.inflate_inplace(rg.row_dot(sd, sd), dv + 1, 2 * dv)
    C1 = rg.inflate_inplace(rg.row_dot(cabs, sd), dv + 1, 2 * dv)
    if "vv" in mo:                                     # >= sd~(<c~, V>) from the covariance (module docstring)
        C1 = np.minimum(C1, _sd_quadratic(mo, y, vmax, ev, ev2, sd, e_rel, evr, tr))
    # rowQ_s = delta1 S2 + dp1 (C1 + delta1 S2): t = fl(delta1 S2) is multiplied by dp1 (maybe > 1), so it is
    # rounded up first; the rest is 3 operations (_rigorous 4.)
    t = rg.mul_up_nn(delta1, S2)
    rowQ_s = rg.inflate_inplace(t + dp1 * (C1 + t), 3)
    rowQ = rg.mul_up_nn(rowQ_s[:, None], sk)
    # rowK = sum_j [Delta_j (sd_j + cex_j) + (delta cex_j)(sd_j + Delta_j)]: delta cex rounded up first, then
    # 5 + d_v operations on a path, 2 d_v products each only added (_rigorous 4.)
    cd = rg.mul_up_nn(_c(delta), cex)
    a = sd + cex
    a *= Delta
    b = sd + Delta
    b *= cd
    a += b
    rowK = rg.inflate_inplace(rg.mm(a, np.ones(dv)), dv + 5, 2 * dv)
    rowK = np.minimum(rowK, rowQ_s)                    # (GK): the signed sum is a (GQ) sum too
    if method == "factored":
        rowQ = rg.add_up_nn(rowQ, rg.mul_up_nn(rg.mul_up_nn(_c(zeta), C1[:, None]), rg.sqrt_up(mk2)))
        rowK = rg.add_up_nn(rowK, rg.mul_up_nn(zeta, C1))
    d1cex = rg.mul_up_nn(_c(delta1), cex)              # delta1 |c|, shared by (GV) and (AV)
    out = dict(ev=ev, ek=ek, evr=evr, tr=tr, sd=sd, sk=sk, cabs=cabs, Delta=Delta, cex=cex, C1=C1, rowQ_s=rowQ_s,
               rowQ=rowQ, rowK=rowK, d1cex=d1cex)
    it[key] = (args, out)
    return out


def row_k_p(t: dict, Pm: np.ndarray) -> np.ndarray:
    """``rowK_i |P_ib|`` rounded up (``L x d``), memoised in the row terms ((GK) and the chain's (AK) share it)."""
    if "rowK_P" not in t:
        t["rowK_P"] = rg.mul_up_nn(t["rowK"][:, None], Pm)
    return t["rowK_P"]


def aposteriori_weight_bounds(problem: Any, items: list[dict[str, Any]], method: str, eps_A: float,
                              eps_D: float | None, eps_A_in: float, e_rel: float) -> dict[str, np.ndarray]:
    """Entrywise bounds of step (2) per weight gradient from per-row moments (module docstring).

    ``items``: per batch item, the float64 ``x_q, x_k, x_v, y`` arrays (NumPy), the magnitude
    bounds ``Pm``, ``Km``, ``Vm`` of the projections, and the moments of :func:`row_moments` (NumPy); ``e_rel`` the
    relative (to the column max) error bound of a computed moment.
    """
    acc: dict[str, np.ndarray] = {}
    beta = abs(float(problem.beta))
    for it in items:
        xq, xk, xv, Pm, mo = it["x_q"], it["x_k"], it["x_v"], it["Pm"], it["moments"]
        delta, delta1, zeta, dp1 = item_scalars(it, method, eps_A, eps_D, eps_A_in)
        t = _row_terms(it, method, delta, delta1, zeta, dp1, e_rel)
        gq = rg.scale_up(beta, rg.matmul_up(np.abs(xq).T, t["rowQ"]))
        xk_row, xv_row = item_x_rms(it, e_rel, t["tr"])                  # >= sqrt(E~[X^2]) per row, or the max
        gk = rg.scale_up(beta, rg.matmul_up(xk_row.T, row_k_p(t, Pm)))     # sum_i Xk_ia rowK_i |P_ib|
        ms = item_xv_mean_sd(it, xv_row, e_rel, t["tr"])
        if ms is not None:      # (GV) with |E~X_V,a| on Delta and sd~(X_V,a) on c
            gv = rg.add_up_nn(rg.matmul_up(ms[0].T, t["Delta"]), rg.matmul_up(ms[1].T, t["d1cex"]))
        else:                   # sum_i Xv_ia (|Delta_ij| + delta1 |c_ij|)
            gv = rg.matmul_up(xv_row.T, rg.add_up_nn(t["Delta"], t["d1cex"]))
        for key, m in (("Q", gq), ("K", gk), ("V", gv)):
            acc[key] = m if key not in acc else rg.add_up(acc[key], m)
    n = problem.n_batch
    if n > 1:
        acc = {k: rg.div_up(v, float(n)) for k, v in acc.items()}
    return acc
