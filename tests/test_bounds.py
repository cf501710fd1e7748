"""Tests of verified_lora.bounds: score bound, every propagation step, plan, phase, bad inputs.

The approximate gradients are computed by verified_lora/testing/dense.py, an independent dense O(L L_k)
implementation written from the definitions (not through feature maps), and judged against
verified_lora.exact (float64) or, where precision matters, the same dense code in mpmath.
"""

from __future__ import annotations

import math
from fractions import Fraction

import mpmath
import numpy as np
import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from verified_lora.testing.dense import dense_grads, exp_of, item_matrices, poly_of
from verified_lora.testing.strategies import problems
from verified_lora import Adapter, InputError, LoraAttention, exact
from verified_lora.bounds import _rigorous as rg
from verified_lora.bounds import (CostModel, eps_scalars, gradient_bounds, paper_rank, plan, rank, score_bound,
                                  step_bounds)
from verified_lora.bounds.cost import EXP_COST_CPU, cost_ratio
from verified_lora.examples import default_problem, random_problem
from verified_lora.tolerances import APPROX_VS_EXACT_ROUNDING

# ----------------------------------------------------------------------------- rigorous rounding


@pytest.mark.parametrize("m", [0, 1, 7, 64, 10**6, 10**12])
def test_inflation_factor_covers_rounding_depth(m):
    with mpmath.workdps(60):
        u = mpmath.mpf(2) ** -53
        c = mpmath.mpf(rg.inflation_factor(m))
        assert c * (1 - u) >= (1 - u) ** (-m)


def test_inflation_refuses_absurd_depth():
    with pytest.raises(ValueError):
        rg.inflation_factor(2**50)


def test_up_rounding_is_upper_bound():
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal(200) * 1e3, rng.standard_normal(200)
    for x, y in zip(a, b):
        exact_sum = Fraction(float(x)) + Fraction(float(y))
        assert Fraction(float(rg.add_up(x, y))) >= exact_sum
        assert Fraction(float(rg.mul_up(abs(x), abs(y)))) >= Fraction(abs(float(x))) * Fraction(abs(float(y)))
    s = np.abs(rng.standard_normal(1000))
    assert Fraction(float(rg.sum_up(s))) >= sum(Fraction(float(v)) for v in s)
    assert rg.gamma(10) >= 10 * 2.0**-53


def test_vectorised_up_down_bracket_the_neighbouring_floats():
    """rg.up/rg.down on arrays (the fast formula, not np.nextafter) must reach the float above/below
    every entry: normal, subnormal, zero, signed, near a power of two, near overflow; an inf or NaN
    entry falls back to np.nextafter for the whole array."""
    rng = np.random.default_rng(7)
    tiny = 2.0**-1074
    edges = [0.0, -0.0, tiny, -tiny, 3 * tiny, 2.0**-1022, -(2.0**-1022), 2.0**-1022 * (1 - 2.0**-52),
             1.0, -1.0, 1.5, -1.5, 2.0 - 2.0**-52, np.nextafter(1.0, 0.0), 2.0**-1000 * 1.75,
             np.finfo(np.float64).max, -np.finfo(np.float64).max, 1e300, -1e-300]
    mags = np.exp2(rng.uniform(-1074, 1023, 4000))
    x = np.concatenate([edges, mags, -mags, np.nextafter(mags, 0.0), rng.standard_normal(1000)])
    with np.errstate(over="ignore"):
        hi, lo = rg.up(x), rg.down(x)
        assert np.all(hi >= np.nextafter(x, np.inf)) and np.all(hi > x)
        assert np.all(lo <= np.nextafter(x, -np.inf)) and np.all(lo < x)
        fin = np.isfinite(hi) & np.isfinite(lo)  # and barely looser: a relative 2^-51 plus 3 * 2^-1074
        slack = np.abs(x[fin]) * 2.0**-51 + 3 * tiny
        assert np.all(hi[fin] - x[fin] <= slack) and np.all(x[fin] - lo[fin] <= slack)
        special = np.concatenate([x[:100], [np.inf, -np.inf, np.nan]])
        assert np.array_equal(rg.up(special), np.nextafter(special, np.inf), equal_nan=True)
        assert np.array_equal(rg.down(special), np.nextafter(special, -np.inf), equal_nan=True)


