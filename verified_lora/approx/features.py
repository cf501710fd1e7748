"""Symmetric-monomial feature maps: ``P(beta <u, v>) = <phi_U(u), phi_V(v)>`` exactly.

For a polynomial ``P(x) = sum_{t=0}^{g} a_t x^t`` and ``u, v`` in ``R^d`` the multinomial theorem gives

    P(beta <u, v>) = sum_t a_t beta^t (sum_i u_i v_i)^t
                   = sum_{|m| <= g} [a_{|m|} beta^{|m|} multinomial(|m|; m) u^m] [v^m],

a sum over the multi-indices ``m`` in ``N^d`` of total degree ``|m| <= g``. Hence (DESIGN.md section 4.3,
the symmetric-monomial form of the paper's Lemma 3.3 / Alman-Song's polynomial method):

* ``phi_V(v)_m = v^m`` (plain monomials, no weights);
* ``phi_U(u)_m = w_m u^m`` with ``w_m = a_{|m|} beta^{|m|} |m|! / (m_1! ... m_d!)``.

The weights are asymmetric (all on the query side), so there are no square roots and no sign
trouble when some ``a_t < 0``. The rank is ``k = C(d + g, g)``; the paper's bound
``C(2(g + d), 2g)`` is reported by :func:`paper_rank_bound` and never used.

**Ordering (contiguous construction).** Degree-``t`` monomials are stored in blocks ``i = 0..d-1``:
block ``i`` holds the monomials whose smallest variable index is ``i``, and equals
``x_i * (degree-(t-1) monomials with smallest index >= i)``. With this ordering the monomials whose
smallest index is ``>= i`` form a *contiguous suffix* of each degree, so every degree is built from
the previous one by ``d`` slice products ``out[:, dst] = x[:, i:i+1] * out[:, src:end]`` - no index
gathers (those made feature construction over 90% of run time in a prototype). The backward
(vector-Jacobian product) runs the same recursion in reverse.

The code uses only operations NumPy and CuPy share (``xp`` is the array namespace of the input).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from typing import Any

import numpy as np

from .. import gpu as _gpu
from .._xp import array_namespace
from ..errors import InputError

__all__ = [
    "FeatureLayout",
    "feature_layout",
    "rank",
    "paper_rank_bound",
    "monomials",
    "monomials_t",
    "monomials_vjp",
    "derivative_table",
    "derivative_coefficients",
    "lowrank_vjp_t",
    "contract_derivative",
    "multinomials",
    "query_weights",
    "phi_u",
    "phi_v",
    "phi_u_vjp",
    "phi_v_vjp",
]


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


def _coefficients(coefficients: Sequence[Any]) -> list[Any]:
    try:
        coeffs = list(coefficients)
    except TypeError:
        raise InputError("coefficients", "a sequence a_0..a_g of polynomial coefficients",
                         type(coefficients).__name__) from None
    if not coeffs:
        raise InputError("coefficients", "at least one coefficient (a_0)", "an empty sequence")
    return coeffs


def query_weights(coefficients: Sequence[Any], beta: Any, d: int, exact: bool = False) -> Any:
    """The query-side weights ``w_m = a_{|m|} beta^{|m|} multinomial(|m|; m)`` (length ``k``).

    ``coefficients`` are ``a_0..a_g`` (exact rationals, SymPy numbers, or floats). With
    ``exact=True`` the weights are returned as a list of exact values (``Fraction`` when the
    inputs are rational; SymPy arithmetic otherwise), for proofs; otherwise as a float64 NumPy
    array (each weight is one rounding of the exact product when the inputs are exact).
    """
    coeffs = _coefficients(coefficients)
    g = len(coeffs) - 1
    d, g = _check_sizes(d, g)
    lay = feature_layout(d, g)
    multi = multinomials(d, g)
    deg = lay.degrees().tolist()
    if exact:
        def as_exact(x: Any) -> Any:
            if isinstance(x, (int, Fraction)):
                return Fraction(x)
            try:  # SymPy Rational -> Fraction (keeps everything in the stdlib)
                import sympy

                if isinstance(x, sympy.Rational):
                    return Fraction(int(x.p), int(x.q))
            except ImportError:  # pragma: no cover
                pass
            return x
        a = [as_exact(c) for c in coeffs]
        b = as_exact(beta)
        return [a[t] * b ** t * m for t, m in zip(deg, multi)]
    # float path: compute each weight exactly when the inputs are rational, then round once.
    a_exact = []
    for c in coeffs:
        try:
            a_exact.append(Fraction(c) if not isinstance(c, float) else Fraction(c))
        except (TypeError, ValueError):
            try:
                import sympy

                c = sympy.nsimplify(c) if not isinstance(c, sympy.Rational) else c
                a_exact.append(Fraction(int(c.p), int(c.q)))
            except Exception:
                raise InputError("coefficients", "real numbers (exact rationals preferred)", repr(c)) from None
    try:
        b = Fraction(beta)
    except (TypeError, ValueError):
        raise InputError("beta", "a real number", repr(beta)) from None
    return _float_weights(tuple(a_exact), b, d).copy()


@lru_cache(maxsize=32)
def _float_weights(a_exact: tuple[Fraction, ...], b: Fraction, d: int) -> np.ndarray:
    """Each weight ``a_t beta^t multinomial`` computed exactly, then rounded once (cached: it is
    exact rational arithmetic on ``k`` entries, ~0.5 s at k = 12870)."""
    g = len(a_exact) - 1
    deg = feature_layout(d, g).degrees().tolist()
    multi = multinomials(d, g)
    powers = [a_exact[t] * b ** t for t in range(g + 1)]
    out = np.array([float(powers[t] * m) for t, m in zip(deg, multi)], dtype=np.float64)
    out.setflags(write=False)
    return out


def _check_input(name: str, x: Any) -> Any:
    if getattr(x, "ndim", None) != 2:
        raise InputError(name, "a 2-D array (rows x d)", f"{type(x).__name__} with shape {getattr(x, 'shape', None)}")
    if np.dtype(x.dtype).kind != "f":
        raise InputError(name, "a floating-point array", f"dtype {x.dtype}")
    return x


def monomials_t(xT: Any, g: int, out: Any = None) -> Any:
    """Transposed monomials: ``xT`` is ``(d x n)`` (one *column* per input row); returns ``(k x n)``.

    This is the layout the fast path uses: every construction step
    ``out[dst0:dst1, :] = xT[i, :] * out[src0:src1, :]`` touches one contiguous memory block, and
    GEMMs read ``out`` (or its transpose) without copies. ``out`` may be preallocated
    (C-contiguous, ``(k x n)``, ``xT``'s dtype).
    """
    xT = _check_input("xT", xT)
    xp = array_namespace(xT)
    d, n = xT.shape
    lay = feature_layout(d, g)
    if out is None:
        out = xp.empty((lay.k, n), dtype=xT.dtype)
    elif tuple(out.shape) != (lay.k, n) or out.dtype != xT.dtype:
        raise InputError("out", f"an array of shape {(lay.k, n)} and dtype {xT.dtype}",
                         f"shape {tuple(out.shape)} and dtype {out.dtype}")
    if _gpu.wants_kernels(xp):                   # CuPy: the generated kernel gpu/monomials_t.cu
        return _gpu.monomials_t(xT, g, out)
    out[0, :] = 1
    for (_t, i, dst0, dst1, src0, src1) in lay.steps:
        xp.multiply(xT[i:i + 1, :], out[src0:src1, :], out=out[dst0:dst1, :])
    return out


def monomials(x: Any, g: int) -> Any:
    """All monomials ``x^m`` with ``|m| <= g`` of each row of ``x`` (``n x d``) -> ``(n x k)``.

    Built degree by degree with contiguous slice products (see the module docstring for the
    column order); the result is the transpose of :func:`monomials_t` (a view, not a copy).
    """
    x = _check_input("x", x)
    xp = array_namespace(x)
    return monomials_t(xp.ascontiguousarray(x.T), g).T


def monomials_vjp(x: Any, mono: Any, grad: Any) -> Any:
    """Vector-Jacobian product of :func:`monomials`: ``dL/dx`` from ``grad = dL/d(monomials(x))``.

    ``mono`` must be ``monomials(x, g)``, ``grad`` any ``(n x k)`` array. Reverse mode through the
    construction program: for each step ``out[dst] = x_i * out[src]`` (last step first),
    ``dx_i += rowsum(G[dst] * out[src])`` and ``G[src] += x_i * G[dst]``. Cost ``O(n k)``. (The fast
    path uses :func:`lowrank_vjp_t` instead, for gradients of the form ``Y C^T``.)
    """
    x = _check_input("x", x)
    xp = array_namespace(x, mono, grad)
    n, d = x.shape
    if getattr(mono, "ndim", None) != 2 or getattr(grad, "ndim", None) != 2:
        raise InputError("grad", "2-D arrays mono and grad (n x k)",
                         f"mono {getattr(mono, 'shape', None)}, grad {getattr(grad, 'shape', None)}")
    k = mono.shape[1]
    g = _degree_for(d, k)
    lay = feature_layout(d, g)
    if tuple(mono.shape) != (n, k) or tuple(grad.shape) != (n, k):
        raise InputError("grad", f"arrays mono and grad of shape {(n, k)}",
                         f"mono {tuple(mono.shape)}, grad {tuple(grad.shape)}")
    if _gpu.wants_kernels(xp):                   # CuPy: the generated kernel gpu/monomials_backward.cu
        return _gpu.monomials_backward(xp.ascontiguousarray(grad), xp.ascontiguousarray(mono), d, g)
    G = xp.ascontiguousarray(grad.T).copy()      # (k x n) work copy
    M = xp.ascontiguousarray(mono.T)
    xT = xp.ascontiguousarray(x.T)
    dxT = xp.zeros((d, n), dtype=x.dtype)
    for (_t, i, dst0, dst1, src0, src1) in reversed(lay.steps):
        gd = G[dst0:dst1, :]
        dxT[i, :] += (gd * M[src0:src1, :]).sum(axis=0)
        G[src0:src1, :] += xT[i:i + 1, :] * gd
    return dxT.T.copy()


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


def derivative_coefficients(C: Any, d: int, g: int) -> Any:
    """``Dc[m', (j, a)] = (m'_j + 1) C[m' + e_j, a]``: the gradient polynomials of ``<C[:, a], x^m>``.

    ``C`` is ``(k x a)``; the result is ``(k' x d*a)`` (C-order over ``(j, a)``), so that
    ``d/dx_j sum_m C[m, a] x^m = sum_{m'} Dc[m', (j, a)] x^{m'}``. Cost ``O(k' d a)`` (small).
    """
    xp = array_namespace(C)
    succ, mult = derivative_table(d, g)
    if succ.shape[0] == 0:
        return xp.zeros((0, d * C.shape[1]), dtype=C.dtype)
    s = xp.asarray(succ)
    m = xp.asarray(mult, dtype=C.dtype)
    return (C[s] * m[:, :, None]).reshape(succ.shape[0], d * C.shape[1])


def lowrank_vjp_t(monoT: Any, Dc: Any, Y: Any) -> Any:
    """``dL/dx`` (``n x d``) for ``dL/d(monomials) = Y C^T`` with ``Dc = derivative_coefficients(C)``.

    Row ``i``: ``dx_i[j] = sum_a Y[i, a] sum_{m'} Dc[m', (j, a)] x_i^{m'}`` - one GEMM
    ``monoT[:k'].T @ Dc`` (``n x d*a``) and a small contraction; ``monoT`` is the ``(k x n)``
    transposed monomial block of degree ``<= g`` (its first ``k'`` rows are degree ``<= g-1``).
    """
    xp = array_namespace(monoT, Dc, Y)
    n, a = Y.shape
    kp = Dc.shape[0]
    d = Dc.shape[1] // a
    if kp == 0:
        return xp.zeros((n, d), dtype=Y.dtype)
    Z = monoT[:kp].T @ Dc
    if _gpu.wants_kernels(xp):                   # CuPy: the generated kernel gpu/contract_rows.cu
        return _gpu.contract_rows(xp.ascontiguousarray(Z), xp.ascontiguousarray(Y))
    return xp.einsum("nja,na->nj", Z.reshape(n, d, a), Y)


def contract_derivative(Z: Any, Y: Any) -> Any:
    """``dx[i, j] = sum_a Z[i, (j, a)] Y[i, a]``: the small contraction after the GEMM of :func:`lowrank_vjp_t`.

    ``Z`` is ``(n x d*a)`` (the product ``monoT[:k'].T @ Dc``, possibly computed as part of a wider
    GEMM), ``Y`` is ``(n x a)``.
    """
    xp = array_namespace(Z, Y)
    n, a = Y.shape
    d = Z.shape[1] // a
    if d == 0:
        return xp.zeros((n, 0), dtype=Y.dtype)
    if _gpu.wants_kernels(xp):                   # CuPy: the generated kernel gpu/contract_rows.cu
        return _gpu.contract_rows(xp.ascontiguousarray(Z), xp.ascontiguousarray(Y))
    return xp.einsum("nja,na->nj", Z.reshape(n, d, a), Y)


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


def phi_v(v: Any, g: int) -> Any:
    """Key-side features ``phi_V(v)_m = v^m`` (``|m| <= g``), row by row: ``(n x d) -> (n x k)``."""
    return monomials(v, g)


def phi_u(u: Any, coefficients: Sequence[Any], beta: float = 1.0) -> Any:
    """Query-side features ``phi_U(u)_m = a_{|m|} beta^{|m|} multinomial(|m|; m) u^m``.

    With :func:`phi_v` this gives ``phi_U(u) . phi_V(v) = P(beta <u, v>)`` for
    ``P(x) = sum_t a_t x^t`` (exact in exact arithmetic; proofs/feature_identity.py).
    """
    u = _check_input("u", u)
    xp = array_namespace(u)
    g = len(_coefficients(coefficients)) - 1
    w = query_weights(coefficients, beta, u.shape[1])
    return monomials(u, g) * xp.asarray(w, dtype=u.dtype)[None, :]


def phi_v_vjp(v: Any, grad: Any) -> Any:
    """``dL/dv`` from ``grad = dL/dphi_V(v)`` (``n x k``)."""
    v = _check_input("v", v)
    g = _degree_for(v.shape[1], grad.shape[1])
    return monomials_vjp(v, monomials(v, g), grad)


def phi_u_vjp(u: Any, coefficients: Sequence[Any], beta: float, grad: Any) -> Any:
    """``dL/du`` from ``grad = dL/dphi_U(u)`` (``n x k``): the weights scale ``grad``, then the monomial VJP."""
    u = _check_input("u", u)
    xp = array_namespace(u)
    g = len(_coefficients(coefficients)) - 1
    w = xp.asarray(query_weights(coefficients, beta, u.shape[1]), dtype=u.dtype)
    return monomials_vjp(u, monomials(u, g), grad * w[None, :])
