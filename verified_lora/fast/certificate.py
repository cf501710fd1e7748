r"""The fast path's certificate for the arrays actually returned: approximation + rounding, and sound relative claims.

For every gradient ``key`` the result reports

* ``approx_bounds[key]``: the a-priori approximation bound of :mod:`verified_lora.bounds.propagation`
  at the plan's certified ``(eps_A, eps_D)`` (exact arithmetic, exact inputs);
* ``rounding_bounds[key]``: everything floating point adds, rounded up: the score perturbation of
  the float64 projections (``eps -> eps'``, :mod:`.rounding_bound`), the input perturbations, the
  core's running-error bound, the adapter chain ``s B^T G`` / ``s G A^T`` (``gamma_{n+4}`` of
  ``|s| |B|^T |G^|``), and the final conversion to the problem's dtype (``u |fl(G)| / (1 - u)``);
* ``bounds[key] = approx + rounding`` rounded up, a bound of ``max |G^ - G|`` for the returned ``G^``.

Entrywise (``dA``; ``dB`` alike with ``|A|^T`` on the right):
``|G^ - G| <= min(|s| |B|^T W_approx(eps'), A_chain) + |s| |B|^T W_round + gamma |s| |B|^T |G^_W|``, where
``W_approx`` is the weight-gradient approximation bound (a priori, or per-row moments, :mod:`.aposteriori`,
formed with a cheap proxy polynomial and transferred to the run's ``pi~``, :mod:`.proxy_moments`)
and ``A_chain`` the same step bounded row by row with the adapter factors inside (``|X B|``, ``K A^T``,
``V A^T``: :mod:`.adapter_chain`); so ``bounds`` is the max entry of that matrix plus the output
conversion, ``approx`` the max entry of the ``min(...)`` term and ``rounding`` the (upward) difference.

**Before the run.** Nothing above but the output conversion reads the returned arrays:
:func:`prepare_bounds` computes the rest (a :class:`PendingBounds` that records its inputs), and
:func:`finalise` adds the output term for the arrays returned; :func:`run_bounds` is the two in a row. The
planner's prediction (:mod:`.planning`) is a :class:`PendingBounds`, reused as the run's only when
:meth:`PendingBounds.matches` its inputs (same problem, sensitivity and proxy objects, same coefficients,
``eps``, ``R``, rank, a-priori bounds, method and block).

**Relative claims.** ``max |G| >= max |G^| - b`` where ``b = bounds[key]``; the difference is rounded
down and the ratio ``b / (max|G^| - b)`` up. When ``max|G^| - b <= 0`` there is no relative claim
(``inf``), and when the rounding part alone reaches ``max|G^|`` no degree can make one: the gradient
is at the rounding level (:func:`relative_claims` says which). A bound of exactly 0 (e.g. ``beta = 0``
makes the Q and K gradients exactly 0, computed as 0) certifies relative error 0.

Algebraic steps machine-checked: verified_lora/proofs/fast_certificate.py, certificates fast-relative-claims,
fast-adapter-chain.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._xp import to_numpy
from ..bounds import _rigorous as rg
from ..tolerances import unit_roundoff
from .proxy_moments import ProxyMoments, item_moments
from .rounding_bound import rounding_bound

__all__ = ["RunBounds", "PendingBounds", "run_bounds", "prepare_bounds", "finalise", "relative_claims", "item_moments"]

ROW_RADII = True
"""Per-row radii in step (2) (:mod:`.row_radii`); a switch for measuring what they buy."""


@dataclass(frozen=True)
class RunBounds:
    """Max-entry bounds per adapter gradient (``grads``) and per weight gradient (``weights``)."""

    approx: dict[str, float]
    rounding: dict[str, float]
    total: dict[str, float]
    weight_approx: dict[str, float]
    weight_rounding: dict[str, float]
    weight_total: dict[str, float]
    sigma: float
    delta_D: float


def _max_abs(x: Any) -> float:
    x = np.asarray(to_numpy(x), dtype=np.float64)
    return float(np.max(np.abs(x))) if x.size else 0.0


def _output(problem: Any, value: Any) -> float:
    """Rounding of the float64 result to the problem's dtype: ``u |fl(x)| / (1 - u)``, up."""
    if value is None or np.dtype(problem.dtype) == np.float64:
        return 0.0
    u = unit_roundoff(problem.dtype)
    return float(rg.mul_up(u * (1 + 4 * u), _max_abs(value)))


