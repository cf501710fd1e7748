"""Exact blocked float64 loss and gradients against the independent mpmath reference (issue 2, item 6).

Agreement is measured as max-entry error relative to max |reference| (tolerances.max_relative_error)
for the loss, every adapter gradient and every dL/dW_mu, and held to tolerances.EXACT_VS_REFERENCE.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from verified_lora.testing.strategies import problems
from verified_lora import Adapter, LoraAttention, exact, reference
from verified_lora.examples import default_problem, random_problem
from verified_lora.tolerances import (EXACT_VS_REFERENCE, max_relative_error, reference_relative_error,
                                      underflow_floor)

REF_DPS = 34  # 34 digits: 10^18 below the float64 tolerance, fast enough for 200 examples


def quantities(result):
    """``{name: array}`` for the loss, every adapter gradient and every weight gradient."""
    out = {"loss": np.asarray([result.loss], dtype=object)}
    out.update(result.grads)
    out.update({f"W_{k}": v for k, v in result.weight_grads.items()})
    return out


def agreement(problem, *, dps=REF_DPS, **exact_kwargs) -> dict[str, float]:
    """Max-entry relative error of exact.loss_and_grads against the reference, per quantity.

    A quantity whose absolute error is below the dtype's underflow floor counts as 0 (see
    tolerances.underflow_floor: a gradient entirely below the dtype's range cannot be relative-accurate).
    """
    ex = quantities(exact.loss_and_grads(problem, **exact_kwargs))
    ref = quantities(reference.to_float(reference.loss_and_grads(problem, dps=dps)))
    assert ex.keys() == ref.keys()
    floor = underflow_floor(problem.dtype)
    errors = {}
    for name in ex:
        assert np.shape(ex[name]) == np.shape(ref[name]), name
        absolute = float(np.max(np.abs(np.asarray(ex[name], dtype=float) - np.asarray(ref[name], dtype=float))))
        errors[name] = 0.0 if absolute <= floor else max_relative_error(ex[name], ref[name])
    return errors


def assert_agrees(problem, **kwargs):
    tol = EXACT_VS_REFERENCE[str(problem.dtype)]
    errors = agreement(problem, **kwargs)
    bad = {k: v for k, v in errors.items() if not v <= tol}
    assert not bad, f"exact vs reference beyond {tol:g}: {bad} on {problem.describe()}"
    return errors


def mp_relative_error(a, b, dps: int) -> float:
    """``max|a - b| / max|b|`` computed in mpmath (object arrays of mpf)."""
    import mpmath

    with mpmath.mp.workdps(dps + 10):
        a, b = np.asarray(a, dtype=object).ravel(), np.asarray(b, dtype=object).ravel()
        err = max(abs(x - y) for x, y in zip(a, b))
        scale = max(abs(y) for y in b)
        return float(err / scale) if scale else float(err)


# ---------------------------------------------------------------------------- agreement, >= 200 examples
@settings(max_examples=200)
@given(problem=problems())
@example(problem=default_problem())
@example(problem=random_problem(11, L=1, L_k=1, d_model=1, d_head=1, d_v=1, r=1))        # softmax of one score
@example(problem=random_problem(12, L=12, L_k=12, d_model=6, d_head=6, d_v=6, r=3, scale=1.0, beta=1.25))
@example(problem=random_problem(13, L=2, L_k=9, adapters=("K",), r=1, alpha=0.5, scaling="rslora"))
@example(problem=LoraAttention(  # saturated softmax (S = [9.35, -5.17]): caught catastrophic cancellation
    x_q=np.array([[1.28592937, 0.11760936, -0.30063904, -2.98287574, 1.4678685]]), y=np.array([[-1.27954505]]),
    w_q=np.array([[1.47790757], [-1.0475945], [-2.30751282], [0.51459856], [0.50026227]]),
    w_k=np.array([[2.65476038], [1.80286636], [-1.5724548], [-0.54547608], [0.09858627]]),
    w_v=np.array([[0.44493141], [-1.1150223], [0.62281288], [-0.85837332], [-0.08515288]]),
    x_k=np.array([[-0.08236112, 1.78184542, 0.09148655, -2.21088152, 1.3422077],
                  [0.03151832, -1.32359064, -0.06529518, 0.06063596, -0.856148]]),
    x_v=np.array([[1.3641242, -0.84630102, -0.2558284, -2.31784035, -0.18412677],
                  [-0.36153276, -1.51673397, 0.36877965, 0.23369492, -0.04627122]]),
    adapters={"Q": Adapter(a=np.array([[0.83325787]]),
                           b=np.array([[-0.89212247], [-0.30456591], [0.54911476], [-0.46179757], [0.89817951]]))},
    alpha=0.5, beta=1.0))
def test_exact_agrees_with_reference(problem):
    assert_agrees(problem)


def _float32_underflow_example():
    """Pinned: scores up to 1093 apart, so the true dL/dW_Q (~1e-109) underflows float32 to 0."""
    x = np.array([[-2.8281622], [1.0213069], [-0.95964473]], dtype=np.float32)
    p = random_problem(0, L=3, d_model=1, d_head=3, d_v=3, r=3, alpha=7.0, beta=1.0, scaling="rslora",
                       scale=1.0, dtype="float32")
    return p.replace(x_q=x, w_q=np.float32(6) * p.w_q, w_k=np.float32(6) * p.w_k)


def test_float32_underflow_example_is_below_the_range():
    p = _float32_underflow_example()
    ref = reference.to_float(reference.loss_and_grads(p, dps=REF_DPS))
    assert 0 < np.max(np.abs(ref.weight_grads["Q"])) < underflow_floor("float32")
    assert np.all(exact.loss_and_grads(p).weight_grads["Q"] == 0)


@settings(max_examples=30)
@given(problem=problems(dtype="float32", batch=st.just(None)))
@example(problem=_float32_underflow_example())
def test_exact_float32_agrees_with_reference(problem):
    """float32 problems are computed in float32 and held to the float32 tolerance."""
    assert_agrees(problem)


# ---------------------------------------------------------------------------- named configurations
CONFIGS = {
    "partial Q,V": dict(adapters=("Q", "V")),
    "full Q,K,V": dict(adapters=("Q", "K", "V")),
    "only Q": dict(adapters=("Q",)),
    "only K": dict(adapters=("K",)),
    "only V": dict(adapters=("V",)),
    "no adapters": dict(adapters=()),
    "cross-attention": dict(L=7, L_k=4),
    "cross-attention L_k > L": dict(L=3, L_k=11, adapters=("Q", "K")),
    "rsLoRA": dict(scaling="rslora", r=3, alpha=2.0),
    "beta = 1": dict(beta=1.0),
    "beta negative": dict(beta=-0.75),
    "beta large": dict(beta=2.5, scale=0.8),
    "d_model != d_head != d_v": dict(d_model=6, d_head=2, d_v=5),
    "d_head = 1, d_v = 1": dict(d_model=3, d_head=1, d_v=1),
    "r = 1": dict(r=1, alpha=4.0),
    "alpha != r, alpha < r": dict(r=3, alpha=0.5),
    "batch of 3": dict(n_batch=3, L=5, L_k=6),
    "batch, self-attention, rsLoRA": dict(n_batch=2, scaling="rslora"),
    "single query row": dict(L=1, L_k=6),
    "single key": dict(L=6, L_k=1),
    "saturated softmax": dict(scale=1.2, beta=2.5, L_k=9),
}


@pytest.mark.parametrize("name", list(CONFIGS))
def test_configurations(name):
    problem = random_problem(list(CONFIGS).index(name), **CONFIGS[name])
    for key in problem.adapted:               # B = 0 would hide A-gradient bugs
        assert np.all(problem.adapters[key].b != 0)
        assert problem.alpha != problem.adapters[key].r
    errors = assert_agrees(problem)
    assert set(errors) == {"loss", *problem.grad_keys, "W_Q", "W_K", "W_V"}
    result = exact.loss_and_grads(problem)
    for key in problem.grad_keys:
        assert result.grads[key].shape == (problem.adapters[key[-1]].a if key[0] == "A"
                                           else problem.adapters[key[-1]].b).shape
        assert result.grads[key].dtype == problem.dtype


def test_saturated_softmax_is_really_saturated():
    """The "saturated softmax" configuration has rows where 1 - max f is below 1e-8."""
    p = random_problem(list(CONFIGS).index("saturated softmax"), **CONFIGS["saturated softmax"])
    s = p.beta * (p.x_q @ p.weight("Q")) @ (p.x_k @ p.weight("K")).T
    gap = np.sort(s, axis=1)[:, -1] - np.sort(s, axis=1)[:, -2]
    assert gap.max() > 18.5


def test_float32_configuration():
    assert_agrees(random_problem(5, dtype="float32"))


def test_result_metadata():
    p = random_problem(1, adapters=("Q", "V"))
    result = exact.loss_and_grads(p, block_size=3)
    assert result.method == "exact" and result.info["block_size"] == 3
    assert list(result.grads) == ["A_Q", "B_Q", "A_V", "B_V"] and list(result.weight_grads) == ["Q", "K", "V"]
    assert isinstance(result.loss, float)


@pytest.mark.parametrize("bad", [0, -1, 2.5, True, "4"])
def test_bad_block_size(bad):
    from verified_lora import InputError

    with pytest.raises(InputError) as info:
        exact.loss_and_grads(random_problem(0), block_size=bad)
    assert info.value.field == "block_size"


# ---------------------------------------------------------------------------- invariants
def _dyadic_problem(seed: int, adapters, L=6, L_k=5, d_model=4, d_head=3, d_v=2, r=2, beta=0.75):
    """A cross-attention problem whose entries are multiples of 1/16 in [-1, 1]: sums of them are exact."""
    rng = np.random.default_rng(seed)

    def draw(*shape):
        return rng.integers(-16, 17, size=shape) / 16.0

    d_out = {"Q": d_head, "K": d_head, "V": d_v}
    ads = {}
    for k in adapters:
        b = draw(d_model, r)
        b[b == 0] = 0.5                          # B != 0
        ads[k] = Adapter(a=draw(r, d_out[k]), b=b)
    return LoraAttention(x_q=draw(L, d_model), x_k=draw(L_k, d_model), x_v=draw(L_k, d_model),
                         y=draw(L, d_v), w_q=draw(d_model, d_head), w_k=draw(d_model, d_head),
                         w_v=draw(d_model, d_v), adapters=ads, alpha=3.0, beta=beta)


@pytest.mark.parametrize("adapters", [("Q", "K", "V"), ("Q", "V"), ("K",)])
@pytest.mark.parametrize("seed", [0, 1])
def test_adding_a_constant_to_each_score_row_changes_nothing(seed, adapters):
    """Shift every key input by one vector u: x_k -> x_k + 1 u^T.

    Then K -> K + 1 (u W_K)^T and S_jl -> S_jl + beta <Q_j, u W_K>, a constant added to each score
    row j (different for each row). Softmax is invariant under that, so the loss, dL/dS and hence
    every gradient are unchanged (dL/dW_K too: the rows of dL/dS sum to zero). The entries are
    dyadic, so the shifted x_k is exact and the identity holds exactly for the stored problems.
    """
    p = _dyadic_problem(seed, adapters)
    u = np.random.default_rng(100 + seed).integers(-16, 17, size=p.d_model) / 16.0
    shifted = p.replace(x_k=p.x_k + u)
    np.testing.assert_array_equal(shifted.x_k - u, p.x_k)            # the shift is exact
    # the scores really move, by a different constant in each row
    w_k = p.weight("K")
    row_shift = p.beta * (p.x_q @ p.weight("Q")) @ (u @ w_k)
    assert np.ptp(row_shift) > 0.1 and np.max(np.abs(row_shift)) > 0.1

    tol = EXACT_VS_REFERENCE["float64"]
    a, b = quantities(exact.loss_and_grads(p)), quantities(exact.loss_and_grads(shifted))
    for name in a:
        assert max_relative_error(b[name], a[name]) <= tol, name

    dps = 40
    ra = quantities(reference.loss_and_grads(p, dps=dps))
    rb = quantities(reference.loss_and_grads(shifted, dps=dps))
    for name in ra:
        assert mp_relative_error(rb[name], ra[name], dps) <= reference_relative_error(dps), name


def _naive_frozen_loss(p) -> float:
    """The frozen model's loss, written out directly in NumPy (no blocking, no adapters)."""
    total = 0.0
    for x_q, x_k, x_v, y in p.items():
        s = p.beta * (x_q @ p.w_q) @ (x_k @ p.w_k).T
        e = np.exp(s - s.max(axis=1, keepdims=True))
        f = e / e.sum(axis=1, keepdims=True)
        total += 0.5 * np.sum((f @ (x_v @ p.w_v) - y) ** 2)
    return total / p.n_batch


