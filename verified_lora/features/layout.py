"""Feature layout: where each monomial of degree ``<= g`` in ``d`` variables lives (a leaf module).

For a polynomial ``P(x) = sum_{t=0}^{g} a_t x^t`` and ``u, v`` in ``R^d`` the multinomial theorem gives

    P(beta <u, v>) = sum_{|m| <= g} [a_{|m|} beta^{|m|} multinomial(|m|; m) u^m] [v^m],

a sum over the multi-indices ``m`` in ``N^d`` of total degree ``|m| <= g`` (the symmetric-monomial
form of the paper's Lemma 3.3). This module fixes the column of every multi-index and nothing else:
exponents, multinomials, derivative tables, the rank ``k = C(d + g, g)`` and the integer tables the
generated kernels read. It imports only NumPy and the error types (no SymPy, no GPU code);
the feature maps themselves are in :mod:`verified_lora.features.maps`.

**Ordering (contiguous construction).** Degree-``t`` monomials are stored in blocks ``i = 0..d-1``:
block ``i`` holds the monomials whose smallest variable index is ``i``, and equals
``x_i * (degree-(t-1) monomials with smallest index >= i)``. With this ordering the monomials whose
smallest index is ``>= i`` form a *contiguous suffix* of each degree, so every degree is built from
the previous one by ``d`` slice products ``out[:, dst] = x[:, i:i+1] * out[:, src:end]`` - no index
gathers (those made feature construction over 90% of run time in a prototype). The backward
(vector-Jacobian product) runs the same recursion in reverse.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from ..errors import InputError

__all__ = ["FeatureLayout", "feature_layout", "rank", "paper_rank_bound", "exponents", "multinomials",
           "derivative_table", "degree_for", "monomial_tables", "derivative_tables"]


def _check_sizes(d: Any, g: Any) -> tuple[int, int]:
    if isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d < 1:
        raise InputError("d", "a positive int (the feature input dimension)", repr(d))
    if isinstance(g, bool) or not isinstance(g, (int, np.integer)) or g < 0:
        raise InputError("g", "a non-negative int (the polynomial degree)", repr(g))
    return int(d), int(g)


def rank(d: int, g: int) -> int:
    """The feature rank ``k = C(d + g, g)``: monomials of degree ``<= g`` in ``d`` variables."""
    d, g = _check_sizes(d, g)
    return math.comb(d + g, g)


def paper_rank_bound(d: int, g: int) -> int:
    """The paper's rank bound ``C(2(g + d), 2g)`` (Lemma 3.3 via Alman-Song); a proof device only."""
    d, g = _check_sizes(d, g)
    return math.comb(2 * (g + d), 2 * g)


@dataclass(frozen=True)
class FeatureLayout:
    """Where each monomial lives in a feature vector of degree ``<= g`` in ``d`` variables.

    Attributes
    ----------
    d, g, k:
        Input dimension, degree, rank ``k = C(d + g, g)``.
    degree_start:
        ``degree_start[t]`` is the first column of the degree-``t`` monomials (``degree_start[g+1] = k``).
    suffix_start:
        ``suffix_start[t][i]`` (``i = 0..d``) is the first column, *within* degree ``t``, of the
        monomials whose smallest variable index is ``>= i``; ``suffix_start[t][d]`` is the
        degree's size. For ``t = 0`` (the constant 1) every entry is 0 except ``[0][d] = 1``.
    steps:
        The construction program: ``(t, i, dst0, dst1, src0, src1)`` means
        ``out[:, dst0:dst1] = x[:, i] * out[:, src0:src1]`` (absolute columns), in build order.
    """

    d: int
    g: int
    k: int
    degree_start: tuple[int, ...]
    suffix_start: tuple[tuple[int, ...], ...]
    steps: tuple[tuple[int, int, int, int, int, int], ...]

    def exponents(self) -> np.ndarray:
        """The ``(k x d)`` integer exponent matrix: row ``m`` is the multi-index of column ``m``."""
        return _exponents(self.d, self.g).copy()

    def degrees(self) -> np.ndarray:
        """Total degree ``|m|`` of every column (length ``k``)."""
        return _exponents(self.d, self.g).sum(axis=1)

    def monomial_tables(self) -> tuple[np.ndarray, np.ndarray]:
        """The ``(parent, var)`` tables of the ``monomials_t`` kernel (:func:`monomial_tables`)."""
        return monomial_tables(self.d, self.g)

    def derivative_tables(self, dtype: str = "float64") -> tuple[np.ndarray, np.ndarray]:
        """The ``(succ, mult)`` tables of the ``monomials_backward`` kernel (:func:`derivative_tables`)."""
        return derivative_tables(self.d, self.g, dtype)


