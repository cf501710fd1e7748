"""``plan(problem, tol)``: the cheapest certified fast path, or an explicit refusal.

For every polynomial family, the least degree ``g`` whose certified relative errors ``eps_A``
(of ``P``) and ``eps_D`` (of ``P'``, factored path only) on ``[-R, R]`` make the certified bound
of :mod:`.propagation` at most ``tol`` on **every** adapter gradient (max-entry, absolute; the
weight gradients when nothing is adapted). The cost of a fast path depends on ``g`` only through
the rank ``k = C(d_head + g, g)``, so the family with the least such degree wins (ties: the
smaller bound). The plan is *efficient* when the predicted cost ratio of :mod:`.cost` is below 1.

It is *outside the efficient regime* (``efficient=False``, with the reason) when

* no degree up to ``max_degree`` certifies ``tol`` (``R`` too large, or ``tol`` below what the
  degree cap can reach), or
* the cheapest certified plan costs at least as much as the exact computation at this ``L``.

Degrees are searched from the one the ``eps_A``-only requirement gives (a lower bound: the
bounds increase with ``eps_A`` and ``eps_D``) upward; certificates come from
:mod:`verified_lora.approx` (interval branch-and-bound), cached there.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ..errors import CertificationError, InputError
from ..problem import LoraAttention
from . import _approx_api as api
from .degenerate import TINY_R, tiny_radius_cert
from .cost import CostModel, cost_ratio, exact_flops, fast_flops, paper_rank, rank
from .propagation import METHODS, GradientBounds, Sensitivity
from .score import ScoreBound, score_bound

__all__ = ["Plan", "plan", "DEFAULT_MAX_DEGREE"]

DEFAULT_MAX_DEGREE = 40
"""Largest degree the planner tries: at d_head = 4 the rank C(44, 40) = 135751 already needs
L > 10^5 to pay, and for d_head >= 8 the fast path never pays long before."""


@dataclass(frozen=True)
class Plan:
    """The planner's verdict (see the module docstring).

    ``bounds`` maps every adapter gradient key ("A_Q", ...) to its certified max-entry absolute
    error bound; ``weight_bounds`` the same for ``dL/dW_{Q,K,V}``. ``family``/``degree``/
    ``polynomial`` are those of the cheapest certified plan (also when it is not efficient), or
    ``None`` when nothing certifies ``tol``.
    """

    efficient: bool
    reason: str
    method: str
    tol: float
    family: str | None
    degree: int | None
    polynomial: Any
    rank: int | None
    paper_rank: int | None
    R: float
    eps_A: float | None
    eps_D: float | None
    bounds: dict[str, float]
    weight_bounds: dict[str, float]
    cost_ratio: float | None
    cost_fast: float | None
    cost_exact: float
    score: ScoreBound
    candidates: list[dict[str, Any]] = field(default_factory=list)
    gradient_bounds: GradientBounds | None = None

    @property
    def max_bound(self) -> float:
        """The largest certified bound over the gradients the plan is judged on."""
        vals = list(self.bounds.values()) or list(self.weight_bounds.values())
        return max(vals) if vals else math.inf

    def relative(self, grads: dict[str, Any]) -> dict[str, float]:
        """The relative form ``bound / max|g|`` per key, for given (e.g. exact) gradients."""
        return {} if self.gradient_bounds is None else self.gradient_bounds.relative(grads)

    def summary(self, with_score: bool = True) -> str:
        verdict = "efficient: " if self.efficient else ""
        lines = [f"plan ({self.method}, tol={self.tol:.3g}): {verdict}{self.reason}"]
        if with_score:
            lines.append(f"  score bound: {self.score.describe()}")
        if self.degree is not None:
            lines.append(f"  polynomial: {self.family} degree {self.degree}; eps_A = {self.eps_A:.3g}"
                         + (f", eps_D = {self.eps_D:.3g}" if self.eps_D is not None else "")
                         + f"; rank k = {self.rank} (paper bound {self.paper_rank:.3g})")
            lines.append(f"  predicted cost fast/exact = {self.cost_ratio:.3g}")
            lines.append("  certified max-entry bounds: " + ", ".join(
                f"{k} {v:.3g}" for k, v in (self.bounds or self.weight_bounds).items()))
        return "\n".join(lines)


def _check_tol(tol: Any) -> float:
    if isinstance(tol, bool) or not isinstance(tol, (int, float)) or not math.isfinite(float(tol)) or tol <= 0:
        raise InputError("tol", "a finite absolute error bound > 0", repr(tol), "e.g. tol=1e-6")
    return float(tol)


def _check_families(families: Iterable[str] | None) -> tuple[str, ...]:
    known = api.families()
    if families is None:
        return known
    if isinstance(families, str):
        families = (families,)
    out = tuple(families)
    if not out:
        raise InputError("families", f"a non-empty subset of {known}", "an empty list")
    for f in out:
        if f not in known:
            raise InputError("families", f"names among {known}", repr(f))
    return out


def _judged(b: GradientBounds) -> float:
    return b.max_bound


def _fails(low_A: float, low_D: float | None, tol: float, method: str, sens: Sensitivity) -> bool:
    """True when lower bounds ``low_A`` (``low_D``) of the errors prove a degree fails ``tol``.

    The bounds need ``eps_A < 1`` (and ``eps_D < 1``) and increase with both, so a lower bound
    ``>= 1``, or one whose bound already exceeds ``tol``, rules the certified errors out too.
    """
    need_d = method == "factored"
    if low_A >= 1 or (need_d and low_D >= 1):
        return True
    # the bound at the lower eps is computed rounded *up* (relative excess far below 1e-6): rule a
    # degree out only with that margin, so rounding never rules out a degree that would certify
    return _judged(sens.bounds(low_A, low_D if need_d else None, method)) > tol * (1 + 1e-6)


def _least_possible_degree(R: float, tol: float, method: str, sens: Sensitivity, cap: int) -> int:
    """Least ``g <= cap + 1`` not ruled out for *every* polynomial of degree ``<= g``.

    :func:`~._approx_api.any_polynomial_lower` decreases with ``g`` and bounds both ``eps_A`` and
    ``eps_D`` of any degree-``<= g`` polynomial, so the degrees it rules out are ``1..g0-1``:
    bisection, no polynomial built or certified. ``cap + 1`` means that no degree ``<= cap`` can
    certify ``tol`` on ``[-R, R]``, whatever the family.
    """
    def ruled_out(g: int) -> bool:
        lo = api.any_polynomial_lower(g, R)
        return _fails(lo, lo, tol, method, sens)

    if not ruled_out(1):
        return 1
    if ruled_out(cap):
        return cap + 1
    lo, hi = 1, cap  # ruled_out(lo) and not ruled_out(hi)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if ruled_out(mid) else (lo, mid)
    return hi


def _search_family(fam: str, R: float, tol: float, method: str, sens: Sensitivity, cap: int,
                   start: int = 1) -> dict | None:
    """Least degree in ``[start, cap]`` of ``fam`` whose certified bound is ``<= tol`` (``None`` if none).

    A degree is rejected cheaply when rigorous *lower* bounds of its errors (point enclosures)
    already give a bound above ``tol``, or are ``>= 1`` (:func:`_fails`): the certified (larger)
    errors would fail too.
    """
    need_d = method == "factored"
    if R <= TINY_R:  # closed-form Taylor certificates only (bounds/degenerate.py): no branch-and-bound
        if fam != "taylor":
            return None
        for g in range(max(1, start), cap + 1):
            cert = tiny_radius_cert(g, R)
            b = sens.bounds(cert.eps_A, cert.eps_D if need_d else None, method)
            if _judged(b) <= tol:
                return dict(family=fam, degree=g, cert=cert, bounds=b)
        return None
    g = 2 if fam == "taylor_even" else 1
    while g < start:
        g = api.next_degree(fam, g)
    while g <= cap:
        low = api.lower_errors(fam, g, R, need_d)
        if low is not None and _fails(low[0], low[1], tol, method, sens):
            g = api.next_degree(fam, g)
            continue
        try:
            cert = api.certify(fam, g, R, need_derivative=need_d)
        except CertificationError:
            cert = None
        if cert is not None and cert.eps_A < 1 and (not need_d or cert.eps_D < 1):
            b = sens.bounds(cert.eps_A, cert.eps_D if need_d else None, method)
            if _judged(b) <= tol:
                return dict(family=fam, degree=g, cert=cert, bounds=b)
        g = api.next_degree(fam, g)
    return None


def plan(problem: LoraAttention, tol: float, method: str = "factored", *, families: Iterable[str] | None = None,
         max_degree: int = DEFAULT_MAX_DEGREE, cost_model: CostModel | None = None,
         score: ScoreBound | None = None, sens: Sensitivity | None = None, full_search: bool = False) -> Plan:
    """Choose family and degree so the certified max-entry bound of every gradient is ``<= tol``.

    Parameters
    ----------
    problem:
        The :class:`~verified_lora.LoraAttention` problem (any batch, any adapters).
    tol:
        Absolute max-entry error allowed on every adapter gradient (``> 0``).
    method:
        "factored" (default, the exact gradient of the approximate loss) or "paper" (the
        Lemma 3.3-3.7 chain); see :mod:`verified_lora.bounds.propagation`.
    families:
        Polynomial families to consider (default: all of :mod:`verified_lora.approx`).
    max_degree:
        Largest degree tried.
    cost_model:
        :class:`~verified_lora.bounds.cost.CostModel` (default: FLOP convention, free exps).
    full_search:
        Search degrees up to ``max_degree`` even past the last degree whose rank pays (to report
        the degree ``tol`` needs); by default the search stops there.
    """
    if not isinstance(problem, LoraAttention):
        raise InputError("problem", "a verified_lora.LoraAttention", type(problem).__name__)
    tol = _check_tol(tol)
    if method not in METHODS:
        raise InputError("method", f"one of {METHODS}", repr(method))
    fams = _check_families(families)
    if isinstance(max_degree, bool) or not isinstance(max_degree, int) or max_degree < 1:
        raise InputError("max_degree", "a positive int", repr(max_degree))
    model = cost_model or CostModel()
    sb = score or score_bound(problem)
    L, L_k, dh, dv = problem.L, problem.L_k, problem.d_head, problem.d_v
    c_exact = exact_flops(L, L_k, dh, dv, model)
    common = dict(method=method, tol=tol, R=sb.R, cost_exact=c_exact, score=sb)
    if not math.isfinite(sb.R):
        return Plan(efficient=False, reason="outside the efficient regime: the score bound R is not finite",
                    family=None, degree=None, polynomial=None, rank=None, paper_rank=None, eps_A=None, eps_D=None,
                    bounds={}, weight_bounds={}, cost_ratio=None, cost_fast=None, **common)
    sens = sens or Sensitivity(problem)
    R = sb.R

    # Degrees whose rank pays at this size: beyond g_pay no certificate can make the plan efficient.
    g_pay = 0
    while g_pay < max_degree and cost_ratio(method, L, L_k, dh, dv, rank(dh, g_pay + 1), model) < 1:
        g_pay += 1
    cap = max_degree if full_search else g_pay
    if cap < 1:
        k1 = rank(dh, 1)
        ratio1 = cost_ratio(method, L, L_k, dh, dv, k1, model)
        return Plan(efficient=False,
                    reason=(f"outside the efficient regime: even degree 1 (rank k = d_head + 1 = {k1}) costs "
                            f"{ratio1:.3g} x the exact computation at L={L}, L_k={L_k}; compute exactly"),
                    family=None, degree=None, polynomial=None, rank=None, paper_rank=None, eps_A=None, eps_D=None,
                    bounds={}, weight_bounds={}, cost_ratio=None, cost_fast=None, **common)

    # Degrees that no polynomial at all can make work on [-R, R] (exact arithmetic, no certificate).
    start = 1 if R <= TINY_R else _least_possible_degree(R, tol, method, sens, cap)
    if start > cap:
        lo = api.any_polynomial_lower(cap, R)
        return Plan(efficient=False,
                    reason=(f"outside the efficient regime: no polynomial of degree <= {cap} certifies tol={tol:.3g} "
                            f"on [-R, R] with R={R:.4g}: every one has relative error >= {min(lo, 0.999999):.6g} "
                            "there (lower bound valid for every polynomial)"
                            + (f"; every higher degree has a rank above C(d_head + {cap}, {cap}) = {rank(dh, cap)}, "
                               f"which costs more than exact at L={L}" if cap < max_degree else "")
                            + "; compute exactly"),
                    family=None, degree=None, polynomial=None, rank=None, paper_rank=None, eps_A=None, eps_D=None,
                    bounds={}, weight_bounds={}, cost_ratio=None, cost_fast=None, **common)
    candidates: list[dict[str, Any]] = []
    best: dict[str, Any] | None = None
    for fam in fams:
        found = _search_family(fam, R, tol, method, sens, cap, start)
        if found is None:
            candidates.append(dict(family=fam, degree=None, note=f"no degree <= {cap} certifies tol"))
            continue
        candidates.append(dict(family=fam, degree=found["degree"], eps_A=found["cert"].eps_A,
                               eps_D=found["cert"].eps_D, bound=_judged(found["bounds"])))
        if best is None or (found["degree"], _judged(found["bounds"])) < (best["degree"], _judged(best["bounds"])):
            best = found
    if best is None:
        if cap < max_degree:
            reason = (f"outside the efficient regime: no polynomial of degree <= {cap} in {', '.join(fams)} "
                      f"certifies tol={tol:.3g} on [-R, R] with R={R:.4g}, and every higher degree has a rank "
                      f"above C(d_head + {cap}, {cap}) = {rank(dh, cap)}, which costs more than exact at L={L}")
        else:
            reason = (f"outside the efficient regime: no polynomial of degree <= {max_degree} in "
                      f"{', '.join(fams)} certifies tol={tol:.3g} on [-R, R] with R={R:.4g} "
                      "(shrink the score range or loosen tol)")
        return Plan(efficient=False, reason=reason,
                    family=None, degree=None, polynomial=None, rank=None, paper_rank=None, eps_A=None, eps_D=None,
                    bounds={}, weight_bounds={}, cost_ratio=None, cost_fast=None, candidates=candidates, **common)
    g = best["degree"]
    k = rank(dh, g)
    c_fast = fast_flops(method, L, L_k, dh, dv, k)
    ratio = cost_ratio(method, L, L_k, dh, dv, k, model)
    b: GradientBounds = best["bounds"]
    efficient = ratio < 1
    if efficient:
        reason = (f"certified: every gradient bound <= tol with {best['family']} degree {g} (rank {k}); "
                  f"predicted cost {ratio:.3g} x exact")
    else:
        reason = (f"outside the efficient regime: the cheapest certified plan ({best['family']} degree {g}, "
                  f"rank k={k}) costs {ratio:.3g} x the exact O(L L_k d) computation at L={L}, L_k={L_k}; "
                  f"compute exactly")
    return Plan(efficient=efficient, reason=reason, family=best["family"], degree=g,
                polynomial=best["cert"].polynomial, rank=k, paper_rank=paper_rank(dh, g),
                eps_A=best["cert"].eps_A, eps_D=best["cert"].eps_D if method == "factored" else None,
                bounds=dict(b.grads), weight_bounds=dict(b.weights_max), cost_ratio=ratio, cost_fast=c_fast,
                candidates=candidates, gradient_bounds=b, **common)
