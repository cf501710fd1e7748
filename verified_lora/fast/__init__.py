"""Almost-linear LoRA gradients with certified error, or exact gradients with a visible flag.

:func:`loss_and_grads` computes the loss and every adapter gradient (Q, K, V; partial or full;
self- or cross-attention; batches) through the polynomial method (docs/design.md section 4):

* ``A~ = P(S)`` entrywise with ``S = beta Q K^T``, evaluated through the feature maps
  ``P(beta <u, v>) = <phi_U(u), phi_V(v)>`` (:mod:`verified_lora.features`);
  ``D~ = A~ 1`` computed as ``Phi_U (Phi_V^T 1)`` in ``O(L k)``; ``f~ = D~^{-1} A~``.
* ``method="paper"``: ``c~ = f~ V - Y``; ``q~ = c~ V^T`` (rank ``d_v``); ``p1~`` through the row-wise
  Kronecker (face-splitting) factors ``U3 = U1 (x) U2``, ``V3 = V1 (x) V2``; ``rvec~ = p1~ 1``;
  ``p2~ = diag(rvec~) f~``; ``G~_Q = beta X_Q^T p~ K``, ``G~_K = beta X_K^T p~^T Q``,
  ``G~_V = X_V^T f~^T c~`` (Lemmas 3.3-3.7, Theorem 3.1 / A.1, corrected). Cost ``O(L k d^2)``.
* ``method="factored"`` (default): the exact gradient of the approximate loss
  ``1/2 ||f~ V - Y||^2`` by back-propagation through ``phi_U`` and ``phi_V``:
  ``dL~/dS_ij = P'(S_ij) (q~_ij - rvec~_i) / D~_i``. Cost ``O(L k d)``; it never forms an
  ``L x L_k`` matrix or the ``L x k d`` Hadamard factors; rows go in blocks, so peak memory is
  ``O((L + L_k) d + block k)``.
* ``method="antiderivative"``: the paper chain's gradient (the same ``p~`` as ``"paper"``) at factored cost:
  the factored back-propagation through the features of ``Q = int_0 P`` (``Q' = P``, degree ``g + 1``), since
  ``grad_u Q(beta <u, v>) = beta P(beta <u, v>) v``; the forward (``D~``, ``c~``, ``rvec~``, the loss, ``G~_V``)
  keeps ``P``. So ``dL~/dS_ij = P(S_ij) (q~_ij - rvec~_i) / D~_i`` and the certificate has no ``eps_D`` term (the
  factored one carries ``zeta = (eps_A + eps_D) / (1 - eps_A)``). Cost ``O(L k' d)`` with the backward's
  ``k' = C(d + g + 1, g + 1)`` features (``k' / k = (d + g + 1) / (g + 1)``: 1.7 at ``d = 8``, ``g = 10``).
  ``method="auto"`` lets the planner take the cheaper certified plan of "factored" and "antiderivative".

The polynomial family, degree and rank come from :func:`verified_lora.bounds.plan`, which also
gives the certified max-entry error bound of every gradient. **Fallback:** when the plan finds no
speedup at this ``L`` or cannot certify ``tol``, the exact gradients are computed instead and the
result says so (``fallback=True`` and ``reason``); it never returns a silently wrong answer.

Tolerance modes:

* ``tol_mode="absolute"``: ``tol`` bounds ``max |G~ - G|`` of every adapter gradient a priori.
* ``tol_mode="relative"`` (default, ``tol=1e-6``): ``tol`` bounds ``max |G~ - G| / max |G|`` per
  gradient, *a posteriori*: the plan certifies ``|G~ - G| <= b``; then ``max|G| >= max|G~| - b``,
  so the relative error is at most ``b / (max|G~| - b)`` (rounded safely; no claim when not
  positive). The degree is chosen by the certificate the run will issue
  (:mod:`verified_lora.fast.planning`: per-row moments of a cheap proxy polynomial, formed once per call and
  shared with the certificate (:mod:`verified_lora.fast.proxy_moments`), predict it, against the
  scale ``max|G~|`` of the fast path at that cheap polynomial, a heuristic used only to pick the degree);
  the prediction at the chosen degree is the run's certificate but for the output conversion term, so it
  is reused (checked input by input) rather than recomputed; if the run's own certificate fails, the
  degree is raised one step and the fast path re-run (at most ``max_attempts`` times).

What is certified: ``|G~ - G| <= bounds[key]`` for the arrays returned, every rounding included:
the approximation error (interval-certified ``eps_A`` and ``eps_D``, propagated by
:mod:`verified_lora.bounds.propagation`) plus a rigorous running-error bound of the fast
algorithms' own float64 evaluation, of the float64 projections and of the final dtype conversion
(:mod:`verified_lora.fast.rounding_bound`, :mod:`verified_lora.fast.certificate`). Relative claims
divide by ``max|G~| - b`` rounded down; a gradient at the rounding level gets no relative claim,
and the call falls back to exact (or raises under ``force="fast"``).

The same code runs on NumPy and CuPy arrays (namespace from :func:`verified_lora._xp.array_namespace`);
all fast-path arithmetic is float64 (the effective weights ``W* + s B A`` too, for every input
dtype), and gradients are returned in the problem's dtype.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._xp import to_numpy
from ..errors import InputError, RegimeError
from ..problem import LoraAttention
from ..overflow import check_problem
from ..result import GradientResult, adapter_grads
from ..tolerances import unit_roundoff
from .blocks import (DEFAULT_BLOCK_BYTES, GPU_MIN_BLOCK, SMALL_BLOCK_BYTES, SMALL_BLOCK_FLOOR,  # noqa: F401
                     block_for, default_block_size)

__all__ = ["FastGradientResult", "loss_and_grads", "METHODS", "TOL_MODES", "FORCE", "default_block_size",
           "block_for", "run_with_polynomial"]

METHODS: tuple[str, ...] = ("factored", "paper", "antiderivative")
TOL_MODES: tuple[str, ...] = ("relative", "absolute")
FORCE: tuple[str | None, ...] = (None, "fast", "exact")
@dataclass(frozen=True, repr=False)  # the compact GradientResult repr
class FastGradientResult(GradientResult):
    """A :class:`~verified_lora.result.GradientResult` with the fast path's certificate.

    Attributes (beyond ``loss``, ``grads``, ``weight_grads``, ``method``, ``info``)
    ---------------------------------------------------------------------------
    path:
        ``"fast"`` or ``"exact"`` (what actually ran). ``method`` is ``"factored"``, ``"paper"``,
        ``"antiderivative"`` or ``"exact"``.
    fallback:
        True when the fast path was requested (not forced exact) but exact gradients were computed
        because the plan found no speedup or could not certify ``tol``; ``reason`` says which.
    reason:
        The planner's verdict in words (always set).
    bounds, weight_bounds:
        Certified max-entry absolute error bounds ``max |G~ - G|`` of the returned arrays per adapter
        gradient / per ``dL/dW_mu``, rounding included (empty on the exact path, whose error is
        float64 rounding only). ``bounds = approx_bounds + rounding_bounds`` (rounded up).
    approx_bounds, rounding_bounds:
        The two parts of ``bounds`` (of ``weight_bounds`` without adapters): the approximation in
        exact arithmetic, and every floating-point rounding (:mod:`verified_lora.fast.certificate`).
    relative_bounds:
        Certified ``b / (max|G~| - b)`` per adapter gradient (a posteriori, rounded safely; ``inf``
        when ``max|G~| <= b``: no relative claim; 0 when ``b = 0``).
    family, degree, rank, paper_rank, R, eps_A, eps_D:
        The polynomial (family, degree), the feature rank ``k = C(d_head + g, g)`` and the paper's
        bound ``C(2(g + d), 2g)``, the certified score bound ``R``, the certified relative errors of
        ``P`` and (factored) ``P'`` on ``[-R, R]``.
    tol, tol_mode:
        What was asked.
    plan:
        The :class:`verified_lora.bounds.Plan` that was used (or refused).
    attempts:
        Fast-path runs made (relative mode may raise the degree once or twice).
    """

    path: str = "exact"
    fallback: bool = False
    reason: str = ""
    bounds: dict[str, float] = field(default_factory=dict)
    weight_bounds: dict[str, float] = field(default_factory=dict)
    relative_bounds: dict[str, float] = field(default_factory=dict)
    approx_bounds: dict[str, float] = field(default_factory=dict)
    rounding_bounds: dict[str, float] = field(default_factory=dict)
    family: str | None = None
    degree: int | None = None
    rank: int | None = None
    paper_rank: int | None = None
    R: float | None = None
    eps_A: float | None = None
    eps_D: float | None = None
    tol: float | None = None
    tol_mode: str = "relative"
    plan: Any = None
    attempts: int = 0

    @property
    def certified(self) -> bool:
        """True when the fast path ran and every relative (or absolute) bound meets ``tol``."""
        if self.path != "fast" or self.tol is None:
            return False
        vals = self.relative_bounds if self.tol_mode == "relative" else (self.bounds or self.weight_bounds)
        return bool(vals) and all(v <= self.tol for v in vals.values())

    def summary(self) -> str:
        """A few lines: path, fallback, polynomial, rank and the bound per gradient."""
        head = f"path: {self.path} (method {self.method})"
        if self.fallback:
            head += " -- FALLBACK to exact"
        lines = [head, f"reason: {self.reason}"]
        if self.degree is not None:
            lines.append(f"polynomial: {self.family} degree {self.degree}, rank k = {self.rank} "
                         f"(paper bound {self.paper_rank:.3g}), R = {self.R:.4g}, eps_A = {self.eps_A:.3g}"
                         + (f", eps_D = {self.eps_D:.3g}" if self.eps_D is not None else ""))
        for key, b in self.bounds.items():
            rel = self.relative_bounds.get(key)
            lines.append(f"  {key}: certified |error| <= {b:.3g}" + (f" (relative <= {rel:.3g})" if rel is not None else ""))
        return "\n".join(lines)


# ----------------------------------------------------------------------------------------- checks
def _check_args(problem: Any, tol: Any, method: Any, tol_mode: Any, force: Any, block_size: Any,
                max_attempts: Any) -> float:
    if not isinstance(problem, LoraAttention):
        raise InputError("problem", "a verified_lora.LoraAttention", type(problem).__name__)
    if method not in METHODS + ("auto",):
        raise InputError("method", f"one of {METHODS + ('auto',)}", repr(method),
                         'use "factored" (default), "paper", "antiderivative" or "auto"')
    if tol_mode not in TOL_MODES:
        raise InputError("tol_mode", f"one of {TOL_MODES}", repr(tol_mode))
    if force not in FORCE:
        raise InputError("force", 'None (plan decides), "fast" or "exact"', repr(force))
    if isinstance(tol, bool) or not isinstance(tol, (int, float, np.floating)) or not math.isfinite(float(tol)) \
            or tol <= 0:
        raise InputError("tol", "a finite number > 0", repr(tol), "e.g. tol=1e-6")
    if tol_mode == "relative" and tol >= 1:
        raise InputError("tol", "a relative tolerance in (0, 1)", repr(tol), 'or pass tol_mode="absolute"')
    if block_size is not None and (isinstance(block_size, bool) or not isinstance(block_size, int) or block_size < 1):
        raise InputError("block_size", "a positive int or None", repr(block_size))
    if isinstance(max_attempts, bool) or not isinstance(max_attempts, int) or max_attempts < 1:
        raise InputError("max_attempts", "a positive int", repr(max_attempts))
    return float(tol)


# ----------------------------------------------------------------------------------------- running
def run_with_polynomial(problem: LoraAttention, coeffs, method: str = "factored", *,
                        block_size: int | None = None) -> tuple[float, dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Run a fast algorithm with given polynomial coefficients ``a_0..a_g`` (no certificate).

    Returns ``(loss~, adapter grads, weight grads, info)``. This is the engine under
    :func:`loss_and_grads`; call it directly only to study uncertified degrees (benchmarks, tests).
    """
    from .. import features as F
    from ._cores import factored_core, paper_core
    from .rounding_bound import balance_scale, effective_weight_f64

    if method not in METHODS:
        raise InputError("method", f"one of {METHODS}", repr(method))
    xp = problem.xp
    f64 = np.float64
    g = len(coeffs) - 1
    d = problem.d_head
    w = F.query_weights(list(coeffs), problem.beta, d)
    k = int(w.shape[0])
    core_g, wb = g, None
    if method == "antiderivative":  # the factored core at degree g + 1: forward P (zero at g + 1), backward Q
        core_g = g + 1
        w = F.query_weights(list(coeffs) + [0], problem.beta, d)
        wb = F.query_weights(F.antiderivative_coefficients(coeffs), problem.beta, d)
    block = block_for(problem, k, method, block_size)
    W = {key: effective_weight_f64(problem, key, xp) for key in ("Q", "K", "V")}  # float64 for every dtype
    totals = None
    loss = 0.0
    low = math.inf
    for x_q, x_k, x_v, y in problem.items():
        x_q, x_k, x_v, y = (xp.asarray(a, dtype=f64) for a in (x_q, x_k, x_v, y))
        P = x_q @ W["Q"]
        Kmat = x_k @ W["K"]
        Vmat = x_v @ W["V"]
        c = balance_scale(P, Kmat)  # a power of two: P c, K / c are exact and keep the monomials in range
        if method != "paper":
            r = factored_core(P * c, Kmat / c, Vmat, y, w, core_g, block=block, xp=xp, back_weights=wb)
        else:
            r = paper_core(P * c, Kmat / c, Vmat, y, w, g, problem.beta, block=block, xp=xp)
        item = [x_q.T @ (r.dP * c), x_k.T @ (r.dK / c), x_v.T @ r.dV]
        totals = item if totals is None else [t + i for t, i in zip(totals, item)]
        loss += r.loss
        low = min(low, r.min_normaliser)
    n = problem.n_batch
    if n > 1:
        loss /= n
        totals = [t / n for t in totals]
    dt = problem.dtype
    # The adapter chain rule runs on the float64 weight gradients (float32 factors promote), and
    # only the final values are rounded to the problem's dtype; `_output_rounding` bounds that.
    wide = dict(zip(("Q", "K", "V"), totals))
    grads = {key: t.astype(dt, copy=False) for key, t in adapter_grads(problem, wide).items()}
    weight_grads = {key: t.astype(dt, copy=False) for key, t in wide.items()}
    info = {"block_size": block, "rank": k, "degree": g, "min_normaliser": low, "compute_dtype": "float64"}
    if method == "antiderivative":
        info["backward_rank"] = int(w.shape[0])
    return loss, grads, weight_grads, info


