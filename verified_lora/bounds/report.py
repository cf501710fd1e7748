"""Text and JSON reports behind ``verified-lora bounds`` and ``verified-lora phase``."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from .._table import format_markdown, format_table
from ..errors import InputError
from ..problem import LoraAttention
from .cost import CostModel

__all__ = ["problem_report", "point_report", "phase_report"]

EXACT_RELATIVE_LIMIT = 4_000_000
"""Largest ``N L L_k`` for which the bounds report also runs the exact gradient (relative form)."""


def problem_report(problem: LoraAttention, tol: float, methods: Sequence[str], *, families=None,
                   max_degree: int = 40, cost_model: CostModel | None = None, full_search: bool = False,
                   progress: Callable[[str], None] | None = None) -> tuple[str, dict[str, Any]]:
    """Score bound, plan per method, and the per-gradient certified bounds of the chosen plan."""
    from .planner import plan
    from .propagation import Sensitivity
    from .score import score_bound

    progress = progress or (lambda m: None)
    progress("score bound")
    sb = score_bound(problem)
    progress("sensitivity (O(L d))")
    sens = Sensitivity(problem)
    exact_grads = None
    if problem.n_batch * problem.L * problem.L_k <= EXACT_RELATIVE_LIMIT:
        from ..exact import loss_and_grads

        progress("exact gradients (for the relative form)")
        exact_grads = loss_and_grads(problem).grads
    out = [problem.describe(), sb.describe()]
    data: dict[str, Any] = {"problem": problem.describe(), "R": sb.R, "R_paper": sb.R_paper, "plans": {}}
    for method in methods:
        progress(f"plan ({method})")
        pl = plan(problem, tol, method, families=families, max_degree=max_degree, cost_model=cost_model,
                  score=sb, sens=sens, full_search=full_search)
        out.append("")
        out.append(pl.summary(with_score=False))
        entry: dict[str, Any] = {"efficient": pl.efficient, "reason": pl.reason, "family": pl.family,
                                 "degree": pl.degree, "rank": pl.rank, "paper_rank": pl.paper_rank,
                                 "eps_A": pl.eps_A, "eps_D": pl.eps_D, "cost_ratio": pl.cost_ratio,
                                 "bounds": pl.bounds, "weight_bounds": pl.weight_bounds,
                                 "candidates": [{k: v for k, v in c.items()} for c in pl.candidates]}
        if pl.gradient_bounds is not None:
            rel = pl.gradient_bounds.relative(exact_grads) if exact_grads is not None else {}
            rows = [(k, v, rel.get(k)) for k, v in pl.bounds.items()]
            out.append(format_table(("gradient", "certified max-entry bound", "relative (bound / max|exact|)"), rows))
            entry["relative"] = rel
        if pl.candidates:
            rows = [(c["family"], c.get("degree") if c.get("degree") is not None else "-", c.get("eps_A"),
                     c.get("eps_D"), c.get("bound")) for c in pl.candidates]
            out.append(format_table(("family", "least degree", "eps_A", "eps_D", "max bound"), rows,
                                    title="  families:"))
        data["plans"][method] = entry
    return "\n".join(out), data


def point_report(L: int, d: int, R: float, eps: float, *, families: Sequence[str], cost_model: CostModel | None = None,
                 L_k: int | None = None) -> tuple[str, dict[str, Any]]:
    """Least certified degree per family, rank and predicted cost at one ``(L, d, R, eps)``."""
    from .phase import phase_point

    if L_k is not None and L_k != L:
        raise InputError("L_k", "equal to L for a sweep point", repr(L_k))
    rows = []
    data = []
    for fam in families:
        p = phase_point(L, d, R, eps, families=(fam,), cost_model=cost_model)
        deg = p.degree if p.degree is not None else f">{p.g_pay}"
        rows.append((fam, deg, p.rank if p.degree is not None else f">={p.rank}", float(p.paper_rank),
                     p.ratio_factored, p.ratio_paper, "yes" if p.pays else "no", p.proof))
        data.append(p.as_row() | {"family": fam})
    text = format_table(("family", "degree", "k = C(d+g,g)", "paper C(2(g+d),2g)", "fast/exact factored",
                         "fast/exact paper", "pays", "why"), rows,
                        title=f"L={L}, d={d}, R={R:g}, eps={eps:g} (relative error of P on [-R, R])")
    return text, {"L": L, "d": d, "R": R, "eps": eps, "families": data}


def phase_report(points, *, markdown: bool = False, fit_family: str | None = None) -> tuple[str, dict[str, Any]]:
    """The sweep table, the boundary per eps exponent and the Aggarwal-Alman fit."""
    from .phase import aggarwal_alman_fit, phase_table

    headers, rows = phase_table(points)
    text = [format_markdown(headers, rows) if markdown else format_table(headers, rows)]
    data: dict[str, Any] = {"points": [p.as_row() for p in points]}
    boundary = []
    for c in sorted({p.eps_exponent for p in points}):
        for L in sorted({p.L for p in points}):
            ms = [p.gamma_multiple for p in points if p.eps_exponent == c and p.L == L and p.pays]
            boundary.append((f"L^-{c:g}", f"2^{int(round(math.log2(L)))}", max(ms) if ms else "none"))
    text.append("")
    fmt = format_markdown if markdown else format_table
    text.append(fmt(("eps", "L", "largest Gamma/sqrt(ln L) that pays"), boundary, title="where the fast path stops paying:"))
    data["boundary"] = [dict(zip(("eps", "L", "largest_gamma_multiple"), b)) for b in boundary]
    try:
        fit = aggarwal_alman_fit(points, fit_family)
    except InputError as exc:
        text.append(f"\nAggarwal-Alman fit: not enough certified degrees ({exc})")
        data["aggarwal_alman"] = None
    else:
        text.append("\nAggarwal-Alman fit to the certified degrees of this sweep:\n  " + fit.describe())
        data["aggarwal_alman"] = fit.to_json()
    return "\n".join(text), data
