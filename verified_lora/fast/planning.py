"""Choosing the degree by the a-posteriori certificate, not by the a-priori bound.

The a-priori plan (:func:`verified_lora.bounds.plan`) picks the least degree whose *a-priori* bound
meets the target; that bound is orders of magnitude above the certificate the run can issue
afterwards (:mod:`.aposteriori`), so it overshoots by several degrees. Here the certificate itself is
predicted before the run, and the least degree predicted to pass is run.

**The prediction is the certificate.** :func:`verified_lora.fast.certificate.prepare_bounds` reads the
problem, the plan (``eps_A``, ``eps_D``, ``R``, rank, a-priori bounds), the coefficients, the rows per
block and the cheap proxy's per-row moments (:mod:`.proxy_moments`, formed once per call by the caller),
never the returned arrays: with the run's block (:func:`~verified_lora.fast.blocks.block_for`) it *is* the run's
certificate but for the output conversion term (zero for float64 problems). :func:`choose_plan` returns it with the plan
(:class:`Choice`); :func:`verified_lora.fast.loss_and_grads` reuses it when
:meth:`~verified_lora.fast.certificate.PendingBounds.matches` the run's inputs and adds the output term for
the returned arrays (:func:`~verified_lora.fast.certificate.finalise`), else certifies afresh.

**The search** (preferred families per degree: ``"factored"``: ``"minimax-antiderivative"`` then
``"minimax"``; ``"paper"``, ``"antiderivative"``: ``"minimax"`` (no ``eps_D`` in their certificates); those
allowed, else the first family given):

* the start is the least degree not ruled out for *every* polynomial (any-polynomial lower bound ``>= 1/2``);
* an *estimate* is the same prediction on an evenly spaced subsample of ``max(1024, L / 64)`` query rows
  (the proxy moments of those rows), times ``L / m`` (the bound sums nonnegative per-row terms); it is the
  exact prediction when ``L`` is at most that. A *screen* guesses a degree's bound from another's: the
  approximation part is a sum of terms linear (and quadratic) in ``delta = 2 e / (1 - e)`` and, for
  "factored", ``zeta = (eps_A + eps_D) / (1 - eps_A)``, scaled here by the *smaller* ratio of the two
  (optimistic: a degree it rules out would not pass), the rounding part kept;
* (1) from the start upward, the first degree and family the screen from the latest estimate (first: the
  proxy degree's) does not rule out and whose estimate passes is the candidate;
* (2) its exact prediction decides; while it fails, the next degree the screen from that exact prediction
  does not rule out is predicted exactly;
* (3) when the estimates were subsampled, a degree below that the screen from the exact prediction does
  not rule out and whose estimate, calibrated by the exact/estimate ratio at the candidate, passes, is
  predicted exactly, and taken when it passes (repeated downward).

**Passing.** Absolute targets: ``b <= 0.9 tol``. Relative targets: the claim is ``b / (max|G~| - b)`` for
the run's ``max|G~|``, unknown before the run; the scale ``m^`` is ``max|G~_c|`` of the fast path at the
cheap proxy polynomial (:func:`gradient_scale`, every row), which differs from the run's by at most both
runs' errors, the proxy's (``eps_A <= 1e-2``) dominating (measured 1.5 % to 2.6 % on the benchmark
problems at ``d = 4, 8, 16``). So ``m^`` is shrunk by :data:`SCALE_ALLOWANCE` (5 %), the output term
``o = u (1 + 5 %) m^`` of a narrower dtype is added, and the predicted ``(b + o) / (0.95 m^ - b - o)``
must be at most :data:`RELATIVE_MARGIN` ``tol`` (0.9). Since ``b`` is the run's own bound, nothing else is
uncertain; when the run's certificate still fails, :func:`verified_lora.fast.loss_and_grads` raises the
degree by one step and runs again.

The prediction only chooses the degree; certificates come from the run (shared with the prediction only
when every input matches).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ..bounds import _approx_api as api
from ..bounds.cost import cost_ratio, exact_flops, fast_flops, paper_rank, rank
from ..bounds.planner import Plan
from ..errors import CertificationError
from .blocks import SMALL_BLOCK_BYTES, block_for, default_block_size

__all__ = ["plan_for_degree", "choose_plan", "choose_method", "pay_cap", "gradient_scale", "Choice",
           "AUTO_METHODS"]

SCALE_ALLOWANCE = 0.05
"""How far ``max|G~|`` of the run may lie from the scale estimate, as a fraction of it (module docstring):
five times the proxy's ``eps_A`` bound, about twice the largest difference measured."""
RELATIVE_MARGIN = 0.9
"""Relative targets aim at this fraction of ``tol`` (with the allowance above)."""
ABSOLUTE_MARGIN = 0.9
"""Absolute targets aim at this fraction of ``tol``."""
ESTIMATE_ROWS = 1024
"""Query rows of the subsample the estimates use (at least; ``L / ESTIMATE_FRACTION`` when larger)."""
ESTIMATE_FRACTION = 64
"""(the estimates' cost is dominated by the key side, ``O(L_k)``, beyond a thousand query rows)"""
AUTO_METHODS: tuple[str, ...] = ("factored", "antiderivative")
"""The methods ``method="auto"`` chooses between (:func:`choose_method`)."""


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


