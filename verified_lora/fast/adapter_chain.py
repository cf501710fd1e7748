r"""Step (2) of the certificate for the adapter gradients themselves, row by row: the chain through ``|X B|``.

:mod:`.aposteriori` bounds the weight-gradient difference ``dG_mu = G_fac,mu - G_hyb,mu`` entrywise;
the chain rule ``dA = s B^T G``, ``dB = s G A^T`` then gives ``|s| |B|^T |dG|`` and ``|s| |dG| |A|^T``,
which ignores every cancellation inside ``B^T X^T`` and ``K A^T``. Here the adapter factors are moved
*inside* the per-row lemmas, at ``O(L d r)`` plus ``4 r`` more moment columns (``r`` the adapter rank).
Notation as in :mod:`.aposteriori` (row ``i``, ``delta``, ``delta1 = delta / 2``, ``zeta``,
``rowQ_s,i = delta1 S2 + (delta + delta1^2) (C1 + delta1 S2)``, ``rowK_i`` (its min with ``rowQ_s,i + zeta C1_i``),
``Delta``, ``c``); ``s`` the adapter scale, ``A`` (``r x d_out``) and
``B`` (``d_model x r``) the adapter factors, ``K = K^``, ``V = V^``, ``P = P^`` the core's projections.

**(AQ) ``dA_Q``.** ``dG_Q = beta X_Q^T E`` with ``E_ib = sum_l (p_il^fac - p_il) K_lb``, ``|E_ib| <= rowQ_ib``,
so ``d(dA_Q) = s beta (X_Q B)^T E`` and ``|d(dA_Q)_rb| <= |s| |beta| sum_i |(X_Q B)_ir| rowQ_ib``.
``|X_Q B| <= |fl(X_Q B)| + gamma_{d_model} |X_Q| |B|`` (Higham (3.13)). Since
``|X_Q B| <= |X_Q| |B|`` entrywise, this is never above ``|s| |B|^T |dG_Q|`` (up to the factor ``1 + 2 gamma_{d_model}``
of the computed ``|X_Q B|``).

**(BQ) ``dB_Q``.** ``d(dB_Q) = s beta X_Q^T (E A^T)`` and ``(E A^T)_ir = sum_l (p_il^fac - p_il) u_lr``
with the key-side column ``u = K A^T``. The (GQ) lemmas of :mod:`.aposteriori` hold for any key-side
column in place of ``K_b`` (they use only its ``pi~`` spread and second moment), so
``|(E A^T)_ir| <= rowQ_s,i sd~_i(u_r) + zeta C1_i sqrt(E~_i[u_r^2])`` (``zeta`` term: "factored" only), and
``|d(dB_Q)_ar| <= |s| |beta| sum_i |X_Q,ia| (that)``. The moments of ``u``: ``E~u = (E~K) A^T`` exactly;
``E~[u~^2]`` is a moment column of the computed ``u~ = fl(K A^T)``, ``|u~ - u| <= eu = gamma_d max_l (|K| |A|^T)``
per column, so ``sd~(u) <= sd~(u~) + eu`` and ``sqrt(E~u^2) <= sqrt(E~u~^2) + eu`` (Minkowski under ``pi~``);
both are also capped by ``sum_b |A_rb| sk_b`` and ``sum_b |A_rb| sqrt(E~K_b^2)`` (``sd~`` is a seminorm).

**(AK) ``dA_K``.** ``dG_K = beta X_K^T F``, ``F_lb = sum_i (p_il^fac - p_il) P_ib``, and the signed key-side sum
``|sum_l w_l (p_il^fac - p_il)| <= sqrt(E~_i[w^2]) rowK_i`` for *any* key-side weights ``w``: by (GK)
(``sum_l |w_l| |p_il^fac - p_il|`` with the unreduced ``rowK_i``, Cauchy-Schwarz under ``pi~_i``, as for ``w = |X_K,a|``)
and by (GQ) with the key-side column ``w`` (``rowQ_s,i sd~(w) + zeta C1_i sqrt(E~w^2)``); the min bounds only the
signed sum, which is all the chain needs. With ``w = (X_K B)_r``:
``|d(dA_K)_rb| <= |s| |beta| sum_i |P_ib| rowK_i sqrt(E~_i[(X_K B)_r^2])``; the root mean square of the exact
``X_K B`` is at most that of ``fl(X_K B)`` plus ``gamma_{d_model} max_l (|X_K| |B|)_lr``, and at most
``sum_a |B_ar| sqrt(E~[X_K,a^2])`` and ``max_l (|X_K| |B|)_lr``.

**(BK) ``dB_K``.** ``(dG_K A^T)_ar = beta sum_i (P A^T)_ir sum_l X_K,la (p_il^fac - p_il)``, so
``|d(dB_K)_ar| <= |s| |beta| sum_i xk_ia rowK_i |(P A^T)_ir|`` (query side, no moment needed);
``|P^ A^T| <= |fl(P' A^T)| + gamma_d |P'| |A|^T + 2 E_P |A|^T`` for any float evaluation ``P'`` of
``X_Q W^`` (:mod:`.rounding_bound`: ``|P' - P|, |P^ - P| <= E_P``), capped by ``|P^| |A|^T``.

**(AV) ``dA_V``.** ``d(dA_V) = s (X_V B)^T Z`` with ``Z_lj = sum_i (pi~_il c~_ij - pi_il c_ij)``; (GV) with the
key-side column ``w = (X_V B)_r``: ``|d(dA_V)_rj| <= |s| sum_i (|E~_i w| |Delta_ij| + delta1 sd~_i(w) |c_ij|)``, with
``|E~ w| = |E~[X_V] B| <= |fl(x1 B)| + gamma |x1| |B| + e1 |B|`` (``x1`` the computed first moments, within ``e1``),
``sd~(w) <= sum_a |B_ar| sd~(X_V,a)``, both capped by ``sqrt(E~_i[w^2])`` (the form used without first moments).

**(BV) ``dB_V``.** ``(Z A^T)_lr = sum_i (pi~_il c~'_ir - pi_il c'_ir)`` with ``c' = c A^T``, the residual of the
value column ``u = V A^T`` against ``Y A^T``: (A1) gives ``|Delta'_ir| <= delta1 sd~_i(u_r)`` and
``|c'_ir| <= |c~'_ir| + |Delta'_ir|``, so ``|d(dB_V)_ar| <= |s| sum_i (|E~_i X_V,a| delta1 sd~_i(u_r)
+ sd~_i(X_V,a) delta1 (|c~'_ir| + delta1 sd~_i(u_r)))`` (both factors ``<= xv_ia`` without first moments).
``c~' = (E~V - Y_i) A^T`` is formed from ``fl(v1 - Y)`` (``|c~ - fl(v1 - Y)| <= e_v + 2u |fl(v1 - Y)|``) and
rounded outward like ``u`` above; capped by ``|c~| |A|^T``.

Every float step is rounded upward (:mod:`verified_lora.bounds._rigorous`); the computed moments of
``u~^2`` carry the error ``e_rel`` (column max of ``u~^2``) of the moment pass (:mod:`.rounding_bound`'s
``normaliser_rounding`` for the proxy polynomial). The moments are a cheap proxy's (:mod:`.proxy_moments`):
each spread, root mean square and first moment above is formed for the proxy and transferred to ``pi~`` by
(P1)-(P3) there (``it["eta"]``), as in :mod:`.aposteriori`. A batch averages
the item bounds. Nothing here is used unless the moments carry the extra columns of
:func:`moment_extra` (the certificate falls back to the chain ``|s| |B|^T |dG|``).

Algebraic steps machine-checked: verified_lora/proofs/fast_adapter_chain.py, certificates fast-chain-q,
fast-chain-k, fast-chain-v.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._xp import to_numpy
from ..bounds import _rigorous as rg
from .aposteriori import _c, _row_terms, _sd_up, item_scalars, item_x_rms, item_xv_mean_sd, pi_sd, pi_second, row_k_p

__all__ = ["extra_layout", "moment_extra", "adapter_bounds"]

U = rg.U


def extra_layout(problem: Any) -> list[tuple[str, int]]:
    """Names and widths of the key-side moment columns whose squares :func:`row_moments` forms."""
    dm = int(problem.d_model)
    out = [("XK", dm), ("XV", dm)]
    for key in problem.adapted:
        r = int(problem.adapters[key].r)
        out += {"Q": [("KA_Q", r)], "K": [("XB_K", r)], "V": [("XB_V", r), ("VA_V", r)]}[key]
    return out


def moment_extra(problem: Any, x_k: Any, x_v: Any, K: Any, V: Any, xp: Any) -> Any:
    """The ``L_k x m`` key-side columns of :func:`extra_layout` (float64), for ``row_moments(extra=...)``."""
    f = np.float64
    xk, xv = xp.asarray(x_k, dtype=f), xp.asarray(x_v, dtype=f)
    cols = [xk, xv]
    for name, _w in extra_layout(problem)[2:]:
        ad = problem.adapters[name[-1]]
        a, b = xp.asarray(ad.a, dtype=f), xp.asarray(ad.b, dtype=f)
        cols.append({"KA_Q": lambda: K @ a.T, "XB_K": lambda: xk @ b, "XB_V": lambda: xv @ b,
                     "VA_V": lambda: V @ a.T}[name]())
    return xp.concatenate(cols, axis=1)


def _slices(problem: Any, width: int) -> dict[str, slice] | None:
    out, o = {}, 0
    for name, w in extra_layout(problem):
        out[name] = slice(o, o + w)
        o += w
    return out if o == width else None


def _abs_product(x: np.ndarray, m: np.ndarray) -> np.ndarray:
    """Entrywise upper bound of ``|x m|`` (exact product): ``|fl(x m)| + gamma_n |x| |m|``, in round to nearest
    with one inflation (``_rigorous`` 2., 4.: depth ``n + 2``, the ``n`` products of ``|x| |m|`` only summed and
    scaled by ``gamma_n <= 1``)."""
    n = x.shape[-1]
    t = rg.mm(np.abs(x), np.abs(m))
    t *= rg.gamma(n)
    t += np.abs(rg.mm(x, m))
    return rg.inflate_inplace(t, n + 2)


def _moment_bound(m2: np.ndarray, cmax_fl: np.ndarray, e_rel: float) -> tuple[np.ndarray, np.ndarray]:
    """``(upper bound of E~[u~^2], its two-sided error e2)`` from the computed moment of ``fl(u~^2)``."""
    c2 = rg.mul_up(1 + 4 * U, rg.mul_up(e_rel, rg.mul_up(cmax_fl, cmax_fl)))[None, :]
    e2 = np.abs(m2)                  # 4u |m2| + c2: 2 operations (_rigorous 4.)
    e2 *= 4 * U
    e2 += c2
    e2 = rg.inflate_inplace(e2, 2)
    return rg.add_up_nn(np.maximum(m2, 0.0), e2), e2


def _rms_weights(m2: np.ndarray, xmag: np.ndarray, b: np.ndarray, x_row: np.ndarray, e_rel: float,
                 tr: dict | None = None) -> np.ndarray:
    """Per row, an upper bound of ``sqrt(E~[(X B)_r^2])`` for the exact ``X B`` (module docstring (AK))."""
    cap = rg.col_max(rg.matmul_up(xmag, np.abs(b)))                # >= max_l |(X B)_lr|
    eu = rg.mul_up(rg.gamma(b.shape[0]), cap)
    cfl = rg.add_up(cap, eu)                                             # >= max |fl(X B)|
    up2, _ = _moment_bound(m2, cfl, e_rel)
    rms = rg.add_up_nn(rg.sqrt_up(pi_second(up2, tr)), eu[None, :])
    return np.minimum(np.minimum(rms, rg.matmul_up(x_row, np.abs(b))), cap[None, :])


def _sd_key_column(m1_src: np.ndarray, e1_src: np.ndarray, mag: np.ndarray, a: np.ndarray, m2: np.ndarray,
                   e_rel: float, tr: dict | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(sd~(u), sqrt(E~u^2))`` upper bounds per row for ``u = M A^T`` (``M`` the key-side matrix with
    moments ``m1_src`` within ``e1_src`` and magnitude bound ``mag``), from the moment column of ``fl(u)^2``."""
    aa = np.abs(a)
    n = a.shape[1]
    cap = rg.col_max(rg.matmul_up(mag, aa.T))                       # >= max_l |u_lr|
    eu = rg.mul_up(rg.gamma(n), cap)                                     # >= |fl(u) - u|
    cfl = rg.add_up(cap, eu)
    m1 = rg.mm(m1_src, a.T)
    # e1_src |A|^T + gamma_n |m1_src| |A|^T + eu in round to nearest: depth n + 3, 2n products, each only summed
    # or scaled by gamma_n <= 1 (_rigorous 2., 4.); a row e1_src gives the same row for every query row
    e1 = rg.mm(np.abs(m1_src), aa.T)
    e1 *= rg.gamma(n)
    e1 += e1_src @ aa.T
    e1 += eu[None, :]
    e1 = rg.inflate_inplace(e1, n + 3, 2 * n + 2)
    up2, e2 = _moment_bound(m2, cfl, e_rel)
    sd = rg.add_up_nn(pi_sd(_sd_up(m1, m2, e1, e2), tr), eu[None, :])
    rms = rg.add_up_nn(rg.sqrt_up(pi_second(up2, tr)), eu[None, :])
    return sd, np.minimum(rms, cap[None, :])


