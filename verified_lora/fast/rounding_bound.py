r"""Rigorous bound of the fast path's own floating-point error (every method), a priori, ``O((L + L_k)(d + d_v))``.

The certificate of :mod:`verified_lora.fast` compares the float arrays ``G^`` the fast path returns
with the exact gradient ``G`` of the problem as given (exact reals: ``W = W* + s B A``). The chain is

    G^  --(1) core rounding-->  G_fac(P^, K^, V^)  --(2) approximation, eps'-->  G_hyb  --(3) inputs-->  G

* ``P^ = fl(X_Q W^)``, ``K^``, ``V^``: the float64 projections the core receives, with
  ``W^ = fl(W* + s^ fl(B A))`` formed in float64 for every input dtype
  (:func:`effective_weight_f64`); ``|P^ - P| <= E_P`` entrywise with
  ``E = |X| e_W + gamma_{d_model} |X| |W^|`` (Higham (3.13); ``e_W`` as in
  :mod:`verified_lora.bounds.score`). Magnitudes use ``|P^| <= |fl_numpy(X W^)| + 2 E`` (any
  summation order, CPU or GPU).
* ``G_fac(P^, K^, V^)``: the fast algorithm in exact arithmetic on those inputs (exact weights
  ``w_m``). Its kernel ``P(S^)`` with ``S^ = beta P^ K^T`` has relative error
  ``eps_A' = (1 + eps_A) e^sigma - 1 <= (1 + eps_A)(1 + 2 sigma) - 1`` against ``e^S``, where
  ``|S^ - S| <= sigma = |beta| (max ||E_P,i|| max ||K^_l|| + max ||P_i|| max ||E_K,l||)``
  (``sigma <= 1/2``); likewise ``eps_D'``. Step (2) is then the a-priori lemma of
  :mod:`verified_lora.bounds.propagation` at ``(eps_A', eps_D')``, with ``V^`` in the residuals and
  ``K^``, ``P^`` in the contractions (``G_hyb``); its column enclosures contain ``V^``, ``K^``.
* **(3) inputs.** ``G_hyb - G``: same softmax ``f``; ``V^`` vs ``V`` changes ``c`` by
  ``|f (V^ - V)| <= dV_j`` and ``h_l = <c, V_l - v>`` by at most ``2 sum_j dV_j (rho_j + Cb_ij)``
  =: ``nV_i`` (row L1 of the change of ``p``, since ``sum_l f_il = 1``); ``||p_i||_1 <= max_l |h_l|
  <= 2 s1_i``. Hence ``|dG_Q,ab| <= |beta| sum_i |X_Q,ia| (nV_i Kmag_b + 2 s1_i E_K,b)``,
  ``|dG_K,ab| <= |beta| max_l |X_K,la| sum_i (nV_i Pmag_ib + 2 s1_i E_P,ib)``,
  ``|dG_V,aj| <= L max_l |X_V,la| dV_j``.

**(1) Core rounding (the running-error part).** Write ``a_il = P(S^_il) = sum_m w_m P^_i^m K^_l^m``
and ``abar_il = sum_m |w_m| |P^_i|^m |K^_l|^m = Pabs(x_il)``, ``Pabs(x) = sum_t |a_t| x^t``,
``x_il = |beta| <|P^_i|, |K^_l|> <= R`` (Cauchy-Schwarz), so ``abar_il <= A0 = Pabs(R)`` and the
derivative magnitude ``sum_m |w_m| m_b |P^_i|^{m - e_b} |K^_l|^m = |beta| |K^_lb| Pabs'(x_il) <=
|beta| |K^_lb| A1`` with ``A1 = Pabs'(R)``. The kernel is positive: ``a_il >= amin =
(1 - eps_A) e^{-R} > 0``. Every computed sum of products carries at most ``n`` rounding factors
``(1 + theta)`` per term (monomials ``g``, the key GEMM ``L_k``, the weight and its product,
the query GEMM over the ``k`` features (``k d_v`` for the paper's face-split GEMM), summed in chunks
of ``chunk_for(k)`` rows, about ``sqrt(k)`` (depth ``chunk + ceil(k / chunk)``, :mod:`.chunked`), the divisions and the blocked
row accumulations ``2 L`` and ``2 L_k``, or ``block + ceil(L / block) + 2`` for blocks of ``block`` rows), so ``|fl - exact| <= gamma_n * (sum of |terms|)`` (Higham Lemma 3.1).

* Normaliser: ``|D^_i - D_i| <= gamma_F sum_l abar_il <= gamma_F L_k A0`` and ``D_i >= L_k amin``,
  so ``|D^_i - D_i| <= delta_D D_i`` with ``delta_D = gamma_F A0 / amin`` (required ``<= 1/2``);
  ``Dlo = L_k amin (1 - delta_D) <= min(D_i, D^_i)`` is the certified positive margin.
* ``fV^ - fV``: ``(N^ - N)/D^ - fV (D^ - D)/D^`` with ``|N^_ij - N_ij| <= gamma_F L_k A0 Vmag_j`` and
  ``|fV_ij| <= Vmag_j`` (convex combination) gives ``e_fV,j = 2 delta_D / (1 - delta_D) Vmag_j``.
* **Per row** (when per-row bounds ``rows`` for the run's ``pi~`` are given, from the moments of a cheap
  proxy polynomial, :mod:`.proxy_moments` (P1)-(P4)): ``|c_i| <= cabs_i`` (``>= |E~V - Y_i|``), ``|r_i|`` by
  ``sum_j |c_ij| fvabs_ij`` (``fvabs >= |E~V|``), and ``dl_i = D_lo,i / L_k`` (``D_lo,i <= D_i``) in the
  per-row magnitudes below, when larger than ``a_min``.
* **Per-row magnitudes** (always): with the row radius ``R_i = |beta| ||Pm_i|| max_l ||Km_l||``
  (:func:`row_radius`, :mod:`.row_radii`, ``x_il <= R_i``) and ``Pabs``, ``Pabs'`` non-decreasing on ``[0, inf)``,
  ``abar_il <= A0_i = min(A0, Pabs(R_i))`` and the derivative magnitude ``<= |beta| |K^_lb| A1_i``,
  ``A1_i = min(A1, Pabs'(R_i))`` (:func:`row_magnitudes`). With ``dl_i <= D_i / L_k`` (``a_min``, or
  ``D_lo,i / L_k`` when ``rows`` are given) every step above and below holds row by row with
  ``A0 -> A0_i``, ``a_min -> dl_i``: ``|D^_i - D_i| <= gamma_F L_k A0_i <= delta_i D_i``,
  ``delta_i = min(delta_D, gamma_F A0_i / dl_i)``, ``min(D_i, D^_i) >= L_k Dlo_i``,
  ``Dlo_i = max(Dlo / L_k, dl_i - gamma_F A0_i)``, ``e_fV,ij = 2 delta_i / (1 - delta_i) Vmag_j``, and
  ``Amag`` in the outputs below is ``A1_i`` or ``A0_i`` of the query row ``i`` summed over
  (``|a_il| <= A0_i``). At ``R = 1``, ``d = 8`` this is about 7 times smaller than the global
  ``delta_D``, ``A0`` (the rows' scores reach about 0.65 and ``D_i / L_k`` is near 1, not ``e^{-1}``).
* ``c^ = fl(fV^ - Y)``: ``e_c,ij = (1 + u) e_fV,ij + u Cb_ij``; ``|c_ij| <= Cb_ij``.
* ``r^ = fl(sum_j c^ fV^)``: ``e_r,i = sum_j [e_c,ij (Vmag_j + e_fV,ij) + Cb_ij e_fV,ij]
  + gamma_{d_v} sum_j (Cb_ij + e_c,ij)(Vmag_j + e_fV,ij)``; ``|r_i| <= Q_i = sum_j Cb_ij Vmag_j``.
* ``y = [c, -r] / D`` (both methods divide by ``D^`` somewhere; that division is one of the
  ``n`` factors): ``|y^ - y|_ij <= (e_c,ij + Cb_ij delta_i) / Dlo_i``,
  ``|y^ - y|_ir <= (e_r,i + Q_i delta_i) / Dlo_i``; ``|y^| <= (Cb + e_c) / Dlo_i``, ``(Q + e_r) / Dlo_i``.
* Every output is linear in ``y``: ``out = sum_terms t(y)``; the computed
  ``out^ = sum t(y^)(1 + theta)``, so ``|out^ - out| <= sum |t(y^ - y)| + gamma_n sum |t(y^)|``:

  - ``dP_ib = sum_l d_b a_il <[V^_l, 1], y_i>`` (factored; paper: ``beta a_il K^_lb`` in place of
    ``d_b a_il``): ``sum |t(z)| <= |beta| Amag (KZ |z_i|)_b``, ``KZ = |K^|^T [|V^|, 1]``;
  - ``dK_lb = sum_i d_b a_il <[V^_l, 1], y_i>`` (paper: ``beta a_il P^_ib``):
    ``sum |t(z)| <= |beta| Amag sum_a |Z_la| (|P^|^T |z|)_ba``;
  - ``dV_lj = sum_i a_il y_ij``: ``sum |t(z)| <= sum_i A0_i |z_ij|``;

  with ``Amag = A1_i`` (factored) or ``A0_i`` (paper, antiderivative) of the row ``i`` (inside the sum over ``i``
  for ``dK``).
* **antiderivative** runs the factored core at degree ``g + 1`` (:func:`core_layout`): the forward and ``dV``
  with the weights of ``P`` (zero at degree ``g + 1``; those rows are skipped, fewer terms), ``dP`` and ``dK``
  through the feature VJP of ``Q`` (``q_{t+1} = a_t / (t + 1)``, ``Q' = P``). Every count above holds with
  ``g + 1`` for ``g`` and ``k' = C(d + g + 1, g + 1)`` for ``k``; the magnitudes ``A0``, ``A0_i`` are ``P``'s,
  and the derivative magnitude is ``sum_m |w^Q_m| m_b |P^_i|^{m - e_b} |K^_l|^m = |beta| |K^_lb| Qabs'(x_il)``
  with ``Qabs'(x) = sum_t (t + 1) |q_{t+1}| x^t = Pabs(x)``, so ``Amag = A0_i`` (certificate
  fast-antiderivative-magnitude).
* ``G_Q = X_Q^T dP`` etc. (float64 GEMMs): ``|X|^T e + gamma_L |X|^T |out^|``; a batch adds
  ``gamma_{N+1}`` of the summed magnitudes before the division by ``N``.

All quantities are rounded upward (:mod:`verified_lora.bounds._rigorous`); when ``delta_D > 1/2``
or ``sigma > 1/2`` the bound is ``inf`` (no certificate: at ``R`` near 18 the cancellation
``A0 / amin ~ e^{2R}`` exceeds ``1/gamma``).

Algebraic steps machine-checked: verified_lora/proofs/fast_rounding_bound.py, certificates fast-rounding-gamma,
fast-rounding-core (with the per-row delta_i and margin), fast-rounding-inputs, fast-balancing; the antiderivative's
magnitude in verified_lora/proofs/fast_antiderivative.py, certificate fast-antiderivative-magnitude.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Sequence

import numpy as np

from .._xp import to_numpy
from ..bounds import _rigorous as rg
from ..bounds.propagation import column_stats
from ..numerics.rounding import fraction_to_float_down, fraction_to_float_up
from .chunked import depth as chunk_depth

__all__ = ["RoundingBound", "rounding_bound", "effective_weight_f64", "poly_magnitudes", "row_magnitudes", "row_radius",
           "balance_scale", "core_layout"]

U = rg.U


def effective_weight_f64(problem: Any, key: str, xp: Any) -> Any:
    """``fl(W* + s fl(B A))`` in float64 for every input dtype (the fast path's weights)."""
    w = xp.asarray(problem.frozen_weight(key), dtype=np.float64)
    if key not in problem.adapters:
        return w
    ad = problem.adapters[key]
    return w + float(problem.scale(key)) * (xp.asarray(ad.b, dtype=np.float64) @ xp.asarray(ad.a, dtype=np.float64))


def balance_scale(P: Any, K: Any) -> float:
    """A power of two ``c`` with ``max|P c| ~ max|K / c|`` (1 when either is 0 or not finite).

    The scores ``beta <P_i, K_l>`` are unchanged and the scaling is exact in binary floating point
    (barring under/overflow, which it avoids: ``|P|^g`` at degree 40 overflows for ``|P| ~ 1e8``
    even when ``K`` is tiny and the scores are bounded). The core's outputs scale back exactly
    (``dL/dP = c dL/dP'``, ``dL/dK = dL/dK' / c``), and every term of the rounding bound below is
    invariant under it (``|P||K|`` products, ``|K| dL/dP``, ``|P| dL/dK``).
    """
    pm, km = float(abs(P).max()) if P.size else 0.0, float(abs(K).max()) if K.size else 0.0
    if not (pm > 0 and km > 0 and math.isfinite(pm) and math.isfinite(km)):
        return 1.0
    return 2.0 ** round(0.5 * (math.log2(km) - math.log2(pm)))


def poly_magnitudes(coeffs: Sequence[Any], R: float) -> tuple[float, float]:
    """``(A0, A1) = (sum_t |a_t| R^t, sum_t t |a_t| R^{t-1})`` rounded up (exact rationals)."""
    r = Fraction(R)
    a = [Fraction(c) for c in coeffs]
    A0 = sum(abs(c) * r ** t for t, c in enumerate(a))
    A1 = sum(t * abs(c) * r ** (t - 1) for t, c in enumerate(a) if t > 0)
    return fraction_to_float_up(A0), fraction_to_float_up(A1)


def row_radius(problem: Any, Pm: np.ndarray, Km: np.ndarray) -> np.ndarray:
    """``R_i >= |beta| ||Pm_i|| max_l ||Km_l||`` per query row (:mod:`.row_radii`, "row radius"), rounded up."""
    d = Pm.shape[1]
    pn = rg.sqrt_up(rg.inflate_inplace(rg.row_dot(Pm, Pm), d))       # _rigorous 2.: d products, any order
    # sqrt and the inflation are monotone: the max over keys is taken first
    kn = float(rg.sqrt_up(rg.inflate_inplace(np.max(rg.row_dot(Km, Km)), Km.shape[1]))) if Km.size else 0.0
    return rg.scale_up(float(rg.mul_up(abs(float(problem.beta)), kn)), pn)


def row_magnitudes(coeffs: Sequence[Any], radii: np.ndarray, A0: float, A1: float) -> tuple[np.ndarray, np.ndarray]:
    """Per row ``(min(A0, Pabs(R_i)), min(A1, Pabs'(R_i)))``, rounded up (``Pabs(x) = sum_t |a_t| x^t``).

    Horner on non-negative floats with every step rounded up (:func:`~verified_lora.bounds._rigorous.mul_up_nn`,
    ``add_up_nn``: each result is ``>=`` the exact step on its inputs, and both steps are monotone), from the
    coefficients' magnitudes rounded up; ``Pabs`` and ``Pabs'`` are non-decreasing on ``[0, inf)``."""
    a = [abs(Fraction(c)) for c in coeffs]
    r = np.asarray(radii, dtype=np.float64)

    def horner(cs: list) -> np.ndarray:
        h = np.full(r.shape, fraction_to_float_up(cs[-1]) if cs else 0.0)
        for c in reversed(cs[:-1]):
            h = rg.add_up_nn(rg.mul_up_nn(h, r), fraction_to_float_up(c))
        return h

    with np.errstate(over="ignore"):
        p0 = horner(a)
        p1 = horner([t * c for t, c in enumerate(a)][1:])
    return np.minimum(A0, p0), np.minimum(A1, p1)


def _exp_neg_lower(R: float) -> float:
    """A float ``<= e^{-R}`` (mpmath interval arithmetic, outward rounding, then rounded down)."""
    import mpmath

    with mpmath.workprec(80):
        r = Fraction(R)
        lo = mpmath.iv.exp(-mpmath.iv.mpf(r.numerator) / r.denominator).a
        man, ex = mpmath.mpf(lo).man_exp
    return fraction_to_float_down(Fraction(int(man)) * Fraction(2) ** int(ex))


@dataclass(frozen=True)
class RoundingBound:
    """Entrywise bounds (float64 ``d_model x d_out`` arrays) per weight gradient ``"Q", "K", "V"``.

    ``weight``: ``|G^ - G_fac|`` (core rounding, 1) plus ``|G_hyb - G|`` (inputs, 3);
    ``weight_mag``: an upper bound of ``|G^|`` (for the adapter chain's own rounding);
    ``eps_A_in``/``eps_D_in``: the relative errors ``eps'`` step (2) must use; ``sigma``,
    ``delta_D``: the score perturbation and the normaliser's relative rounding bound;
    ``finite``: False when the bound is infinite (no certificate possible); ``e_rel``: the bound
    of a computed normalised moment's error relative to its column's max magnitude (``e_fV / Vmag``);
    ``items``: per batch item, the float64 inputs and the magnitude bounds ``Pm``, ``Km``, ``Vm``.
    """

    weight: dict[str, np.ndarray]
    weight_mag: dict[str, np.ndarray]
    eps_A_in: float
    eps_D_in: float | None
    sigma: float
    delta_D: float
    finite: bool
    e_rel: float = math.inf
    items: tuple = ()


def _proj(problem: Any, x: np.ndarray, key: str) -> tuple[np.ndarray, np.ndarray]:
    """``(|P^| bound, E)``: magnitude of the core's projection and its distance to the exact one."""
    from ..bounds.score import _effective_weight

    w_hat, e_w, _mag = _effective_weight(problem, key)
    value = rg.mm(x, w_hat)
    # |X| e_W + gamma_n |X| |W^| = |X| (e_W + gamma_n |W^|): the small right factor rounded up, one GEMM
    err = rg.matmul_up(np.abs(x), rg.add_up_nn(e_w, rg.scale_up(rg.gamma(x.shape[-1]), np.abs(w_hat))))
    mag = np.abs(value)               # |fl(X W^)| + 2 E: two additions (_rigorous 4.)
    mag += err
    mag += err
    return rg.inflate_inplace(mag, 2), err, value


def _inflate_eps(eps: float | None, sigma: float) -> float | None:
    if eps is None:
        return None
    return fraction_to_float_up((1 + Fraction(eps)) * (1 + 2 * Fraction(sigma)) - 1)


@dataclass(frozen=True)
class NormaliserRounding:
    """The normaliser part of the bound (module docstring, "Normaliser") of one polynomial and pass layout:
    ``gF = gamma_{n_F}``, ``A0``, ``A1``, ``amin``, ``delta_D = gF A0 / amin``, the depths ``kw`` (features),
    ``dL``, ``dLk`` (blocked rows), and ``e_rel = 2 delta_D / (1 - delta_D) + 4u``, the error of a computed
    normalised moment relative to its column max (``inf`` unless ``0 < amin`` and ``delta_D <= 1/2``)."""

    gF: float
    A0: float
    A1: float
    amin: float
    delta_D: float
    kw: int
    dL: int
    dLk: int
    e_rel: float


def core_layout(method: str, g: int, k: int, d_head: int | None) -> tuple[int, int]:
    """``(g_core, k_core)``: the degree and rank of the features ``method``'s core builds for a polynomial of
    degree ``g`` and rank ``k``: ``(g + 1, C(d_head + g + 1, g + 1))`` for "antiderivative" (the factored core on
    the features of ``Q = int P``; ``d_head`` required), ``(g, k)`` otherwise."""
    if method != "antiderivative":
        return g, k
    if d_head is None:
        raise ValueError("the antiderivative layout needs d_head")
    return g + 1, math.comb(int(d_head) + g + 1, g + 1)


def normaliser_rounding(coeffs: Sequence[Any], method: str, eps_A: float, R: float, k: int, L: int, Lk: int,
                        d_v: int, block: int | None, d_head: int | None = None) -> NormaliserRounding:
    """:class:`NormaliserRounding` of the polynomial ``coeffs`` (certified ``eps_A`` on ``[-R, R]``, rank ``k``)
    evaluated by ``method``'s pass layout over ``L`` query and ``L_k`` key rows in blocks of ``block``
    (``d_head`` for "antiderivative", whose core runs at degree ``g + 1``: :func:`core_layout`)."""
    g, k = core_layout(method, len(coeffs) - 1, k, d_head)
    A0, A1 = poly_magnitudes(coeffs, R)
    amin = float(rg.down(rg.down(1.0 - eps_A) * _exp_neg_lower(R)))
    # longest feature inner product, summed in chunks (fast/chunked.py); paper: the face-split GEMM
    kw = chunk_depth(k) + 1 if method != "paper" else chunk_depth(k * d_v) + chunk_depth(k) + 2

    def depth(n: int) -> int:
        return 2 * n if not block else min(2 * n, block + -(-n // block) + 2)

    dLk, dL = depth(Lk), depth(L)
    gF = float(rg.gamma(2 * g + dLk + kw + 16))
    if not amin > 0:
        return NormaliserRounding(gF, A0, A1, amin, math.inf, kw, dL, dLk, math.inf)
    delta_D = float(rg.div_up(rg.mul_up(gF, A0), amin))
    e_rel = math.inf
    if delta_D <= 0.5:
        e_rel = float(rg.add_up(rg.div_up(rg.mul_up(2.0, delta_D), float(rg.down(1.0 - delta_D))), 4 * U))
    return NormaliserRounding(gF, A0, A1, amin, delta_D, kw, dL, dLk, e_rel)


def one_plus(x: float) -> float:
    """``>= 1 + x`` (the sum itself rounded up)."""
    return float(rg.up(1.0 + x))


def _gemm_terms(t_d: np.ndarray, t_m: np.ndarray, g: float) -> tuple[np.ndarray, np.ndarray]:
    """A feature-VJP output's ``(error, magnitude)`` bounds from its propagated term ``t_d`` and magnitude term
    ``t_m`` with the rounding factor ``g`` of its sum: ``e = t_d + g t_m`` (two operations, inflated once,
    :mod:`verified_lora.bounds._rigorous` 4.) and ``m = (1 + g) t_m``."""
    e = t_m * g
    e += t_d
    return rg.inflate_inplace(e, 2), rg.scale_up(one_plus(g), t_m)


def rounding_bound(problem: Any, coeffs: Sequence[Any], method: str, eps_A: float, eps_D: float | None,
                   R: float, k: int, rows: list | None = None, block: int | None = None) -> RoundingBound:
    """The rounding and input-perturbation bound of the module docstring (per weight gradient).

    ``rows`` (per batch item, a dict of per-row bounds for the run's own ``pi~``: ``"cabs"`` ``>= |E~V - Y_i|``
    and ``"fvabs"`` ``>= |E~V|`` (``L x d_v``), ``"D_lo"`` ``<= D_i`` (``(L,)``), e.g. from proxy moments,
    :mod:`.proxy_moments`) sharpen the per-row magnitudes (module docstring, "per-row").
    ``block``: the rows per block the core used; a blocked sum of ``n`` terms
    has rounding depth ``<= block + ceil(n / block) + 1`` (one GEMM per block, then one addition
    per block). ``None`` assumes the worst, ``2 n``.
    """
    g, _k_core = core_layout(method, len(coeffs) - 1, k, problem.d_head)   # the core's monomial degree
    beta = abs(float(problem.beta))
    d_out = {"Q": problem.d_head, "K": problem.d_head, "V": problem.d_v}
    dm = problem.d_model
    inf = {key: np.full((dm, d_out[key]), math.inf) for key in "QKV"}
    L, Lk, dv = problem.L, problem.L_k, problem.d_v
    nr = normaliser_rounding(coeffs, method, eps_A, R, k, L, Lk, dv, block, problem.d_head)
    A0, A1, amin, gF, delta_D, kw, dL, dLk = nr.A0, nr.A1, nr.amin, nr.gF, nr.delta_D, nr.kw, nr.dL, nr.dLk
    if not amin > 0:
        return RoundingBound(inf, inf, math.inf, math.inf, math.inf, math.inf, False)
    acc_w = {key: np.zeros((dm, d_out[key])) for key in "QKV"}
    acc_m = {key: np.zeros((dm, d_out[key])) for key in "QKV"}
    sigma = 0.0
    per_item = []

    def max_norm(M: np.ndarray) -> float:
        # >= max_i ||M_i||: sqrt and the inflation are monotone, so the max is taken first (_rigorous 2.)
        return float(rg.sqrt_up(rg.inflate_inplace(np.max(rg.row_dot(M, M)), M.shape[1]))) if M.size else 0.0

    for x_q, x_k, x_v, y in problem.items():
        xq, xk, xv, yy = (np.asarray(to_numpy(a), dtype=np.float64) for a in (x_q, x_k, x_v, y))
        Pm, EP, Pv = _proj(problem, xq, "Q")
        Km, EK, _ = _proj(problem, xk, "K")
        Vm, EV, Vval = _proj(problem, xv, "V")
        pn, kn, epn, ekn = max_norm(Pm), max_norm(Km), max_norm(EP), max_norm(EK)   # >= ||P_i||, ||P^_i||, ...
        sigma = max(sigma, float(rg.mul_up(beta, rg.add_up(rg.mul_up(epn, kn), rg.mul_up(pn, ekn)))))
        per_item.append((xq, xk, xv, yy, Pm, EP, Km, EK, Vm, EV, Vval, Pv))
    if not (sigma <= 0.5 and delta_D <= 0.5):
        return RoundingBound(inf, inf, math.inf, math.inf, sigma, delta_D, False)
    eps_A_in = _inflate_eps(eps_A, sigma)
    eps_D_in = _inflate_eps(eps_D, sigma) if method == "factored" else None
    one_m = float(rg.down(1.0 - delta_D))
    dlo_n = float(rg.down(amin * one_m))                   # Dlo / L_k
    e_fv_rel = float(rg.div_up(rg.mul_up(2.0, delta_D), one_m))
    gB = rg.gamma(2 * g + dLk + kw + dv + 16)
    gK = rg.gamma(2 * g + dL + kw + dv + 16)
    gL, gLk = rg.gamma(L + 2), rg.gamma(Lk + 2)
    s_amag = float(rg.mul_up(beta, 1 + 2 * U))     # |beta| (1 + 2u), rounded up (Amag per row: a1r or a0r)

    radii: list[np.ndarray] = []

    for idx, (xq, xk, xv, yy, Pm, EP, Km, EK, Vm, EV, Vval, _Pv) in enumerate(per_item):
        # column range of V^ (and of the exact V): value +- E covers both; up/down are monotone, so the
        # column max/min are taken first
        hi = rg.up(rg.col_max(Vval + EV))
        lo = rg.down(-rg.col_max(EV - Vval))                # fl(E - V) = -fl(V - E) exactly
        vs = column_stats(np.stack([np.maximum(hi, lo), lo]))
        vmag = rg.col_max(Vm)                                           # >= |V^_lj|, |V_lj|
        cb = np.maximum(np.abs(vs["hi"] - yy), np.abs(yy - vs["lo"]))
        cb = rg.up_nn(cb)                                                   # |c|, |c_hyb| <= cb
        Q = rg.matmul_up(cb, vmag)                                          # >= |r_i|
        cb_all = cb
        # per row (module docstring, "Per-row magnitudes"): a0r >= abar_il, a1r >= Pabs'(x_il), dl_i <= D_i / L_k
        radius = row_radius(problem, Pm, Km)
        a0r, a1r = row_magnitudes(coeffs, radius, A0, A1)
        radii.append(radius)
        dl_i = np.full(yy.shape[0], amin)
        if rows is not None:  # per row: |c_i|, |r_i| = |<c_i, fV_i>| and D_i from bounds for this pi~
            ri = rows[idx]
            cb = np.minimum(cb, ri["cabs"])
            Q = np.minimum(Q, rg.inflate_inplace(rg.row_dot(cb, ri["fvabs"]), dv))
            dl_i = np.maximum(dl_i, rg.down(np.asarray(ri["D_lo"], dtype=np.float64) / float(Lk)))
        # delta_i = gF a0r / dl_i (<= 1/2 follows from delta_D <= 1/2; the min keeps it so through rounding);
        # Dlo_i = dl_i - gF a0r <= min(D_i, D^_i) / L_k, at least the global dlo_n
        ga0 = rg.mul_up(gF, a0r)
        delta = np.minimum(delta_D, rg.div_up(ga0, dl_i))
        dlo_row = np.maximum(dlo_n, rg.down(dl_i - ga0))
        e_fv_rel_i = rg.div_up(rg.mul_up(2.0, delta), rg.down(1.0 - delta))  # 2 delta_i / (1 - delta_i)
        e_fv = rg.mul_up_nn(e_fv_rel_i[:, None], vmag[None, :])            # per row i and column j
        # e_c = (1 + 2u) e_fv + u cb: the factor folded into the row term rounded up, then 2 operations (_rigorous 4.)
        e_c = cb * U
        e_c += np.multiply(rg.mul_up(1 + 2 * U, e_fv_rel_i)[:, None], vmag[None, :])
        e_c = rg.inflate_inplace(e_c, 2)
        vplus = rg.add_up_nn(vmag[None, :], e_fv)
        # e_r = e_c . vplus + cb . e_fv + gamma_dv (cb + e_c) . vplus: depth d_v + 4, 3 d_v products (_rigorous 4.)
        ce = cb + e_c
        e_r = rg.row_dot(ce, vplus)
        e_r *= rg.gamma(dv)
        e_r += rg.row_dot(e_c, vplus)
        e_r += rg.row_dot(cb, e_fv)
        e_r = rg.inflate_inplace(e_r, dv + 4, 3 * dv)
        # normalised by L_k: |y^| L_k and |y^ - y| L_k (module docstring); ymag = [cb + e_c, Q + e_r] / dl
        # (one addition, one division by the float dl: _rigorous 4.), dy's numerator rounded up before the division
        dl = dlo_row[:, None]
        ymag = np.empty((yy.shape[0], dv + 1))
        ymag[:, :dv] = ce
        np.add(Q, e_r, out=ymag[:, dv])
        ymag /= dl
        ymag = rg.inflate_inplace(ymag, 2, 1)
        dy = np.empty((yy.shape[0], dv + 1))
        np.multiply(cb, delta[:, None], out=dy[:, :dv])
        dy[:, :dv] += e_c
        np.multiply(Q, delta, out=dy[:, dv])
        dy[:, dv] += e_r
        dy = rg.div_up_nn(rg.inflate_inplace(dy, 2), dl)
        Z = np.concatenate([Vm, np.ones((Vm.shape[0], 1))], axis=1)        # |[V^_l, 1]|
        KZ = rg.div_up(rg.matmul_up(Km.T, Z), float(Lk))                   # (d x dv+1), / L_k
        # dP (rows i): |beta| amag (KZ |z_i|); e = t_d + gB t_m (2 operations, _rigorous 4.)
        ar = a1r if method == "factored" else a0r     # per-row Amag (antiderivative: Qabs' = Pabs, so A0_i)
        dyA, ymA = rg.mul_up_nn(dy, ar[:, None]), rg.mul_up_nn(ymag, ar[:, None])
        tP_d = rg.scale_up(s_amag, rg.matmul_up(dyA, KZ.T))
        tP_m = rg.scale_up(s_amag, rg.matmul_up(ymA, KZ.T))
        e_dP, m_dP = _gemm_terms(tP_d, tP_m, gB)
        # dV (rows l): sum_i a0r_i |z_ij| / L_k (same for every l)
        sd = rg.div_up(rg.matmul_up(a0r, dy[:, :dv]), float(Lk))
        sm = rg.div_up(rg.matmul_up(a0r, ymag[:, :dv]), float(Lk))
        e_dV = rg.add_up(sd, rg.mul_up(gK, sm))
        m_dV = rg.mul_up(1 + 2 * U, rg.mul_up(one_plus(gK), sm))
        # dK (rows l): |beta| amag sum_a |Z_la| (|P^|^T |z|)_ba / L_k
        PZd = rg.div_up(rg.matmul_up(Pm.T, dyA), float(Lk))                # (d x dv+1)
        PZm = rg.div_up(rg.matmul_up(Pm.T, ymA), float(Lk))
        tK_d = rg.scale_up(s_amag, rg.matmul_up(Z, PZd.T))
        tK_m = rg.scale_up(s_amag, rg.matmul_up(Z, PZm.T))
        e_dK, m_dK = _gemm_terms(tK_d, tK_m, gK)
        # the float64 GEMMs X^T out
        axq, axk, axv = np.abs(xq), np.abs(xk), np.abs(xv)
        for key, ax, e, m, g_n in (("Q", axq, e_dP, m_dP, gL), ("K", axk, e_dK, m_dK, gLk)):
            mag = rg.matmul_up(ax.T, m)
            err = rg.add_up(rg.matmul_up(ax.T, e), rg.mul_up(g_n, mag))
            acc_w[key] = rg.add_up(acc_w[key], err)
            acc_m[key] = rg.add_up(acc_m[key], rg.mul_up(one_plus(g_n), mag))
        # V: every row of the outputs is the same vector, so |X_V|^T 1 e^T = (column sums of |X_V|) e^T
        csv = rg.sum_up(axv, axis=0)
        mag = rg.mul_up(csv[:, None], m_dV[None, :])
        err = rg.add_up(rg.mul_up(csv[:, None], e_dV[None, :]), rg.mul_up(gLk, mag))
        acc_w["V"] = rg.add_up(acc_w["V"], err)
        acc_m["V"] = rg.add_up(acc_m["V"], rg.mul_up(one_plus(gLk), mag))
        # (3) inputs: G_hyb - G
        dVj = rg.col_max(EV)
        s1 = rg.matmul_up(cb_all, vs["rho"])
        nV = rg.mul_up(2.0, rg.matmul_up(rg.add_up_nn(cb_all, vs["rho"][None, :]), dVj))
        kmag, ekmax = rg.col_max(Km), rg.col_max(EK)
        # |X_Q|^T (nV kmag^T + 2 s1 ekmax^T) = (|X_Q|^T nV) kmag^T + 2 (|X_Q|^T s1) ekmax^T (same reals)
        rowQ = rg.add_up(rg.mul_up(rg.matmul_up(axq.T, nV)[:, None], kmag[None, :]),
                         rg.mul_up(rg.mul_up(2.0, rg.matmul_up(axq.T, s1))[:, None], ekmax[None, :]))
        acc_w["Q"] = rg.add_up(acc_w["Q"], rg.mul_up(beta, rowQ))
        rowK = rg.add_up(rg.matmul_up(nV[None, :], Pm), rg.matmul_up(rg.mul_up(2.0, s1)[None, :], EP))  # (1 x d)
        acc_w["K"] = rg.add_up(acc_w["K"], rg.mul_up(beta, rg.up(np.outer(rg.col_max(axk), rowK[0]))))
        acc_w["V"] = rg.add_up(acc_w["V"], rg.mul_up(float(L), rg.up(np.outer(rg.col_max(axv), dVj))))
    n = problem.n_batch
    if n > 1:
        gN = rg.gamma(n + 1)
        acc_w = {key: rg.div_up(rg.add_up(acc_w[key], rg.mul_up(gN, acc_m[key])), float(n)) for key in acc_w}
        acc_m = {key: rg.div_up(rg.mul_up(float(rg.up(1.0 + gN)), acc_m[key]), float(n)) for key in acc_m}
    finite = all(bool(np.all(np.isfinite(v))) for v in acc_w.values())
    # the row radii are memoised in the items for .row_radii.row_eps (same key, same values)
    items = tuple({"x_q": it[0], "x_k": it[1], "x_v": it[2], "y": it[3], "Pm": it[4], "Km": it[6], "Vm": it[8], "EP": it[5],
                   "Pv": it[11], ("_row_radius", float(problem.beta)): ri} for it, ri in zip(per_item, radii))
    e_rel = float(rg.add_up(e_fv_rel, 4 * U))
    return RoundingBound(acc_w, acc_m, eps_A_in, eps_D_in, sigma, delta_D, finite, e_rel, items)