def _split(total: float, approx: float, out: float) -> tuple[float, float]:
    """``(rounding, bound)`` with ``rounding >= total - approx + out`` and ``bound >= approx + rounding``."""
    rnd = float(rg.add_up(max(0.0, float(rg.up(total - approx))), out)) if math.isfinite(total) else math.inf
    return rnd, float(rg.add_up(approx, rnd))


@dataclass(frozen=True)
class PendingBounds:
    """The part of :func:`run_bounds` that does not read the returned arrays (everything but the output
    conversion term), with the identity of the inputs it was computed from (:meth:`matches`).

    ``approx_*``: the approximation parts; ``total_*``: approximation + rounding before the output term
    (``inf`` when no certificate is possible). :func:`finalise` adds the output term for the returned arrays;
    ``finalise(p, problem, None, None)`` is the planner's prediction, which is therefore the run's certificate
    up to that term (for float64 problems, exactly)."""

    key: tuple
    refs: tuple
    approx: dict[str, float]
    total: dict[str, float]
    weight_approx: dict[str, float]
    weight_total: dict[str, float]
    sigma: float
    delta_D: float

    def matches(self, problem: Any, plan: Any, sens: Any, method: str, coeffs, aposteriori: bool = True,
                moments: ProxyMoments | None = None, block: int | None = None) -> bool:
        """True when :func:`prepare_bounds` with these arguments would compute exactly this object."""
        refs = (problem, sens, moments)
        return (len(refs) == len(self.refs) and all(a is b for a, b in zip(refs, self.refs))
                and _key(plan, method, coeffs, aposteriori, block) == self.key)


def _key(plan: Any, method: str, coeffs, aposteriori: bool, block: int | None) -> tuple:
    """Every value :func:`prepare_bounds` reads besides the (identity-compared) problem, sensitivity and moments."""
    from fractions import Fraction

    return (method, tuple(Fraction(c) for c in coeffs), float(plan.eps_A),
            None if plan.eps_D is None else float(plan.eps_D), float(plan.R), int(plan.rank),
            tuple(sorted(plan.bounds.items())), tuple(sorted(plan.weight_bounds.items())), bool(aposteriori),
            None if block is None else int(block), ROW_RADII)


def run_bounds(problem: Any, plan: Any, sens: Any, method: str, coeffs, grads: dict[str, Any] | None,
               weight_grads: dict[str, Any] | None, aposteriori: bool = True, moments: ProxyMoments | None = None,
               block: int | None = None) -> RunBounds:
    """Certified bounds for one fast run of ``plan`` whose returned arrays are ``grads``/``weight_grads``.

    ``moments``: the proxy moments of :mod:`.proxy_moments` (one cheap pass per call, shared with the
    planner), built here when not given (or when built for a smaller ``R``); every per-row moment of the
    run's ``pi~`` is bounded from them ((P0)-(P4) there). ``block``: the rows per block the core used
    (``info["block_size"]``; the rounding depth depends on it). ``grads=None``/``weight_grads=None`` give the
    bound without the output conversion term (the planner's prediction, which is then the certificate
    up to that term). The same as ``finalise(prepare_bounds(...), problem, grads, weight_grads)``.
    """
    return finalise(prepare_bounds(problem, plan, sens, method, coeffs, aposteriori, moments, block),
                    problem, grads, weight_grads)


