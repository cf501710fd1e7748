r"""A-priori error propagation from the polynomial's relative error to every gradient.

What is bounded (agreed with :mod:`verified_lora.fast`; exact arithmetic, one batch item)
------------------------------------------------------------------------------------------
``P`` approximates ``exp`` on ``[-R, R]`` with certified relative error ``eps_A``
(``|P(x) - e^x| <= eps_A e^x``), and, for the factored path, ``P'`` with ``eps_D``
(``|P'(x) - e^x| <= eps_D e^x``); ``R >= max |S_ij|`` (:func:`~verified_lora.bounds.score_bound`).
With ``S = beta Q K^T``:

* ``A~ = P(S)`` entrywise (evaluated through feature maps; equal to ``P(S)`` in exact arithmetic),
  ``D~ = A~ 1``, ``f~ = D~^{-1} A~``.
* **"paper"** (Lemmas 3.3-3.7, Theorem 3.1 / A.1 chain): ``c~ = f~ V - Y``, ``q~ = c~ V^T``,
  ``p~ = f~ * q~ - diag((f~ * q~) 1) f~``, ``G~_Q = beta X_Q^T p~ K``, ``G~_K = beta X_K^T p~^T Q``,
  ``G~_V = X_V^T f~^T c~``.
  **"antiderivative"** computes the same ``p~`` (at factored cost), so it has the same bounds.
* **"factored"**: the exact gradient of ``1/2 ||f~ V - Y||^2``:
  ``dL~/dS_ij = P'(S_ij) (q~_ij - r~_i) / D~_i`` with ``r~_i = sum_j f~_ij q~_ij``; ``G~_V`` as above.
* Adapters by the chain rule ``dA = s B^T G``, ``dB = s G A^T``; a batch averages its items.

Notation (row ``i`` fixed): ``pi = f_i`` and ``pi~ = f~_i`` are probability vectors over the keys
``l``; ``v = pi V``, ``c = v - Y_i``, ``h_l = <c, V_l - v>``, so ``p_il = pi_l h_l`` (true), and
``p~_il = pi~_l h~_l`` (paper) with the tilde quantities built from ``pi~``. For a column ``j`` of
``V`` with enclosure ``[lo_j, hi_j]`` and centre ``m_j``, ``rho_j = max(hi_j - m_j, m_j - lo_j)``
(half-range), ``Cb_ij = max(|hi_j - Y_ij|, |Y_ij - lo_j|)`` bounds ``|c_ij|`` *and* ``|c~_ij|``
(both are averages of column ``j`` minus ``Y_ij``), ``s1_i = sum_j Cb_ij rho_j``,
``s2 = sum_j rho_j^2``, ``Vabs_j = max_l |V_lj|``.

The lemmas (each tested on adversarial perturbations in ``tests/test_bounds.py``)
--------------------------------------------------------------------------------
Let ``e = eps_A < 1``.

**(F1) entrywise.** ``A~_ij / E_ij in [1-e, 1+e]`` and ``D~_i / D_i in [1-e, 1+e]`` give
``f~_ij / f_ij in [(1-e)/(1+e), (1+e)/(1-e)]``, so ``|f~_ij - f_ij| <= delta f_ij`` with
``delta = 2e / (1 - e)``.

**(F2) row L1 (new, sharper by 2).** ``pi~_l = pi_l a_l / abar`` with ``a_l in [1-e, 1+e]`` and
``abar = sum pi_l a_l``. Then ``||pi~ - pi||_1 = sum pi_l |a_l - abar| / abar``. Positive and
negative deviations balance, so the numerator is ``2 min(m+ x, m- y) <= 2 x y / (x + y)``, where
``x = 1 + e - abar``, ``y = abar - (1 - e)``, ``m+ + m- <= 1``. With ``x + y = 2e`` this gives
``||pi~ - pi||_1 <= (e^2 - t^2) / (e (1 + t))`` for ``abar = 1 + t``, maximal at
``1 + t = sqrt(1 - e^2)``: ``tau = 2e / (1 + sqrt(1 - e^2)) <= e / (1 - e^2/2) =: tau``
(the SymPy check is in ``verified_lora/proofs/bounds_propagation.py``).

**(C) residual.** ``c~ - c = (pi~ - pi) V`` and ``sum_l (pi~_l - pi_l) = 0``, so
``|c~_ij - c_ij| = |sum_l (pi~_l - pi_l)(V_lj - m_j)| <= tau rho_j``: no factor ``L``.

**(Q) q = c V^T.** ``|q~_il - q_il| = |<c~_i - c_i, V_l>| <= tau sum_j rho_j |V_lj| <= tau kappa``
with ``kappa = max_l sum_j rho_j |V_lj|``; ``|q_il|, |q~_il| <= Qb_i = sum_j Cb_ij Vabs_j``.

**(P1) p1 = f * q.** ``p1~ - p1 = (f~ - f) * q~ + f * (q~ - q)``; row L1
``<= tau Qb_i + tau kappa``; max-entry ``<= delta Qb_i + tau kappa`` (``f <= 1``).

**(P2) r = p1 1, p2 = diag(r) f.** ``|r~_i - r_i| <= ||p1~_i - p1_i||_1``, ``|r_i| <= Qb_i``,
``||p2~_i - p2_i||_1 <= |r~_i - r_i| + |r_i| tau``.

**(P, chain)** ``||p~_i - p_i||_1 <= ||dp1_i||_1 + ||dp2_i||_1 <= tau (3 Qb_i + 2 kappa)``.

**(P, structured; used).** ``p~_l - p_l = (pi~_l - pi_l) h~_l + pi_l (h~_l - h_l)`` and
``h~_l - h_l = <dv, V_l - v> - <c~, dv>`` with ``dv = v~ - v`` (``|dv_j| <= tau rho_j``).
``sum_l |pi~_l - pi_l| |h~_l| <= tau max_l |h~_l| <= 2 tau s1_i``;
``sum_l pi_l |<dv, V_l - v>| <= sqrt(Var_pi <dv, V>) <= halfrange_l <dv, V_l> <= tau s2``
(Popoviciu); ``|<c~, dv>| <= tau s1_i``. Hence
``N_i := ||p~_i - p_i||_1 <= tau (3 s1_i + s2)`` (``<= `` the chain, since ``rho_j <= Vabs_j``).
The paper's ``p~`` has zero row sums (``sum_l pi~_l h~_l = 0``), like ``p``.

**(P, factored).** ``P'(S_il) / D~_i = pi_l (1 + xi_l)`` with
``|xi_l| <= delta' = (eps_A + eps_D) / (1 - e)``, so ``p^fac_l = pi_l (1 + xi_l) h~_l`` and
``p^fac_l - p_l = pi_l xi_l h~_l + pi_l (h~_l - h_l)``. With
``E_pi |h~| <= sqrt(Var_pi <c~, V> + <c~, dv>^2) <= s1_i sqrt(1 + tau^2) <= s1_i (1 + tau^2/2)``:
``N_i <= delta' (1 + tau^2/2) s1_i + tau (s1_i + s2)``. Its row sums are not zero:
``|sigma_i| = |sum_l p^fac_l| <= (delta' (1 + tau^2/2) + tau) s1_i``.

**(G) gradients.** For any centre ``m`` of a column ``b`` of ``K`` with half-width ``rho^K_b``,
``sum_l dp_il K_lb = sum_l dp_il (K_lb - m_b) + sigma_i m_b``, so

* ``|dG_Q,ab| <= |beta| sum_i |X_Q,ia| (N_i rho^K_b + |sigma_i| |m^K_b|)``;
* ``|dG_K,ab| <= |beta| sum_i |Q_ib| (N_i rho^{X_K}_a + |sigma_i| |m^{X_K}_a|)``;
* ``|dG_V,aj| <= tau (rho^{X_V}_a sum_i Cb_ij + L Xabs^V_a rho^V_j)`` from
  ``f~^T c~ - f^T c = (f~ - f)^T c~ + f^T (c~ - c)`` (both methods);
* ``|d(dA)| <= |s| |B|^T |dG|``, ``|d(dB)| <= |s| |dG| |A|^T``; a batch averages the item bounds.

Compared with docs/math.md section 4 (``dL^2 ||B|| ||C1|| ||C2|| ||dp||_max``), no factor ``L_k`` or
``d L`` survives: the only length factor is the sum over query rows that the gradient itself has.

Everything is computed in ``O((L + L_k) d)`` from enclosures of ``Q, K, V`` (:mod:`.score`) and
rounded upward (:mod:`._rigorous`): the returned numbers are upper bounds of the real-number
bounds above. Rounding *inside* the fast algorithms is not covered here (tested, level 4).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import numpy as np

from .._xp import to_numpy
from ..errors import InputError
from ..numerics.rounding import fraction_to_float_up
from ..problem import LoraAttention
from . import _rigorous as rg
from .score import Projection, check_enclosures, projections

__all__ = ["METHODS", "EpsScalars", "eps_scalars", "Sensitivity", "GradientBounds", "sensitivity",
           "gradient_bounds", "StepBounds", "step_bounds", "column_stats"]

METHODS: tuple[str, ...] = ("factored", "paper", "antiderivative")
"""``"antiderivative"`` computes the paper chain's gradient (by the factored backward through the features of
``Q = int P``, :mod:`verified_lora.fast`), so its bounds are the paper's: no ``eps_D``."""