def adapter_bounds(problem: Any, items: list[dict[str, Any]], method: str, eps_A: float, eps_D: float | None,
                   eps_A_in: float, e_rel: float) -> dict[str, np.ndarray]:
    """Entrywise step-(2) bounds per adapter gradient (``"A_Q"``, ...), the factor ``|s|`` included
    (module docstring); ``{}`` when the moments lack the :func:`moment_extra` columns.

    ``items`` as for :func:`.aposteriori.aposteriori_weight_bounds`.
    """
    from .rounding_bound import _proj

    beta = abs(float(problem.beta))
    acc: dict[str, np.ndarray] = {}
    for it in items:
        mo = it["moments"]
        x2 = mo.get("x2")
        sl = None if x2 is None else _slices(problem, x2.shape[1])
        if sl is None:
            return {}
        delta, delta1, zeta, dp1 = item_scalars(it, method, eps_A, eps_D, eps_A_in)
        t = _row_terms(it, method, delta, delta1, zeta, dp1, e_rel)
        xq, xk, xv, Pm = it["x_q"], it["x_k"], it["x_v"], it["Pm"]
        tr = t["tr"]
        xk_row, xv_row = item_x_rms(it, e_rel, tr)

        def col(m: np.ndarray, s: slice) -> np.ndarray:
            # a contiguous copy of the moment columns: each of the dozen elementwise passes over them is then about
            # 7 times faster than over the strided view (65536 x 4 of a 24-wide array: 0.08 ms against 0.57)
            return np.ascontiguousarray(m[:, s])
        out: dict[str, np.ndarray] = {}
        for key in problem.adapted:
            ad = problem.adapters[key]
            a = np.asarray(to_numpy(ad.a), dtype=np.float64)
            b = np.asarray(to_numpy(ad.b), dtype=np.float64)
            if key == "Q":
                out["A_Q"] = rg.scale_up(beta, rg.matmul_up(_abs_product(xq, b).T, t["rowQ"]))
                su, ru = _sd_key_column(mo["k1"], t["ek"][None, :], it["Km"], a, col(x2, sl["KA_Q"]), e_rel, tr)
                su = np.minimum(su, rg.matmul_up(t["sk"], np.abs(a).T))
                rq = rg.mul_up_nn(t["rowQ_s"][:, None], su)
                if method == "factored":
                    rq = rg.add_up_nn(rq, rg.mul_up_nn(rg.mul_up_nn(_c(zeta), t["C1"][:, None]), ru))
                out["B_Q"] = rg.scale_up(beta, rg.matmul_up(np.abs(xq).T, rq))
            elif key == "K":
                w = _rms_weights(col(x2, sl["XB_K"]), np.abs(xk), b, xk_row, e_rel, tr)
                out["A_K"] = rg.scale_up(beta, rg.matmul_up(w.T, row_k_p(t, Pm)))
                EP, Pv = it.get("EP"), it.get("Pv")
                if EP is None or Pv is None:
                    _mag, EP, Pv = _proj(problem, xq, "Q")
                # |fl(P' A^T)| + gamma_d |P'| |A|^T + 2 E_P |A|^T in round to nearest: depth d + 4, 3 d products
                # (2 E_P counted twice), each only summed or scaled by gamma_d <= 1 (_rigorous 2., 4.)
                aT = np.abs(a).T
                PA = rg.mm(np.abs(Pv), aT)
                PA *= rg.gamma(a.shape[1])
                PA += np.abs(rg.mm(Pv, a.T))
                PAe = rg.mm(EP, aT)
                PA += PAe
                PA += PAe
                PA = rg.inflate_inplace(PA, a.shape[1] + 4, 3 * a.shape[1] + 2)
                PA = np.minimum(PA, rg.matmul_up(Pm, aT))
                out["B_K"] = rg.scale_up(beta, rg.matmul_up(xk_row.T, rg.mul_up_nn(t["rowK"][:, None], PA)))
            else:
                w = _rms_weights(col(x2, sl["XB_V"]), np.abs(xv), b, xv_row, e_rel, tr)
                ms = item_xv_mean_sd(it, xv_row, e_rel, tr)
                if ms is not None:  # (AV) with |E~(X_V B)_r| on Delta and sd~((X_V B)_r) on c
                    bb = np.abs(b)
                    wm = rg.add_up_nn(_abs_product(mo["x1"], b), rg.matmul_up(ms[2], bb))
                    wm = np.minimum(wm, w)
                    ws = np.minimum(rg.matmul_up(ms[1], bb), w)
                    out["A_V"] = rg.add_up_nn(rg.matmul_up(wm.T, t["Delta"]), rg.matmul_up(ws.T, t["d1cex"]))
                else:
                    out["A_V"] = rg.matmul_up(w.T, rg.add_up_nn(t["Delta"], t["d1cex"]))
                su, _ru = _sd_key_column(mo["v1"], t["ev"][None, :], it["Vm"], a, col(x2, sl["VA_V"]), e_rel, tr)
                su = np.minimum(su, rg.matmul_up(t["sd"], np.abs(a).T))
                cd = mo["v1"] - it["y"]
                ec = np.abs(cd)                   # 2u |fl(v1 - Y)| + evr: 2 operations (_rigorous 4.)
                ec *= 2 * U
                ec += t["evr"]
                ec = rg.inflate_inplace(ec, 2)                                            # >= |c~ - fl(v1 - Y)|
                ct = rg.add_up_nn(_abs_product(cd, a.T), rg.matmul_up(ec, np.abs(a).T))
                ct = np.minimum(ct, rg.matmul_up(t["cabs"], np.abs(a).T))        # >= |c~ A^T|
                d1su = rg.mul_up_nn(_c(delta1), su)
                if ms is not None:  # (BV) with |E~X_V,a| on Delta' and sd~(X_V,a) on c'
                    out["B_V"] = rg.add_up_nn(rg.matmul_up(ms[0].T, d1su),
                                              rg.matmul_up(ms[1].T, rg.mul_up_nn(_c(delta1), rg.add_up_nn(ct, d1su))))
                else:
                    term = rg.mul_up_nn(_c(delta1), rg.add_up_nn(rg.mul_up_nn(su, rg.add_up_nn(1.0, _c(delta1))), ct))
                    out["B_V"] = rg.matmul_up(xv_row.T, term)
        for name, m in out.items():
            acc[name] = m if name not in acc else rg.add_up(acc[name], m)
    n = problem.n_batch
    return {name: rg.mul_up(float(rg.inflate(abs(problem.scale(name[-1])), 3)),
                            rg.div_up(m, float(n)) if n > 1 else m) for name, m in acc.items()}