def finalise(pending: PendingBounds, problem: Any, grads: dict[str, Any] | None,
             weight_grads: dict[str, Any] | None) -> RunBounds:
    """:class:`RunBounds` of the returned arrays: ``pending`` plus the output conversion term (``_split``)."""
    approx_w, approx_g = dict(pending.weight_approx), dict(pending.approx)
    weight_rounding, weight_total, rounding, total = {}, {}, {}, {}
    for key, a in approx_w.items():
        t = pending.weight_total[key]
        weight_rounding[key], weight_total[key] = _split(t, a, _output(
            problem, None if weight_grads is None or not math.isfinite(t) else weight_grads[key]))
    for name, a in approx_g.items():
        t = pending.total[name]
        rounding[name], total[name] = _split(t, a, _output(
            problem, None if grads is None or not math.isfinite(t) else grads[name]))
    return RunBounds(approx_g, rounding, total, approx_w, weight_rounding, weight_total, pending.sigma,
                     pending.delta_D)


def prepare_bounds(problem: Any, plan: Any, sens: Any, method: str, coeffs, aposteriori: bool = True,
                   moments: ProxyMoments | None = None, block: int | None = None) -> PendingBounds:
    """Everything of :func:`run_bounds` but the output conversion term (arguments as there)."""
    from .proxy_moments import build_proxy, rounding_rows, same_polynomial

    key = _key(plan, method, coeffs, aposteriori, block)
    refs = (problem, sens, moments)
    if aposteriori and (moments is None or moments.R < float(plan.R)):
        # a proxy above the run's degree (that of its coefficients) would cost more than the run
        moments = build_proxy(problem, float(plan.R), len(coeffs) - 1)
    aposteriori = aposteriori and moments is not None
    same = aposteriori and same_polynomial(moments, coeffs)
    rows = None
    if aposteriori:
        from .rounding_bound import _proj

        items = tuple(dict(Vm=_proj(problem, np.asarray(to_numpy(x_v), dtype=np.float64), "V")[0],
                           y=np.asarray(to_numpy(y), dtype=np.float64)) for _q, _k, x_v, y in problem.items())
        rows = rounding_rows(moments, items, plan.eps_A, same)
    rb = rounding_bound(problem, coeffs, method, plan.eps_A, plan.eps_D if method == "factored" else None,
                        plan.R, plan.rank, rows=rows, block=block)
    approx_g = dict(plan.bounds)
    approx_w = dict(plan.weight_bounds)
    if not rb.finite or not rb.eps_A_in < 1:
        inf_g = {k: math.inf for k in approx_g}
        inf_w = {k: math.inf for k in approx_w}
        return PendingBounds(key, refs, approx_g, inf_g, approx_w, inf_w, rb.sigma, rb.delta_D)
    w_in, _ = sens.weight_bounds(rb.eps_A_in, rb.eps_D_in, method)
    ap_ad: dict = {}
    if aposteriori:
        ap, ap_ad = _aposteriori(problem, rb, coeffs, method, plan.eps_A, plan.eps_D if method == "factored" else None,
                                 moments, R=plan.R, same=same)
        w_in = {k: np.minimum(w_in[k], ap[k]) for k in w_in}
    total_w = {k: rg.add_up(w_in[k], rb.weight[k]) for k in w_in}
    approx_w, weight_total = {}, {}
    for key_w in w_in:
        approx_w[key_w] = float(np.max(w_in[key_w]))
        weight_total[key_w] = float(np.max(total_w[key_w]))
    approx_g, total = {}, {}
    for key_a in problem.adapted:
        ad = problem.adapters[key_a]
        s_up = float(rg.inflate(abs(problem.scale(key_a)), 3))
        a = np.abs(np.asarray(to_numpy(ad.a), dtype=np.float64))
        b = np.abs(np.asarray(to_numpy(ad.b), dtype=np.float64))
        rw, mw, aw = rb.weight[key_a], rb.weight_mag[key_a], w_in[key_a]
        # step (2) through |s||B|^T |dG| or, tighter, row by row through |X B| (fast/adapter_chain.py);
        # steps (1), (3) and the chain's own rounding through |B|^T (rounding_bound.py)
        rA = rg.mul_up(s_up, rg.add_up(rg.matmul_up(b.T, rw), rg.mul_up(rg.gamma(b.shape[0] + 4), rg.matmul_up(b.T, mw))))
        rB = rg.mul_up(s_up, rg.add_up(rg.matmul_up(rw, a.T), rg.mul_up(rg.gamma(a.shape[1] + 4), rg.matmul_up(mw, a.T))))
        for name, r_e, ea in ((f"A_{key_a}", rA, rg.mul_up(s_up, rg.matmul_up(b.T, aw))),
                              (f"B_{key_a}", rB, rg.mul_up(s_up, rg.matmul_up(aw, a.T)))):
            if name in ap_ad:
                ea = np.minimum(ea, ap_ad[name])
            approx_g[name] = float(np.max(ea))
            total[name] = float(np.max(rg.add_up(ea, r_e)))
    return PendingBounds(key, refs, approx_g, total, approx_w, weight_total, rb.sigma, rb.delta_D)


