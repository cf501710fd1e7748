r"""Per-row moments of the run's ``pi~`` from a cheap proxy polynomial ``P^`` (low degree, small rank).

The a-posteriori lemmas (:mod:`.aposteriori`, :mod:`.adapter_chain`) and the per-row rounding refinement
(:mod:`.rounding_bound`) need, per query row ``i``, moments of key-side columns under the run's approximate
softmax ``pi~_il = P(S^_il) / D_i``. Forming them with ``P`` itself costs a pass at the run's rank ``k``
with about a hundred columns (as much as the run). Here they are formed once with ``P^`` (the least minimax
degree whose certified ``eps_A <= 1e-2``: rank 495 at ``d = 8``) and transferred to ``pi~`` by the lemma
below, so the certificate's moment pass costs ``O((L + L_k) k^ cols)``; the planner shares the same pass.

Notation, row ``i`` fixed: ``S^_l`` the scores of the core's own projections (``beta <P^_i, K^_l>``, both
polynomials are evaluated at these same points), ``pi^_l = P^(S^_l) / D^_i``, ``E^``, ``sd^`` the mean and
standard deviation under ``pi^``, ``E~``, ``sd~`` under ``pi~``. ``e``, ``e^`` are certified relative errors
of ``P`` and ``P^`` against ``exp`` on an interval that contains every ``S^_l`` of the row (the plan's
``[-R, R]``, or the row's own radius of :mod:`.row_radii`); no score perturbation ``sigma`` enters, both are
evaluated at ``S^``; ``e, e^ < 1``.

**(P0) density ratio.** ``P(S^_l) = e^{S^_l} (1 + theta_l)``, ``P^(S^_l) = e^{S^_l} (1 + theta^_l)``,
``|theta_l| <= e``, ``|theta^_l| <= e^``, so ``t_l = pi~_l / pi^_l = (D^_i / D_i) (1 + theta_l) / (1 + theta^_l)``
and ``T_hi / T_lo <= (1 + e)(1 + e^) / ((1 - e)(1 - e^)) =: 1 + eta`` (``T_hi``, ``T_lo`` the max and min of
``t`` over the keys). ``E^ t = sum_l pi~_l = 1``, so ``T_lo <= 1 <= T_hi``, hence ``T_hi <= (1 + eta) T_lo
<= 1 + eta`` and ``T_hi - T_lo <= eta T_lo <= eta``. When ``P^ = P`` (same coefficients), ``t = 1``: ``eta = 0``.

**(P1) nonnegative means.** For ``G >= 0``: ``E~ G = E^[t G] <= T_hi E^ G <= (1 + eta) E^ G``.

**(P2) variances.** ``Var~ F = min_c E~(F - c)^2 <= E~(F - E^F)^2 <= (1 + eta) Var^ F`` ((P1) with
``G = (F - E^F)^2``); so ``sd~ F <= sqrt(1 + eta) sd^ F``.

**(P3) means (Popoviciu).** ``E~F - E^F = E^[(t - 1) F] = Cov^(t, F)`` (``E^ t = 1``), so by Cauchy-Schwarz
``|E~F - E^F| <= sd^(t) sd^(F)``, and ``t`` lies in ``[T_lo, T_hi]``, so ``sd^(t) <= (T_hi - T_lo) / 2 <= eta / 2``
(Popoviciu): ``|E~F - E^F| <= (eta / 2) sd^ F``.

**(P4) normaliser.** ``D_i = sum_l e^{S^_l} (1 + theta_l) >= (1 - e) / (1 + e^) sum_l e^{S^_l} (1 + theta^_l)
= (1 - e) / (1 + e^) D^_i``.

**Floating point.** The proxy moments are computed by :func:`.aposteriori.row_moments` (the pass the
run's own moments used) at the proxy's rank, depth and blocks: ``|m^ - m| <= e_rel (column max)`` with
``e_rel`` of :func:`.rounding_bound.normaliser_rounding` for ``P^`` (its ``A0``, ``amin``, ``gamma_F``), and the
computed normaliser within ``gamma_F L_k A0`` of ``D^_i``. Every bound the lemmas consume is first formed
for ``pi^`` from the computed moments and their errors (as before), then transferred, rounded up:
standard deviations by (P2) (``sd~(V_j)``, ``sd~(K_b)``, ``sd~(X_V,a)``, ``sd~(<c^, V>)``, ``sd~(K A^T)``,
``sd~(V A^T)``), second moments by (P1) (``E~[K_b^2]``, ``E~[X^2]``, ``E~[(X B)^2]``, ``E~[(K A^T)^2]``),
first moments by (P3) (``E~V`` hence ``|c~| = |E~V - Y_i|``, ``E~X_V``), and ``D_i`` by (P4). ``c~`` is the
run's own residual: it is bounded through ``E~V`` by (P3), never taken from the proxy.

Algebraic steps machine-checked: verified_lora/proofs/fast_proxy_moments.py, certificates fast-proxy-p0-ratio,
fast-proxy-p1-p2, fast-proxy-p3-means.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np

from .._xp import to_numpy
from ..bounds import _approx_api as api
from ..bounds import _rigorous as rg
from ..bounds.degenerate import TINY_R, taylor_tiny_errors
from ..errors import CertificationError

__all__ = ["PROXY_EPS", "ProxyMoments", "proxy_polynomial", "build_proxy", "eta", "item_moments", "rounding_rows",
           "moment_block"]

PROXY_EPS = 1e-2
"""The proxy is the least minimax degree whose certified ``eps_A`` on ``[-R, R]`` is at most this."""
PROXY_FAMILY = "minimax"
MAX_PROXY_DEGREE = 40
MOMENT_BLOCK = 1024
"""The least rows per block of the proxy's moment pass (:func:`moment_block`)."""