def gradient_scale(problem: Any, proxy: Any, method: str) -> dict[str, float] | None:
    """``max |G~_c|`` per judged gradient of the fast path at the cheap proxy polynomial (a heuristic scale;
    ``None`` if one is not finite and positive, or the cheap run's normaliser is not positive). A subsample of
    query rows times ``L / m`` overshoots ``max |G|`` by about ``sqrt(L / m)`` when the rows' contributions cancel;
    the cheap run sees every row. It runs in the largest blocks the work budget allows (no certificate reads
    it; at ``d = 4``, ``L = 65536``: 4096-row blocks instead of 256, measured 0.09 s CPU instead of 0.2)."""
    import numpy as np

    from .._xp import to_numpy
    from . import run_with_polynomial

    coeffs = list(proxy.coeffs)
    # no rounding bound is formed for this run, so its blocks need not keep the rounding depth low: the largest
    # whose feature buffer stays within SMALL_BLOCK_BYTES (at the proxy's small rank, thousands of rows: a few
    # dozen blocks instead of hundreds, each costing more in Python and thin-GEMM overhead than in arithmetic),
    # never fewer rows than the run's rule gives
    rows = max(problem.L, problem.L_k)
    block = max(default_block_size(int(proxy.rank), problem.d_v, method, rows=rows),
                default_block_size(int(proxy.rank), problem.d_v, method, budget=SMALL_BLOCK_BYTES))
    try:
        _loss, grads, wgrads, info = run_with_polynomial(problem, coeffs, method, block_size=block)
    except CertificationError:  # D~ <= 0 somewhere: no scale from this run (the caller falls back)
        return None
    vals = grads if problem.grad_keys else wgrads
    out = {k: float(np.max(np.abs(to_numpy(v)))) if v.size else 0.0 for k, v in vals.items()}
    return out if all(math.isfinite(v) and v > 0 for v in out.values()) else None


@dataclass(frozen=True)
class Choice:
    """The planner's choice: the plan to run and its predicted certificate (``pending``, the run's own
    :func:`.certificate.prepare_bounds` for the run's block, reusable when :meth:`~.certificate.PendingBounds.matches`)."""

    plan: Plan
    pending: Any
    predictions: int
    estimates: int