def _check_eps(name: str, value: Any, *, allow_none: bool = False) -> Fraction | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, Fraction, np.floating, np.integer)):
        raise InputError(name, "a real number in [0, 1)", repr(value))
    q = Fraction(value)
    if not (0 <= q < 1):
        raise InputError(name, "a relative error in [0, 1)", repr(value),
                         "a polynomial with relative error >= 1 may vanish: raise the degree")
    return q


@dataclass(frozen=True)
class EpsScalars:
    """Upper float bounds of the scalar factors of the lemmas (module docstring)."""

    eps_A: float
    eps_D: float | None
    delta: float        # 2e/(1-e): entrywise relative error of f~ (F1)
    tau: float          # e/(1-e^2/2): row-L1 error of f~ (F2)
    delta_fac: float    # (eps_A+eps_D)/(1-e) * (1 + tau^2/2): factored prefactor (P, factored)


def eps_scalars(eps_A: float, eps_D: float | None = None) -> EpsScalars:
    """Exact rational evaluation of ``delta``, ``tau``, ``delta'`` rounded up to floats."""
    e = _check_eps("eps_A", eps_A)
    ed = _check_eps("eps_D", eps_D, allow_none=True)
    delta = 2 * e / (1 - e)
    tau = e / (1 - e * e / 2)
    if ed is None:
        dfac = math.nan
    else:
        dfac = fraction_to_float_up((e + ed) / (1 - e) * (1 + tau * tau / 2))
    return EpsScalars(eps_A=float(eps_A), eps_D=None if eps_D is None else float(eps_D),
                      delta=fraction_to_float_up(delta), tau=fraction_to_float_up(tau), delta_fac=dfac)