U = rg.U


@dataclass(frozen=True)
class ProxyMoments:
    """The proxy polynomial (exact ``coeffs``, certified ``eps_A`` on ``[-R, R]``), its rank and blocks,
    the per-item moments (:func:`.aposteriori.row_moments`), their error ``e_rel`` and the normaliser's ``d_err``."""

    coeffs: tuple
    degree: int
    eps_A: float
    R: float
    rank: int
    block: int
    moments: list
    e_rel: float
    d_err: float


def proxy_polynomial(R: float, max_degree: int = MAX_PROXY_DEGREE) -> tuple[int, tuple, float] | None:
    """``(degree, coeffs, eps_A)`` of the least :data:`PROXY_FAMILY` degree with certified ``eps_A <=``
    :data:`PROXY_EPS` on ``[-R, R]`` (``None`` up to ``max_degree``, at most :data:`MAX_PROXY_DEGREE`: a proxy
    of higher degree than the run it serves saves nothing); degrees every polynomial misses (the
    any-polynomial lower bound) are skipped without a Remez run."""
    top = min(int(max_degree), MAX_PROXY_DEGREE)
    if R <= TINY_R:  # closed-form Taylor certificate (bounds/degenerate.py): no branch-and-bound at tiny R
        for g in range(1, top + 1):
            eps_A, _eps_D = taylor_tiny_errors(g, R)
            if eps_A <= PROXY_EPS:
                return g, tuple(Fraction(1, math.factorial(t)) for t in range(g + 1)), float(eps_A)
        return None
    # a proved lower bound above PROXY_EPS at the top degree rules out every degree (a polynomial of lower
    # degree is one of that degree too): one evaluation instead of forty at huge R
    if top < 1 or api.any_polynomial_lower(top, R) > PROXY_EPS:
        return None
    g = 1
    while g <= top and api.any_polynomial_lower(g, R) > PROXY_EPS:
        g += 1
    while g <= top:
        try:
            cert = api.certify(PROXY_FAMILY, g, R)
        except CertificationError:
            cert = None
        if cert is not None and cert.eps_A <= PROXY_EPS:
            return g, tuple(cert.polynomial.coeffs), float(cert.eps_A)
        g += 1
    return None


def item_moments(problem: Any, coeffs, block: int | None = None) -> list[dict[str, np.ndarray]]:
    """Per batch item, the moments under the normalised ``coeffs`` kernel on the core's own projections."""
    from .. import features as F
    from .blocks import block_for
    from .adapter_chain import moment_extra
    from .aposteriori import row_moments
    from .rounding_bound import balance_scale, effective_weight_f64

    xp = problem.xp
    g = len(coeffs) - 1
    w = F.query_weights(list(coeffs), problem.beta, problem.d_head)
    block = block_for(problem, int(w.shape[0]), "factored", block)
    W = {key: effective_weight_f64(problem, key, xp) for key in "QKV"}
    out = []
    for x_q, x_k, x_v, _y in problem.items():
        P, K, V = (xp.asarray(x, dtype=np.float64) @ W[key] for x, key in ((x_q, "Q"), (x_k, "K"), (x_v, "V")))
        extra = moment_extra(problem, x_k, x_v, K, V, xp)   # [X_K, X_V, X B, K A^T, V A^T] (adapter_chain.py)
        mo = row_moments(P, K, V, w, g, block=block, xp=xp, scale=balance_scale(P, K), extra=extra, cross=True,
                         lin=xp.asarray(x_v, dtype=np.float64))
        out.append({k: np.asarray(to_numpy(v)) for k, v in mo.items()})
    return out


