"""The certified fast path (issue 5): bounds hold, fallback is visible, both algorithms are right."""

from __future__ import annotations

import math
from fractions import Fraction

import mpmath
import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from verified_lora.testing.strategies import problems
from verified_lora import Adapter, LoraAttention, exact, fast
from verified_lora.examples import rescaled_to
from verified_lora.bounds import score_bound
from verified_lora.errors import InputError, RegimeError
from verified_lora.examples import random_problem
from verified_lora.tolerances import FINITE_DIFFERENCE, fast_path_rounding

# Keep the planner quick in tests: moderate degrees, and at most two families.
PLAN = dict(max_degree=16)


def _rescaled(problem: LoraAttention, R: float) -> LoraAttention:
    """The same problem with x_q scaled so the certified score bound is ``R`` (scores are linear in x_q)."""
    r0 = score_bound(problem).R
    if r0 == 0:
        return problem
    x_k = problem.x_k if problem.x_k is not problem.x_q else problem.x_q
    x_v = problem.x_v if problem.x_v is not problem.x_q else problem.x_q
    return problem.replace(x_q=problem.x_q * (R / r0), x_k=x_k, x_v=x_v)


def _max(x) -> float:
    return float(np.max(np.abs(np.asarray(x)))) if np.size(x) else 0.0


def _abs_scales(problem: LoraAttention) -> dict[str, float]:
    """Max entry of each gradient computed on absolute values (the scale float rounding acts on).

    ``|G_Q| <= |beta| |X_Q|^T P_abs |K|`` with ``P_abs = f (|q| + |rvec|)`` entrywise, likewise for K;
    ``|G_V| <= |X_V|^T f^T |c|``; adapters through ``|s| |B|^T |G|`` and ``|s| |G| |A|^T``. A gradient
    that vanishes in exact arithmetic (e.g. L_k = 1) is still computed from terms of this size.
    """
    W = {k: problem.weight(k) for k in "QKV"}
    tot = {k: 0.0 for k in "QKV"}
    for x_q, x_k, x_v, y in problem.items():
        P, K, V = x_q @ W["Q"], x_k @ W["K"], x_v @ W["V"]
        S = problem.beta * P @ K.T
        f = np.exp(S - S.max(axis=1, keepdims=True))
        f /= f.sum(axis=1, keepdims=True)
        c = f @ V - y
        q = c @ V.T
        p_abs = f * (np.abs(q) + np.abs((f * q).sum(axis=1, keepdims=True)))
        tot["Q"] = tot["Q"] + abs(problem.beta) * np.abs(x_q).T @ p_abs @ np.abs(K)
        tot["K"] = tot["K"] + abs(problem.beta) * np.abs(x_k).T @ p_abs.T @ np.abs(P)
        tot["V"] = tot["V"] + np.abs(x_v).T @ f.T @ np.abs(c)
    out = {k: _max(v) for k, v in tot.items()}
    for key in problem.adapted:
        ad, s = problem.adapters[key], abs(problem.scale(key))
        out[f"A_{key}"] = _max(s * np.abs(ad.b).T @ tot[key])
        out[f"B_{key}"] = _max(s * tot[key] @ np.abs(ad.a).T)
    return out


def _check_within(res, ref, problem):
    """``|G~ - G| <= certified bound + float rounding allowance`` for every adapter and weight gradient."""
    allowance = fast_path_rounding(res.rank, problem.L_k, res.degree, res.R)
    scales = _abs_scales(problem)
    for key in problem.grad_keys:
        err = _max(res.grads[key] - ref.grads[key])
        assert err <= res.bounds[key] + allowance * scales[key], (key, err, res.bounds[key])
    for key in ("Q", "K", "V"):
        err = _max(res.weight_grads[key] - ref.weight_grads[key])
        assert err <= res.weight_bounds[key] + allowance * scales[key], (key, err)


@settings(max_examples=12)
@given(problems(max_L=8, max_d=4), st.sampled_from([0.25, 0.7, 1.5]), st.sampled_from(["factored", "paper"]),
       st.sampled_from([1e-2, 1e-4]))