def _output_rounding(problem: LoraAttention, bounds: dict[str, float], values: dict[str, Any]) -> dict[str, float]:
    """Add the rounding of float64 results to a narrower output dtype to the certified bounds.

    Rounding to nearest gives ``|fl(x) - x| <= u |x|``; with ``|x| <= |fl(x)| / (1 - u)`` the extra
    max-entry error of a gradient ``G`` is at most ``u max|fl(G)| / (1 - u)``, added here rounded up
    (``(1 + 2u)`` covers both ``1/(1 - u)`` and the float64 evaluation of the product). Float64
    output is not rounded again, so nothing is added.
    """
    if problem.dtype == np.float64:
        return bounds
    u = unit_roundoff(problem.dtype)
    return {key: b + u * (1 + 2 * u) * _max_abs(values[key]) for key, b in bounds.items()}


def _max_abs(x: Any) -> float:
    return float(np.max(np.abs(to_numpy(x)))) if getattr(x, "size", 1) else 0.0


def _judged_keys(problem: LoraAttention) -> tuple[str, ...]:
    return problem.grad_keys


def _scale_estimate(problem: LoraAttention, rows: int = 64) -> dict[str, float]:
    """Heuristic gradient scale: exact gradients of an evenly spaced query-row subsample x ``L/m``.

    Only used in relative mode when the cheap proxy's scale (:func:`.planning.gradient_scale`) is not
    available; never part of a certificate.
    """
    from .. import exact

    L = problem.L
    m = min(L, rows)
    if m == L:
        ex = exact.loss_and_grads(problem)
    else:
        idx = np.unique(np.linspace(0, L - 1, m).round().astype(np.int64))
        xp = problem.xp
        sel = xp.asarray(idx)
        sub = problem.replace(x_q=problem.x_q[..., sel, :], y=problem.y[..., sel, :], x_k=problem.x_k,
                              x_v=problem.x_v)
        ex = exact.loss_and_grads(sub)
        scale = L / len(idx)
        ex = GradientResult(loss=ex.loss, grads={k: v * scale for k, v in ex.grads.items()},
                            weight_grads={k: v * scale for k, v in ex.weight_grads.items()}, method="estimate")
    return {k: _max_abs(v) for k, v in ex.grads.items()} or {k: _max_abs(v) for k, v in ex.weight_grads.items()}