def column_stats(proj_or_array: Projection | np.ndarray) -> dict[str, np.ndarray]:
    """Per column of an exact matrix (given as an enclosure or exactly): bounds of its range.

    Returns ``hi >= max``, ``lo <= min``, a float centre ``mid``, ``rho >= max(hi - mid, mid - lo)``
    and ``absmax >= max |entry|``.
    """
    # rg.col_max is np.max(axis=0) exactly (several times faster on narrow columns); min = -max(-x) exactly.
    # For an enclosure the column extremes of the rounded sums are taken first and then rounded outward: up, down
    # and the non-negative rounding are monotone, so e.g. max_i up(fl(v_i + e_i)) >= up(max_i fl(v_i + e_i)) >= the
    # exact max (one rounding of a d-vector instead of an L x d array; the values are the same or one float tighter)
    if isinstance(proj_or_array, Projection):
        v, e = proj_or_array.value, proj_or_array.error
        hi = rg.up(rg.col_max(v + e))
        lo = rg.down(-rg.col_max(e - v))          # fl(e - v) = -fl(v - e) exactly
        absmax = rg.up_nn(rg.col_max(np.abs(v) + e))
    else:
        x = np.asarray(proj_or_array, dtype=np.float64)
        hi, lo, absmax = rg.col_max(x), -rg.col_max(-x), rg.col_max(np.abs(x))
    mid = hi / 2 + lo / 2
    rho = np.maximum(rg.up(hi - mid), rg.up(mid - lo))
    return {"hi": hi, "lo": lo, "mid": mid, "rho": rho, "absmax": absmax}


def _residual_bound(v_stats: dict[str, np.ndarray], y: np.ndarray) -> np.ndarray:
    """``Cb_ij >= |c_ij|, |c~_ij|``: ``max(|hi_j - Y_ij|, |Y_ij - lo_j|)`` rounded up."""
    return np.maximum(rg.up(np.abs(v_stats["hi"] - y)), rg.up(np.abs(y - v_stats["lo"])))