def test_observed_error_within_certified_bound(problem, R, method, rel):
    problem = _rescaled(problem, R)
    ref = exact.loss_and_grads(problem)
    # an absolute target relative to the gradients' term magnitudes (the certificate includes the
    # float rounding, which acts on that scale: an exactly-zero gradient cannot be certified to 1e-16)
    scale = max([_max(g) for g in ref.grads.values()] + [max(_abs_scales(problem).values()), 1e-12])
    res = fast.loss_and_grads(problem, rel * scale, method=method, tol_mode="absolute", force="fast", **PLAN)
    assert res.path == "fast" and not res.fallback and res.method == method
    assert res.rank == math.comb(problem.d_head + res.degree, res.degree)
    assert all(b <= rel * scale for b in res.bounds.values())
    _check_within(res, ref, problem)


def _aligned(seed: int, R: float, beta: float, cross: bool) -> LoraAttention:
    """Scores reach +-R: keys equal (or opposite to) queries and W_Q = W_K, so S_ii = beta ||Q_i||^2."""
    rng = np.random.default_rng(seed)
    L, dm, dh, dv, r = 6, 4, 3, 2, 2
    x = rng.standard_normal((L, dm))
    w = rng.standard_normal((dm, dh))
    ad = Adapter(a=rng.standard_normal((r, dh)), b=rng.standard_normal((dm, r)))
    p = LoraAttention(x_q=x, y=rng.standard_normal((L, dv)), w_q=w, w_k=w.copy(), w_v=rng.standard_normal((dm, dv)),
                      x_k=-x if cross else None, x_v=rng.standard_normal((L, dm)) if cross else None,
                      adapters={"Q": ad, "K": Adapter(a=ad.a.copy(), b=ad.b.copy()),
                                "V": Adapter(a=rng.standard_normal((r, dv)), b=rng.standard_normal((dm, r)))},
                      alpha=3.0, beta=beta)
    q = x @ p.weight("Q")
    norms = np.sqrt((q * q).sum(axis=1))
    scale = math.sqrt(R / (abs(beta) * norms.max() ** 2))
    return p.replace(x_q=x * scale, x_k=(-x if cross else x) * scale, x_v=p.x_v if cross else x * scale)


@pytest.mark.parametrize("seed,R,beta,cross", [(0, 1.0, 1.0, False), (1, 2.5, -0.5, False), (2, 1.8, 1.0, True),
                                               (3, 3.0, 0.75, True)])
@pytest.mark.parametrize("method", ["factored", "paper"])
def test_adversarial_scores_at_the_interval_ends(seed, R, beta, cross, method):
    """Scores hit the ends of the certified interval [-R, R] (the worst case of eps_A)."""
    problem = _aligned(seed, R, beta, cross)
    sb = score_bound(problem)
    S = problem.beta * (problem.x_q @ problem.weight("Q")) @ (problem.x_k @ problem.weight("K")).T
    assert np.abs(S).max() >= 0.999 * sb.R  # really at the boundary
    ref = exact.loss_and_grads(problem)
    tol = 1e-5 * max(_max(g) for g in ref.grads.values())
    res = fast.loss_and_grads(problem, tol, method=method, tol_mode="absolute", force="fast", **PLAN)
    _check_within(res, ref, problem)


def test_large_norm_inputs_fall_back_visibly():
    problem = _rescaled(random_problem(4, L=7, d_model=4, d_head=3, d_v=2), 100.0)
    res = fast.loss_and_grads(problem, 1e-6, **PLAN)
    ref = exact.loss_and_grads(problem)
    assert res.fallback and res.path == "exact" and res.method == "exact"
    assert "outside the efficient regime" in res.reason and not res.certified
    assert res.bounds == {}
    for key in problem.grad_keys:
        assert np.array_equal(res.grads[key], ref.grads[key])
    # forced fast: refused with RegimeError, never uncertified numbers (R = 30 with a degree cap of
    # 8 keeps the planner's full search short)
    with pytest.raises(RegimeError, match="not certifiable"):
        fast.loss_and_grads(_rescaled(problem, 30.0), 1e-6, force="fast", max_degree=8)


def test_no_speedup_falls_back_with_reason_and_forced_fast_still_certifies():
    problem = _rescaled(random_problem(5, L=6, d_model=4, d_head=3, d_v=2), 1.0)
    res = fast.loss_and_grads(problem, 1e-4, **PLAN)
    assert res.fallback and res.path == "exact" and "costs" in res.reason
    forced = fast.loss_and_grads(problem, 1e-4, force="fast", **PLAN)
    assert forced.path == "fast" and not forced.fallback and forced.certified
    exact_forced = fast.loss_and_grads(problem, 1e-4, force="exact")
    assert exact_forced.path == "exact" and not exact_forced.fallback


