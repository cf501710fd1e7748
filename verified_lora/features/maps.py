"""Symmetric-monomial feature maps: ``P(beta <u, v>) = <phi_U(u), phi_V(v)>`` exactly.

With the column layout of :mod:`verified_lora.features.layout` (the multinomial expansion of the
paper's Lemma 3.3):

* ``phi_V(v)_m = v^m`` (plain monomials, no weights);
* ``phi_U(u)_m = w_m u^m`` with ``w_m = a_{|m|} beta^{|m|} |m|! / (m_1! ... m_d!)``.

The weights are asymmetric (all on the query side), so there are no square roots and no sign
trouble when some ``a_t < 0``. The rank is ``k = C(d + g, g)``; the paper's bound
``C(2(g + d), 2g)`` is reported by :func:`~verified_lora.features.layout.paper_rank_bound` and never used.

The non-GEMM steps (monomial construction, its VJP, the small contraction) run on a steps object
(:func:`verified_lora.steps.steps_for`): array expressions for NumPy, the generated kernels for CuPy.
Callers that already hold one pass it as ``steps=``.
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from functools import lru_cache
from typing import Any

import numpy as np

from .._xp import array_namespace
from ..errors import InputError
from .. import steps as _steps
from .layout import _check_sizes, _degree_for, derivative_table, feature_layout, multinomials

__all__ = [
    "monomials",
    "monomials_t",
    "monomials_t_chunks",
    "chunk_programs",
    "monomials_vjp",
    "derivative_coefficients",
    "lowrank_vjp_t",
    "contract_derivative",
    "query_weights",
    "antiderivative_coefficients",
    "phi_u",
    "phi_v",
    "phi_u_vjp",
    "phi_v_vjp",
]


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
    a_exact = [_exact_coefficient(c) for c in coeffs]
    try:
        b = Fraction(beta)
    except (TypeError, ValueError):
        raise InputError("beta", "a real number", repr(beta)) from None
    return _float_weights(tuple(a_exact), b, d).copy()


def _exact_coefficient(c: Any) -> Fraction:
    """A coefficient as an exact ``Fraction`` (floats exactly; SymPy numbers through ``nsimplify``)."""
    try:
        return Fraction(c)
    except (TypeError, ValueError):
        try:
            import sympy

            c = sympy.nsimplify(c) if not isinstance(c, sympy.Rational) else c
            return Fraction(int(c.p), int(c.q))
        except Exception:
            raise InputError("coefficients", "real numbers (exact rationals preferred)", repr(c)) from None


def antiderivative_coefficients(coefficients: Sequence[Any]) -> list[Fraction]:
    """``q_0 = 0``, ``q_{t+1} = a_t / (t + 1)``: the antiderivative ``Q`` of ``P`` with ``Q(0) = 0``, exactly.

    ``Q' = P``, so ``grad_u Q(beta <u, v>) = beta P(beta <u, v>) v``: the feature VJP of ``Q``'s features
    has ``P`` where that of ``P``'s has ``P'`` (``method="antiderivative"`` of :mod:`verified_lora.fast`;
    verified_lora/proofs/fast_antiderivative.py). Its magnitudes: ``Qabs'(x) = Pabs(x)``."""
    coeffs = _coefficients(coefficients)
    return [Fraction(0)] + [_exact_coefficient(c) / (t + 1) for t, c in enumerate(coeffs)]


@lru_cache(maxsize=32)
def _float_weights(a_exact: tuple[Fraction, ...], b: Fraction, d: int) -> np.ndarray:
    """Each weight ``a_t beta^t multinomial`` computed exactly, then rounded once (cached).

    ``a_t beta^t = N_t / D_t`` exactly; Python's ``int / int`` is correctly rounded, so
    ``(N_t m) / D_t`` is the same float as ``float(Fraction(a_t beta^t) * m)`` without a gcd per
    entry, and it is computed once per distinct ``(t, m)`` (a few hundred of the ``k`` columns):
    0.02 s instead of 0.17 s at ``k = 43758``."""
    g = len(a_exact) - 1
    deg = feature_layout(d, g).degrees().tolist()
    multi = multinomials(d, g)
    frac = [a_exact[t] * b ** t for t in range(g + 1)]
    nd = [(p.numerator, p.denominator) for p in frac]
    memo: dict[tuple[int, int], float] = {}
    vals = []
    for t, m in zip(deg, multi):
        v = memo.get((t, m))
        if v is None:
            num, den = nd[t]
            v = memo[(t, m)] = (num * m) / den
        vals.append(v)
    out = np.array(vals, dtype=np.float64)
    out.setflags(write=False)
    return out


def _check_input(name: str, x: Any) -> Any:
    if getattr(x, "ndim", None) != 2:
        raise InputError(name, "a 2-D array (rows x d)", f"{type(x).__name__} with shape {getattr(x, 'shape', None)}")
    if np.dtype(x.dtype).kind != "f":
        raise InputError(name, "a floating-point array", f"dtype {x.dtype}")
    return x


def monomials_t(xT: Any, g: int, out: Any = None, *, steps: Any = None) -> Any:
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
    return (steps or _steps.steps_for(xp)).monomials_t(xT, lay, out)