# ----------------------------------------------------------------------------- score bound


def _max_abs_score_mp(problem: LoraAttention) -> mpmath.mpf:
    with mpmath.workdps(40):
        return max(max(abs(v) for v in S.ravel()) for *_, S in item_matrices(problem, "mp"))


@settings(max_examples=40)
@given(problems(dtype="float64") | problems(dtype="float32"))
def test_score_bound_is_never_exceeded(problem):
    sb = score_bound(problem)
    smax = _max_abs_score_mp(problem)
    assert smax <= sb.R
    assert sb.R <= sb.R_paper * (1 + 1e-12)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("scale", [1e-3, 1.0, 37.0])
def test_score_bound_is_tight_on_aligned_rows(dtype, scale):
    """Every query row parallel to every key row: |S_ij| = R exactly (up to rounding)."""
    rng = np.random.default_rng(3)
    d = 5
    v = rng.standard_normal(d)
    x = np.outer(rng.uniform(0.5, 1.0, 6), v) * scale
    x[0] = v * scale  # the longest row
    eye = np.eye(d)
    b = np.full((d, 2), 0.25)
    prob = LoraAttention(x_q=x.astype(dtype), y=np.ones((6, 2), dtype), w_q=eye.astype(dtype), w_k=eye.astype(dtype),
                         w_v=np.ones((d, 2), dtype), adapters={"Q": Adapter(a=np.zeros((2, d), dtype), b=b.astype(dtype))},
                         beta=-0.5)
    sb = score_bound(prob)
    smax = float(_max_abs_score_mp(prob))
    assert smax <= sb.R <= smax * (1 + 1e-5 if dtype == "float32" else 1 + 1e-12)


def test_score_bound_batch_takes_the_max_over_items():
    prob = random_problem(4, n_batch=3, scale=0.8)
    sb = score_bound(prob)
    per_item = [score_bound(random_problem(4, n_batch=3, scale=0.8).replace(
        x_q=prob.x_q[n], y=prob.y[n])).R for n in range(3)]
    assert sb.R >= max(per_item) * (1 - 1e-15)
    assert _max_abs_score_mp(prob) <= sb.R


# ----------------------------------------------------------------------------- the f lemmas


def test_tau_is_attained_by_the_two_point_construction():
    """(F2): half the mass at ratio 1+e, half at 1-e gives ||f~ - f||_1 = e (exact rationals), and
    tau = e / (1 - e^2/2) is tight to second order; (F1) likewise for the largest single ratio."""
    for e in (Fraction(3, 10), Fraction(1, 100), Fraction(1, 10**6)):
        sc = eps_scalars(float(e))
        pi = [Fraction(1, 6)] * 6
        a = [1 + e] * 3 + [1 - e] * 3
        abar = sum(p * x for p, x in zip(pi, a))
        pit = [p * x / abar for p, x in zip(pi, a)]
        l1 = sum(abs(t - p) for t, p in zip(pit, pi))
        assert l1 == e
        assert l1 <= Fraction(sc.tau) <= l1 / (1 - e * e)
        assert max(abs(t - p) / p for t, p in zip(pit, pi)) <= Fraction(sc.delta)


def test_tau_lemma_by_exhaustive_extreme_points():
    """(F2) over all extreme weightings a in {1-e, 1+e}^n and many distributions (exact rationals)."""
    rng = np.random.default_rng(0)
    e = Fraction(1, 7)
    tau = Fraction(eps_scalars(float(e)).tau)
    for _ in range(200):
        n = int(rng.integers(2, 7))
        w = [Fraction(int(v)) for v in rng.integers(1, 50, n)]
        pi = [v / sum(w) for v in w]
        for mask in range(2**n):
            a = [1 + e if mask >> i & 1 else 1 - e for i in range(n)]
            abar = sum(p * x for p, x in zip(pi, a))
            l1 = sum(abs(p * x / abar - p) for p, x in zip(pi, a))
            assert l1 <= tau