def test_relative_mode_takes_the_fast_path_when_it_pays():
    """Small head dimension, long sequence: the planner finds a speedup; the relative bound is certified."""
    problem = _rescaled(random_problem(6, L=300, d_model=3, d_head=2, d_v=2, adapters=("Q", "V")), 1.0)
    res = fast.loss_and_grads(problem, 1e-6, **PLAN)
    assert res.path == "fast" and not res.fallback, res.reason
    assert res.certified and all(v <= 1e-6 for v in res.relative_bounds.values())
    ref = exact.loss_and_grads(problem)
    for key in problem.grad_keys:
        observed = _max(res.grads[key] - ref.grads[key]) / _max(ref.grads[key])
        allowance = fast_path_rounding(res.rank, problem.L_k, res.degree, res.R)
        assert observed <= res.relative_bounds[key] + allowance * _abs_scales(problem)[key] / _max(ref.grads[key])


@settings(max_examples=10)
@given(problems(max_L=7, max_d=4), st.sampled_from([0.5, 1.2]))
@example(LoraAttention(x_q=np.array([[0.64042265]]), y=np.array([[0.10490012]]), w_q=np.array([[-0.53566937]]),
                       w_k=np.array([[0.36159505]]), w_v=np.array([[1.30400005]]),
                       adapters={"Q": Adapter(a=np.array([[0.12573022]]), b=np.array([[-0.13210486]]))},
                       alpha=0.5, beta=1.0), 0.5)   # L = L_k = 1: G_Q is exactly zero (found by a randomized run)
def test_paper_and_factored_agree_within_their_bounds(problem, R):
    problem = _rescaled(problem, R)
    # the target is relative to the gradients' term magnitudes, as in the absolute-mode test above: the
    # certificate includes rounding, so an exactly-zero gradient (L_k = 1) is no reachable absolute scale
    scale = max([_max(g) for g in exact.loss_and_grads(problem).grads.values()]
                + [max(_abs_scales(problem).values()), 1e-12])
    a = fast.loss_and_grads(problem, 1e-3 * scale, method="factored", tol_mode="absolute", force="fast", **PLAN)
    b = fast.loss_and_grads(problem, 1e-3 * scale, method="paper", tol_mode="absolute", force="fast", **PLAN)
    allowance = fast_path_rounding(max(a.rank, b.rank), problem.L_k, max(a.degree, b.degree), R)
    scales = _abs_scales(problem)
    for key in problem.grad_keys:
        diff = _max(a.grads[key] - b.grads[key])
        assert diff <= a.bounds[key] + b.bounds[key] + 2 * allowance * scales[key]


# ------------------------------------------------------------------ the algorithms against dense formulas
def _dense(problem: LoraAttention, coeffs):
    """Dense float64 approximate-loss gradients: factored ``P'(S)(q~ - r~)/D~`` and paper ``P(S)(q~ - r~)/D~``."""
    a = [float(c) for c in coeffs]
    out = {"factored": [0, 0, 0], "paper": [0, 0, 0]}
    W = [problem.weight(k) for k in "QKV"]
    for x_q, x_k, x_v, y in problem.items():
        P, K, V = x_q @ W[0], x_k @ W[1], x_v @ W[2]
        S = problem.beta * P @ K.T
        A = sum(c * S ** t for t, c in enumerate(a))
        dA = sum(t * c * S ** (t - 1) for t, c in enumerate(a) if t > 0) if len(a) > 1 else 0 * S
        D = A.sum(axis=1, keepdims=True)
        f = A / D
        c = f @ V - y
        q = c @ V.T
        r = (f * q).sum(axis=1, keepdims=True)
        for name, p in (("factored", dA * (q - r) / D), ("paper", A * (q - r) / D)):
            item = [problem.beta * x_q.T @ p @ K, problem.beta * x_k.T @ p.T @ P, x_v.T @ f.T @ c]
            out[name] = [o + i / problem.n_batch for o, i in zip(out[name], item)]
    return out


