"""The almost-linear gradient algorithms (paper, factored, antiderivative) for one (unbatched) problem, in float64.

Notation (docs/design.md sections 3 and 4): ``P = X_Q W_Q`` (``L x d``), ``Kmat = X_K W_K`` (``L_k x d``),
``Vmat = X_V W_V`` (``L_k x d_v``), ``S = beta P Kmat^T``; ``poly(x) = sum_{t<=g} a_t x^t`` approximates
``exp`` on ``[-R, R]``. Features (:mod:`verified_lora.features`):
``poly(beta <u, v>) = <phi_U(u), phi_V(v)>``, ``phi_U(u) = w * u^m``, ``phi_V(v) = v^m``, rank ``k``.

* ``A~ = poly(S) = Phi_U Phi_V^T`` (never formed), ``D~ = A~ 1 = Phi_U (Phi_V^T 1)`` (``O(L k)``),
  ``f~ = D~^{-1} A~``.
* **paper** (Lemmas 3.3-3.7, Theorem 3.1 / A.1, corrected orientation):
  ``U1 = D~^{-1} Phi_U``, ``V1 = Phi_V`` (``f~ = U1 V1^T``); ``c~ = f~ Vmat - Y``;
  ``q~ = c~ Vmat^T`` (``U2 = c~``, ``V2 = Vmat``, rank ``d_v``); ``p1~ = U3 V3^T`` with the row-wise
  Kronecker (face-splitting) factors ``U3 = U1 (x) U2``, ``V3 = V1 (x) V2`` (``L x k d_v``);
  ``rvec~ = p1~ 1 = rowsum((U1 (V1^T V2)) * U2)``; ``p2~ = diag(rvec~) f~``; ``p~ = p1~ - p2~``;
  ``G~_Q = beta X_Q^T p~ Kmat``, ``G~_K = beta X_K^T p~^T P``, ``G~_V = X_V^T f~^T c~``.
  Cost ``O(L k d^2)``.
* **factored**: the exact gradient of the approximate loss ``1/2 ||f~ Vmat - Y||^2``, by reverse mode
  through ``phi_U`` and ``phi_V``: ``dL~/dS_ij = poly'(S_ij) (q~_ij - rvec~_i) / D~_i``. With
  ``H = Phi_V^T [Vmat, 1]`` (``k x (d_v+1)``) and ``Yp = [c~, -rvec~] / D~`` (``L x (d_v+1)``):
  ``dL~/dPhi_U = Yp H^T``, ``dL~/dPhi_V = [Vmat, 1] (Phi_U^T Yp)^T``, ``dL~/dVmat = Phi_V (Phi_U^T c~/D~)``;
  the feature VJPs are GEMMs against derivative-coefficient matrices
  (:func:`~verified_lora.features.maps.lowrank_vjp_t`). Cost ``O(L k d)``; no ``L x L_k`` matrix and
  no ``L x k d`` Hadamard factor is formed.
* **antiderivative**: the factored core at degree ``g + 1`` with two weight vectors: the forward's are those of
  ``poly`` (zero at degree ``g + 1``), the backward's (``back_weights``) those of ``Q = int_0 poly``
  (``q_{t+1} = a_t / (t + 1)``). Since ``grad_u Q(beta <u, v>) = beta poly(beta <u, v>) v``, back-propagating
  through ``Q``'s features gives ``dL/dS_ij`` with ``poly(S_ij)`` in place of ``poly'(S_ij)``: the paper chain's
  ``p~`` (Lemmas 3.3-3.7) at ``O(L k' d)``, ``k' = C(d + g + 1, g + 1)``.

Both run over row blocks (three passes: keys, queries, keys), so memory is
``O((L + L_k) d + block * k)`` for "factored" and ``O((L + L_k) d + block * k * d_v)`` for "paper".
In "factored" each block builds only its degree ``<= g-1`` monomials (``k' = C(d+g-1, g-1)`` rows), chunk by
chunk of feature rows (:func:`~verified_lora.features.maps.monomials_t_chunks`, the chunks of
:func:`~.chunked.tmatmul_bt`), and each GEMM on a chunk runs while the chunk is in cache, summed in
``tmatmul_bt``'s order. The degree-``g`` rows ``x^m = x_i x^m'`` are never formed: their products take
``x^m'`` with ``x_i`` on the thin operand or on the product (:func:`_top_parts`, :func:`_thin_rows`: no term
gets more rounding factors than the bound charges). Measured at d = 8, k = 43758, L = 4096, one thread on the
2-core box: 2.5-2.7 s CPU for the core against 2.9-3.6 s before (benchmarks/core_parts.py).
Everything is float64; the ``k``-dimensional sums and the normalisers ``D~`` accumulate in float64.
GEMMs use ``@`` (cuBLAS for CuPy); the other steps run on the steps object chosen once per call
(:func:`verified_lora.steps.steps_for`: array expressions for NumPy, the generated kernels for CuPy).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from .._xp import to_numpy
from ..errors import CertificationError
from .chunked import add_product, chunk_cuts, chunk_for, tmatmul
from ..features import maps as F
from .. import steps as _steps

__all__ = ["CoreResult", "factored_core", "paper_core"]


@dataclass
class CoreResult:
    """``loss~`` and ``dL~/dP``, ``dL~/dKmat``, ``dL~/dVmat`` of one problem (before ``X^T``)."""

    loss: float
    dP: Any
    dK: Any
    dV: Any
    min_normaliser: float


def _blocks(n: int, block: int):
    for i0 in range(0, n, block):
        yield i0, min(n, i0 + block)


def _wide_product(built: Any, M: Any, kp: int, wideT: Any, n: int, xp: Any) -> Any:
    """``M[:kp]^T wide`` (an ``n x cols`` view) from ``wideT = wide^T``: the chunk products of
    ``tmatmul_bt(M[:kp], wideT, ch)`` summed in its order (so :func:`~verified_lora.fast.chunked.depth`
    holds), each taken as soon as ``built`` (:func:`~verified_lora.features.maps.monomials_t_chunks`) yields it."""
    acc = None
    for c0, c1 in built:
        if c1 <= kp:
            acc = add_product(acc, wideT[:, c0:c1], M[c0:c1])
    if acc is None:                              # kp = 0 (degree 0)
        acc = xp.zeros((wideT.shape[0], n), dtype=M.dtype)
    return acc.T


@lru_cache(maxsize=64)
def _top_parts(d: int, g: int, ch: int) -> tuple[tuple[tuple[int, int, int, int], ...], ...]:
    """The degree-``g`` rows ``[k', k)`` in the chunks of ``tmatmul_bt(M[k':], ., ch)``, each chunk split where
    the construction steps split it: parts ``(i, dst0, dst1, src0)`` with ``x^m = x_i x^m'`` for
    ``m = dst0 + j``, ``m' = src0 + j`` (a degree ``g - 1`` row). At ``g = 0`` the one row is the constant
    (``i = -1``: no factor).

    Rounding (what :mod:`verified_lora.fast.rounding_bound` counts: rounding factors per term of each sum,
    with the magnitudes ``|x^m| |C_m|``, which are unchanged): the bound charges ``g`` factors for building
    a monomial; here ``x^m'`` carries at most ``max(g - 2, 0)`` and ``x_i`` one more (applied to the
    product, or to the thin operand), at most ``g``. A chunk of ``c`` rows split in ``q`` parts gives a
    part of ``p <= c - q + 1`` rows at most ``p`` (its GEMM) ``+ 1`` (``x_i``) ``+ q - 1`` (summing the parts)
    ``<= c + 1`` factors before the chunk sum, the ``c`` of the unsplit chunk plus the ``x_i`` of building
    ``x^m``; the chunks and their order are those of ``tmatmul_bt``, so the depth stays within
    ``g + depth(k, ch)`` as before.
    """
    if g == 0:
        return (((-1, 0, 1, 0),),)
    kp, k = math.comb(d + g - 1, g - 1), math.comb(d + g, g)
    cuts = chunk_cuts(k - kp, ch, kp)
    progs = F.chunk_programs(d, g, tuple(sorted(set(chunk_cuts(kp, ch) + cuts))))
    return progs[-(len(cuts) - 1):]


def _top_product(thinT: Any, M: Any, xT: Any, top: Any, kp: int) -> Any:
    """``sum_{|m| = g} thinT[:, m - k'] x^m`` (``cols x n``) from the degree ``g - 1`` rows of ``M``, chunk by
    chunk in ``tmatmul_bt``'s order, each chunk's parts summed first (:func:`_top_parts`)."""
    acc = None
    for parts in top:
        part = None
        for (i, lo, hi, s0) in parts:
            p = thinT[:, lo - kp:hi - kp] @ M[s0:s0 + hi - lo]
            if i >= 0:
                p *= xT[i]
            part = p if part is None else _iadd(part, p)
        acc = part if acc is None else _iadd(acc, part)
    return acc


def _iadd(acc: Any, p: Any) -> Any:
    acc += p
    return acc


@lru_cache(maxsize=64)
def _row_plan(d: int, g: int, cuts: tuple[int, ...]) -> tuple[tuple[int, int, int, tuple[tuple[int, int, int, int], ...]], ...]:
    """Per built chunk ``[c0, c1)`` (``cuts``, over the built rows): ``(c0, c1, imax, tops)``, ``tops`` the
    degree-``g`` rows ``x^m = x_i x^m'`` whose ``x^m'`` lie in the chunk, as ``(i, src0, src1, dst0)``
    (``i = 0..imax``: the rows with smallest index ``>= i`` are a suffix of the degree ``g - 1`` rows)."""
    top_steps = [(i, d0, s0, s1) for (t, i, d0, _d1, s0, s1) in F.feature_layout(d, g).steps if t == g and g > 0]
    plan = []
    for c0, c1 in zip(cuts[:-1], cuts[1:]):
        tops = tuple((i, max(c0, s0), min(c1, s1), d0 + max(c0, s0) - s0)
                     for (i, d0, s0, s1) in top_steps if max(c0, s0) < min(c1, s1))
        plan.append((c0, c1, max((t[0] for t in tops), default=-1), tops))
    return tuple(plan)


def _stacked(ZT: Any, xT: Any, xp: Any) -> Any:
    """``[ZT; ZT x_0; ...; ZT x_{d-1}]`` (``(d + 1) a x n``, each ``x_i`` scaling the columns) for :func:`_thin_rows`."""
    a, n = ZT.shape
    return xp.concatenate([ZT, (ZT[None, :, :] * xT[:, None, :]).reshape(-1, n)], axis=0)


def _thin_rows(outT: Any, S: Any, a: int, M: Any, chunk: Any) -> None:
    """``outT[:, m] += ZT @ x^m`` (sums over the block's rows) for the built rows ``m`` of one chunk of
    :func:`_row_plan` and the degree-``g`` rows on it, in one GEMM ``S[:(imax + 2) a] @ M[c0:c1]^T`` with
    ``S = [ZT; ZT x_0; ...]`` (:func:`_stacked`): a degree-``g`` column is ``(ZT x_i) @ x^m'``, the same
    factors per term as ``ZT @ (x_i x^m')``, and each column is its own sum over the rows, whatever else
    the GEMM computes."""
    c0, c1, imax, tops = chunk
    R = S[:(imax + 2) * a] @ M[c0:c1].T
    outT[:, c0:c1] += R[:a]
    for (i, lo, hi, dlo) in tops:
        outT[:, dlo:dlo + hi - lo] += R[(i + 1) * a:(i + 2) * a, lo - c0:hi - c0]


def _check_normaliser(D: Any, xp: Any) -> float:
    low = float(D.min())
    if not low > 0:
        raise CertificationError(
            f"the approximate softmax normaliser D~ = poly(S) 1 reached {low:.3g} <= 0: the polynomial is not "
            "positive on the score range, so the plan's certificate does not apply (this is a bug in the plan "
            "or an input outside its certified interval)")
    return low


def factored_core(P: Any, Kmat: Any, Vmat: Any, Y: Any, weights: Any, g: int, *, block: int,
                  xp: Any, back_weights: Any = None) -> CoreResult:
    """Loss and gradients of the approximate loss by back-propagation through the features.

    ``weights`` are the query-side weights ``w_m = a_|m| beta^|m| multinomial`` (length ``k``),
    already containing ``beta``; ``P``, ``Kmat``, ``Vmat``, ``Y`` are float64.

    ``back_weights`` (length ``k``, default ``weights``): the weights of the polynomial whose feature VJP
    the backward takes (the derivative-coefficient matrices of ``dP`` and ``dK``); the forward (``D~``,
    ``c~``, ``rvec~``, the loss) and ``dV`` use ``weights``. With ``weights`` those of ``P`` (degree
    ``g - 1``) padded by zeros at degree ``g`` and ``back_weights`` those of its antiderivative ``Q``
    (``Q' = P``, degree ``g``), ``dL/dS_ij`` carries ``Q'(S_ij) = P(S_ij)``: the paper chain's gradient
    (``method="antiderivative"``, :mod:`verified_lora.fast`). Degree-``g`` rows whose forward weights are all
    zero are skipped in the forward and ``dV`` products (exact zeros, so nothing changes but the time).
    """
    L, d = P.shape
    Lk, dv = Vmat.shape
    a = dv + 1
    dt = P.dtype
    steps = _steps.steps_for(xp)
    w = xp.asarray(weights, dtype=dt)[:, None]
    wb = w if back_weights is None else xp.asarray(back_weights, dtype=dt)[:, None]
    k = int(w.shape[0])
    KT = xp.ascontiguousarray(Kmat.T)
    PT = xp.ascontiguousarray(P.T)
    kp = math.comb(d + g - 1, g - 1) if g > 0 else 0   # the degree <= g-1 features come first
    # forward weights zero on every degree-g row (the antiderivative layout): those rows add exact zeros
    top_fwd = g == 0 or back_weights is None or bool(np.any(np.asarray(to_numpy(weights))[kp:] != 0))
    ch = chunk_for(k)  # one chunk for both parts of the k features: depth(k, ch) bounds each
    # Only the degree <= g-1 rows (kb of them; the constant alone at g = 0) are built, chunk by chunk
    # (the chunks of tmatmul_bt over M[:kp]); every GEMM on a chunk runs while it is in cache. The
    # degree-g rows x^m = x_i x^m' are never formed: their products are taken on the rows x^m' with x_i
    # moved onto the thin operand or the result (_top_parts).
    gb = max(g - 1, 0)
    kb = math.comb(d + gb, gb)
    build_cuts = chunk_cuts(kp, ch) if g > 0 else [0, 1]
    plan = _row_plan(d, g, tuple(build_cuts))
    top = _top_parts(d, g, ch)
    buf = xp.empty((kb, min(block, max(L, Lk))), dtype=dt)

    # pass 1 (keys): H = Phi_V^T [Vmat, 1], one GEMM per block of keys (per chunk of its rows)
    Zk = xp.concatenate([Vmat, xp.ones((Lk, 1), dtype=dt)], axis=1)   # (L_k x a)
    ZkT = xp.ascontiguousarray(Zk.T)
    HT = xp.zeros((a, k), dtype=dt)              # H^T: the thin products run faster as (a x n) @ (n x chunk)
    for j0, j1 in _blocks(Lk, block):
        M = buf[:, :j1 - j0]
        xT = KT[:, j0:j1]
        S = _stacked(ZkT[:, j0:j1], xT, xp)
        for chunk, _built in zip(plan, F.monomials_t_chunks(xT, gb, build_cuts, M, steps=steps)):
            _thin_rows(HT, S, a, M, chunk)
    Hw = w * HT.T                                  # Phi_U H = M_U^T (w * H)
    Dq = F.derivative_coefficients(Hw if back_weights is None else wb * HT.T, d, g)   # gradient polynomials
    # of <Hw[:, a], u^m> (of the backward polynomial's features)

    # pass 2 (queries): forward, loss, dP, E = Phi_U^T Yp
    dP = xp.empty((L, d), dtype=dt)
    ET = xp.zeros((a, k), dtype=dt)              # E^T, as H^T
    loss = 0.0
    low = float("inf")
    # one GEMM over the degree <= g-1 rows serves both the forward and the feature VJP:
    # M^T [Hw | Dq] on rows < k', plus the thin M^T Hw on the degree-g rows
    right_qT = xp.ascontiguousarray(xp.concatenate([Hw[:kp], Dq], axis=1).T)   # transposed once
    HwT = xp.ascontiguousarray(Hw[kp:].T)
    for i0, i1 in _blocks(L, block):
        n = i1 - i0
        M = buf[:, :n]
        xT = PT[:, i0:i1]
        OZ = _wide_product(F.monomials_t_chunks(xT, gb, build_cuts, M, steps=steps), M, kp, right_qT, n, xp)
        O = OZ[:, :a] + _top_product(HwT, M, xT, top, kp).T if top_fwd else OZ[:, :a]   # [A~ Vmat, D~]
        D = O[:, dv:]
        low = min(low, _check_normaliser(D, xp))
        c, Yp = steps.normalised_residual(O[:, :dv], D, Y[i0:i1])  # c~ and [c~, -rvec~] / D~
        loss += 0.5 * float((c * c).sum())
        YpT = xp.ascontiguousarray(Yp.T)
        S = _stacked(YpT, xT, xp)
        for chunk in reversed(plan):             # the chunks built last are still in cache
            _thin_rows(ET, S, a, M, chunk)
        dP[i0:i1] = F.contract_derivative(OZ[:, a:], Yp, steps=steps)
    Ew = w * ET.T                                  # Phi_U^T Yp
    Dk = F.derivative_coefficients(Ew if back_weights is None else wb * ET.T, d, g)

    # pass 3 (keys): dK, dV
    dK = xp.empty((Lk, d), dtype=dt)
    dV = xp.empty((Lk, dv), dtype=dt)
    right_kT = xp.ascontiguousarray(xp.concatenate([Ew[:kp, :dv], Dk], axis=1).T)
    EwT = xp.ascontiguousarray(Ew[kp:, :dv].T)
    for j0, j1 in _blocks(Lk, block):
        n = j1 - j0
        M = buf[:, :n]
        xT = KT[:, j0:j1]
        VZ = _wide_product(F.monomials_t_chunks(xT, gb, build_cuts, M, steps=steps), M, kp, right_kT, n, xp)
        dV[j0:j1] = VZ[:, :dv] + _top_product(EwT, M, xT, top, kp).T if top_fwd else VZ[:, :dv]
        dK[j0:j1] = F.contract_derivative(VZ[:, dv:], Zk[j0:j1], steps=steps)   # [Vmat, 1] rows
    return CoreResult(loss=loss, dP=dP, dK=dK, dV=dV, min_normaliser=low)


def paper_core(P: Any, Kmat: Any, Vmat: Any, Y: Any, weights: Any, g: int, beta: float, *, block: int,
               xp: Any) -> CoreResult:
    """The paper's constructive chain (Lemmas 3.3-3.7, Theorem 3.1 / A.1) with explicit factors.

    Returns ``dL/dP = beta p~ Kmat``, ``dL/dKmat = beta p~^T P``, ``dL/dVmat = f~^T c~`` with
    ``p~ = U3 V3^T - diag(rvec~) U1 V1^T`` (see the module docstring).
    """
    L, d = P.shape
    Lk, dv = Vmat.shape
    dt = P.dtype
    steps = _steps.steps_for(xp)
    w = xp.asarray(weights, dtype=dt)[:, None]
    k = int(w.shape[0])
    KT = xp.ascontiguousarray(Kmat.T)
    PT = xp.ascontiguousarray(P.T)
    VT = xp.ascontiguousarray(Vmat.T)
    buf = xp.empty((k, min(block, max(L, Lk))), dtype=dt)

    # pass 1 (keys): V1^T [Vmat, 1, Kmat] and V3^T Kmat
    V1tV = xp.zeros((k, dv), dtype=dt)           # V1^T V2
    V1t1 = xp.zeros((k, 1), dtype=dt)            # V1^T 1 (for D~)
    V1tK = xp.zeros((k, d), dtype=dt)            # V1^T Kmat (the p2~ term)
    V3tK = xp.zeros((k * dv, d), dtype=dt)       # V3^T Kmat (the p1~ term)
    for j0, j1 in _blocks(Lk, block):
        V1T = F.monomials_t(KT[:, j0:j1], g, out=buf[:, :j1 - j0], steps=steps)
        V1tV += V1T @ Vmat[j0:j1]
        V1t1[:, 0] += V1T.sum(axis=1)
        V1tK += V1T @ Kmat[j0:j1]
        V3T = steps.face_split_t(V1T, VT[:, j0:j1])  # V3 = V1 (x) V2 (Lemma 3.6)
        V3tK += V3T @ Kmat[j0:j1]

    # pass 2 (queries)
    dP = xp.empty((L, d), dtype=dt)
    U3tP = xp.zeros((k * dv, d), dtype=dt)       # U3^T P
    U1trP = xp.zeros((k, d), dtype=dt)           # U1^T diag(rvec~) P
    U1tc = xp.zeros((k, dv), dtype=dt)           # U1^T c~
    loss = 0.0
    low = float("inf")
    for i0, i1 in _blocks(L, block):
        MT = F.monomials_t(PT[:, i0:i1], g, out=buf[:, :i1 - i0], steps=steps)
        PhiUT = w * MT
        D = tmatmul(PhiUT, V1t1)                       # D~ = Phi_U (Phi_V^T 1)
        low = min(low, _check_normaliser(D, xp))
        U1T = steps.scaled_divide(MT, PhiUT, w, D)   # U1 = D~^{-1} Phi_U (Lemma 3.3)
        fV = tmatmul(U1T, V1tV)                        # f~ Vmat
        c = steps.residual(fV, Y[i0:i1])         # c~ (Lemma 3.4); U2 = c~, V2 = Vmat
        loss += 0.5 * float((c * c).sum())
        r = steps.row_dot(fV, c)                 # rvec~_j = U1[j] (V1^T V2) U2[j]^T (Lemma 3.7)
        U3T = steps.face_split_t(U1T, xp.ascontiguousarray(c.T))   # U3 = U1 (x) U2 (Lemma 3.6)
        dP[i0:i1] = steps.paper_grad_rows(tmatmul(U3T, V3tK), tmatmul(U1T, V1tK), r, beta)
        Pb = P[i0:i1]
        U3tP += U3T @ Pb
        U1trP += U1T @ (r * Pb)
        U1tc += U1T @ c

    # pass 3 (keys)
    dK = xp.empty((Lk, d), dtype=dt)
    dV = xp.empty((Lk, dv), dtype=dt)
    for j0, j1 in _blocks(Lk, block):
        V1T = F.monomials_t(KT[:, j0:j1], g, out=buf[:, :j1 - j0], steps=steps)
        V3T = steps.face_split_t(V1T, VT[:, j0:j1])  # V3 = V1 (x) V2 (Lemma 3.6)
        dK[j0:j1] = beta * (tmatmul(V3T, U3tP) - tmatmul(V1T, U1trP))
        dV[j0:j1] = tmatmul(V1T, U1tc)
    return CoreResult(loss=loss, dP=dP, dK=dK, dV=dV, min_normaliser=low)
