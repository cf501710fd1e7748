"""The Aggarwal-Alman degree form, with its hidden constants fitted to certified minimal degrees.

docs/math.md section 5 (Aggarwal-Alman, CCC 2022): the least degree of a polynomial within
*additive* error ``delta`` of ``e^y`` on ``[0, B]`` is

    Theta( max( B, log(1/delta) / log(log(1/delta) / B) ) ).

Mapping to our setting (relative error ``eps`` on ``[-R, R]``): ``e^x = e^{-R} e^{x + R}``, so a
relative error on ``[-R, R]`` is a relative error for ``e^y`` on ``[0, 2R]``; on ``[0, B]`` we
have ``1 <= e^y <= e^B``, so relative ``eps`` implies additive ``eps e^B`` and additive ``eps``
implies relative ``eps``. We therefore use

    B = 2R   (the interval *length*, not the half-width),   L = ln(1/eps),

and the two regimes ``T_B = B`` and ``T_L = L / ln(L / B)``. The second term is meaningful only
when ``L / B > e`` (its log is then > 1); below that the ``B`` term dominates the Theta anyway, so
we clamp the log at 1: ``T_L = L / max(1, ln(L / B))`` (continuous at ``L = e B``). The fitted
model is

    g(R, eps) ~= c0 + max(c_B * T_B, c_L * T_L),

by least squares over ``(c_B, c_L)`` (and ``c0`` unless ``intercept=False``). The max makes the
problem piecewise linear: we search a log-spaced grid, then refine by alternating exact
least-squares solves on the active branches (each branch is linear in its constant).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np

from ..errors import InputError
from .polynomials import as_degree, as_eps, as_radius

__all__ = ["AAFit", "aggarwal_alman_terms", "fit_aggarwal_alman", "min_degree_samples"]


def aggarwal_alman_terms(R, eps) -> tuple[float, float]:
    """``(T_B, T_L)`` for half-width ``R`` and relative error ``eps`` (module docstring)."""
    B = 2 * float(as_radius(R))
    L = math.log(1 / float(as_eps(eps)))
    return B, L / max(1.0, math.log(L / B))


@dataclass(frozen=True)
class AAFit:
    """Fitted ``g ~= c0 + max(c_B * B, c_L * L / max(1, ln(L/B)))`` with ``B = 2R``, ``L = ln(1/eps)``."""

    c_B: float
    c_L: float
    c0: float
    rmse: float
    max_abs_residual: float
    r2: float
    n: int
    family: str | None = None
    mapping: str = "B = 2R (interval length), L = ln(1/eps); T_L = L / max(1, ln(L/B))"

    def predict(self, R, eps) -> float:
        tb, tl = aggarwal_alman_terms(R, eps)
        return self.c0 + max(self.c_B * tb, self.c_L * tl)

    def describe(self) -> str:
        return (f"g ~= {self.c0:.3f} + max({self.c_B:.4f} * B, {self.c_L:.4f} * L/max(1, ln(L/B)))  "
                f"[{self.mapping}]  n={self.n}, RMSE={self.rmse:.3f}, max|res|={self.max_abs_residual:.3f}, "
                f"R^2={self.r2:.4f}")

    def to_json(self) -> dict:
        return {"c_B": self.c_B, "c_L": self.c_L, "c0": self.c0, "rmse": self.rmse,
                "max_abs_residual": self.max_abs_residual, "r2": self.r2, "n": self.n,
                "family": self.family, "mapping": self.mapping}


def _validate_samples(samples) -> np.ndarray:
    rows = []
    for i, s in enumerate(samples):
        try:
            R, eps, g = s
        except (TypeError, ValueError):
            raise InputError(f"samples[{i}]", "a triple (R, eps, degree)", repr(s)) from None
        as_radius(R, f"samples[{i}].R")
        as_eps(eps, f"samples[{i}].eps")
        gi = as_degree(g, "taylor", f"samples[{i}].degree")
        tb, tl = aggarwal_alman_terms(R, eps)
        rows.append((tb, tl, float(gi)))
    if len(rows) < 3:
        raise InputError("samples", "at least 3 (R, eps, degree) triples", str(len(rows)))
    return np.array(rows, dtype=np.float64)


def _sse(cb, cl, c0, tb, tl, g):
    pred = c0 + np.maximum(cb * tb, cl * tl)
    return float(np.sum((g - pred) ** 2))


def _refine(cb, cl, c0, tb, tl, g, intercept, iters=50):
    """Alternating least squares on the active branch assignment (exact for a fixed assignment)."""
    best = (_sse(cb, cl, c0, tb, tl, g), cb, cl, c0)
    for _ in range(iters):
        active_b = cb * tb >= cl * tl
        cols = [np.where(active_b, tb, 0.0), np.where(active_b, 0.0, tl)]
        if intercept:
            cols.append(np.ones_like(tb))
        A = np.stack(cols, axis=1)
        sol, *_ = np.linalg.lstsq(A, g, rcond=None)
        ncb = float(sol[0]) if active_b.any() else cb
        ncl = float(sol[1]) if (~active_b).any() else cl
        nc0 = float(sol[2]) if intercept else 0.0
        sse = _sse(ncb, ncl, nc0, tb, tl, g)
        if sse >= best[0] - 1e-12:
            break
        best = (sse, ncb, ncl, nc0)
        cb, cl, c0 = ncb, ncl, nc0
    return best


def fit_aggarwal_alman(samples: Iterable[Sequence], *, intercept: bool = True,
                       family: str | None = None) -> AAFit:
    """Least-squares fit of the Aggarwal-Alman constants to measured ``(R, eps, degree)`` triples."""
    data = _validate_samples(samples)
    tb, tl, g = data[:, 0], data[:, 1], data[:, 2]
    grid = np.geomspace(1e-3, 1e2, 161)
    best = (math.inf, 1.0, 1.0, 0.0)
    for cb in grid:
        pb = cb * tb
        for cl in grid:
            m = np.maximum(pb, cl * tl)
            c0 = float(np.mean(g - m)) if intercept else 0.0
            sse = float(np.sum((g - c0 - m) ** 2))
            if sse < best[0]:
                best = (sse, float(cb), float(cl), c0)
    sse, cb, cl, c0 = _refine(best[1], best[2], best[3], tb, tl, g, intercept)
    pred = c0 + np.maximum(cb * tb, cl * tl)
    res = g - pred
    ss_tot = float(np.sum((g - g.mean()) ** 2))
    return AAFit(c_B=cb, c_L=cl, c0=c0, rmse=float(np.sqrt(np.mean(res ** 2))),
                 max_abs_residual=float(np.max(np.abs(res))),
                 r2=1.0 - float(np.sum(res ** 2)) / ss_tot if ss_tot > 0 else 1.0, n=len(g), family=family)


def min_degree_samples(radii: Sequence, epsilons: Sequence, family: str = "minimax") -> list[tuple]:
    """``[(R, eps, min_degree(R, eps, family)), ...]`` over the grid ``radii x epsilons``."""
    from .degree import min_degree

    return [(R, eps, min_degree(R, eps, family)) for R in radii for eps in epsilons]