@pytest.mark.parametrize("kwargs", [dict(), dict(L_k=4, n_batch=2, scaling="rslora", adapters=("Q", "V"))])
def test_zero_adapters_give_the_frozen_model(kwargs):
    p = random_problem(21, **kwargs)
    zeroed = p.replace(adapters={k: Adapter(a=np.zeros_like(ad.a), b=ad.b) for k, ad in p.adapters.items()})
    frozen = p.replace(adapters={})
    ez, ef = exact.loss_and_grads(zeroed), exact.loss_and_grads(frozen)
    assert ez.loss == ef.loss                                  # W* + s B 0 = W* exactly
    for k in "QKV":
        np.testing.assert_array_equal(ez.weight_grads[k], ef.weight_grads[k])
    assert abs(ef.loss - _naive_frozen_loss(p)) <= EXACT_VS_REFERENCE["float64"] * ef.loss
    assert ez.loss != exact.loss_and_grads(p).loss             # the adapters did matter before

    rz, rf = reference.loss_and_grads(zeroed, dps=40), reference.loss_and_grads(frozen, dps=40)
    assert rz.loss == rf.loss
    import mpmath

    for key in zeroed.adapted:
        s = zeroed.scale(key)
        assert all(v == 0 for v in rz.grads[f"B_{key}"].ravel())   # dB = s dW A^T = 0 when A = 0
        expected = s * (zeroed.adapters[key].b.T @ reference.to_float(rf).weight_grads[key])
        assert max_relative_error(reference.to_float(rz).grads[f"A_{key}"], expected) <= 1e-15
        assert mpmath.mpf(max(abs(v) for v in rz.grads[f"A_{key}"].ravel())) > 0
    assert_agrees(zeroed)