# ----------------------------------------------------------------------------- every step, adversarial

PATTERNS = ("random_sign", "sign_of_S", "alternating_keys", "uniform")


def _perturbation(pattern: str, S: np.ndarray, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if pattern == "random_sign":
        return rng.choice([-1.0, 1.0], size=S.shape)
    if pattern == "sign_of_S":
        return np.where(S >= 0, 1.0, -1.0)
    if pattern == "alternating_keys":
        return np.where(np.arange(S.shape[1])[None, :] % 2 == 0, 1.0, -1.0) * np.ones(S.shape)
    return rng.uniform(-1, 1, size=S.shape)


def _slack(bound, reference_scale, dtype="float64"):
    """Rounding allowance of a float64 observation (tolerances.APPROX_VS_EXACT_ROUNDING)."""
    return np.asarray(bound) + APPROX_VS_EXACT_ROUNDING[dtype] * (reference_scale + 1e-300)


@settings(max_examples=30)
@given(problems(batch=st.just(None)), st.sampled_from([0.3, 1e-2, 1e-5]), st.sampled_from(PATTERNS),
       st.floats(0.25, 3.0), st.integers(0, 2**31))
@example(random_problem(7, L=5, L_k=4, scale=1.2), 0.3, "alternating_keys", 2.0, 5)
def test_every_propagation_step_bound_holds(problem, eps, pattern, d_ratio, seed):
    eps_d = min(0.9, eps * d_ratio)
    S0 = next(item_matrices(problem))[-1]
    # The dense float64 helpers exponentiate unshifted scores: beyond ~709 exp overflows and the
    # helper itself (not the bound under test) turns to inf/NaN, so such draws say nothing here.
    assume(np.max(np.abs(S0)) < 700)
    sig = _perturbation(pattern, S0, seed)
    sig_d = _perturbation(pattern, S0, seed + 1)
    A = lambda S, n: np.exp(S) * (1 + eps * sig)          # noqa: E731  |A~ - E| <= eps E
    dA = lambda S, n: np.exp(S) * (1 + eps_d * sig_d)     # noqa: E731  |A' - E| <= eps_D E
    _, _, (ex,) = dense_grads(problem, "exact", lambda S, n: np.exp(S))
    _, _, (pa,) = dense_grads(problem, "paper", A)
    _, _, (fa,) = dense_grads(problem, "factored", A, dA)
    sb = step_bounds(problem, eps, eps_d)
    f, ft = ex["f"], pa["f"]
    tiny = APPROX_VS_EXACT_ROUNDING["float64"]
    assert np.all(np.abs(ft - f) <= sb.delta * f + tiny)                               # (F1)
    assert np.all(np.abs(ft - f).sum(axis=1) <= sb.tau + tiny)                          # (F2)
    scale_c = np.max(np.abs(ex["c"])) + 1
    assert np.all(np.abs(pa["c"] - ex["c"]) <= _slack(sb.c[None, :], scale_c))          # (C)
    assert np.all(np.abs(ex["c"]) <= sb.c_abs + tiny) and np.all(np.abs(pa["c"]) <= sb.c_abs + tiny)
    scale_q = np.max(np.abs(ex["q"])) + 1
    assert np.all(np.abs(pa["q"] - ex["q"]) <= _slack(sb.q[None, :], scale_q))          # (Q)
    assert np.all(np.abs(ex["q"]) <= _slack(sb.q_abs[:, None], scale_q))
    dp1 = np.abs(pa["p1"] - ex["p1"])
    assert np.all(dp1.sum(axis=1) <= _slack(sb.p1_l1, scale_q))                         # (P1)
    assert np.all(dp1 <= _slack(sb.p1_max[:, None], scale_q))
    assert np.all(np.abs(pa["r"] - ex["r"]) <= _slack(sb.r, scale_q))                   # (P2)
    assert np.all(np.abs(pa["p2"] - ex["p2"]).sum(axis=1) <= _slack(sb.p2_l1, scale_q))
    dp = np.abs(pa["p"] - ex["p"]).sum(axis=1)
    assert np.all(dp <= _slack(sb.p_chain_l1, scale_q))                                 # (P, chain)
    assert np.all(dp <= _slack(sb.p_paper_l1, scale_q))                                 # (P, structured)
    assert np.all(np.abs(pa["p"].sum(axis=1)) <= tiny * scale_q)                        # paper rows sum to 0
    dpf = np.abs(fa["p"] - ex["p"]).sum(axis=1)
    assert np.all(dpf <= _slack(sb.p_factored_l1, scale_q))                             # (P, factored)
    assert np.all(np.abs(fa["p"].sum(axis=1)) <= _slack(sb.p_factored_rowsum, scale_q))


@settings(max_examples=30)
@given(problems(), st.sampled_from([0.2, 1e-3, 1e-6]), st.sampled_from(PATTERNS), st.integers(0, 2**31),
       st.sampled_from(["paper", "factored"]))
@example(random_problem(11, L=6, L_k=3, n_batch=2, scale=1.0), 0.2, "sign_of_S", 3, "factored")
def test_gradient_bounds_hold_for_adversarial_perturbations(problem, eps, pattern, seed, method):
    """Lemma (G): every weight and adapter gradient, both methods, any relative perturbation <= eps."""
    sigs = [(_perturbation(pattern, S, seed + n), _perturbation(pattern, S, seed + 7 * n + 1))
            for n, (*_, S) in enumerate(item_matrices(problem))]
    A = lambda S, n: np.exp(S) * (1 + eps * sigs[n][0])     # noqa: E731
    dA = lambda S, n: np.exp(S) * (1 - eps * sigs[n][1])    # noqa: E731
    w, g, _ = dense_grads(problem, method, A, dA)
    ex = exact.loss_and_grads(problem)
    b = gradient_bounds(problem, eps, eps, method)
    for key, val in ex.weight_grads.items():
        obs = np.abs(w[key] - val)
        assert np.all(obs <= _slack(b.weight[key], np.max(np.abs(val)))), (key, obs.max(), b.weights_max[key])
    for key, val in ex.grads.items():
        obs = np.abs(g[key] - val)
        assert np.all(obs <= _slack(b.entrywise[key], np.max(np.abs(val)))), (key, obs.max(), b.grads[key])


def test_structured_bound_never_looser_than_the_chain():
    for seed in range(10):
        prob = random_problem(seed, L=7, L_k=5, scale=0.9)
        sb = step_bounds(prob, 1e-3, 1e-3)
        assert np.all(sb.p_paper_l1 <= sb.p_chain_l1)


def test_bounds_have_no_factor_of_L_k():
    """Duplicating every key/value row leaves softmax unchanged; the bound must not grow with L_k."""
    prob = random_problem(5, L=6, L_k=5, scale=0.7)
    doubled = prob.replace(x_k=np.concatenate([prob.x_k] * 8), x_v=np.concatenate([prob.x_v] * 8))
    b1 = gradient_bounds(prob, 1e-4, 1e-4, "paper")
    b8 = gradient_bounds(doubled, 1e-4, 1e-4, "paper")
    for key in b1.grads:
        assert b8.grads[key] <= b1.grads[key] * (1 + 1e-9)


def test_tightness_first_order_worst_case():
    """The bound is within a stated factor of the first-order worst case over sign patterns.

    For the V gradient the entrywise-sign worst case is found exactly by choosing the sign of each
    partial derivative; the bound must be at most 20x above it (measured about 2-6x)."""
    prob = random_problem(1, L=5, L_k=4, d_model=3, d_head=2, d_v=2, scale=0.8)
    eps = 1e-5
    ex = exact.loss_and_grads(prob)
    S = next(item_matrices(prob))[-1]
    key = "V"
    base = dense_grads(prob, "paper", lambda s, n: np.exp(s))[0][key]
    worst = 0.0
    for (a, j) in np.ndindex(base.shape):
        sig = np.zeros_like(S)
        for (i, l) in np.ndindex(S.shape):
            U = np.zeros_like(S)
            U[i, l] = 1e-6
            d = dense_grads(prob, "paper", lambda s, n: np.exp(s) * (1 + U))[0][key][a, j] - base[a, j]
            sig[i, l] = np.sign(d)
        w = dense_grads(prob, "paper", lambda s, n: np.exp(s) * (1 + eps * sig))[0][key]
        worst = max(worst, abs(w[a, j] - ex.weight_grads[key][a, j]))
    bound = gradient_bounds(prob, eps, eps, "paper").weights_max[key]
    assert worst <= bound
    assert bound <= 20 * worst


# ----------------------------------------------------------------------------- plan


def _observed(problem, pl):
    P = poly_of(pl.polynomial.coeffs, "float")
    dP = poly_of(pl.polynomial.derivative().coeffs, "float")
    w, g, _ = dense_grads(problem, pl.method, lambda S, n: P(S), lambda S, n: dP(S))
    return w, g


@settings(max_examples=12)
@given(problems(max_L=8, max_d=4, scale=st.floats(0.05, 0.5)), st.sampled_from([1e-3, 1e-5, 1e-8]),
       st.sampled_from(["factored", "paper"]))
def test_plan_bound_is_never_violated(problem, tol, method):
    pl = plan(problem, tol, method, full_search=True, max_degree=24)
    if pl.degree is None:
        assert not pl.efficient and "outside the efficient regime" in pl.reason
        return
    assert pl.max_bound <= tol
    ex = exact.loss_and_grads(problem)
    # near the threshold: tol exactly at the certified bound, and a hair below it
    at = plan(problem, pl.max_bound, method, full_search=True, max_degree=24)
    below = plan(problem, pl.max_bound * (1 - 1e-9), method, full_search=True, max_degree=24)
    assert at.degree is not None and at.max_bound <= pl.max_bound
    for p in (pl, at, below):
        if p.degree is None:
            continue
        assert p.max_bound <= p.tol
        _, g = _observed(problem, p)
        for key, val in ex.grads.items():
            obs = float(np.max(np.abs(g[key] - val)))
            assert obs <= _slack(p.bounds[key], np.max(np.abs(val))), (key, obs, p.bounds[key])


@pytest.mark.parametrize("method", ["factored", "paper"])
def test_plan_near_the_threshold(method):
    """tol exactly at a plan's bound keeps that degree; a hair below it forces a costlier plan;
    both are honoured by the observed error."""
    prob = random_problem(2, L=9, L_k=6, d_model=4, d_head=3, d_v=2, scale=0.35, beta=0.6)
    first = plan(prob, 1e-6, method, full_search=True)
    at = plan(prob, first.max_bound, method, full_search=True)
    below = plan(prob, first.max_bound * (1 - 1e-9), method, full_search=True)
    assert at.degree == first.degree and at.max_bound <= first.max_bound
    assert (below.degree, below.max_bound) != (at.degree, at.max_bound)
    ex = exact.loss_and_grads(prob)
    for pl in (at, below):
        _, g = _observed(prob, pl)
        for key, val in ex.grads.items():
            assert np.max(np.abs(g[key] - val)) <= _slack(pl.bounds[key], np.max(np.abs(val)))


def test_plan_in_the_efficient_regime_and_high_precision_check():
    """A longer sequence where the fast path pays; compare in mpmath (60 digits), no float rounding."""
    prob = random_problem(3, L=48, L_k=40, d_model=3, d_head=2, d_v=2, r=2, scale=0.3, beta=0.5)
    pl = plan(prob, 1e-7, "factored")
    assert pl.efficient, pl.reason
    assert pl.rank == rank(2, pl.degree) and pl.paper_rank == paper_rank(2, pl.degree)
    assert pl.cost_ratio < 1 and pl.max_bound <= 1e-7
    with mpmath.workdps(60):
        P = poly_of(pl.polynomial.coeffs, "mp")
        dP = poly_of(pl.polynomial.derivative().coeffs, "mp")
        _, g, _ = dense_grads(prob, "factored", lambda S, n: P(S), lambda S, n: dP(S), ctx="mp")
        _, gx, _ = dense_grads(prob, "exact", lambda S, n: exp_of("mp")(S), ctx="mp")
        for key in pl.bounds:
            obs = max(abs(a - b) for a, b in zip(g[key].ravel(), gx[key].ravel()))
            assert obs <= pl.bounds[key]
            assert obs >= pl.bounds[key] * 1e-6  # the bound is not vacuous (measured ratio ~1e-2)


def test_plan_refuses_outside_the_regime():
    pl = plan(default_problem(), 1e-6)
    assert not pl.efficient and pl.reason.startswith("outside the efficient regime")
    pl = plan(default_problem(), 1e-6, max_degree=6, full_search=True)  # R = 14.8
    assert not pl.efficient and "certifies" in pl.reason and pl.degree is None


def _scaled_to(problem: LoraAttention, R: float) -> LoraAttention:
    r0 = score_bound(problem).R
    return problem.replace(x_q=problem.x_q * (R / r0), x_k=problem.x_k, x_v=problem.x_v)


def _count_approx_calls(monkeypatch):
    """Count the planner's certificates (degree per call) and the polynomials it builds."""
    from verified_lora.approx import polynomials
    from verified_lora.bounds import _approx_api as api

    seen = {"certify": [], "built": 0}
    real_certify, real_make = api.certify, polynomials.make_polynomial

    def certify(family, degree, R, need_derivative=False):
        seen["certify"].append((family, degree))
        return real_certify(family, degree, R, need_derivative)

    def make(family, degree, R):
        seen["built"] += 1
        return real_make(family, degree, R)

    monkeypatch.setattr(api, "certify", certify)
    monkeypatch.setattr(polynomials, "make_polynomial", make)
    api._lower.cache_clear()
    api._cert.cache_clear()
    return seen


@pytest.mark.parametrize("R", [40.0, 200.0, 1e4])
def test_plan_outside_the_regime_certifies_nothing(monkeypatch, R):
    """Regression: at R = 40, L = 2000, d_head = 3 with the CPU cost model the planner certified
    every degree up to the last one whose rank pays (g = 38) in four families (> 120 s). A lower bound
    valid for every polynomial now rules them out with no certificate and no polynomial built."""
    problem = _scaled_to(random_problem(1, L=2000, d_model=8, d_head=3, d_v=3), R)
    model = CostModel(exp_cost=EXP_COST_CPU)
    g_pay = max(g for g in range(1, 60) if cost_ratio("factored", 2000, 2000, 3, 3, rank(3, g), model) < 1)
    assert g_pay == 38  # the ranks that pay at this L (cheap arithmetic)
    seen = _count_approx_calls(monkeypatch)
    for method in ("factored", "paper"):
        pl = plan(problem, 1e-6, method, cost_model=model)
        assert not pl.efficient and pl.degree is None and "lower bound valid for every polynomial" in pl.reason
    assert seen["certify"] == [] and seen["built"] == 0


def test_plan_never_certifies_degrees_whose_rank_cannot_pay(monkeypatch):
    """Where the planner does certify, it stays at or below the last degree whose rank pays."""
    problem = _scaled_to(random_problem(1, L=2000, d_model=8, d_head=3, d_v=3), 5.0)
    model = CostModel(exp_cost=EXP_COST_CPU)
    seen = _count_approx_calls(monkeypatch)
    pl = plan(problem, 1e-6, cost_model=model)
    assert pl.efficient and pl.degree <= 38
    assert seen["certify"] and all(g <= 38 for _, g in seen["certify"])
    from verified_lora.approx.polynomials import FAMILIES

    assert len(seen["certify"]) <= len(FAMILIES)  # one per family: lower bounds reject the degrees below
    assert seen["built"] > 0  # the counter sees the polynomials the planner builds


def test_cost_model_matches_the_anchors():
    # 14 L^2 d exact vs 12 L k (d+1) factored: the crossover sits at L* ~ 0.86 k (anchors 0, 5).
    k = rank(64, 2)
    assert k == 2145 and rank(16, 3) == 969 and rank(64, 8) == math.comb(72, 8)
    assert paper_rank(64, 8) == math.comb(144, 16)
    L_star = 12 * k * 65 / (14 * 64)
    assert cost_ratio("factored", round(L_star), round(L_star), 64, 64, k) == pytest.approx(1, rel=1e-3)
    assert L_star / k == pytest.approx(0.87, abs=0.01)
    # paper: 4Lk(d+1) + 8Lkd^2 crosses at ~0.57 k d: the ratio at L = 0.57 k d is about 1
    L_p = round(0.57 * k * 64)
    assert cost_ratio("paper", L_p, L_p, 64, 64, k) == pytest.approx(1, abs=0.02)
    assert cost_ratio("factored", 100, 100, 8, 8, 10, CostModel(exp_cost=227.0)) < cost_ratio(
        "factored", 100, 100, 8, 8, 10)


# ----------------------------------------------------------------------------- bad inputs


@pytest.mark.parametrize("tol", [0, -1.0, math.nan, math.inf, "1e-3", True])
def test_plan_rejects_bad_tol(tol):
    with pytest.raises(InputError, match="tol"):
        plan(default_problem(), tol)


def test_bad_inputs_raise_clear_errors():
    p = default_problem()
    with pytest.raises(InputError, match="method"):
        plan(p, 1e-3, "fast")
    with pytest.raises(InputError, match="families"):
        plan(p, 1e-3, families=["legendre"])
    with pytest.raises(InputError, match="families"):
        plan(p, 1e-3, families=[])
    with pytest.raises(InputError, match="eps_A"):
        gradient_bounds(p, 1.0, 0.1)
    with pytest.raises(InputError, match="eps_A"):
        gradient_bounds(p, -1e-3, 0.1)
    with pytest.raises(InputError, match="eps_D"):
        gradient_bounds(p, 1e-3, None, "factored")
    with pytest.raises(InputError, match="problem"):
        score_bound("not a problem")
    with pytest.raises(InputError, match="max_degree"):
        plan(p, 1e-3, max_degree=0)
    with pytest.raises(InputError, match="exp_cost"):
        CostModel(exp_cost=-1)
    from verified_lora.bounds import phase_point

    with pytest.raises(InputError, match="R"):
        phase_point(1024, 8, 0.0, 1e-3)
    with pytest.raises(InputError, match="eps"):
        phase_point(1024, 8, 1.0, 1.5)
    with pytest.raises(InputError, match="famil"):
        phase_point(1024, 8, 1.0, 1e-3, families=("spline",))


# ----------------------------------------------------------------------------- phase, CLI, verify


@pytest.mark.parametrize("R", [300.0, 1e4])
def test_phase_point_huge_R_is_refuted_without_remez(monkeypatch, R):
    """Regression: at R = 1e4 the phase point ran a 30,000-bit Remez (166 s) to refute every degree;
    the bound valid for every polynomial decides it first. At R = 300 the refutation is confirmed
    independently by de la Vallee Poussin on the Remez reference (the former route)."""
    from verified_lora.approx import degree as approx_degree
    from verified_lora.approx.degree import grid_radius
    from verified_lora.bounds import phase_point

    if R == 300.0:
        assert approx_degree.degree_table("minimax", grid_radius(Fraction(R))).alternation(14) > Fraction(1, 10**6)

    def no_remez(*a, **k):
        raise AssertionError("the phase point should not need a Remez reference here")

    monkeypatch.setattr(approx_degree._FamilyTable, "alternation", no_remez)
    pt = phase_point(4096, 4, R, 1e-6)
    assert pt.degree is None and pt.g_pay == 14 and "lower bound" in pt.proof
    assert pt.ratio_factored >= 1


def test_phase_sweep_monotone_and_fit():
    from verified_lora.bounds import aggarwal_alman_fit, phase_sweep

    pts = phase_sweep(L_exponents=(8, 12), gamma_multiples=(0.125, 0.25, 0.5, 1.0), eps_exponents=(1.0,), d=8)
    for L in (256, 4096):
        row = [p for p in pts if p.L == L]
        ratios = [p.ratio_factored for p in sorted(row, key=lambda p: p.gamma_multiple)]
        assert ratios == sorted(ratios)               # larger Gamma never cheaper
        assert row[0].pays and not row[-1].pays        # the transition is inside the sweep
        for p in row:
            assert p.R == pytest.approx(p.gamma**2)    # beta = 1/d: R = Gamma^2
    fit = aggarwal_alman_fit(pts)
    assert fit.n >= 3 and math.isfinite(fit.c_B)


def test_cli_bounds_phase_and_errors(tmp_path, capsys):
    from verified_lora.cli import main

    path = tmp_path / "p.npz"
    random_problem(3, L=40, L_k=40, d_model=3, d_head=2, d_v=2, scale=0.3).save_npz(str(path))
    assert main(["bounds", str(path), "--tol", "1e-6", "-q"]) == 0
    out = capsys.readouterr().out
    assert "certified max-entry bound" in out and "A_Q" in out
    assert main(["bounds", "--L", "4096", "--d", "4", "--R", "0.5", "--eps", "1e-6"]) == 0
    assert "minimax" in capsys.readouterr().out
    png = tmp_path / "phase.png"
    assert main(["phase", "--L-exp", "8:9", "--gamma", "0.25,1", "--eps-exp", "1", "--plot", str(png), "-q"]) == 0
    assert png.stat().st_size > 1000
    assert "Aggarwal-Alman" in capsys.readouterr().out
    assert main(["bounds", str(path), "--tol", "0"]) == 2
    assert main(["bounds"]) == 2
    assert main(["phase", "--gamma", "a,b", "--no-plot"]) == 2


def test_verify_section_passes_quickly():
    import time

    from verified_lora.verify.bounds import bounds_section as verify_section

    t0 = time.perf_counter()
    section = verify_section(default_problem(), lambda m: None)
    assert time.perf_counter() - t0 < 10
    assert section.passed, [(c.name, c.verdict, c.detail) for c in section.checks]


def test_phase_sweep_on_a_local_dask_cluster_matches_serial():
    """The grid points are independent tasks: two dask workers return the same points, in grid order."""
    pytest.importorskip("distributed")
    from dataclasses import asdict

    from verified_lora.bounds import phase_sweep

    grid = dict(L_exponents=(8, 10), gamma_multiples=(0.25, 1.0), eps_exponents=(1.0,), d=4)
    serial = phase_sweep(**grid)
    seen = []
    dist = phase_sweep(**grid, workers=2, progress=seen.append)
    assert [asdict(p) for p in dist] == [asdict(p) for p in serial]
    assert seen[-1] == "phase points done: 4/4"


@pytest.mark.parametrize("R", [1e6, 1e300])
def test_phase_point_at_huge_R_is_refused_by_the_capped_lower_bound(R):
    """No degree pays at R = 1e6 or 1e300: the any-polynomial bound, evaluated at the capped radius
    (valid since the best error is non-decreasing in R), decides it without exact sums at R itself."""
    from verified_lora.bounds.phase import phase_point

    point = phase_point(1024, 4, R, 1e-6)
    assert point.degree is None and not point.pays and "lower bound" in point.proof


def test_score_bound_accumulation_never_drops_an_overflowed_norm():
    """An overflowed upper bound (NaN or inf from float64 overflow) must give R = inf, never be skipped
    by ``max`` (finite 1e200 inputs once gave R = 5e-324 that way)."""
    from verified_lora.bounds.score import _max_up

    assert _max_up(0.0, np.array([1.0, np.nan])) == math.inf
    assert _max_up(2.0, np.array([np.inf])) == math.inf
    assert _max_up(2.0, np.array([1.0, 3.0])) == 3.0
