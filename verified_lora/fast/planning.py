"""Choosing the degree by the a-posteriori certificate, not by the a-priori bound.

The a-priori plan (:func:`verified_lora.bounds.plan`) picks the least degree whose *a-priori* bound
meets the target; that bound is orders of magnitude above the certificate the run can issue
afterwards (:mod:`.aposteriori`), so it overshoots by several degrees. Here:

1. the least degree not ruled out for *every* polynomial (the any-polynomial lower bound is
   ``>= 1/2``) is the start;
2. the per-row moments are formed once, with the call's cheap proxy polynomial (the least minimax degree
   whose certified ``eps_A <= 1e-2``, :mod:`.proxy_moments`), the very pass the run's certificate then uses.
   The relative targets use ``max |G~|`` of the fast path at that cheap polynomial as the scale
   (all rows, a few milliseconds: its rank is small), not the row-subsample estimate.
3. for each degree from the start upward and each preferred family (``"factored"``:
   ``"minimax-antiderivative"`` then ``"minimax"``, whose ``F' = P`` keeps ``eps_D`` near ``eps_A``;
   ``"paper"``: ``"minimax"``; those allowed, else the first family given), the certificate the run
   would issue is *predicted* from those moments and the
   certified ``eps`` of that degree (:func:`verified_lora.fast.certificate.run_bounds` with
   ``grads=None``, at the cheap degree, then scaled to each degree by the larger ratio of its eps
   factors ``delta`` and ``zeta``, a screen that must come within ``tol``; a candidate that passes it is
   predicted again directly, ``run_bounds`` at its own eps with the proxy moments, per-row radii
   and adapter chain included: this is the run's own certificate but for the output conversion term):
   relative targets divide by that heuristic scale and aim
   at half of ``tol``, absolute ones at 0.9 ``tol``. The first degree predicted to pass is run; the run is
   then certified (same proxy moments), and :func:`verified_lora.fast.loss_and_grads` raises the
   degree by one step while the certificate fails.

The prediction is a heuristic that only chooses where to start; certificates come from the run.
"""

from __future__ import annotations

import math
from typing import Any

from ..bounds import _approx_api as api
from ..bounds.cost import cost_ratio, exact_flops, fast_flops, paper_rank, rank
from ..bounds.planner import Plan
from ..errors import CertificationError

__all__ = ["plan_for_degree", "choose_plan", "pay_cap"]


def pay_cap(problem: Any, method: str, model: Any, max_degree: int) -> int:
    """The largest degree ``<= max_degree`` whose rank still costs less than exact (0 when none)."""
    L, Lk, dh, dv = problem.L, problem.L_k, problem.d_head, problem.d_v
    g = 0
    while g < max_degree and cost_ratio(method, L, Lk, dh, dv, rank(dh, g + 1), model) < 1:
        g += 1
    return g


def plan_for_degree(problem: Any, family: str, degree: int, method: str, tol: float, score: Any, sens: Any,
                    model: Any) -> Plan | None:
    """A :class:`~verified_lora.bounds.Plan` for one ``(family, degree)`` (``None`` when its eps is >= 1)."""
    need_d = method == "factored"
    try:
        cert = api.certify(family, degree, score.R, need_derivative=need_d)
    except CertificationError:
        return None
    if not (cert.eps_A < 1 and (not need_d or cert.eps_D < 1)):
        return None
    gb = sens.bounds(cert.eps_A, cert.eps_D if need_d else None, method)
    L, Lk, dh, dv = problem.L, problem.L_k, problem.d_head, problem.d_v
    k = rank(dh, degree)
    ratio = cost_ratio(method, L, Lk, dh, dv, k, model)
    efficient = ratio < 1
    reason = (f"certified a posteriori with {family} degree {degree} (rank {k}); predicted cost {ratio:.3g} x exact"
              if efficient else
              f"outside the efficient regime: {family} degree {degree} (rank k={k}) costs {ratio:.3g} x the exact "
              f"O(L L_k d) computation at L={L}, L_k={Lk}; compute exactly")
    return Plan(efficient=efficient, reason=reason, method=method, tol=tol, family=family, degree=degree,
                polynomial=cert.polynomial, rank=k, paper_rank=paper_rank(dh, degree), R=score.R, eps_A=cert.eps_A,
                eps_D=cert.eps_D if need_d else None, bounds=dict(gb.grads), weight_bounds=dict(gb.weights_max),
                cost_ratio=ratio, cost_fast=fast_flops(method, L, Lk, dh, dv, k),
                cost_exact=exact_flops(L, Lk, dh, dv, model), score=score, gradient_bounds=gb)


def _block(problem: Any, pl: Plan, method: str) -> int:
    from . import default_block_size

    return default_block_size(pl.rank, problem.d_v, method, rows=max(problem.L, problem.L_k))


