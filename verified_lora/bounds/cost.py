"""Ranks and the FLOP models that decide whether the fast path pays (docs/design.md section 8).

Model (per batch item and head; the ``O(L d_model d)`` projections, common to every path, and the
``O((L + L_k) k)`` feature construction are left out):

* exact (``verified_lora.exact``, flash-attention's convention: forward ``2 L L_k (d_head + d_v)``,
  forward + backward 3.5 x that) ``= 7 L L_k (d_head + d_v) + exp_cost L L_k``; with
  ``d_head = d_v = d`` and ``exp_cost = 0`` this is the anchors' ``14 L^2 d``;
* "factored" (autodiff through the factorised forward ``phi(Q) (phi(K)^T [V, 1])``, forward +
  backward 3 x the forward ``2 (L + L_k) k (d_v + 1)``) ``= 6 (L + L_k) k (d_v + 1)``
  (the anchors' ``12 L k (d + 1)``);
* "paper" (the forward above plus the rank-``k d_v`` Hadamard factors of Lemmas 3.6-3.7 contracted
  with ``d_head`` columns) ``= 2 (L + L_k) k (d_v + 1) + 4 (L + L_k) k d_v d_head``
  (the anchors' ``4 L k (d + 1) + 8 L k d^2``);
* "antiderivative" (the forward at rank ``k``, the backward through the degree-``g + 1`` features of
  ``Q = int P``, rank ``k' = C(d_head + g + 1, g + 1)``) ``= 2 (L + L_k) k (d_v + 1) + 4 (L + L_k) k' (d_v + 1)``.

``exp_cost`` is the cost of one exponential in FLOP-equivalents: 0 in the FLOP convention
(the default; exps are nearly free on a GPU), about 227 on the 2-core CPU of the anchors
(6.5 ns per ``np.exp`` at 35 GFLOP/s DGEMM), see :data:`EXP_COST_CPU`.

Ranks: symmetric monomials of degree ``<= g`` in ``d_head`` variables, ``k = C(d_head + g, g)``
(docs/design.md section 4.3); the paper's bound ``C(2 (g + d), 2 g)`` (Lemma 3.3) is reported, never used.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..errors import InputError
from ..features.layout import degree_for, rank

__all__ = ["rank", "paper_rank", "CostModel", "EXP_COST_CPU", "exact_flops", "exact_gemm_flops", "fast_flops",
           "cost_ratio"]

EXP_COST_CPU = 227.0
"""FLOP-equivalents of one float64 exp on the anchors' 2-core CPU: 6.5 ns x 35 GFLOP/s."""


def paper_rank(d: int, g: int) -> int:
    """The paper's rank bound ``C(2 (g + d), 2 g)`` (Lemma 3.3 / Alman-Song 2023)."""
    return math.comb(2 * (int(g) + int(d)), 2 * int(g))


@dataclass(frozen=True)
class CostModel:
    """FLOP model of the module docstring; ``exp_cost`` FLOP-equivalents per exponential."""

    exp_cost: float = 0.0

    def __post_init__(self):
        if isinstance(self.exp_cost, bool) or not isinstance(self.exp_cost, (int, float)) \
                or not math.isfinite(self.exp_cost) or self.exp_cost < 0:
            raise InputError("exp_cost", "a finite number >= 0 (FLOP-equivalents per exp)", repr(self.exp_cost))


def exact_flops(L: int, L_k: int, d_head: int, d_v: int, model: CostModel = CostModel()) -> float:
    """``7 L L_k (d_head + d_v) + exp_cost L L_k``."""
    return 7.0 * L * L_k * (d_head + d_v) + model.exp_cost * L * L_k


def exact_gemm_flops(L: int, L_k: int, d_head: int, d_v: int) -> float:
    """GEMM FLOPs that ``verified_lora.exact`` actually executes (not the cost model above): the five
    products ``S``, ``f V``, ``c V^T``, ``p K``, ``p^T P`` give ``2 L L_k (3 d_head + 2 d_v)``.

    The benchmark divides measured times by this count (achieved FLOP/s); the planner uses
    :func:`exact_flops`, whose flash-attention convention is what the fast-path costs are compared with.
    """
    return 2.0 * L * L_k * (3 * d_head + 2 * d_v)


def fast_flops(method: str, L: int, L_k: int, d_head: int, d_v: int, k: int) -> float:
    """FLOPs of the "factored", "paper" or "antiderivative" fast path at rank ``k`` (module docstring)."""
    n = float(L + L_k)
    if method == "factored":
        return 6.0 * n * k * (d_v + 1)
    if method == "paper":
        return 2.0 * n * k * (d_v + 1) + 4.0 * n * k * d_v * d_head
    if method == "antiderivative":
        k_back = rank(d_head, degree_for(d_head, k) + 1)
        return 2.0 * n * k * (d_v + 1) + 4.0 * n * k_back * (d_v + 1)
    raise InputError("method", "'factored', 'paper' or 'antiderivative'", repr(method))


def cost_ratio(method: str, L: int, L_k: int, d_head: int, d_v: int, k: int,
               model: CostModel = CostModel()) -> float:
    """Predicted ``fast / exact`` cost: below 1 the fast path pays."""
    return fast_flops(method, L, L_k, d_head, d_v, k) / exact_flops(L, L_k, d_head, d_v, model)