@settings(max_examples=15)
@given(problems(max_L=9, max_d=4), st.integers(0, 6), st.sampled_from([None, 2, 3]))
@example(random_problem(0, L=5, L_k=3), 0, None)
def test_cores_match_dense_formulas(problem, g, block):
    problem = _rescaled(problem, 0.9)
    coeffs = [Fraction(1, math.factorial(t)) for t in range(g + 1)]
    dense = _dense(problem, coeffs)
    k = math.comb(problem.d_head + g, g)
    allowance = fast_path_rounding(k, problem.L_k, g, 0.9)
    scales = _abs_scales(problem)
    for method in ("factored", "paper"):
        _, _, wg, _ = fast.run_with_polynomial(problem, coeffs, method, block_size=block)
        for key, ref in zip("QKV", dense[method]):
            assert _max(wg[key] - ref) <= allowance * scales[key], (method, key)


@pytest.mark.parametrize("d,g,block", [(4, 10, None), (8, 5, 4), (3, 14, 5)])
def test_factored_core_over_several_feature_chunks_matches_dense_formulas(d, g, block):
    """k > 512 (more than one feature chunk, degree-g rows split across chunks and steps): the factored
    core, which never builds the degree-g rows, still gives the dense formulas' gradients."""
    from verified_lora.fast.chunked import chunk_for

    problem = _rescaled(random_problem(d + g, L=7, L_k=6, d_model=d, d_head=d, d_v=3), 0.9)
    coeffs = [Fraction(1, math.factorial(t)) for t in range(g + 1)]
    k = math.comb(d + g, g)
    assert k > chunk_for(k)
    dense = _dense(problem, coeffs)
    allowance = fast_path_rounding(k, problem.L_k, g, 0.9)
    scales = _abs_scales(problem)
    _, _, wg, _ = fast.run_with_polynomial(problem, coeffs, "factored", block_size=block)
    for key, ref in zip("QKV", dense["factored"]):
        assert _max(wg[key] - ref) <= allowance * scales[key], key


def _mp_loss(problem: LoraAttention, coeffs, direction, h):
    """The approximate loss at adapters + h * direction, in mpmath (dense; exact polynomial)."""
    M = mpmath.matrix

    def mat(x):
        return M(np.asarray(x).tolist())

    W = {}
    for key in "QKV":
        w = mat(problem.frozen_weight(key))
        if key in problem.adapters:
            ad = problem.adapters[key]
            a = mat(ad.a) + h * mat(direction[f"A_{key}"])
            b = mat(ad.b) + h * mat(direction[f"B_{key}"])
            w = w + mpmath.mpf(problem.scale(key)) * (b * a)
        W[key] = w
    total = mpmath.mpf(0)
    for x_q, x_k, x_v, y in problem.items():
        P, K, V, Y = mat(x_q) * W["Q"], mat(x_k) * W["K"], mat(x_v) * W["V"], mat(y)
        S = mpmath.mpf(problem.beta) * P * K.T
        A = M(S.rows, S.cols)
        for i in range(S.rows):
            for j in range(S.cols):
                A[i, j] = mpmath.fsum(mpmath.mpf(c.numerator) / c.denominator * S[i, j] ** t for t, c in enumerate(coeffs))
        for i in range(A.rows):
            D = mpmath.fsum(A[i, j] for j in range(A.cols))
            for j in range(A.cols):
                A[i, j] /= D
        C = A * V - Y
        total += mpmath.fsum(C[i, j] ** 2 for i in range(C.rows) for j in range(C.cols)) / 2
    return total / problem.n_batch


@settings(max_examples=6)
@given(problems(max_L=3, max_d=3, max_r=2), st.integers(1, 4), st.integers(0, 2**32 - 1))
@example(random_problem(1, L=3, L_k=2, d_model=2, d_head=2, d_v=2), 3, 7)
def test_factored_backward_dot_product(problem, g, seed):
    """``<J t, 1> = <t, J^T 1>``: the factored gradient is the exact gradient of the approximate loss.

    ``J t`` is the directional derivative of the approximate loss (dense, mpmath, 60 digits, central
    differences with h = 1e-20); ``J^T 1`` is the factored algorithm's gradient.
    """
    problem = _rescaled(problem, 0.8)
    coeffs = [Fraction(1, math.factorial(t)) for t in range(g + 1)]
    rng = np.random.default_rng(seed)
    direction = {key: rng.standard_normal(np.shape(getattr(problem.adapters[key[-1]], key[0].lower())))
                 for key in problem.grad_keys}
    _, grads, _, _ = fast.run_with_polynomial(problem, coeffs, "factored")
    rhs = sum(float((grads[k] * direction[k]).sum()) for k in problem.grad_keys)
    scales = _abs_scales(problem)
    scale = sum(scales[k] * float(np.abs(direction[k]).sum()) for k in problem.grad_keys)
    with mpmath.workdps(FINITE_DIFFERENCE["dps"]):
        h = mpmath.mpf(FINITE_DIFFERENCE["step"])
        lhs = (_mp_loss(problem, coeffs, direction, h) - _mp_loss(problem, coeffs, direction, -h)) / (2 * h)
    k = math.comb(problem.d_head + g, g)
    assert abs(float(lhs) - rhs) <= fast_path_rounding(k, problem.L_k, g, 0.8) * max(scale, 1e-300)


