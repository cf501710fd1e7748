"""The blocked O(L L_k d) enclosure against the Jacobian-form oracle, mpmath and float64 exact.

* the mpmath reference (Jacobian form, 20 digits beyond the enclosure's) lies inside every blocked interval, and the
  blocked and Jacobian-form enclosures intersect entry by entry (both contain the exact value);
* the widths meet the requested ``10**-digits``;
* float64 exact gradients are within the exact-vs-reference tolerance of the midpoints;
* chunk results travel exactly; the serial runner and a dask LocalCluster give identical balls;
* bad arguments fail fast with the field named.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import example, given, settings

from verified_lora.testing.strategies import problems
from verified_lora import InputError, exact, reference
from verified_lora.examples import random_problem
from verified_lora.parallel import map_tasks
from verified_lora.tolerances import EXACT_VS_REFERENCE, max_relative_error

flint = pytest.importorskip("flint")

from verified_lora.reference import arb_blocks  # noqa: E402
from verified_lora.reference.blocked import (GUARD_BITS, MAX_BLOCK_ENTRIES, MIN_BLOCK_ROWS,  # noqa: E402
                                             calibrate_plan, enclose_blocked, plan_blocks)

DIGITS = 20
SATURATED = random_problem(3, scale=1.2, beta=2.5, L_k=9)


def _endpoints(enc):
    return {name: [(x.a, x.b) for x in box.ravel()] for name, box in enc.items()}


def _check_against_oracle(problem, block_size=None):
    enc = enclose_blocked(problem, DIGITS, block_size=block_size)
    ref = reference.loss_and_grads(problem, dps=enc.dps + 20)  # finer than the enclosure's own width
    assert enc.outside(ref) == []
    assert enc.max_relative_width() <= 10.0 ** -DIGITS, enc.relative_widths()
    assert enc.info["target_met"]
    jac = reference.enclose(problem, dps=40, backend="arb")
    assert [n for n, _ in enc.items()] == [n for n, _ in jac.items()]
    for (name, a), (_, b) in zip(enc.items(), jac.items()):
        assert a.shape == b.shape, name
        for u, v in zip(a.ravel(), b.ravel()):
            assert max(u.a, v.a) <= min(u.b, v.b), name
    return enc


@settings(max_examples=25, deadline=None)
@given(problem=problems(max_L=9, max_d=4))
@example(problem=SATURATED)
@example(problem=random_problem(4, L=3, L_k=1, d_model=2, d_head=1, d_v=1, r=1))
@example(problem=random_problem(5, L=6, L_k=4, n_batch=2, beta=-0.8, adapters=("K",), scaling="rslora"))
def test_blocked_contains_reference_and_meets_oracle(problem):
    _check_against_oracle(problem, block_size=2)


@pytest.mark.parametrize("adapters", [(), ("Q",), ("K",), ("V",), ("Q", "V"), ("Q", "K", "V")])
def test_every_adapter_subset_cross_attention_batched(adapters):
    p = random_problem(11, L=7, L_k=5, n_batch=2, adapters=adapters, beta=-1.1)
    enc = _check_against_oracle(p, block_size=3)
    assert set(enc.grads) == {f"{m}_{k}" for k in adapters for m in "AB"}


def test_float64_exact_is_near_the_midpoints():
    p = random_problem(7, L=40, L_k=33, d_model=6, d_head=5, d_v=4, r=2, n_batch=2)
    enc = enclose_blocked(p, DIGITS, block_size=7)
    mid = reference.to_float(enc.midpoint())
    ex = exact.loss_and_grads(p)
    for name in ex.grads:
        assert max_relative_error(ex.grads[name], mid.grads[name]) <= EXACT_VS_REFERENCE["float64"], name
    for key in "QKV":
        assert max_relative_error(ex.weight_grads[key], mid.weight_grads[key]) <= EXACT_VS_REFERENCE["float64"]


def test_block_size_does_not_matter_beyond_rounding():
    p = random_problem(2, L=11, L_k=6)
    a = enclose_blocked(p, DIGITS, block_size=1)
    b = enclose_blocked(p, DIGITS, block_size=11)
    for (name, x), (_, y) in zip(a.items(), b.items()):
        for u, v in zip(x.ravel(), y.ravel()):
            assert max(u.a, v.a) <= min(u.b, v.b), name


def test_more_digits_give_narrower_intervals():
    p = random_problem(6, L=10, L_k=7)
    coarse, fine = enclose_blocked(p, 20), enclose_blocked(p, 60)
    assert fine.info["prec_bits"] > coarse.info["prec_bits"]
    assert fine.max_relative_width() <= 1e-60 < coarse.max_relative_width()


def test_plan_precision_and_memory():
    p = random_problem(0, L=100, L_k=5000, d_model=2, d_head=2, d_v=2)
    plan = plan_blocks(p, 20)
    assert plan.prec % 64 == 0 and plan.prec >= 67 + GUARD_BITS
    assert plan.block * p.L_k <= 2**19  # O(block x L_k) memory
    assert plan.chunks * plan.chunk_rows >= p.L > (plan.chunks - 1) * plan.chunk_rows


def test_plan_keeps_flints_blocked_product_at_large_L_k():
    """At L_k = 16384 the memory budget alone would give 32 rows; blocks keep 64 (> flint's 60-row cutoff)."""
    p = random_problem(0, L=16384, d_model=2, d_head=2, d_v=2)
    plan = plan_blocks(p, 20)
    assert plan.block == MIN_BLOCK_ROWS == 64 and plan.block * p.L_k <= MAX_BLOCK_ENTRIES
    huge = plan_blocks(random_problem(0, L=4, L_k=2**17, d_model=1, d_head=1, d_v=1, r=1), 20, block_size=None)
    assert huge.block * 2**17 <= MAX_BLOCK_ENTRIES


def test_calibrated_estimate_measures_one_block():
    p = random_problem(3, L=40, L_k=30, n_batch=2)
    plan = plan_blocks(p, 20)
    cal = calibrate_plan(p, plan)
    assert cal.calibrated and not plan.calibrated and cal.estimate_s > 0
    assert (cal.prec, cal.block, cal.chunks) == (plan.prec, plan.block, plan.chunks)


def test_pack_unpack_keeps_midpoints_and_rounds_radii_up():
    with flint.ctx.workprec(128):
        m = flint.arb_mat([[flint.arb(1) / 3, flint.arb(2).exp()], [flint.arb(-5), flint.arb(10) ** -300]])
        back = arb_blocks.unpack(arb_blocks.pack(m))
        for x, y in zip(m.entries(), back.entries()):
            assert x.mid().man_exp() == y.mid().man_exp()
            assert x.rad() <= y.rad() <= x.rad() * (1 + flint.arb(2) ** -28)
            assert y.contains(x)


def _square(shared, x):
    return shared * x * x


def test_map_tasks_serial_order_and_progress():
    seen = []
    assert map_tasks(_square, [(1,), (2,), (3,)], 10, progress=lambda d, t: seen.append((d, t))) == [10, 40, 90]
    assert seen == [(0, 3), (1, 3), (2, 3), (3, 3)]


@pytest.mark.parametrize("kwargs, field", [(dict(digits=0), "digits"), (dict(digits=2.5), "digits"),
                                          (dict(workers=0), "workers"), (dict(workers=2, scheduler="tcp://x:1"), "workers"),
                                          (dict(scheduler=""), "scheduler"), (dict(block_size=0), "block_size")])
def test_bad_arguments_fail_fast(kwargs, field):
    with pytest.raises(InputError, match=field):
        enclose_blocked(random_problem(0), **kwargs)


def test_local_cluster_matches_serial_bit_for_bit():
    """Two dask worker processes, chunk results added in the fixed order: identical balls."""
    pytest.importorskip("distributed")
    p = random_problem(12, L=48, L_k=20, n_batch=2, d_model=3, d_head=3, d_v=2)
    serial = enclose_blocked(p, DIGITS, block_size=4)
    assert serial.info["chunks"] > 2
    seen = []
    dist = enclose_blocked(p, DIGITS, block_size=4, workers=2, progress=lambda d, t: seen.append(d))
    assert dist.info["runner"].startswith("dask LocalCluster")
    assert _endpoints(dist) == _endpoints(serial)
    assert seen[-1] == 2 * serial.info["chunks"]
    assert np.isfinite(serial.max_relative_width())