def _exact_result(problem: LoraAttention, *, fallback: bool, reason: str, tol: float, tol_mode: str,
                  method_asked: str, plan: Any = None, attempts: int = 0) -> FastGradientResult:
    from .. import exact

    ex = exact.loss_and_grads(problem)
    extra = {}
    if plan is not None and plan.degree is not None:
        extra = dict(family=plan.family, degree=plan.degree, rank=plan.rank, paper_rank=plan.paper_rank,
                     eps_A=plan.eps_A, eps_D=plan.eps_D)
    return FastGradientResult(loss=ex.loss, grads=ex.grads, weight_grads=ex.weight_grads, method="exact",
                              info={**ex.info, "method_requested": method_asked}, path="exact", fallback=fallback,
                              reason=reason, tol=tol, tol_mode=tol_mode, plan=plan,
                              R=None if plan is None else float(plan.R), attempts=attempts, **extra)


def _default_cost_model(problem: LoraAttention):
    from ..bounds import EXP_COST_CPU, CostModel

    # On the CPU an exp costs ~227 FLOP-equivalents (the exact path is exp-bound); on a GPU exps
    # are nearly free, so the FLOP convention is the honest model there.
    return CostModel(EXP_COST_CPU if problem.xp is np else 0.0)


def loss_and_grads(problem: LoraAttention, tol: float = 1e-6, *, method: str = "factored",
                   tol_mode: str = "relative", force: str | None = None, block_size: int | None = None,
                   families=None, cost_model=None, max_degree: int | None = None,
                   max_attempts: int = 3) -> FastGradientResult:
    """Loss and adapter gradients through the certified fast path (or exact, flagged).

    Parameters
    ----------
    problem:
        A :class:`~verified_lora.LoraAttention` (NumPy or CuPy; any adapters, batch, cross-attention).
    tol:
        Error target. ``tol_mode="relative"`` (default): ``max|G~ - G| / max|G| <= tol`` for every
        adapter gradient, certified a posteriori (module docstring). ``"absolute"``:
        ``max|G~ - G| <= tol``, certified a priori.
    method:
        ``"factored"`` (default, ``O(L k d)``), ``"paper"`` (``O(L k d^2)``), ``"antiderivative"`` (the
        paper's gradient at ``O(L k' d)``, ``k' = C(d + g + 1, g + 1)``; no ``eps_D`` in its certificate) or
        ``"auto"`` (the planner's cheaper of "factored" and "antiderivative",
        :func:`verified_lora.fast.planning.choose_method`; the result's ``method`` says which ran).
    force:
        ``None`` (default): the plan decides; outside the efficient regime (no speedup, or ``tol``
        not certifiable) exact gradients are returned with ``fallback=True`` and the ``reason``.
        ``"exact"``: always exact (``fallback=False``). ``"fast"``: run the fast path even when it
        is predicted slower; **raises** :class:`~verified_lora.errors.RegimeError` when ``tol``
        cannot be certified (it never returns uncertified numbers).
    block_size:
        Rows per block (default: :func:`default_block_size`, a 256 MiB work budget).
    families, cost_model, max_degree:
        Passed to :func:`verified_lora.bounds.plan` (default cost model: exps cost 227 FLOPs on the
        CPU, nothing on a GPU; default degree cap: the planner's).
    max_attempts:
        Fast-path runs allowed in relative mode (each raises the degree when the a-posteriori
        check fails).
    """
    tol = _check_args(problem, tol, method, tol_mode, force, block_size, max_attempts)
    check_problem(problem, "fast")  # OverflowInputError before planning: inf/NaN never returned in silence
    if force == "exact":
        return _exact_result(problem, fallback=False, reason='exact gradients requested (force="exact")', tol=tol,
                             tol_mode=tol_mode, method_asked=method)
    from ..bounds import Sensitivity, plan as make_plan, score_bound
    from ..bounds import _approx_api as api
    from ..bounds.score import item_projections
    from ..bounds.degenerate import TINY_R
    from ..bounds.planner import DEFAULT_MAX_DEGREE, _check_families
    from .certificate import finalise, prepare_bounds, relative_claims
    from .planning import AUTO_METHODS, choose_method, choose_plan, gradient_scale, pay_cap, plan_for_degree

    model = cost_model or _default_cost_model(problem)
    encl = item_projections(problem)   # the enclosures of Q, K, V: formed once, shared below
    sb = score_bound(problem, encl)
    sens = Sensitivity(problem, encl)
    keys = _judged_keys(problem)

    def refuse(reason: str, pl: Any, attempts: int) -> FastGradientResult:
        if force == "fast":
            raise RegimeError(f"fast path forced but not certifiable: {reason}")
        return _exact_result(problem, fallback=True, reason=reason, tol=tol, tol_mode=tol_mode, method_asked=asked,
                             plan=pl, attempts=attempts)

    attempts = 0
    pl = pending = predicted = None
    planner: dict[str, int] = {}
    fams = _check_families(families)
    cap = max_degree if max_degree is not None else DEFAULT_MAX_DEGREE
    asked = method                # "auto": the planner picks one of AUTO_METHODS below
    caps = {m: cap if force == "fast" else pay_cap(problem, m, model, cap)
            for m in (AUTO_METHODS if method == "auto" else (method,))}
    cap = max(caps.values())
    if method == "auto":
        method = "factored"       # unless choose_method finds a cheaper certified plan
    proxy = None  # the cheap proxy moments (fast/proxy_moments.py): one pass per call, planner and certificate
    if math.isfinite(sb.R) and sb.R > TINY_R and cap >= 1:
        from .proxy_moments import build_proxy

        proxy = build_proxy(problem, float(sb.R), cap)   # none above the degrees the planner may run
    est = None
    if tol_mode == "absolute":
        target = tol
    else:
        # the scale: max|G~| of the fast path at the cheap proxy polynomial (every row); the exact gradients of
        # a row subsample only when that is not available (not finite and positive)
        est = gradient_scale(problem, proxy, method) if proxy is not None else None
        if est is None:
            est = _scale_estimate(problem)
        positive = [v for v in est.values() if v > 0]
        if not positive:
            return refuse("every gradient is zero (relative error undefined); use tol_mode='absolute'", None, 0)
        # the a-priori planner's first absolute target (used only when the a-posteriori planner has no plan)
        target = tol * 0.5 * min(positive) / (1 + 2 * tol)
    if proxy is not None:  # the degree the a-posteriori certificate needs, and that certificate predicted
        scale = est if tol_mode == "relative" else None
        if asked == "auto":
            method, choice = choose_method(problem, tol, tol_mode, fams, sb, sens, model, caps, scale, proxy, block_size,
                                           enclosures=encl)
        else:
            choice = choose_plan(problem, tol, tol_mode, method, fams, sb, sens, model, cap, scale, proxy=proxy,
                                 block_size=block_size, enclosures=encl)
        if choice is not None:
            pending, predicted = choice.plan, choice.pending
            planner = {"exact_predictions": choice.predictions, "estimates": choice.estimates}
    encl = None  # not needed past the planner
    while True:
        extra = {} if max_degree is None else {"max_degree": max_degree}
        if force == "fast":  # search past the degrees that pay, to certify tol anyway
            extra["full_search"] = True
        if pending is not None:
            pl, pending = pending, None
        else:
            pl = make_plan(problem, target, method, families=families, cost_model=model, score=sb, sens=sens, **extra)
        if pl.degree is None:
            return refuse(pl.reason, pl, attempts)
        if not pl.efficient and force != "fast":
            return refuse(pl.reason, pl, attempts)
        attempts += 1
        coeffs = list(pl.polynomial.coeffs)
        loss, grads, wgrads, info = run_with_polynomial(problem, coeffs, method, block_size=block_size)
        # the planner's prediction is this run's certificate but for the output term when every input it read
        # is the run's (same problem, plan, coefficients, block, proxy moments); otherwise computed afresh
        if predicted is not None and predicted.matches(problem, pl, sens, method, coeffs, True, proxy,
                                                       info["block_size"]):
            pb, shared = predicted, True
        else:
            pb, shared = prepare_bounds(problem, pl, sens, method, coeffs, True, proxy, info["block_size"]), False
        predicted = None
        rb = finalise(pb, problem, grads, wgrads)
        bounds, wbounds = (rb.total if keys else {}), rb.weight_total
        judged = grads if keys else wgrads
        judged_b = bounds if keys else wbounds
        rel, why = relative_claims(judged, judged_b, rb.rounding if keys else rb.weight_rounding)
        ok = all(v <= tol for v in rel.values()) if tol_mode == "relative" else all(
            b <= tol for b in judged_b.values())
        if ok:
            break
        noise = {k: w for k, w in why.items() if "rounding" in w}
        if tol_mode == "relative" and noise:
            return refuse("; ".join(f"{k}: {w}" for k, w in noise.items()), pl, attempts)
        if attempts >= max_attempts:
            best = rel if tol_mode == "relative" else judged_b
            return refuse(f"{tol_mode} tolerance {tol:.3g} not certified after {attempts} fast runs "
                          f"(best {tol_mode} bounds {', '.join(f'{k} {v:.3g}' for k, v in best.items())})", pl, attempts)
        nxt = api.next_degree(pl.family, pl.degree)
        if pl.family != "taylor" or sb.R > TINY_R:
            if nxt <= cap:  # raise the degree by one step (the a-posteriori certificate decides)
                pending = plan_for_degree(problem, pl.family, nxt, method, tol, sb, sens, model)
        lows = [_max_abs(judged[k]) - b for k, b in judged_b.items()]
        if min(lows) > 0:
            target = min(target / 2, tol * min(lows) / (1 + 2 * tol))
        else:
            target = target / 100
    return FastGradientResult(
        loss=loss, grads=grads, weight_grads=wgrads, method=method,
        info={**info, "cost_ratio": pl.cost_ratio, "certificate_shared": shared, "planner": planner,
              "method_requested": asked},
        path="fast", fallback=False, reason=pl.reason, bounds=bounds, weight_bounds=wbounds, relative_bounds=rel,
        approx_bounds=rb.approx if keys else rb.weight_approx,
        rounding_bounds=rb.rounding if keys else rb.weight_rounding,
        family=pl.family, degree=pl.degree, rank=pl.rank, paper_rank=pl.paper_rank, R=float(pl.R), eps_A=pl.eps_A,
        eps_D=pl.eps_D, tol=tol, tol_mode=tol_mode, plan=pl, attempts=attempts)
