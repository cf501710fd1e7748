"""The norm-based phase transition (Theorem 4.1 vs Theorem 3.1) made measurable.

For sequence length ``L``, head dimension ``d``, an entry bound ``Gamma`` on ``Q`` and ``K`` and
a target relative error ``eps`` of the polynomial, a *phase point* records

* the score interval ``R``. **Decision (docs/math.md section 6, item 1):** we follow
  Alman-Song 2023/2024a and take ``beta = 1/d`` by default, so ``|S_ij| <= beta d Gamma^2 = Gamma^2``
  and ``R = Gamma^2``; ``beta = 1`` (the paper's S4) gives ``R = d Gamma^2`` instead. ``Gamma`` is
  swept as multiples of ``sqrt(ln L)`` (natural log), ``eps = L^(-c)``;
* the least certified degree ``g`` over the chosen families (:mod:`verified_lora.approx`),
  the rank ``k = C(d + g, g)``, the paper's ``C(2 (g + d), 2 g)``;
* the predicted cost ratio fast/exact of both algorithms (:mod:`.cost`; ``L_k = L``,
  ``d_head = d_v = d``).

Degrees are searched only up to ``g_pay``, the last degree whose rank still pays at this ``L``
(factored path). Above it the point is *proved* not to pay for **any** polynomial: the cheap bound
:func:`verified_lora.approx.lower_bounds.any_polynomial_lower_bound` or, failing that, the de la Vallee
Poussin bound on the degree-``g_pay`` Remez reference shows every polynomial of degree
``<= g_pay`` has relative error ``> eps`` on ``[-R, R]`` (column ``degree`` then reads ``>g_pay``
and the ratio is the lower bound at degree ``g_pay + 1``).

The sweep's degrees also feed the Aggarwal-Alman fit of the approx layer
(:func:`verified_lora.approx.fit_aggarwal_alman`), with ``B = 2R`` and ``L = ln(1/eps)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from fractions import Fraction
from typing import Any

from ..errors import CertificationError, InputError
from .cost import CostModel, cost_ratio, paper_rank, rank

__all__ = ["PhasePoint", "phase_point", "phase_sweep", "phase_table", "plot_phase", "aggarwal_alman_fit",
           "DEFAULT_L_EXPONENTS", "DEFAULT_GAMMA_MULTIPLES", "DEFAULT_EPS_EXPONENTS",
           "pay_degree"]

DEFAULT_L_EXPONENTS: tuple[int, ...] = tuple(range(8, 21))
DEFAULT_GAMMA_MULTIPLES: tuple[float, ...] = (0.125, 0.25, 0.375, 0.5, 0.625, 0.75, 1.0, 1.25, 1.5)
DEFAULT_EPS_EXPONENTS: tuple[float, ...] = (0.5, 1.0)
_DEGREE_CAP = 60


@dataclass(frozen=True)
class PhasePoint:
    """One point of the sweep (module docstring). ``degree`` is ``None`` when it exceeds ``g_pay``."""

    L: int
    d: int
    gamma_multiple: float | None
    gamma: float | None
    R: float
    eps_exponent: float | None
    eps: float
    family: str | None
    degree: int | None
    g_pay: int
    rank: int
    paper_rank: int
    ratio_factored: float
    ratio_paper: float
    proof: str

    @property
    def pays(self) -> bool:
        """Whether the factored fast path is predicted to beat exact (degree certified, ratio < 1)."""
        return self.degree is not None and self.ratio_factored < 1

    def as_row(self) -> dict[str, Any]:
        return asdict(self) | {"pays": self.pays}


def _check_positive_int(name: str, v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise InputError(name, "a positive integer", repr(v))
    return v


def _check_positive(name: str, v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
        raise InputError(name, "a finite number > 0", repr(v))
    return float(v)


def pay_degree(L: int, d: int, method: str = "factored", model: CostModel = CostModel(), cap: int = _DEGREE_CAP) -> int:
    """Largest degree ``g`` whose rank ``C(d + g, g)`` gives a cost ratio below 1 (0 if none)."""
    g = 0
    while g < cap and cost_ratio(method, L, L, d, d, rank(d, g + 1), model) < 1:
        g += 1
    return g


def phase_point(L: int, d: int, R: float, eps: float, *, families: Sequence[str] = ("minimax",),
                cost_model: CostModel | None = None, gamma_multiple: float | None = None,
                gamma: float | None = None, eps_exponent: float | None = None) -> PhasePoint:
    """Degree, rank and predicted cost ratio at one ``(L, d, R, eps)`` (module docstring)."""
    from ..approx.degree import certified_on_grid, degree_table, grid_radius
    from ..approx.polynomials import as_eps, as_family, as_radius

    L = _check_positive_int("L", L)
    d = _check_positive_int("d", d)
    as_radius(R)
    as_eps(eps)
    fams = tuple(as_family(f, "families") for f in families)
    if not fams:
        raise InputError("families", "at least one polynomial family", "an empty list")
    model = cost_model or CostModel()
    g_pay = pay_degree(L, d, "factored", model)
    Rg = grid_radius(Fraction(R))
    eps_q = Fraction(eps)
    degree: int | None = None
    family: str | None = None
    proof = ""
    # Every polynomial of degree <= g_pay fails eps?  First the cheap bound valid for every
    # polynomial (exact/interval sums, milliseconds at any R), then de la Vallee Poussin on the
    # minimax reference (a Remez run: minutes at R = 10^4, where the first one already decides).
    refuted = False
    how = "de la Vallee Poussin"
    if g_pay >= 1:
        from ..approx.lower_bounds import any_polynomial_lower_bound
        from ._approx_api import LOWER_BOUND_R_CAP

        # the best error is non-decreasing in R, so the bound at min(R, cap) holds at R (and stays
        # cheap: at R = 1e6 the uncapped exact sums never finish)
        if any_polynomial_lower_bound(g_pay, min(Rg, LOWER_BOUND_R_CAP)) > eps_q:
            refuted, how = True, "divided-difference / Chebyshev growth lower bound"
        else:
            try:
                refuted = degree_table("minimax", Rg).alternation(g_pay) > eps_q
            except CertificationError:
                refuted = False
    else:
        refuted = True
    if refuted:
        g_show = g_pay + 1
        proof = (f"every polynomial of degree <= {g_pay} has relative error > eps ({how})"
                 if g_pay >= 1 else "even degree 1 does not pay at this L")
    else:
        for fam in fams:
            try:
                choice = certified_on_grid(Rg, eps_q, fam)
            except CertificationError:
                continue
            if degree is None or choice.degree < degree:
                degree, family = choice.degree, fam
        if degree is None:
            g_show = g_pay + 1
            proof = "no family certified eps up to the approx layer's degree cap"
        else:
            g_show = degree
            proof = f"certified {family} degree {degree} (minimality proved by the approx layer)"
    k = rank(d, g_show)
    return PhasePoint(L=L, d=d, gamma_multiple=gamma_multiple, gamma=gamma, R=float(R), eps_exponent=eps_exponent,
                      eps=float(eps), family=family, degree=degree, g_pay=g_pay, rank=k,
                      paper_rank=paper_rank(d, g_show),
                      ratio_factored=cost_ratio("factored", L, L, d, d, k, model),
                      ratio_paper=cost_ratio("paper", L, L, d, d, k, model), proof=proof)


def _resolve_d(d: int | str, L: int) -> int:
    if d == "log":
        return max(1, math.ceil(math.log2(L) / 2))
    return _check_positive_int("d", d)


def _sweep_point(shared: dict[str, Any], L: int, d: int, R: float, eps: float, m: float, gam: float,
                 c: float) -> PhasePoint:
    """One grid point of :func:`phase_sweep` (module level, so dask workers can import it)."""
    return phase_point(L, d, R, eps, families=shared["families"], cost_model=shared["cost_model"],
                       gamma_multiple=m, gamma=gam, eps_exponent=c)


def phase_sweep(*, L_exponents: Iterable[int] = DEFAULT_L_EXPONENTS,
                gamma_multiples: Iterable[float] = DEFAULT_GAMMA_MULTIPLES,
                eps_exponents: Iterable[float] = DEFAULT_EPS_EXPONENTS, d: int | str = "log",
                beta: str | float = "1/d", families: Sequence[str] = ("minimax",),
                cost_model: CostModel | None = None,
                progress: Callable[[str], None] | None = None,
                workers: int | None = None, scheduler: str | None = None) -> list[PhasePoint]:
    """The sweep over ``L = 2^e``, ``Gamma = m sqrt(ln L)``, ``eps = L^(-c)`` (module docstring).

    ``d`` is the head dimension: an int, or "log" (default) for ``ceil(log2(L) / 2)``, i.e.
    ``d = Theta(log L)`` as in Theorems 3.1 and 4.1 (with a fixed ``d`` the rank is polylogarithmic
    in ``L`` and the threshold multiple drifts upward with ``L``); ``beta`` is "1/d"
    (default, ``R = Gamma^2``) or a number (``R = |beta| d Gamma^2``). The points are independent:
    ``workers=N`` (a dask LocalCluster) or ``scheduler=ADDRESS`` runs them on dask through
    :func:`verified_lora.parallel.map_tasks`; the points come back in grid order either way.
    """
    from ..parallel import map_tasks

    Ls = [int(e) for e in L_exponents]
    ms = [_check_positive("gamma_multiples", float(m)) for m in gamma_multiples]
    cs = [_check_positive("eps_exponents", float(c)) for c in eps_exponents]
    if not Ls or not ms or not cs:
        raise InputError("sweep", "non-empty L exponents, Gamma multiples and eps exponents", "an empty list")
    for e in Ls:
        if not 1 <= e <= 40:
            raise InputError("L_exponents", "integers in 1..40 (L = 2^e)", repr(e))
    if beta != "1/d":
        beta = _check_positive("beta", beta)
    progress = progress or (lambda m: None)
    tasks = []
    for e in Ls:
        L = 2**e
        dd = _resolve_d(d, L)
        b = 1.0 / dd if beta == "1/d" else float(beta)
        for c in cs:
            eps = float(L) ** (-c)
            if not eps < 1:
                raise InputError("eps_exponents", "exponents c with L^-c < 1", repr(c))
            for m in ms:
                gam = m * math.sqrt(math.log(L))
                tasks.append((L, dd, b * dd * gam * gam, eps, m, gam, c))

    def report(done: int, total: int) -> None:
        progress(f"phase points done: {done}/{total}")

    return map_tasks(_sweep_point, tasks, {"families": tuple(families), "cost_model": cost_model},
                     workers=workers, scheduler=scheduler, progress=report)


def phase_table(points: Sequence[PhasePoint]) -> tuple[list[str], list[list[Any]]]:
    """Headers and rows for :func:`verified_lora._table.format_table`."""
    headers = ["L", "d", "Gamma/sqrt(lnL)", "R", "eps", "degree", "k", "paper k", "fast/exact (fact.)",
               "fast/exact (paper)", "pays"]
    rows = []
    for p in points:
        deg = str(p.degree) if p.degree is not None else f">{p.g_pay}"
        ratio_f = p.ratio_factored if p.degree is not None else f">{p.ratio_factored:.3g}"
        ratio_p = p.ratio_paper if p.degree is not None else f">{p.ratio_paper:.3g}"
        rows.append([f"2^{int(round(math.log2(p.L)))}", p.d,
                     "-" if p.gamma_multiple is None else f"{p.gamma_multiple:g}", p.R, p.eps, deg,
                     p.rank if p.degree is not None else f">={p.rank}", float(p.paper_rank), ratio_f, ratio_p,
                     "yes" if p.pays else "no"])
    return headers, rows


def aggarwal_alman_fit(points: Sequence[PhasePoint], family: str | None = None):
    """Fit the Aggarwal-Alman constants to the certified degrees of the sweep (approx layer)."""
    from ..approx.aggarwal_alman import fit_aggarwal_alman

    samples = [(p.R, p.eps, p.degree) for p in points if p.degree is not None and (family is None or p.family == family)]
    if len(samples) < 3:
        raise InputError("points", "at least 3 phase points with a certified degree", f"{len(samples)}",
                         "widen the sweep (smaller Gamma multiples or larger eps)")
    return fit_aggarwal_alman(samples, family=family)


def plot_phase(points: Sequence[PhasePoint], path: str, *, title: str | None = None) -> str:
    """Write a PNG: one panel per eps exponent, x = log2 L, y = Gamma / sqrt(ln L), colour = log10 of
    the predicted cost ratio fast/exact (factored) on a diverging map centred at ratio 1 (blue: the fast
    path pays, red: it does not), the contour ratio = 1 and the line ``Gamma = sqrt(ln L)``, both
    named in a legend; each cell is labelled with its certified degree (``>g``: refuted up to g).

    Needs the optional ``plot`` extra (matplotlib), imported here only.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib import patheffects
        from matplotlib.colors import TwoSlopeNorm
        from matplotlib.lines import Line2D
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise InputError("plot", "matplotlib (pip install 'verified-lora[plot]')", "not installed") from exc
    import numpy as np

    pts = [p for p in points if p.gamma_multiple is not None and p.eps_exponent is not None]
    if not pts:
        raise InputError("points", "sweep points with Gamma multiples and eps exponents", "none")
    cs = sorted({p.eps_exponent for p in pts})
    Ls = sorted({p.L for p in pts})
    ms = sorted({p.gamma_multiple for p in pts})
    logs = [math.log10(p.ratio_factored) for p in pts if p.ratio_factored and p.ratio_factored > 0]
    # centred at ratio 1; each side saturates at its own extreme (at most 2 decades), so a cell that
    # pays and one that does not are both clearly coloured even when the ratios are lopsided
    vlo = min(2.0, max([-v for v in logs if v < 0] + [0.25]))
    vhi = min(2.0, max([v for v in logs if v > 0] + [0.25]))
    norm = TwoSlopeNorm(vcenter=0.0, vmin=-vlo, vmax=vhi)
    cmap = plt.get_cmap("RdBu_r")
    fig, axes = plt.subplots(1, len(cs), figsize=(6.4 * len(cs), 5.6), squeeze=False)
    for ax, c in zip(axes[0], cs):
        grid = np.full((len(ms), len(Ls)), np.nan)
        for p in pts:
            if p.eps_exponent == c and p.ratio_factored and p.ratio_factored > 0:
                grid[ms.index(p.gamma_multiple), Ls.index(p.L)] = math.log10(p.ratio_factored)
        x = np.log2(Ls)
        y = np.array(ms)
        mesh = ax.pcolormesh(x, y, np.clip(grid, -vlo, vhi), cmap=cmap, norm=norm, shading="nearest", zorder=1)
        if len(Ls) > 1 and len(ms) > 1 and np.nanmin(grid) < 0 < np.nanmax(grid):
            ax.contour(x, y, grid, levels=[0.0], colors="k", linewidths=2.2, zorder=2)
        ax.axhline(1.0, color="0.15", linestyle=(0, (5, 3)), linewidth=1.2, zorder=2)
        for p in pts:
            if p.eps_exponent == c:
                label = str(p.degree) if p.degree is not None else f">{p.g_pay}"
                v = grid[ms.index(p.gamma_multiple), Ls.index(p.L)]
                dark = not np.isnan(v) and (v < -0.6 * vlo or v > 0.6 * vhi)
                # a light halo keeps the dashed line from striking through dark digits on light cells
                halo = [] if dark else [patheffects.withStroke(linewidth=2.5, foreground="white")]
                ax.text(math.log2(p.L), p.gamma_multiple, label, ha="center", va="center", fontsize=8, zorder=3,
                        color="white" if dark else "black", path_effects=halo)
        ax.set_xlabel("log2 L", fontsize=11)
        ax.set_ylabel("Gamma / sqrt(ln L)", fontsize=11)
        ax.set_xticks(x)
        ax.set_yticks(y)
        ax.set_yticklabels([f"{m:g}" for m in ms])
        ax.tick_params(labelsize=9)
        ds = sorted({p.d for p in pts})
        ax.set_title(f"eps = L^-{c:g}; d = {ds[0]}" if len(ds) == 1 else
                     f"eps = L^-{c:g}; d = {ds[0]}..{ds[-1]} (grows with L)", fontsize=11)
        bar = fig.colorbar(mesh, ax=ax, extend="both")
        bar.set_ticks(sorted({round(-vlo, 2), round(-vlo / 2, 2), 0.0, round(vhi / 2, 2), round(vhi, 2)}))
        bar.set_label("log10 predicted cost fast / exact (factored)\n< 0: fast path pays   > 0: it does not",
                      fontsize=9)
    handles = [Line2D([], [], color="k", linewidth=2.2, label="fast = exact (ratio 1): the threshold"),
               Line2D([], [], color="0.15", linestyle=(0, (5, 3)), linewidth=1.2, label="Gamma = sqrt(ln L)")]
    fig.legend(handles=handles, loc="lower center", ncol=2, fontsize=10, frameon=False)
    fig.suptitle(title or "Where the certified fast path stops paying (cell labels: certified degree; "
                 ">g: refuted up to g)", fontsize=12)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path