@dataclass(frozen=True)
class StepBounds:
    """Per-step a-priori bounds of one batch item (see the module docstring for the lemmas).

    Arrays are indexed by query row ``i`` (length ``L``), value column ``j`` or key row ``l``.
    """

    delta: float                 # |f~ - f| <= delta f entrywise                       (F1)
    tau: float                   # ||f~_i - f_i||_1 <= tau                             (F2)
    c: np.ndarray                # |c~_ij - c_ij| <= c[j]                              (C)
    c_abs: np.ndarray            # |c_ij|, |c~_ij| <= c_abs[i, j]
    q: np.ndarray                # |q~_il - q_il| <= q[l]                              (Q)
    q_abs: np.ndarray            # |q_il|, |q~_il| <= q_abs[i]
    p1_l1: np.ndarray            # ||p1~_i - p1_i||_1 <= p1_l1[i]                      (P1)
    p1_max: np.ndarray           # |p1~_il - p1_il| <= p1_max[i]
    r: np.ndarray                # |r~_i - r_i| <= r[i]                                (P2)
    p2_l1: np.ndarray            # ||p2~_i - p2_i||_1 <= p2_l1[i]                      (P2)
    p_chain_l1: np.ndarray       # ||p~_i - p_i||_1 (paper chain, step by step)
    p_paper_l1: np.ndarray       # ||p~_i - p_i||_1 (paper output, structured)         (P)
    p_factored_l1: np.ndarray | None  # ||p^fac_i - p_i||_1                            (P, factored)
    p_factored_rowsum: np.ndarray | None  # |sum_l p^fac_il| <= .