def _claim(b: float, scale: float, out_rel: float) -> float:
    """Predicted relative claim ``(b + o) / (m_low - b - o)`` with ``m_low = (1 - SCALE_ALLOWANCE) scale`` and the
    output term ``o = out_rel (1 + SCALE_ALLOWANCE) scale`` (``inf`` when not positive)."""
    m_low = (1 - SCALE_ALLOWANCE) * scale
    b = b + out_rel * (1 + SCALE_ALLOWANCE) * scale
    return b / (m_low - b) if m_low > b else math.inf


def _passes(bounds: dict[str, float], tol: float, tol_mode: str, scale: dict[str, float] | None,
            out_rel: float = 0.0, margin: float = RELATIVE_MARGIN) -> bool:
    if tol_mode == "absolute":
        return all(b <= ABSOLUTE_MARGIN * tol for b in bounds.values())
    return all(_claim(b, (scale or {}).get(k, 0.0), out_rel) <= margin * tol for k, b in bounds.items())


class _Predictor:
    """The run's bound before the run: exact (``prepare_bounds`` on the problem, the run's block) or estimated
    (the same on an evenly spaced subsample of ``m`` query rows with the proxy moments of those rows, times
    ``L / m``; the bound is a sum over query rows of nonnegative per-row terms). Both memoised per plan."""

    def __init__(self, problem: Any, sens: Any, method: str, moments: Any, block_size: int | None,
                 enclosures: list | None = None):
        import dataclasses

        import numpy as np

        from ..bounds import Sensitivity

        self.problem, self.sens, self.method, self.moments, self.block_size = problem, sens, method, moments, block_size
        self.keys = problem.grad_keys
        self.exact: dict[tuple, Any] = {}
        self.est: dict[tuple, tuple[dict, dict]] = {}
        L = problem.L
        m = max(ESTIMATE_ROWS, L // ESTIMATE_FRACTION)
        self.factor = 1.0
        self.sub = None
        if m < L:
            idx = np.unique(np.linspace(0, L - 1, m).round().astype(np.int64))
            sel = problem.xp.asarray(idx)
            sub = problem.replace(x_q=problem.x_q[..., sel, :], y=problem.y[..., sel, :], x_k=problem.x_k,
                                  x_v=problem.x_v)
            mo = dataclasses.replace(moments, moments=[{k: v[idx] for k, v in it.items()} for it in moments.moments])
            # the subsample's enclosures: the key side is the problem's, the query rows are rows of the problem's
            encl = None if enclosures is None else [dict(pr, Q=pr["Q"].rows(idx)) for pr in enclosures]
            self.sub = (sub, Sensitivity(sub, encl), mo)
            self.factor = L / len(idx)

    def _pick(self, rb: Any) -> tuple[dict[str, float], dict[str, float]]:
        return (rb.approx, rb.total) if self.keys else (rb.weight_approx, rb.weight_total)

    def predict(self, pl: Plan) -> Any:
        """The run's :class:`.certificate.PendingBounds` (exact; one full certificate pass)."""
        from .certificate import prepare_bounds

        key = (pl.family, pl.degree)
        if key not in self.exact:
            self.exact[key] = prepare_bounds(self.problem, pl, self.sens, self.method, list(pl.polynomial.coeffs),
                                             moments=self.moments,
                                             block=block_for(self.problem, pl.rank, self.method, self.block_size))
        return self.exact[key]

    def estimate(self, pl: Plan) -> tuple[dict[str, float], dict[str, float]]:
        """``(approx, total)`` per judged gradient: exact when ``L`` is small, else the subsample estimate."""
        from .certificate import prepare_bounds

        if self.sub is None:
            return self._pick(self.predict(pl))
        key = (pl.family, pl.degree)
        if key not in self.est:
            sub, sens, mo = self.sub
            rb = prepare_bounds(sub, pl, sens, self.method, list(pl.polynomial.coeffs), moments=mo,
                                block=block_for(self.problem, pl.rank, self.method, self.block_size))
            a, t = self._pick(rb)
            self.est[key] = ({k: v * self.factor for k, v in a.items()}, {k: v * self.factor for k, v in t.items()})
        return self.est[key]


def _screen(pl: Plan, base: Plan, vals: tuple[dict, dict], method: str) -> dict[str, float]:
    """Optimistic guess of ``pl``'s bound from ``base``'s: the approximation part is a sum of terms linear (and
    quadratic) in ``delta = 2 e / (1 - e)`` and, for "factored", ``zeta = (eps_A + eps_D) / (1 - eps_A)``; scaled
    by the *smaller* ratio of those (so a degree the screen rules out would not pass), rounding part kept."""
    approx, total = vals
    rs = [a / b if b > 0 else (0.0 if a == 0 else math.inf) for a, b in zip(_scales(pl, method), _scales(base, method))
          if a > 0 or b > 0]
    ratio = min(rs) if rs else 1.0
    return {k: approx[k] * ratio + max(0.0, total[k] - approx[k]) for k in approx}


def choose_plan(problem: Any, tol: float, tol_mode: str, method: str, families: tuple[str, ...], score: Any,
                sens: Any, model: Any, cap: int, est: dict[str, float] | None,
                proxy: Any = None, block_size: int | None = None, enclosures: list | None = None) -> Choice | None:
    """The least degree predicted to pass (module docstring), or ``None`` when none up to ``cap`` is.

    ``est``: the scale ``max|G~|`` per judged gradient (relative mode; :func:`gradient_scale`); ``proxy``: the
    call's :class:`.proxy_moments.ProxyMoments` (built here when ``None``), the same the run's certificate then
    uses; ``block_size``: the user's, if any (the prediction uses the run's block); ``enclosures``: the problem's
    :func:`~verified_lora.bounds.score.item_projections`, if the caller has them (the subsample's are taken from them)."""
    import numpy as np

    from ..tolerances import unit_roundoff
    from .proxy_moments import PROXY_FAMILY, build_proxy

    prefer = ("minimax-antiderivative", "minimax") if method == "factored" else ("minimax",)
    fams = tuple(f for f in prefer if f in families) or (families[0],)
    step = 2 if fams[0] == "taylor_even" else 1
    g0 = step
    # degrees whose every polynomial has relative error >= 1/2 on [-R, R] (proved, exact arithmetic) are
    # skipped: no Remez at absurd R; the a-priori planner then gives the refusal and its reason
    while g0 <= cap and api.any_polynomial_lower(g0, score.R) >= 0.5:
        g0 += step
    if g0 > cap:
        return None
    moments = proxy if proxy is not None and proxy.R >= float(score.R) else build_proxy(problem, float(score.R))
    if moments is None:
        return None
    out_rel = 0.0 if np.dtype(problem.dtype) == np.float64 else float(unit_roundoff(problem.dtype)) * (1 + 1e-6)
    pred = _Predictor(problem, sens, method, moments, block_size, enclosures)

    def ok(bounds: dict[str, float]) -> bool:
        return all(math.isfinite(b) for b in bounds.values()) and _passes(bounds, tol, tol_mode, est, out_rel)

    plans: dict[int, list[Plan]] = {}

    def at(g: int) -> list[Plan]:
        if g not in plans:
            plans[g] = [pl for pl in (plan_for_degree(problem, f, g, method, tol, score, sens, model) for f in fams)
                        if pl is not None]
        return plans[g]

    # (1) the least degree whose estimate passes: the optimistic screen from the latest estimate rules degrees
    # out, the estimate (subsample, cheap) decides
    pm = plan_for_degree(problem, PROXY_FAMILY, moments.degree, method, tol, score, sens, model)

    def basis(pl: Plan | None, vals: tuple[dict, dict] | None) -> tuple | None:
        """A screen's basis only where its bound is finite (an infinite one rules nothing out)."""
        ok_vals = pl is not None and vals is not None and all(math.isfinite(v) for v in vals[1].values())
        return (pl, vals) if ok_vals else None

    base = basis(pm, pred.estimate(pm) if pm is not None else None)
    if pm is not None and base is None:
        # no finite bound at the proxy degree (the rounding bound is infinite: e^{2R} cancellation); higher
        # degrees are no better there, and the a-priori planner gives the refusal and its reason
        return None
    g, cand, blank = g0, None, 0
    while g <= cap and cand is None and blank < 3:
        for pl in at(g):
            if base is not None and not ok(_screen(pl, base[0], base[1], method)):
                continue
            vals = pred.estimate(pl)
            if ok(vals[1]):
                cand = pl
                break
            base = basis(pl, vals) or base
            blank = 0 if base is not None else blank + 1  # without any finite bound, give up after three
        else:
            g += step
    if cand is None:
        return None
    # (2) the exact prediction (the run's certificate but for the output term) decides; upward while it fails
    while True:
        pb = pred.predict(cand)
        if ok(pred._pick(pb)[1]):
            break
        base = basis(cand, pred._pick(pb))
        nxt = None
        g = cand.degree + step
        while g <= cap and nxt is None:
            nxt = next((pl for pl in at(g) if base is None or ok(_screen(pl, base[0], base[1], method))), None)
            g += step
        if nxt is None:
            return None
        cand = nxt
    # (3) downward: a degree below that the optimistic screen from this exact prediction does not rule out and
    # whose estimate, calibrated by this degree's exact / estimated ratio, passes, is predicted exactly (never
    # when the estimates are exact: they already failed)
    while pred.sub is not None and cand.degree - step >= g0:
        lower = None
        for pl in at(cand.degree - step):
            if not ok(_screen(pl, cand, pred._pick(pb), method)):
                continue
            t_ex, t_est = pred._pick(pb)[1], pred.estimate(cand)[1]
            guess = {k: v * (t_ex[k] / t_est[k] if t_est[k] > 0 else 1.0) for k, v in pred.estimate(pl)[1].items()}
            if ok(guess) and ok(pred._pick(pred.predict(pl))[1]):
                lower = pl
                break
        if lower is None:
            break
        cand, pb = lower, pred.predict(lower)
    return Choice(cand, pb, len(pred.exact), len(pred.est))


def choose_method(problem: Any, tol: float, tol_mode: str, families: tuple[str, ...], score: Any, sens: Any,
                  model: Any, caps: dict[str, int], est: dict[str, float] | None, proxy: Any = None,
                  block_size: int | None = None, enclosures: list | None = None) -> tuple[str, Choice | None]:
    """``method="auto"``: :func:`choose_plan` for each of :data:`AUTO_METHODS` (``caps`` per method), and the one
    whose plan has the least predicted cost (:func:`~verified_lora.bounds.cost.fast_flops`); ``"factored"`` on a tie
    or when neither has a plan. "antiderivative" costs about ``(d + g + 1) / (g + 1)`` times "factored" at the same
    degree, so it wins only where its certificate (no ``eps_D`` term) passes at a lower degree: where the Q or K
    gradients bind (measured: ``d = 8``, ``L = 4096``, ``R = 1``, Q and K adapters only: degree 9 against 10)."""
    best: tuple[str, Choice | None] = ("factored", None)
    for m in AUTO_METHODS:
        ch = choose_plan(problem, tol, tol_mode, m, families, score, sens, model, caps[m], est, proxy=proxy,
                         block_size=block_size, enclosures=enclosures)
        if ch is not None and (best[1] is None or ch.plan.cost_fast < best[1].plan.cost_fast):
            best = (m, ch)
    return best


def _scales(pl: Plan, method: str) -> tuple[float, float]:
    e = pl.eps_A
    delta = 2 * e / (1 - e)
    zeta = (e + pl.eps_D) / (1 - e) if method == "factored" and pl.eps_D is not None else 0.0
    return delta, zeta
