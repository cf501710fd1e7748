"""The planner's prediction is the run's certificate (shared, not recomputed), and the planner does not overshoot.

* Sharing is sound only if the certificate a call returns is the one a from-scratch :func:`run_bounds` gives
  for the arrays returned (fresh sensitivity, fresh proxy moments, the run's block): same numbers, bit for bit.
* The least certifying degree is found here by running every degree and certifying each run
  (:func:`run_with_polynomial` + :func:`run_bounds`), not through the planner.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest

from verified_lora import fast
from verified_lora.bounds import Sensitivity, score_bound
from verified_lora.bounds import _approx_api as api
from verified_lora.bounds.cost import rank
from verified_lora.errors import CertificationError
from verified_lora.examples import random_problem, rescaled_to
from verified_lora.fast.certificate import prepare_bounds, relative_claims, run_bounds
from verified_lora.fast.proxy_moments import build_proxy


def _problem(seed: int, L: int, dtype: str = "float64", d: int = 4, R: float = 1.0):
    return rescaled_to(random_problem(seed, L=L, d_model=d, d_head=d, d_v=d, r=2, beta=1.0, scale=0.3,
                                      dtype=dtype), R)


@pytest.mark.parametrize("dtype,L,block_size", [("float64", 64, None), ("float32", 64, None),
                                                ("float64", 64, 16), ("float64", 1536, None),
                                                ("float32", 1536, 128)])
def test_returned_certificate_equals_a_from_scratch_certificate(dtype, L, block_size):
    """L = 1536 > the planner's estimate rows: the prediction there is exact, its search used row subsamples."""
    problem = _problem(3, L, dtype)
    res = fast.loss_and_grads(problem, 1e-5, force="fast", block_size=block_size, max_degree=14)
    assert res.path == "fast" and res.certified
    assert res.info["certificate_shared"], "the planner's prediction was not reused: this test would test nothing"
    if block_size is not None:
        assert res.info["block_size"] == block_size
    pl = res.plan
    scratch = run_bounds(problem, pl, Sensitivity(problem), "factored", list(pl.polynomial.coeffs), res.grads,
                         res.weight_grads, moments=build_proxy(problem, float(score_bound(problem).R)),
                         block=res.info["block_size"])
    assert res.bounds == scratch.total
    assert res.approx_bounds == scratch.approx
    assert res.rounding_bounds == scratch.rounding
    assert res.weight_bounds == scratch.weight_total
    if dtype == "float32":  # the output conversion term is part of the returned certificate
        assert all(res.rounding_bounds[k] > 0 for k in res.rounding_bounds)


def test_prediction_is_reused_only_for_identical_inputs():
    problem = _problem(5, 48)
    sens = Sensitivity(problem)
    sb = score_bound(problem)
    proxy = build_proxy(problem, float(sb.R))
    cert = api.certify("minimax", 8, sb.R, need_derivative=True)
    gb = sens.bounds(cert.eps_A, cert.eps_D, "factored")
    pl = SimpleNamespace(eps_A=cert.eps_A, eps_D=cert.eps_D, R=sb.R, rank=rank(4, 8), bounds=dict(gb.grads),
                         weight_bounds=dict(gb.weights_max))
    coeffs = list(cert.polynomial.coeffs)
    pb = prepare_bounds(problem, pl, sens, "factored", coeffs, True, proxy, 32)
    assert pb.matches(problem, pl, sens, "factored", coeffs, True, proxy, 32)
    assert not pb.matches(problem, pl, sens, "factored", coeffs, True, proxy, 64)          # another block
    assert not pb.matches(problem, pl, sens, "factored", coeffs, True, build_proxy(problem, float(sb.R)), 32)
    assert not pb.matches(problem, pl, Sensitivity(problem), "factored", coeffs, True, proxy, 32)
    assert not pb.matches(problem.replace(), pl, sens, "factored", coeffs, True, proxy, 32)
    assert not pb.matches(problem, pl, sens, "paper", coeffs, True, proxy, 32)
    other = api.certify("minimax", 9, sb.R, need_derivative=True)
    assert not pb.matches(problem, pl, sens, "factored", list(other.polynomial.coeffs), True, proxy, 32)
    assert not pb.matches(problem, SimpleNamespace(**{**vars(pl), "eps_A": pl.eps_A * 2}), sens, "factored", coeffs,
                          True, proxy, 32)