def _passes(bounds: dict[str, float], tol: float, tol_mode: str, est: dict[str, float] | None,
            margin: float = 0.25) -> bool:
    if tol_mode == "absolute":
        return all(b <= 0.9 * tol for b in bounds.values())
    for key, b in bounds.items():
        m = (est or {}).get(key, 0.0)
        if not (m > b and b / (m - b) <= margin * tol):  # the scale estimate may overshoot max|G|
            return False
    return True


def choose_plan(problem: Any, tol: float, tol_mode: str, method: str, families: tuple[str, ...], score: Any,
                sens: Any, model: Any, cap: int, est: dict[str, float] | None,
                proxy: Any = None) -> Plan | None:
    """The first degree predicted to pass (module docstring), or ``None`` when none up to ``cap`` is.

    ``proxy``: the call's :class:`.proxy_moments.ProxyMoments` (built here when ``None``), the same the
    run's certificate then uses."""
    from .certificate import run_bounds
    from .proxy_moments import PROXY_FAMILY, build_proxy

    prefer = ("minimax-antiderivative", "minimax") if method == "factored" else ("minimax",)
    fams = tuple(f for f in prefer if f in families) or (families[0],)
    step = 2 if fams[0] == "taylor_even" else 1
    g = step
    # degrees whose every polynomial has relative error >= 1/2 on [-R, R] (proved, exact arithmetic) are
    # skipped: no Remez at absurd R; the a-priori planner then gives the refusal and its reason
    while g <= cap and api.any_polynomial_lower(g, score.R) >= 0.5:
        g += step
    if g > cap:
        return None
    moments = proxy if proxy is not None and proxy.R >= float(score.R) else build_proxy(problem, float(score.R))
    if moments is None:
        return None
    pm = plan_for_degree(problem, PROXY_FAMILY, moments.degree, method, tol, score, sens, model)
    keys = problem.grad_keys
    if est is not None and pm is not None:  # the cheap polynomial's own gradients: a far better scale than a row subsample
        est = _cheap_scale(problem, pm, method, keys) or est

    def predicted(pl: Plan) -> tuple[dict[str, float], dict[str, float]]:
        rb = run_bounds(problem, pl, sens, method, list(pl.polynomial.coeffs), None, None, moments=moments,
                        block=_block(problem, pl, method))
        return (rb.approx, rb.rounding) if keys else (rb.weight_approx, rb.weight_rounding)

    # the approximation part is a sum of terms linear (and quadratic) in delta = 2e/(1-e) and, for
    # "factored", zeta = (eps_A + eps_D)/(1 - eps_A): scale the cheap degree's by the larger ratio,
    # keep its rounding part (the run's own certificate decides afterwards)
    approx_m, round_m = predicted(pm) if pm is not None else ({}, {})
    s_m = _scales(pm, method) if pm is not None else None
    while g <= cap:
        for f in fams:
            pl = plan_for_degree(problem, f, g, method, tol, score, sens, model)
            if pl is not None:
                screened = True
                if s_m is not None:
                    ratio = max(a / b if b > 0 else math.inf for a, b in zip(_scales(pl, method), s_m))
                    guess = {k: approx_m[k] * ratio + round_m[k] for k in approx_m}
                    screened = all(math.isfinite(b) for b in guess.values()) and _passes(guess, tol, tol_mode, est, 1.0)
                # the scaled guess only screens (per-row radii make it pessimistic for some families);
                # a candidate it does not rule out is predicted directly at its own eps
                if screened:
                    direct = predicted(pl)
                    if _passes({k: direct[0][k] + direct[1][k] for k in direct[0]}, tol, tol_mode, est, 0.5):
                        return pl
        g += step
    return None


def _scales(pl: Plan, method: str) -> tuple[float, float]:
    e = pl.eps_A
    delta = 2 * e / (1 - e)
    zeta = (e + pl.eps_D) / (1 - e) if method == "factored" and pl.eps_D is not None else 0.0
    return delta, zeta


def _cheap_scale(problem: Any, pm: Plan, method: str, keys: tuple) -> dict[str, float] | None:
    """``max |G~|`` per gradient of the fast path at the cheap polynomial (a heuristic scale; ``None`` if
    it is not finite and positive). A subsample of query rows times ``L / m`` overshoots ``max |G|`` by
    about ``sqrt(L / m)`` when the rows' contributions cancel; the cheap run sees every row."""
    import numpy as np

    from .._xp import to_numpy
    from . import run_with_polynomial

    _loss, grads, wgrads, _info = run_with_polynomial(problem, list(pm.polynomial.coeffs), method,
                                                      block_size=_block(problem, pm, method))
    vals = grads if keys else wgrads
    out = {k: float(np.max(np.abs(to_numpy(v)))) if v.size else 0.0 for k, v in vals.items()}
    return out if all(math.isfinite(v) and v > 0 for v in out.values()) else None