@lru_cache(maxsize=256)
def feature_layout(d: int, g: int) -> FeatureLayout:
    """The (cached) column layout and construction program for degree ``<= g`` in ``d`` variables."""
    d, g = _check_sizes(d, g)
    # size of the block of degree-t monomials whose smallest index is exactly i:
    # (number of degree-(t-1) monomials in variables i..d-1) = C((d - i) + t - 2, t - 1)
    degree_start = [0, 1]
    suffix: list[tuple[int, ...]] = [tuple([0] * d + [1])]
    steps: list[tuple[int, int, int, int, int, int]] = []
    for t in range(1, g + 1):
        base_prev = degree_start[t - 1]
        prev = suffix[t - 1]
        starts = [0]
        for i in range(d):
            size = prev[d] - prev[i]
            starts.append(starts[-1] + size)
        base = degree_start[t]
        for i in range(d):
            steps.append((t, i, base + starts[i], base + starts[i + 1], base_prev + prev[i], base_prev + prev[d]))
        suffix.append(tuple(starts))
        degree_start.append(base + starts[d])
    k = degree_start[-1]
    if k != math.comb(d + g, g):  # pragma: no cover - a structural self-check
        raise AssertionError(f"feature layout has {k} columns, expected C({d}+{g},{g})")
    return FeatureLayout(d=d, g=g, k=k, degree_start=tuple(degree_start), suffix_start=tuple(suffix),
                         steps=tuple(steps))


@lru_cache(maxsize=64)
def _exponents(d: int, g: int) -> np.ndarray:
    lay = feature_layout(d, g)
    e = np.zeros((lay.k, d), dtype=np.int64)
    for (_t, i, dst0, dst1, src0, src1) in lay.steps:
        e[dst0:dst1] = e[src0:src1]
        e[dst0:dst1, i] += 1
    e.setflags(write=False)
    return e


@lru_cache(maxsize=64)
def multinomials(d: int, g: int) -> tuple[int, ...]:
    """``multinomial(|m|; m) = |m|! / prod_i m_i!`` for every column, as exact Python ints."""
    e = _exponents(d, g)
    out = []
    for row in e.tolist():
        c = math.factorial(sum(row))
        for m in row:
            c //= math.factorial(m)
        out.append(c)
    return tuple(out)


@lru_cache(maxsize=64)
def derivative_table(d: int, g: int) -> tuple[np.ndarray, np.ndarray]:
    """Index and multiplier tables of the partial derivatives of the monomials.

    For a column ``m'`` of degree ``<= g-1`` and a variable ``j``: ``d/dx_j x^{m'+e_j} =
    (m'_j + 1) x^{m'}``. Returns ``(succ, mult)``, both ``(k' x d)`` with ``k' = C(d+g-1, g-1)``:
    ``succ[m', j]`` is the column of ``m' + e_j`` in the degree-``<= g`` layout and
    ``mult[m', j] = m'_j + 1``. (The degree-``<= g-1`` columns are a prefix of the degree-``<= g``
    layout, so ``monomials(x, g)[:, :k']`` are the degree-``<= g-1`` monomials.)
    """
    d, g = _check_sizes(d, g)
    e = _exponents(d, g)
    index = {tuple(row): col for col, row in enumerate(e.tolist())}
    kp = math.comb(d + g - 1, g - 1) if g >= 1 else 0
    succ = np.zeros((kp, d), dtype=np.int64)
    mult = np.zeros((kp, d), dtype=np.float64)
    for col in range(kp):
        row = e[col].tolist()
        for j in range(d):
            up = list(row)
            up[j] += 1
            succ[col, j] = index[tuple(up)]
            mult[col, j] = row[j] + 1
    succ.setflags(write=False)
    mult.setflags(write=False)
    return succ, mult


@lru_cache(maxsize=256)
def _degree_for_cached(d: int, k: int) -> int:
    g = 0
    while math.comb(d + g, g) < k:
        g += 1
    if math.comb(d + g, g) != k:
        raise InputError("mono", f"a column count C({d}+g, g) for some degree g", f"{k} columns")
    return g


def _degree_for(d: int, k: int) -> int:
    return _degree_for_cached(int(d), int(k))


def degree_for(d: int, k: int) -> int:
    """The degree ``g`` with ``C(d + g, g) = k`` (:class:`InputError` when there is none)."""
    return _degree_for(d, k)


def exponents(d: int, g: int) -> np.ndarray:
    """The read-only ``(k x d)`` exponent matrix: row ``m`` is the multi-index of column ``m``."""
    d, g = _check_sizes(d, g)
    return _exponents(d, g)


def monomial_tables(d: int, g: int) -> tuple[np.ndarray, np.ndarray]:
    """``(parent, var)`` int32 tables of the ``monomials_t`` kernel for degree ``<= g`` in ``d`` variables.

    Read off :func:`feature_layout`'s construction program: a step
    ``out[dst0:dst1] = x_i * out[src0:src1]`` gives ``parent[dst0 + o] = src0 + o`` and
    ``var[dst0 + o] = i``, so the kernel reproduces the feature map's column order exactly.
    """
    lay = feature_layout(d, g)
    parent = np.zeros(lay.k, dtype=np.int32)
    var = np.zeros(lay.k, dtype=np.int32)
    for (_t, i, dst0, dst1, src0, _src1) in lay.steps:
        parent[dst0:dst1] = np.arange(src0, src0 + dst1 - dst0, dtype=np.int32)
        var[dst0:dst1] = i
    return parent, var


def derivative_tables(d: int, g: int, dtype: str = "float64") -> tuple[np.ndarray, np.ndarray]:
    """``(succ, mult)`` tables of the ``monomials_backward`` kernel (int32, ``dtype``), from
    :func:`derivative_table`."""
    succ, mult = derivative_table(d, g)
    return np.ascontiguousarray(succ, dtype=np.int32), np.ascontiguousarray(mult, dtype=np.dtype(dtype))