def _least_certifying_degree(problem, tol: float, families=("minimax-antiderivative", "minimax"), top: int = 14):
    """The least degree whose run, certified from scratch, meets ``tol`` (relative), over ``families``."""
    sb = score_bound(problem)
    sens = Sensitivity(problem)
    for g in range(1, top + 1):
        for fam in families:
            try:
                cert = api.certify(fam, g, sb.R, need_derivative=True)
            except CertificationError:
                continue
            if not (cert.eps_A < 1 and cert.eps_D < 1):
                continue
            gb = sens.bounds(cert.eps_A, cert.eps_D, "factored")
            pl = SimpleNamespace(eps_A=cert.eps_A, eps_D=cert.eps_D, R=sb.R, rank=rank(problem.d_head, g),
                                 bounds=dict(gb.grads), weight_bounds=dict(gb.weights_max))
            coeffs = list(cert.polynomial.coeffs)
            _loss, grads, wgrads, info = fast.run_with_polynomial(problem, coeffs, "factored")
            rb = run_bounds(problem, pl, sens, "factored", coeffs, grads, wgrads, block=info["block_size"])
            rel, _why = relative_claims(grads, rb.total, rb.rounding)
            if all(v <= tol for v in rel.values()):
                return g, max(rel.values())
    return None, math.inf


# (3, 96, 1e-6) and (4, 1536, 1e-5): the planner of the previous version (fixed margin 0.5, pessimistic screen)
# picked one degree above the least certifying one there
@pytest.mark.parametrize("seed,L,tol", [(1, 96, 1e-7), (3, 96, 1e-6), (2, 1536, 1e-6), (4, 1536, 1e-5)])
def test_planner_picks_no_degree_above_the_least_certifying_one(seed, L, tol):
    problem = _problem(seed, L)
    least, claim = _least_certifying_degree(problem, tol)
    assert least is not None
    res = fast.loss_and_grads(problem, tol, force="fast", max_degree=14)
    assert res.path == "fast" and res.certified
    assert res.attempts == 1, "the planned degree did not certify"
    assert res.degree <= least, (res.degree, least, claim)


def test_planner_estimates_track_the_exact_prediction():
    """The subsample estimate (L > estimate rows) is within a factor 2 of the exact prediction it stands for."""
    from verified_lora.fast import planning as P

    problem = _problem(2, 2048)
    sb = score_bound(problem)
    sens = Sensitivity(problem)
    proxy = build_proxy(problem, float(sb.R))
    pred = P._Predictor(problem, sens, "factored", proxy, None)
    assert pred.sub is not None
    model = fast._default_cost_model(problem)
    for g in (4, 8, 11):
        pl = P.plan_for_degree(problem, "minimax", g, "factored", 1e-6, sb, sens, model)
        est = pred.estimate(pl)[1]
        ex = pred.predict(pl).total
        assert all(math.isfinite(v) and v > 0 for v in ex.values())
        for k in ex:
            assert 0.5 <= est[k] / ex[k] <= 2.0, (g, k, est[k], ex[k])


def test_block_size_rule_cpu_and_gpu():
    """CPU blocks sit near sqrt(rows) (>= 256; >= 512 at small ranks); a GPU gets >= 2048-row blocks (kernel
    launches per block dominated with 256), never more rows than the budget holds, and always a power of two."""
    from verified_lora.fast import GPU_MIN_BLOCK, default_block_size

    assert default_block_size(715, 4, "factored", rows=65536) == 512              # small rank: 512-row floor
    assert default_block_size(43758, 8, "factored", rows=65536) == 256            # d = 8, degree 10
    assert default_block_size(715, 4, "factored", rows=65536, gpu=True) == GPU_MIN_BLOCK == 2048
    assert default_block_size(715, 4, "factored", rows=2**22) == 2048            # sqrt(2^22)
    assert default_block_size(715, 4, "factored", rows=2**22, gpu=True) == 2048
    # the budget still caps: k = 131072 features, 256 MiB -> 256 rows, on either device
    assert default_block_size(131072, 8, "factored", rows=65536, gpu=True) == 256
    for rows in (100, 5000, 70000):
        for gpu in (False, True):
            b = default_block_size(210, 4, "paper", rows=rows, gpu=gpu)
            assert b & (b - 1) == 0