@pytest.mark.parametrize("kwargs", [dict(L=11, L_k=7), dict(L=9, n_batch=2, adapters=("K", "V"))])
def test_block_size_invariance(kwargs):
    p = random_problem(31, **kwargs)
    tol = EXACT_VS_REFERENCE["float64"]
    ref = quantities(reference.to_float(reference.loss_and_grads(p, dps=REF_DPS)))
    base = quantities(exact.loss_and_grads(p, block_size=p.L))
    for block in (1, 2, 3, 4, p.L - 1, p.L, p.L + 5):
        got = quantities(exact.loss_and_grads(p, block_size=block))
        for name in got:
            assert max_relative_error(got[name], ref[name]) <= tol, (block, name)
            assert max_relative_error(got[name], base[name]) <= tol, (block, name)
    # a memory budget that forces one-row blocks gives the same answer
    tiny = exact.loss_and_grads(p, memory_budget=1)
    assert tiny.info["block_size"] == 1
    assert max_relative_error(tiny.grads[p.grad_keys[0]], ref[p.grad_keys[0]]) <= tol


@pytest.mark.parametrize("cross", [False, True])
def test_batch_is_the_mean_of_items(cross):
    p = random_problem(41, n_batch=3, L=5, L_k=4 if cross else None, scaling="rslora")
    items = [p.replace(x_q=x_q, y=y, x_k=x_k if cross else None, x_v=x_v if cross else None)
             for x_q, x_k, x_v, y in p.items()]
    tol = EXACT_VS_REFERENCE["float64"]
    batch = quantities(exact.loss_and_grads(p))
    each = [quantities(exact.loss_and_grads(q)) for q in items]
    for name in batch:
        mean = sum(np.asarray(e[name], dtype=float) for e in each) / len(each)
        assert max_relative_error(batch[name], mean) <= tol, name

    dps = 30
    rbatch = quantities(reference.loss_and_grads(p, dps=dps))
    reach = [quantities(reference.loss_and_grads(q, dps=dps)) for q in items]
    import mpmath

    with mpmath.mp.workdps(dps + 10):
        for name in rbatch:
            mean = sum(e[name] for e in reach) / len(reach)
            assert mp_relative_error(rbatch[name], mean, dps) <= reference_relative_error(dps), name