@lru_cache(maxsize=64)
def chunk_programs(d: int, g: int, cuts: tuple[int, ...]) -> tuple[tuple[tuple[int, int, int, int], ...], ...]:
    """``lay.steps`` split at the row boundaries ``cuts`` (``0 = cuts[0] < ... < cuts[-1] = k``): one program
    of steps ``(i, dst0, dst1, src0)`` per chunk ``[cuts[c], cuts[c + 1])``, filling exactly its rows."""
    lay = feature_layout(d, g)
    if cuts[0] != 0 or cuts[-1] != lay.k or any(b <= a for a, b in zip(cuts, cuts[1:])):
        raise InputError("cuts", f"increasing row boundaries from 0 to k = {lay.k}", repr(cuts))
    programs: list[list[tuple[int, int, int, int]]] = [[] for _ in cuts[1:]]
    c = 0
    for (_t, i, dst0, dst1, src0, _src1) in lay.steps:   # the steps fill rows 1..k-1 in order
        lo = dst0
        while lo < dst1:
            while cuts[c + 1] <= lo:
                c += 1
            hi = min(dst1, cuts[c + 1])
            programs[c].append((i, lo, hi, src0 + (lo - dst0)))
            lo = hi
    return tuple(tuple(p) for p in programs)


def monomials_t_chunks(xT: Any, g: int, cuts: Sequence[int], out: Any, *, steps: Any = None) -> Any:
    """:func:`monomials_t` into ``out`` (``k x n``), built chunk by chunk of rows: a generator that yields
    ``(c0, c1)`` for each ``[cuts[c], cuts[c + 1])`` as soon as those rows hold their monomials.

    The same products as :func:`monomials_t` (bit for bit), in the same order; a caller that uses each
    chunk while it is still in cache (the fast path's feature GEMMs) reads ``out`` from memory only where
    later chunks need it. ``cuts`` runs from 0 to ``k``. With the generated kernels (CuPy) the whole block
    is built at once and the chunks are yielded after it.
    """
    xT = _check_input("xT", xT)
    xp = array_namespace(xT)
    d, n = xT.shape
    lay = feature_layout(d, g)
    cuts = tuple(int(c) for c in cuts)
    if tuple(out.shape) != (lay.k, n) or out.dtype != xT.dtype:
        raise InputError("out", f"an array of shape {(lay.k, n)} and dtype {xT.dtype}",
                         f"shape {tuple(out.shape)} and dtype {out.dtype}")
    return _build_chunks(xT, lay, cuts, chunk_programs(d, lay.g, cuts), out, steps or _steps.steps_for(xp))


def _build_chunks(xT: Any, lay: Any, cuts: tuple[int, ...], programs: Any, out: Any, steps: Any) -> Any:
    if getattr(steps, "uses_kernels", False):
        steps.monomials_t(xT, lay, out)
        yield from zip(cuts[:-1], cuts[1:])
        return
    out[0, :] = 1
    for c0, c1, program in zip(cuts[:-1], cuts[1:], programs):
        steps.monomial_steps(xT, program, out)
        yield c0, c1


def monomials(x: Any, g: int) -> Any:
    """All monomials ``x^m`` with ``|m| <= g`` of each row of ``x`` (``n x d``) -> ``(n x k)``.

    Built degree by degree with contiguous slice products (see the module docstring for the
    column order); the result is the transpose of :func:`monomials_t` (a view, not a copy).
    """
    x = _check_input("x", x)
    xp = array_namespace(x)
    return monomials_t(xp.ascontiguousarray(x.T), g).T


def monomials_vjp(x: Any, mono: Any, grad: Any, *, steps: Any = None) -> Any:
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
    return (steps or _steps.steps_for(xp)).monomials_vjp(x, mono, grad, lay)


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


def lowrank_vjp_t(monoT: Any, Dc: Any, Y: Any, *, steps: Any = None) -> Any:
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
    return (steps or _steps.steps_for(xp)).contract_rows(monoT[:kp].T @ Dc, Y)


def contract_derivative(Z: Any, Y: Any, *, steps: Any = None) -> Any:
    """``dx[i, j] = sum_a Z[i, (j, a)] Y[i, a]``: the small contraction after the GEMM of :func:`lowrank_vjp_t`.

    ``Z`` is ``(n x d*a)`` (the product ``monoT[:k'].T @ Dc``, possibly computed as part of a wider
    GEMM), ``Y`` is ``(n x a)``.
    """
    xp = array_namespace(Z, Y)
    n, a = Y.shape
    if Z.shape[1] // a == 0:
        return xp.zeros((n, 0), dtype=Y.dtype)
    return (steps or _steps.steps_for(xp)).contract_rows(Z, Y)


def phi_v(v: Any, g: int) -> Any:
    """Key-side features ``phi_V(v)_m = v^m`` (``|m| <= g``), row by row: ``(n x d) -> (n x k)``."""
    return monomials(v, g)


def phi_u(u: Any, coefficients: Sequence[Any], beta: float = 1.0) -> Any:
    """Query-side features ``phi_U(u)_m = a_{|m|} beta^{|m|} multinomial(|m|; m) u^m``.

    With :func:`phi_v` this gives ``phi_U(u) . phi_V(v) = P(beta <u, v>)`` for
    ``P(x) = sum_t a_t x^t`` (exact in exact arithmetic; verified_lora/proofs/feature_map_identity.py).
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
