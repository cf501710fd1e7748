"""Certified score interval ``R >= max |S_ij|`` in ``O(L d)`` (docs/design.md section 4.1; Lemma 3.3's premise).

``S = beta Q K^T`` with ``Q = X_Q W_Q`` and ``K = X_K W_K`` built from the *effective* weights
``W = W* + s B A`` (docs/math.md section 6, item 4). By Cauchy-Schwarz

    |S_ij| = |beta| |<Q_i, K_j>| <= |beta| ||Q_i||_2 ||K_j||_2 <= |beta| max_i ||Q_i||_2 max_j ||K_j||_2 = R.

The paper's form (Lemma 3.3 / Theorem 3.1: ``||Q||_max, ||K||_max <= Gamma`` gives
``|S_ij| <= |beta| d_head Gamma^2``) is reported beside it; ``R <= R_paper`` always, because
``||Q_i||_2 <= sqrt(d_head) ||Q||_max``.

**Rounding, rigorously.** ``Q`` is not available exactly, only a float64 product ``Q^``. The
module encloses the exact ``Q`` as ``|Q - Q^| <= E`` entrywise (:func:`enclose_projection`) with
Higham's matrix-product bound ``|fl(AB) - AB| <= gamma_n |A||B|`` (any summation order), applied
to ``W^ = fl(W* + s^ fl(B A))`` and to ``Q^ = fl(X W^)``. ``E`` also covers the same projection
computed in the problem's own dtype (float32 problems), so ``R`` bounds both the exact scores and
the scores the fast path forms from its own ``Q``, ``K``. All norms are then rounded upward with
:mod:`verified_lora.bounds._rigorous`. The returned ``R`` is a float with ``R >= max |S_ij|`` as
real numbers: a certificate, not an estimate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._xp import to_numpy
from ..errors import InputError
from ..numerics.rounding import unit_roundoff
from ..overflow import check_problem
from ..problem import LoraAttention
from . import _rigorous as rg

__all__ = ["ScoreBound", "Projection", "score_bound", "enclose_projection", "projections", "item_projections"]


@dataclass(frozen=True)
class Projection:
    """A float64 projection ``X W`` with a rigorous entrywise error bound.

    ``value`` is ``fl(X W^)`` (float64) and ``error`` an array with ``|exact - value| <= error``
    entrywise, for the exact real product with the exact effective weight, and for the same
    product computed in the problem's dtype.
    """

    value: np.ndarray
    error: np.ndarray

    def abs_upper(self) -> np.ndarray:
        """Entrywise upper bound of ``|exact|`` (both terms are non-negative: ``_rigorous`` 3.)."""
        return rg.add_up_nn(np.abs(self.value), self.error)

    def upper(self) -> np.ndarray:
        """Entrywise upper bound of the exact value."""
        return rg.add_up(self.value, self.error)

    def lower(self) -> np.ndarray:
        """Entrywise lower bound of the exact value."""
        return rg.down(np.subtract(self.value, self.error))

    def rows(self, idx: Any) -> "Projection":
        """The enclosure of the rows ``idx`` (each row's value and error are those of the whole product)."""
        return Projection(value=self.value[idx], error=self.error[idx])

    def row_norm_upper(self) -> np.ndarray:
        """Upper bound of ``||row_i||_2`` of the exact matrix, per row (triangle inequality)."""
        n = self.value.shape[-1]
        sq = rg.inflate(np.sum(self.value * self.value, axis=-1), n)
        esq = rg.inflate(np.sum(self.error * self.error, axis=-1), n)
        return rg.add_up(rg.sqrt_up(sq), rg.sqrt_up(esq))


def _effective_weight(problem: LoraAttention, key: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(W^, e_W, |W*| + |s||B||A|)``: float64 effective weight, its error bound, its magnitude."""
    w_star = np.asarray(to_numpy(problem.frozen_weight(key)), dtype=np.float64)
    if key not in problem.adapters:
        return w_star, np.zeros_like(w_star), np.abs(w_star)
    ad = problem.adapters[key]
    a = np.asarray(to_numpy(ad.a), dtype=np.float64)
    b = np.asarray(to_numpy(ad.b), dtype=np.float64)
    s = float(problem.scale(key))
    w_hat = w_star + s * (b @ a)
    # |s^ - s| <= 3u|s| (one division, maybe one sqrt); fl(BA) has <= r factors, the scaling one,
    # the addition one: every term carries <= r + 5 factors, so |W^ - W| <= gamma_{r+5} magnitude.
    s_up = float(rg.inflate(abs(s), 3))  # |s_exact| <= |s^| (1 - u)**-3
    mag = rg.add_up(np.abs(w_star), rg.mul_up(s_up, rg.matmul_up(np.abs(b), np.abs(a))))
    err = rg.mul_up(rg.gamma(ad.r + 5), mag)
    return w_hat, err, mag


def enclose_projection(problem: LoraAttention, x: Any, key: str) -> Projection:
    """Enclose ``X W_key`` (``X`` 2-D) for the exact reals and for the problem-dtype product.

    ``|X W - fl(X W^)| <= |X| e_W + gamma_n |X||W^|`` (Higham (3.13), ``n = d_model``); the
    problem-dtype product differs from ``X W`` by at most ``gamma^dt_{n + r + 6} |X| mag`` with
    ``mag = |W*| + |s||B||A|`` (same lemma with the dtype's unit roundoff; ``r + 6`` covers the
    weight's own rounding, the scale and ``beta``).
    """
    x = np.asarray(to_numpy(x), dtype=np.float64)
    w_hat, e_w, mag = _effective_weight(problem, key)
    n = x.shape[-1]
    value = x @ w_hat
    ax = np.abs(x)
    # every term is non-negative, so each rounding is raised by the two-pass helpers (_rigorous 3.)
    err = rg.matmul_up(ax, np.abs(w_hat))
    err *= rg.gamma(n)
    err = rg.add_up_nn(rg.matmul_up(ax, e_w), rg._up_nn_inplace(err))
    r = problem.adapters[key].r if key in problem.adapters else 0
    u_dtype = unit_roundoff(problem.dtype)
    err_dtype = rg.matmul_up(ax, mag)
    err_dtype *= rg.gamma(n + r + 6, u_dtype)
    err += rg._up_nn_inplace(err_dtype)
    return Projection(value=value, error=rg._up_nn_inplace(err))


def projections(problem: LoraAttention, x_q: Any, x_k: Any, x_v: Any) -> dict[str, Projection]:
    """Enclosures of ``Q = X_Q W_Q``, ``K = X_K W_K`` and ``V = X_V W_V`` for one batch item."""
    return {"Q": enclose_projection(problem, x_q, "Q"), "K": enclose_projection(problem, x_k, "K"),
            "V": enclose_projection(problem, x_v, "V")}


def item_projections(problem: LoraAttention) -> list[dict[str, Projection]]:
    """:func:`projections` of every batch item, in :meth:`~verified_lora.LoraAttention.items` order: what
    :func:`score_bound` and :class:`~verified_lora.bounds.propagation.Sensitivity` take as ``enclosures`` when one
    caller needs both (the fast path), so that the enclosures are formed once."""
    return [projections(problem, x_q, x_k, x_v) for x_q, x_k, x_v, _y in problem.items()]


def check_enclosures(problem: LoraAttention, enclosures: Any) -> list[dict[str, Projection]] | None:
    """``enclosures`` (one dict of :class:`Projection` per batch item, or ``None``) checked against ``problem``."""
    if enclosures is None:
        return None
    enclosures = list(enclosures)
    if len(enclosures) != problem.n_batch:
        raise InputError("enclosures", f"one dict of projections per batch item ({problem.n_batch})",
                         f"{len(enclosures)} items")
    return enclosures


@dataclass(frozen=True)
class ScoreBound:
    """A certified score interval and the quantities behind it (all upper bounds, float64).

    Attributes
    ----------
    R:
        ``|beta| max_i ||Q_i||_2 max_j ||K_j||_2 >= max |S_ij|`` over every batch item.
    R_paper:
        The paper's form ``|beta| d_head Gamma^2`` with ``Gamma = max(||Q||_max, ||K||_max)``.
    q_norm, k_norm:
        ``max_i ||Q_i||_2`` and ``max_j ||K_j||_2`` (upper bounds).
    gamma:
        ``Gamma`` above (upper bound of the largest entry of Q and K).
    beta, d_head:
        Copied from the problem.
    """

    R: float
    R_paper: float
    q_norm: float
    k_norm: float
    gamma: float
    beta: float
    d_head: int

    def describe(self) -> str:
        return (f"R = {self.R:.6g} (|beta| max||Q_i|| max||K_j|| = {abs(self.beta):g} * {self.q_norm:.6g} * "
                f"{self.k_norm:.6g}); paper form |beta| d Gamma^2 = {self.R_paper:.6g} "
                f"(d = {self.d_head}, Gamma = {self.gamma:.6g})")


def _max_up(acc: float, upper: Any) -> float:
    """``max(acc, max(upper))`` for upper bounds: an overflowed entry (NaN or inf) bounds nothing
    finite, so it gives ``inf`` (Python's ``max`` would silently keep ``acc`` past a NaN)."""
    m = float(np.max(upper)) if np.size(upper) else 0.0
    return math.inf if not m <= math.inf or m == math.inf else max(acc, m)


def score_bound(problem: LoraAttention, enclosures: list[dict[str, Projection]] | None = None) -> ScoreBound:
    """Certified ``R >= max_{n,i,j} |S^{(n)}_ij|`` in ``O(L d)`` time and memory (module docstring).

    ``S^{(n)} = beta Q^{(n)} K^{(n)T}`` for every batch item ``n``; ``Q`` and ``K`` use the
    effective (adapted) weights. The paper's ``|beta| d_head Gamma^2`` form is reported alongside.
    ``enclosures``: :func:`item_projections` of this problem, when the caller has them.
    """
    if not isinstance(problem, LoraAttention):
        raise InputError("problem", "a verified_lora.LoraAttention", type(problem).__name__)
    check_problem(problem, "score_bound")  # inputs beyond the dtype's range: a named error, not R = inf
    enclosures = check_enclosures(problem, enclosures)
    q_norm = k_norm = gam = 0.0
    for idx, (x_q, x_k, _x_v, _y) in enumerate(problem.items()):
        if enclosures is not None:
            q, k = enclosures[idx]["Q"], enclosures[idx]["K"]
        else:
            q = enclose_projection(problem, x_q, "Q")
            k = enclose_projection(problem, x_k, "K")
        q_norm = _max_up(q_norm, q.row_norm_upper())
        k_norm = _max_up(k_norm, k.row_norm_upper())
        gam = _max_up(_max_up(gam, q.abs_upper()), k.abs_upper())
    b = abs(problem.beta)
    R = float(rg.mul_up(rg.mul_up(b, q_norm), k_norm))
    R_paper = float(rg.mul_up(rg.mul_up(b, float(problem.d_head)), rg.mul_up(gam, gam)))
    if not math.isfinite(R):
        R = math.inf
    return ScoreBound(R=R, R_paper=R_paper, q_norm=q_norm, k_norm=k_norm, gamma=gam, beta=problem.beta,
                      d_head=problem.d_head)