def test_block_size_does_not_change_results():
    problem = _rescaled(random_problem(7, L=13, L_k=9, n_batch=2), 1.0)
    coeffs = [Fraction(1, math.factorial(t)) for t in range(6)]
    base = fast.run_with_polynomial(problem, coeffs, "factored", block_size=4096)[2]
    for block in (1, 4, 5):
        got = fast.run_with_polynomial(problem, coeffs, "factored", block_size=block)[2]
        for key in "QKV":
            assert _max(got[key] - base[key]) <= 1e-13 * _max(base[key])


def test_bad_inputs_are_named():
    problem = random_problem(0)
    cases = [
        (dict(problem=problem, tol=-1.0), "^tol:"),
        (dict(problem=problem, tol=float("nan")), "^tol:"),
        (dict(problem=problem, tol=2.0), "^tol:"),
        (dict(problem=problem, tol=1e-6, method="fastest"), "^method:"),
        (dict(problem=problem, tol=1e-6, tol_mode="percent"), "^tol_mode:"),
        (dict(problem=problem, tol=1e-6, force="yes"), "^force:"),
        (dict(problem=problem, tol=1e-6, block_size=0), "^block_size:"),
        (dict(problem=problem, tol=1e-6, max_attempts=0), "^max_attempts:"),
        (dict(problem="x", tol=1e-6), "^problem:"),
    ]
    for kwargs, pattern in cases:
        with pytest.raises(InputError, match=pattern):
            fast.loss_and_grads(kwargs.pop("problem"), **kwargs)
    with pytest.raises(InputError, match="^method:"):
        fast.run_with_polynomial(problem, [1, 1], "dense")


def test_float32_problem_bound_covers_output_rounding():
    """Float64 internals rounded to float32 outputs: the certified bound includes that rounding and
    holds against the float64 exact gradients of the same (exactly widened) inputs."""
    problem = rescaled_to(random_problem(6, dtype="float32", L=5), 1.0)
    res = fast.loss_and_grads(problem, 1e-6, force="fast")
    ref = exact.loss_and_grads(problem.astype("float64"))
    assert res.path == "fast" and all(g.dtype == np.float32 for g in res.grads.values())
    for key in problem.grad_keys:
        err = float(np.max(np.abs(res.grads[key].astype(np.float64) - ref.grads[key])))
        assert err <= res.bounds[key], (key, err, res.bounds[key])


@pytest.mark.parametrize("R", [200.0, 1e4])
def test_huge_norm_inputs_fall_back_without_overflow(R):
    """Regression: R >~ 200 raised OverflowError in the approx layer instead of falling back. The
    planner now rules every degree out by a lower bound valid for every polynomial, building none."""
    problem = _rescaled(random_problem(4, L=7, d_model=4, d_head=3, d_v=2), R)
    assert score_bound(problem).R == pytest.approx(R)
    res = fast.loss_and_grads(problem, 1e-6)
    ref = exact.loss_and_grads(problem)
    assert res.fallback and res.path == "exact" and "outside the efficient regime" in res.reason
    assert "lower bound valid for every polynomial" in res.reason
    for key in problem.grad_keys:
        assert np.array_equal(res.grads[key], ref.grads[key])
    for method in ("factored", "paper"):  # forced fast: a clear refusal, never an OverflowError
        with pytest.raises(RegimeError, match="not certifiable"):
            fast.loss_and_grads(problem, 1e-6, method=method, force="fast", max_degree=40)