def _aposteriori(problem: Any, rb: Any, coeffs, method: str, eps_A: float, eps_D: float | None,
                 proxy: ProxyMoments, R: float | None = None, same: bool = False) -> tuple[dict, dict]:
    """Step (2) from per-row moments (:mod:`.aposteriori`) of the proxy (:mod:`.proxy_moments`: each row's
    ``eta`` from the run's and the proxy's errors on that row's radius, :mod:`.row_radii`), on the very
    projections the core used, for the weight gradients and (:mod:`.adapter_chain`) the adapter gradients."""
    from .adapter_chain import adapter_bounds
    from .aposteriori import aposteriori_weight_bounds
    from .proxy_moments import eta
    from .row_radii import row_eps

    items = [dict(it, moments=mo) for it, mo in zip(rb.items, proxy.moments)]
    if R is not None and ROW_RADII:
        mine = row_eps(problem, rb.items, coeffs, R, eps_A, eps_D, rb.sigma, method)
        theirs = (row_eps(problem, rb.items, proxy.coeffs, R, proxy.eps_A, None, rb.sigma, "paper")
                  if not same else [None] * len(items))
        for it, re, rh in zip(items, mine, theirs):
            it["row_eps"] = re
            if not same:  # (P0) on the row's radius: both errors at the same scores S^
                it["eta"] = eta(re["eps_A"], rh["eps_A"])
    elif not same:
        for it in items:
            it["eta"] = np.full(it["y"].shape[0], float(eta(eps_A, proxy.eps_A)))
    return (aposteriori_weight_bounds(problem, items, method, eps_A, eps_D, rb.eps_A_in, proxy.e_rel),
            adapter_bounds(problem, items, method, eps_A, eps_D, rb.eps_A_in, proxy.e_rel))


def relative_claims(values: dict[str, Any], bounds: dict[str, float],
                    rounding: dict[str, float]) -> tuple[dict[str, float], dict[str, str]]:
    """Certified relative bounds ``b / (max|G^| - b)`` (rounded safely) and, per gradient without
    a claim, why (module docstring)."""
    rel, why = {}, {}
    for key, b in bounds.items():
        m = _max_abs(values[key])
        if b == 0:
            rel[key] = 0.0
            continue
        low = float(rg.down(m - b)) if math.isfinite(b) else -math.inf
        if low > 0:
            rel[key] = float(rg.div_up(b, low))
            continue
        rel[key] = math.inf
        if not math.isfinite(b):
            why[key] = "no finite bound (the rounding bound is infinite at this R and degree)"
        elif rounding.get(key, 0.0) >= m:
            why[key] = (f"max|G~| = {m:.3g} is at the rounding level (rounding bound {rounding[key]:.3g}): "
                        "no relative claim can be certified")
        else:
            why[key] = f"max|G~| = {m:.3g} does not exceed the bound {b:.3g}: no relative claim"
    return rel, why
