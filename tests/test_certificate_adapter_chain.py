"""The adapter-gradient certificate row by row (``verified_lora/fast/adapter_chain.py``) against mpmath.

Inputs where the chain through ``|X B|`` differs most from ``|s| |B|^T |dG|``: inputs in a subspace
nearly orthogonal to ``B``'s columns (``|X B| << |X| |B|``), exactly-zero ``B`` (the LoRA
initialisation), query/key/value rows of very different norms, keys of nonzero mean (``K A^T`` with
a large mean and a small spread), low degrees (large eps, so the approximation part dominates).
Every certified bound must hold against the 40-digit reference; and the new chain must be active
(strictly tighter than the old one where ``X B`` nearly vanishes).
"""

from __future__ import annotations

import math

import mpmath
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from verified_lora import Adapter, LoraAttention
from verified_lora.bounds import Sensitivity, score_bound
from verified_lora.fast.certificate import run_bounds
from verified_lora.fast.proxy_moments import build_proxy

from .test_certificates_adversarial import N_EXAMPLES, _certified_run, _check, _errors


@st.composite
def chain_problems(draw) -> LoraAttention:
    mode = draw(st.sampled_from(["subspace", "zeroB", "rows", "mean", "random"]))
    L = draw(st.integers(1, 7))
    cross = draw(st.booleans())
    L_k = draw(st.integers(1, 7)) if cross else L
    cross = cross or L_k != L
    dm, dh, dv, r = draw(st.integers(2, 4)), draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(1, 2))
    keys = draw(st.sampled_from([("Q",), ("K",), ("V",), ("Q", "K", "V")]))
    n = draw(st.sampled_from([None, 2]))
    dtype = draw(st.sampled_from(["float64", "float32"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    lead = () if n is None else (n,)
    arr = rng.standard_normal
    x_q, x_k, x_v = arr((*lead, L, dm)), arr((*lead, L_k, dm)), arr((*lead, L_k, dm))
    if not cross:
        x_k = x_v = x_q
    ads = {key: Adapter(a=arr((r, {"Q": dh, "K": dh, "V": dv}[key])), b=arr((dm, r))) for key in keys}
    if mode == "subspace":  # every input row in span(v), every column of B nearly orthogonal to v
        v = arr(dm)
        v /= np.linalg.norm(v)
        proj = np.eye(dm) - np.outer(v, v)
        tilt = draw(st.sampled_from([0.0, 1e-6, 1e-3]))
        x_q = arr((*lead, L, 1)) * v
        x_k = arr((*lead, L_k, 1)) * v if cross else x_q
        x_v = arr((*lead, L_k, 1)) * v if cross else x_q
        ads = {k: Adapter(a=ad.a, b=proj @ ad.b + tilt * arr(ad.b.shape)) for k, ad in ads.items()}
    elif mode == "zeroB":
        ads = {k: Adapter(a=ad.a, b=np.zeros_like(ad.b)) for k, ad in ads.items()}
    elif mode == "rows":
        def spikes(rows):
            return rng.choice([1e-3, 1.0, 50.0], size=(*lead, rows, 1))
        x_q = x_q * spikes(L)
        if cross:
            x_k, x_v = x_k * spikes(L_k), x_v * spikes(L_k)
        else:
            x_k = x_v = x_q
    elif mode == "mean":  # inputs with a large common offset (E~[X] far from 0)
        off = 20.0 * arr(dm)
        x_v = x_v + off
        x_k = x_k + off if cross else x_v
        x_q = x_q + off if not cross else x_q
    cast = (lambda a: np.asarray(a, dtype=dtype))
    prob = LoraAttention(x_q=cast(x_q), y=cast(arr((*lead, L, dv))), w_q=cast(arr((dm, dh))), w_k=cast(arr((dm, dh))),
                         w_v=cast(arr((dm, dv))), x_k=cast(x_k) if cross else None, x_v=cast(x_v) if cross else None,
                         adapters={k: Adapter(a=cast(ad.a), b=cast(ad.b)) for k, ad in ads.items()},
                         alpha=draw(st.sampled_from([1.0, 16.0])), beta=draw(st.sampled_from([0.6, -1.0])))
    R = draw(st.sampled_from([0.5, 1.0, 3.0]))
    r0 = score_bound(prob).R
    if r0 > 0:
        f = 0.99 * R / r0
        prob = prob.replace(x_q=cast(prob.x_q * (f if cross else math.sqrt(f))))
    if draw(st.booleans()):  # near-perfect fit Y = f V: the residual c ~ 0, the V error is Delta E~[X_V] alone
        W = {k: np.asarray(prob.weight(k), dtype=np.float64) for k in "QKV"}
        ys = []
        for xq_, xk_, xv_, _y in prob.items():
            S = prob.beta * (xq_ @ W["Q"]) @ (xk_ @ W["K"]).T
            p_ = np.exp(S - S.max(axis=1, keepdims=True))
            ys.append((p_ / p_.sum(axis=1, keepdims=True)) @ (xv_ @ W["V"]))
        prob = prob.replace(y=cast(np.stack(ys) if n is not None else ys[0]))
    return prob


@settings(max_examples=N_EXAMPLES, deadline=None)
@given(chain_problems(), st.sampled_from(["minimax", "minimax-antiderivative", "taylor"]),
       st.sampled_from(["factored", "paper"]), st.sampled_from([2, 3, 5, 8]))
def test_adapter_chain_bounds_hold_against_mpmath(problem, family, method, degree):
    _check(problem, family, degree, method)


def _without_chain(proxy, problem):
    """The same proxy moments without the adapter columns: the certificate falls back to ``|s||B|^T|dG|``."""
    import dataclasses

    w = 2 * problem.d_model
    return dataclasses.replace(proxy, moments=[dict(mo, x2=mo["x2"][:, :w]) for mo in proxy.moments])


def test_chain_is_active_and_tighter_when_x_b_nearly_vanishes():
    """Inputs in span(v) and B orthogonal to v up to 1e-6: the |X B| chain cuts the A-gradient's
    approximation part by orders of magnitude; the |B|^T chain cannot see it (old bound, same run)."""
    rng = np.random.default_rng(7)
    dm, L = 4, 12
    v = rng.standard_normal(dm)
    v /= np.linalg.norm(v)
    proj = np.eye(dm) - np.outer(v, v)
    x = rng.standard_normal((L, 1)) * v
    ads = {k: Adapter(a=rng.standard_normal((2, 3)), b=proj @ rng.standard_normal((dm, 2)) + 1e-6 * rng.standard_normal((dm, 2)))
           for k in ("Q", "K", "V")}
    prob = LoraAttention(x_q=x, y=rng.standard_normal((L, 3)), w_q=rng.standard_normal((dm, 3)),
                         w_k=rng.standard_normal((dm, 3)), w_v=rng.standard_normal((dm, 3)), adapters=ads, alpha=2.0)
    prob = prob.replace(x_q=prob.x_q * math.sqrt(0.9 / score_bound(prob).R))
    grads, wgrads, rb = _certified_run(prob, "minimax", 3, "factored")
    from verified_lora.bounds import _approx_api as api
    from types import SimpleNamespace
    from verified_lora.bounds.cost import rank

    cert = api.certify("minimax", 3, score_bound(prob).R, need_derivative=True)
    sens = Sensitivity(prob)
    gb = sens.bounds(cert.eps_A, cert.eps_D, "factored")
    pl = SimpleNamespace(eps_A=cert.eps_A, eps_D=cert.eps_D, R=score_bound(prob).R, rank=rank(3, 3),
                         bounds=dict(gb.grads), weight_bounds=dict(gb.weights_max))
    coeffs = list(cert.polynomial.coeffs)
    old = run_bounds(prob, pl, sens, "factored", coeffs, grads, wgrads,
                     moments=_without_chain(build_proxy(prob, float(score_bound(prob).R)), prob))
    for key in ("A_Q", "A_K", "A_V"):
        assert rb.approx[key] < 1e-3 * old.approx[key], (key, rb.approx[key], old.approx[key])
    for key in rb.approx:
        assert rb.approx[key] <= old.approx[key]
    errs = _errors(prob, grads, wgrads)
    for key, b in rb.total.items():
        assert errs[key] <= mpmath.mpf(b), (key, errs[key], b)


def test_zero_b_gives_a_zero_a_gradient_bound():
    """B = 0 (LoRA's initialisation): dA = s B^T G is exactly 0 and is certified as such."""
    rng = np.random.default_rng(3)
    x = 0.3 * rng.standard_normal((6, 3))
    prob = LoraAttention(x_q=x, y=rng.standard_normal((6, 2)), w_q=rng.standard_normal((3, 2)),
                         w_k=rng.standard_normal((3, 2)), w_v=rng.standard_normal((3, 2)),
                         adapters={k: Adapter(a=rng.standard_normal((2, 2)), b=np.zeros((3, 2))) for k in "QKV"})
    prob = prob.replace(x_q=prob.x_q * math.sqrt(0.9 / score_bound(prob).R))
    grads, wgrads, rb = _certified_run(prob, "minimax", 4, "factored")
    for key in ("A_Q", "A_K", "A_V"):
        assert rb.total[key] <= 1e-300 and not np.any(grads[key])  # 0 up to the underflow allowance
    errs = _errors(prob, grads, wgrads)
    for key, b in rb.total.items():
        assert errs[key] <= mpmath.mpf(b)


def test_row_radii_are_active_and_sound_on_rows_of_different_norms():
    """Query rows of norms 1e-2 .. 1 (R_i spread over [0, R]): with Taylor (whose error falls fast with the
    radius) the per-row radii cut the approximation part; the bound must still hold (mpmath)."""
    from verified_lora.fast import certificate as C

    rng = np.random.default_rng(11)
    L, dm = 10, 3
    x_k = rng.standard_normal((L, dm))
    x_q = rng.standard_normal((L, dm)) * np.geomspace(1e-2, 1.0, L)[:, None]
    prob = LoraAttention(x_q=x_q, x_k=x_k, x_v=x_k, y=rng.standard_normal((L, 2)), w_q=rng.standard_normal((dm, 2)),
                         w_k=rng.standard_normal((dm, 2)), w_v=rng.standard_normal((dm, 2)),
                         adapters={k: Adapter(a=rng.standard_normal((1, 2)), b=rng.standard_normal((dm, 1))) for k in "QKV"})
    prob = prob.replace(x_q=prob.x_q * (0.99 / score_bound(prob).R))
    try:
        C.ROW_RADII = False
        _g, _w, flat = _certified_run(prob, "taylor", 4, "factored")
    finally:
        C.ROW_RADII = True
    grads, wgrads, rb = _certified_run(prob, "taylor", 4, "factored")
    assert max(rb.weight_approx.values()) < 0.5 * max(flat.weight_approx.values())
    errs = _errors(prob, grads, wgrads)
    for key, b in list(rb.total.items()) + list(rb.weight_total.items()):
        assert errs[key] <= mpmath.mpf(b), (key, errs[key], b)