def _item_vectors(v_stats: dict[str, np.ndarray], y: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    cb = _residual_bound(v_stats, y)
    rho = v_stats["rho"]
    s1 = rg.matmul_up(cb, rho)                       # sum_j Cb_ij rho_j, per row
    s2 = float(rg.sum_up(rg.mul_up(rho, rho)))       # sum_j rho_j^2
    return cb, s1, s2


def step_bounds(problem: LoraAttention, eps_A: float, eps_D: float | None = None, *, item: int = 0) -> StepBounds:
    """The per-step bounds of batch item ``item`` (all rigorous upper bounds)."""
    sc = eps_scalars(eps_A, eps_D)
    x_q, x_k, x_v, y = list(problem.items())[item]
    pr = projections(problem, x_q, x_k, x_v)
    vs = column_stats(pr["V"])
    y = np.asarray(to_numpy(y), dtype=np.float64)
    cb, s1, s2 = _item_vectors(vs, y)
    tau, delta = sc.tau, sc.delta
    c = rg.mul_up(tau, vs["rho"])
    kappa_l = rg.matmul_up(pr["V"].abs_upper(), vs["rho"])       # sum_j rho_j |V_lj|
    q = rg.mul_up(tau, kappa_l)
    kappa = float(np.max(kappa_l))
    qb = rg.matmul_up(cb, vs["absmax"])                           # sum_j Cb_ij Vabs_j
    p1_l1 = rg.add_up(rg.mul_up(tau, qb), rg.mul_up(tau, kappa))
    p1_max = rg.add_up(rg.mul_up(delta, qb), rg.mul_up(tau, kappa))
    r = p1_l1
    p2_l1 = rg.add_up(r, rg.mul_up(qb, tau))
    p_chain = rg.add_up(p1_l1, p2_l1)
    p_paper = rg.mul_up(tau, rg.add_up(rg.mul_up(3.0, s1), s2))
    if eps_D is None:
        p_fac = rowsum = None
    else:
        p_fac = rg.add_up(rg.mul_up(sc.delta_fac, s1), rg.mul_up(tau, rg.add_up(s1, s2)))
        rowsum = rg.mul_up(rg.add_up(sc.delta_fac, tau), s1)
    return StepBounds(delta=delta, tau=tau, c=c, c_abs=cb, q=q, q_abs=qb, p1_l1=p1_l1, p1_max=p1_max, r=r,
                      p2_l1=p2_l1, p_chain_l1=p_chain, p_paper_l1=np.minimum(p_paper, p_chain),
                      p_factored_l1=p_fac, p_factored_rowsum=rowsum)


@dataclass(frozen=True)
class GradientBounds:
    """Certified max-entry bounds of ``|G~ - G|`` per gradient, for one method and ``eps``.

    Attributes
    ----------
    method, eps_A, eps_D:
        What was bounded.
    weight:
        Entrywise bound matrices of ``dL/dW_mu`` errors, keyed "Q", "K", "V".
    entrywise:
        Entrywise bound matrices of the adapter-gradient errors, keyed "A_Q", "B_Q", ...
    grads:
        Max-entry absolute bound per adapter gradient (the max of ``entrywise[key]``).
    weights_max:
        Max-entry absolute bound per weight gradient.
    """

    method: str
    eps_A: float
    eps_D: float | None
    scalars: EpsScalars
    weight: dict[str, np.ndarray]
    entrywise: dict[str, np.ndarray]
    grads: dict[str, float] = field(default_factory=dict)
    weights_max: dict[str, float] = field(default_factory=dict)

    @property
    def max_bound(self) -> float:
        """The largest adapter-gradient bound (or weight-gradient bound without adapters)."""
        vals = list(self.grads.values()) or list(self.weights_max.values())
        return max(vals) if vals else 0.0

    def relative(self, grads: dict[str, Any]) -> dict[str, float]:
        """The relative form: ``bound / max |g|`` per key for given gradients (e.g. exact ones).

        With approximate gradients ``g~`` use ``bound / (max|g~| - bound)`` instead
        (:meth:`relative_from_approx`).
        """
        out = {}
        for key, b in self.grads.items():
            if key in grads:
                m = float(np.max(np.abs(np.asarray(to_numpy(grads[key]), dtype=np.float64))))
                out[key] = b / m if m > 0 else math.inf
        return out

    def relative_from_approx(self, approx_grads: dict[str, Any]) -> dict[str, float]:
        """Certified relative bound ``bound / max|g|`` using ``max|g| >= max|g~| - bound``."""
        out = {}
        for key, b in self.grads.items():
            if key in approx_grads:
                m = float(np.max(np.abs(np.asarray(to_numpy(approx_grads[key]), dtype=np.float64)))) - b
                out[key] = b / m if m > 0 else math.inf
        return out


class Sensitivity:
    """Eps-independent part of the bounds of one problem: ``O((L + L_k) d)`` once, then cheap.

    ``sensitivity(problem).bounds(eps_A, eps_D, method)`` evaluates the module's lemmas for any
    certified ``eps``; :func:`verified_lora.bounds.plan` calls it for every candidate degree.
    """

    def __init__(self, problem: LoraAttention, enclosures: list[dict[str, Projection]] | None = None):
        """``enclosures``: :func:`~verified_lora.bounds.score.item_projections` of ``problem``, when the caller has
        them (formed here otherwise)."""
        if not isinstance(problem, LoraAttention):
            raise InputError("problem", "a verified_lora.LoraAttention", type(problem).__name__)
        enclosures = check_enclosures(problem, enclosures)
        self.problem = problem
        n_items = problem.n_batch
        acc: dict[str, np.ndarray] = {}

        def add(name: str, m: np.ndarray) -> None:
            m = rg.up(m)  # np.outer of non-negative floats: one rounding per entry
            acc[name] = m if name not in acc else rg.add_up(acc[name], m)

        for idx, (x_q, x_k, x_v, y) in enumerate(problem.items()):
            pr = projections(problem, x_q, x_k, x_v) if enclosures is None else enclosures[idx]
            y = np.asarray(to_numpy(y), dtype=np.float64)
            xq = np.abs(np.asarray(to_numpy(x_q), dtype=np.float64))
            vs = column_stats(pr["V"])
            ks = column_stats(pr["K"])
            xks = column_stats(np.asarray(to_numpy(x_k), dtype=np.float64))
            xvs = column_stats(np.asarray(to_numpy(x_v), dtype=np.float64))
            cb, s1, s2 = _item_vectors(vs, y)
            qabs = pr["Q"].abs_upper()
            L = xq.shape[0]
            # G_Q: T1[a] = sum_i |X_Q,ia| s1_i, T2[a] = sum_i |X_Q,ia| * s2
            t1 = rg.matmul_up(xq.T, s1)
            t2 = rg.mul_up(rg.sum_up(xq, axis=0), s2)
            add("Q1", np.outer(t1, ks["rho"]))
            add("Q2", np.outer(t2, ks["rho"]))
            add("Q3", np.outer(t1, np.abs(ks["mid"])))
            # G_K: U1[b] = sum_i |Q_ib| s1_i, U2[b] = sum_i |Q_ib| * s2
            u1 = rg.matmul_up(qabs.T, s1)
            u2 = rg.mul_up(rg.sum_up(qabs, axis=0), s2)
            add("K1", np.outer(xks["rho"], u1))
            add("K2", np.outer(xks["rho"], u2))
            add("K3", np.outer(np.abs(xks["mid"]), u1))
            # G_V: rho^{X_V}_a sum_i Cb_ij + L Xabs_a rho^V_j
            add("V1", rg.add_up(np.outer(xvs["rho"], rg.sum_up(cb, axis=0)),
                                rg.mul_up(float(L), np.outer(xvs["absmax"], vs["rho"]))))
        self._coef = acc
        self._n_items = n_items
        self.beta_abs = abs(problem.beta)

    def weight_bounds(self, eps_A: float, eps_D: float | None = None,
                      method: str = "factored") -> tuple[dict[str, np.ndarray], EpsScalars]:
        """Entrywise bounds of the ``dL/dW_{Q,K,V}`` errors (lemma (G))."""
        if method not in METHODS:
            raise InputError("method", f"one of {METHODS}", repr(method))
        if method == "factored" and eps_D is None:
            raise InputError("eps_D", "the certified relative error of P' (the factored path needs it)", "None",
                             "pass certify_relative_error(poly.derivative(), R).value")
        sc = eps_scalars(eps_A, eps_D if method == "factored" else None)
        c = self._coef
        t, b = sc.tau, self.beta_abs
        out: dict[str, np.ndarray] = {}
        for key, names in (("Q", ("Q1", "Q2", "Q3")), ("K", ("K1", "K2", "K3"))):
            m1, m2, m3 = (c[n] for n in names)
            if method != "factored":   # "paper" and "antiderivative": the same p~
                core = rg.mul_up(t, rg.add_up(rg.mul_up(3.0, m1), m2))
            else:
                df = sc.delta_fac
                core = rg.add_up(rg.add_up(rg.mul_up(t, rg.add_up(m1, m2)), rg.mul_up(df, m1)),
                                 rg.mul_up(rg.add_up(t, df), m3))
            out[key] = rg.mul_up(b, core)
        out["V"] = rg.mul_up(t, c["V1"])
        if self._n_items > 1:
            out = {k: rg.div_up(v, float(self._n_items)) for k, v in out.items()}
        return out, sc

    def bounds(self, eps_A: float, eps_D: float | None = None, method: str = "factored") -> GradientBounds:
        """Certified bounds of every weight and adapter gradient (module docstring, lemma (G))."""
        weight, sc = self.weight_bounds(eps_A, eps_D, method)
        p = self.problem
        entry: dict[str, np.ndarray] = {}
        for key in p.adapted:
            ad = p.adapters[key]
            s_up = float(rg.inflate(abs(p.scale(key)), 3))
            a = np.abs(np.asarray(to_numpy(ad.a), dtype=np.float64))
            bm = np.abs(np.asarray(to_numpy(ad.b), dtype=np.float64))
            entry[f"A_{key}"] = rg.mul_up(s_up, rg.matmul_up(bm.T, weight[key]))
            entry[f"B_{key}"] = rg.mul_up(s_up, rg.matmul_up(weight[key], a.T))
        return GradientBounds(method=method, eps_A=float(eps_A), eps_D=None if eps_D is None else float(eps_D),
                              scalars=sc, weight=weight, entrywise=entry,
                              grads={k: float(np.max(v)) for k, v in entry.items()},
                              weights_max={k: float(np.max(v)) for k, v in weight.items()})


def sensitivity(problem: LoraAttention) -> Sensitivity:
    """Precompute the eps-independent part of the bounds of ``problem`` (``O((L + L_k) d)``)."""
    return Sensitivity(problem)


def gradient_bounds(problem: LoraAttention, eps_A: float, eps_D: float | None = None,
                    method: str = "factored") -> GradientBounds:
    """Certified max-entry bounds of every gradient error for relative errors ``eps_A``, ``eps_D``."""
    return Sensitivity(problem).bounds(eps_A, eps_D, method)