def moment_block(k: int, d_v: int, rows: int, gpu: bool = False) -> int:
    """Rows per block of the proxy's moment pass: at least :data:`MOMENT_BLOCK` (when the feature buffer of that
    many rows stays within :data:`verified_lora.fast.SMALL_BLOCK_BYTES`), else the core's rule
    (:func:`verified_lora.fast.default_block_size`, with its GPU rule when ``gpu``).

    The block enters the moments' rounding bound ``e_rel`` (depth ``block + rows / block``,
    :func:`.rounding_bound.normaliser_rounding`), which is about ``1e-12`` and invisible in the certificate
    (measured at ``d = 4``, ``L = 65536``: ``e_rel`` 9.4e-13 with 256-row blocks, 1.9e-12 with 1024, every
    certified bound the same to five digits), while at the proxy's small rank each block costs more in Python
    and thin-GEMM overhead than in arithmetic (the pass took 0.19 s CPU with 256-row blocks, 0.10 s with 1024)."""
    from .blocks import SMALL_BLOCK_BYTES, default_block_size

    return max(default_block_size(k, d_v, "factored", rows=rows, gpu=gpu),
               min(MOMENT_BLOCK, default_block_size(k, d_v, "factored", budget=SMALL_BLOCK_BYTES)))


def build_proxy(problem: Any, R: float, max_degree: int = MAX_PROXY_DEGREE) -> ProxyMoments | None:
    """The proxy polynomial at the score bound ``R`` and its moments (one pass per call); ``None`` when no
    proxy of degree ``<= max_degree`` is certifiable or its moment pass has no finite rounding bound (the
    certificate then uses the a-priori bounds only)."""
    from .._xp import is_cupy_array
    from .rounding_bound import normaliser_rounding

    pp = proxy_polynomial(R, max_degree)
    if pp is None:
        return None
    g, coeffs, eps_A = pp
    from .. import features as F

    k = int(F.query_weights(list(coeffs), problem.beta, problem.d_head).shape[0])
    L, Lk, dv = problem.L, problem.L_k, problem.d_v
    block = moment_block(k, dv, max(L, Lk), gpu=is_cupy_array(problem.x_q))
    nr = normaliser_rounding(coeffs, "factored", eps_A, R, k, L, Lk, dv, block)
    if not math.isfinite(nr.e_rel):
        return None
    d_err = float(rg.mul_up(nr.gF, rg.mul_up(float(Lk), nr.A0)))
    return ProxyMoments(coeffs, g, eps_A, float(R), k, block, item_moments(problem, coeffs, block), nr.e_rel, d_err)


def same_polynomial(proxy: ProxyMoments, coeffs) -> bool:
    """True when the run's polynomial is the proxy itself ((P0): ``eta = 0``)."""
    from fractions import Fraction

    return len(coeffs) == len(proxy.coeffs) and all(Fraction(a) == Fraction(b) for a, b in zip(coeffs, proxy.coeffs))


def eta(e: Any, e_hat: Any) -> Any:
    """``(1 + e)(1 + e^) / ((1 - e)(1 - e^)) - 1`` rounded up ((P0)); ``inf`` unless ``e, e^ < 1``."""
    e = np.asarray(e, dtype=np.float64)
    eh = np.asarray(e_hat, dtype=np.float64)
    num = rg.mul_up(rg.add_up(1.0, e), rg.add_up(1.0, eh))
    den = rg.down(rg.down(1.0 - e) * rg.down(1.0 - eh))
    out = rg.up(rg.div_up(num, np.where(den > 0, den, 1.0)) - 1.0)
    return np.where((e < 1) & (eh < 1) & (den > 0), out, np.inf)


def rounding_rows(proxy: ProxyMoments, items: tuple, e_run: float, same: bool) -> list[dict[str, np.ndarray]]:
    """Per item, the per-row bounds :func:`.rounding_bound.rounding_bound` takes (``cabs >= |E~V - Y_i|``,
    ``fvabs >= |E~V|``, ``D_lo <= D_i``), from the proxy's moments by (P3), (P4) with the plan-wide errors
    ``e_run``, ``proxy.eps_A`` (``same``: the run's polynomial is the proxy, ``eta = 0``)."""
    from .aposteriori import _sd_up

    et = 0.0 if same else float(eta(e_run, proxy.eps_A))
    ratio = 1.0 if same else float(rg.down(rg.down(1.0 - e_run) / float(rg.up(1.0 + proxy.eps_A))))
    out = []
    for mo, it in zip(proxy.moments, items):
        vmax = rg.col_max(it["Vm"])
        ev = rg.mul_up(proxy.e_rel, vmax)[None, :]
        ev2 = rg.mul_up(proxy.e_rel, rg.mul_up(vmax, vmax))[None, :]
        merr = ev if same else rg.add_up_nn(ev, rg.scale_up(0.5 * et, _sd_up(mo["v1"], mo["v2"], ev, ev2)))  # (P3)
        cabs = np.abs(mo["v1"] - it["y"])   # |fl(v1 - Y)| + merr: 2 operations, one inflation (_rigorous 4.)
        cabs += merr
        cabs = rg.inflate_inplace(cabs, 2, 0)
        fvabs = rg.add_up_nn(np.abs(mo["v1"]), merr)
        dhat = rg.down(np.asarray(mo["D"], dtype=np.float64) - proxy.d_err)            # <= D^_i
        d_lo = dhat if same else rg.down(dhat * ratio)                                     # (P4)
        out.append({"cabs": cabs, "fvabs": fvabs, "D_lo": d_lo})
    return out
