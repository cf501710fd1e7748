"""The audit's error bounds and layer reference, tested without torch.

* the mpmath layer reference equals exact rational arithmetic (``fractions.Fraction``);
* the derived per-entry bounds hold for NumPy float32 / float16 evaluations in several orders
  (merged and unmerged forward, both gradient associations), for merge/unmerge round trips, and
  the attention running-error bound holds for the float32 exact engine against the mpmath reference.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from verified_lora.testing.strategies import problems
from verified_lora.audit.error_bounds import (LayerArrays, attention_error_bounds, gamma, layer_bounds,
                                              roundtrip_bound, scale_bound, unit_roundoff_of)
from verified_lora.audit.layer_reference import effective_scale, layer_reference


def test_unit_roundoff_and_gamma():
    assert unit_roundoff_of("float64") == 2.0**-53
    assert unit_roundoff_of("torch.float32") == 2.0**-24
    assert unit_roundoff_of("bfloat16") == 2.0**-8
    assert unit_roundoff_of("float16") == 2.0**-11
    assert gamma(3, 2.0**-8) == pytest.approx(3 * 2.0**-8 / (1 - 3 * 2.0**-8), rel=1e-15)
    assert gamma(300, 2.0**-8) == float("inf")
    with pytest.raises(ValueError):
        unit_roundoff_of("int8")


@st.composite
def layers(draw, merged=st.booleans()):
    """A small layer (blocks when ``merged``), input and cotangent; entries +-[0.25, 1]."""
    r = draw(st.integers(2, 3))
    d_in = draw(st.integers(r, 6))
    is_merged = draw(merged)
    m = draw(st.integers(1, 3))
    d_out = 3 * m if is_merged else draw(st.integers(1, 7))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))

    def e(*shape):
        return rng.uniform(0.25, 1.0, shape) * rng.choice([-1.0, 1.0], shape)

    if is_merged:
        mask = draw(st.sampled_from([(1, 0, 1), (0, 1, 0), (1, 1, 0), (1, 1, 1)]))
        blocks = [(np.arange(j * m, (j + 1) * m), e(r, d_in), e(m, r), None) for j, on in enumerate(mask) if on]
    else:
        blocks = [(np.arange(d_out), e(r, d_in), e(d_out, r), e(d_out) if draw(st.booleans()) else None)]
    s = draw(st.sampled_from([0.5, 1.5, 3.0 / np.sqrt(r), 7.0 / 3.0]))
    bias = e(d_out) if draw(st.booleans()) else None
    N = draw(st.integers(1, 5))
    return LayerArrays(W=e(d_out, d_in), bias=bias, blocks=blocks, s=float(s)), e(N, d_in), e(N, d_out)


def _frac(a):
    return [[Fraction(float(v)) for v in row] for row in np.atleast_2d(a)]


@settings(max_examples=15)
@given(layers())
def test_layer_reference_equals_exact_rationals(case):
    layer, x, g = case
    ref = layer_reference(layer, x, g)
    X, W, G = _frac(x), _frac(layer.W), _frac(g)
    s = Fraction(layer.s)
    N, d_out, d_in = len(X), len(W), len(W[0])
    Y = [[sum(X[n][i] * W[j][i] for i in range(d_in)) + (Fraction(float(layer.bias[j])) if layer.bias is not None
                                                          else 0) for j in range(d_out)] for n in range(N)]
    dX = [[sum(G[n][j] * W[j][i] for j in range(d_out)) for i in range(d_in)] for n in range(N)]
    for (rows, a, b, bb), got in zip(layer.blocks, ref.blocks):
        A, B = _frac(a), _frac(b)
        r = len(A)
        H = [[sum(X[n][i] * A[k][i] for i in range(d_in)) for k in range(r)] for n in range(N)]
        for n in range(N):
            for t, j in enumerate(rows):
                Y[n][j] += s * (sum(H[n][k] * B[t][k] for k in range(r)) + (Fraction(float(bb[t])) if bb is not None else 0))
        dA = [[s * sum(B[t][k] * G[n][j] * X[n][i] for t, j in enumerate(rows) for n in range(N)) for i in range(d_in)]
              for k in range(r)]
        dB = [[s * sum(G[n][j] * H[n][k] for n in range(N)) for k in range(r)] for j in rows]
        for n in range(N):
            for i in range(d_in):
                dX[n][i] += s * sum(G[n][j] * B[t][k] * A[k][i] for t, j in enumerate(rows) for k in range(r))
        _close(got["dA"], dA)
        _close(got["dB"], dB)
    _close(ref.Y, Y)
    _close(ref.dX, dX)


def _close(got, exact):
    ex = np.array([[float(v) for v in row] for row in exact])  # correctly rounded
    got = np.asarray(got).reshape(ex.shape)
    assert np.all(np.abs(got - ex) <= np.spacing(np.abs(ex))), (got, ex)


def _forward_orders(layer: LayerArrays, x, dt):
    """Unmerged and merged forward evaluated in NumPy dtype ``dt`` on the layer's values."""
    c = lambda a: np.asarray(a, dtype=dt)  # noqa: E731
    X = c(x)
    s = dt(layer.s)
    base = X @ c(layer.W).T
    if layer.bias is not None:
        base = base + c(layer.bias)
    unmerged = base.copy()
    Wm = c(layer.W).copy()
    for rows, a, b, bb in layer.blocks:
        br = (X @ c(a).T) @ c(b).T
        if bb is not None:
            br = br + c(bb)
        unmerged[:, rows] = unmerged[:, rows] + br * s
        Wm[rows] = Wm[rows] + s * (c(b) @ c(a))
    merged = X @ Wm.T
    if layer.bias is not None:
        merged = merged + c(layer.bias)
    for rows, _, _, bb in layer.blocks:
        if bb is not None:
            merged[:, rows] = merged[:, rows] + s * c(bb)
    return unmerged, merged


def _rounded(layer: LayerArrays, x, g, dt):
    """The same layer with every value rounded to ``dt`` (so the reference sees the stored values)."""
    r = lambda a: None if a is None else np.asarray(a, dtype=dt).astype(np.float64)  # noqa: E731
    blocks = [(rows, r(a), r(b), r(bb)) for rows, a, b, bb in layer.blocks]
    return LayerArrays(W=r(layer.W), bias=r(layer.bias), blocks=blocks, s=layer.s), r(x), r(g)


@settings(max_examples=25)
@given(layers(), st.sampled_from([np.float32, np.float16]))
def test_layer_bounds_hold_for_low_precision_evaluations(case, dt):
    layer, x, g = _rounded(*case, dt)
    name = np.dtype(dt).name
    ref = layer_reference(layer, x, g)
    bnd = layer_bounds(layer, x, g, name)
    for y in _forward_orders(layer, x, dt):
        assert np.all(np.abs(y.astype(np.float64) - ref.Y) <= bnd["Y"])
    c = lambda a: np.asarray(a, dtype=dt)  # noqa: E731
    X, G, s = c(x), c(g), dt(layer.s)
    dX = G @ c(layer.W)
    for (rows, a, b, bb), got, bb_ in zip(layer.blocks, ref.blocks, bnd["blocks"]):
        Gg = G[:, rows]
        for dA in ((s * Gg @ c(b)).T @ X, s * (c(b).T @ (Gg.T @ X))):
            assert np.all(np.abs(dA.astype(np.float64) - got["dA"]) <= bb_["dA"])
        for dB in ((s * Gg).T @ (X @ c(a).T), s * ((Gg.T @ X) @ c(a).T)):
            assert np.all(np.abs(dB.astype(np.float64) - got["dB"]) <= bb_["dB"])
        dX = dX + ((s * Gg) @ c(b)) @ c(a)
    assert np.all(np.abs(dX.astype(np.float64) - ref.dX) <= bnd["dX"])
    # not vacuous: the bound is the derived gamma_K times the magnitude, K = d_in + r + 6
    u = unit_roundoff_of(name)
    K = layer.d_in + layer.r + 6
    assert np.all(bnd["Y"] <= gamma(K, u) * bnd["magnitude_Y"] * (1 + 1e-12) + bnd["Y"].min())


@settings(max_examples=25)
@given(layers(merged=st.just(False)), st.sampled_from([np.float32, np.float16]))
def test_roundtrip_bound_holds(case, dt):
    layer, _, _ = _rounded(*case, dt)
    c = lambda a: np.asarray(a, dtype=dt)  # noqa: E731
    s = dt(layer.s)
    W = c(layer.W)
    for rows, a, b, _ in layer.blocks:
        W[rows] = W[rows] + s * (c(b) @ c(a))
    for rows, a, b, _ in layer.blocks:
        W[rows] = W[rows] - (c(b) @ c(a)) * s  # a different association on the way back
    gw, _ = roundtrip_bound(layer, np.dtype(dt).name)
    assert np.all(np.abs(W.astype(np.float64) - layer.W) <= gw)


def test_effective_scale_recovers_s_and_bound_covers_noise():
    rng = np.random.default_rng(5)
    layer = LayerArrays(W=rng.uniform(-1, 1, (4, 5)), bias=None,
                        blocks=[(np.arange(4), rng.uniform(-1, 1, (2, 5)), rng.uniform(-1, 1, (4, 2)), None)], s=1.5)
    x = rng.uniform(-1, 1, (3, 5))
    ref = layer_reference(layer, x)
    assert effective_scale(ref, ref.Y) == pytest.approx(1.5, abs=1e-15)
    noise = np.full_like(ref.Y, 1e-6)
    assert abs(effective_scale(ref, ref.Y + noise) - 1.5) <= scale_bound(noise, ref.Z)
    wrong = layer_reference(LayerArrays(layer.W, None, layer.blocks, 3.0), x)
    assert effective_scale(ref, wrong.Y) == pytest.approx(3.0, abs=1e-14)


@settings(max_examples=12)
@given(problems(max_L=6, max_d=4, max_r=2, dtype="float32"))
def test_attention_bound_holds_for_float32_exact_engine(problem):
    """The running-error bound with u = 2^-24 covers the float32 exact engine vs the mpmath reference."""
    from verified_lora import exact, reference

    got = exact.loss_and_grads(problem)
    ref = reference.to_float(reference.loss_and_grads(problem, dps=40))
    bounds = attention_error_bounds(problem, u=2.0**-24)
    assert abs(float(got.loss) - ref.loss) <= bounds["loss"]
    for key in problem.grad_keys:
        err = np.abs(np.asarray(got.grads[key], dtype=np.float64) - ref.grads[key])
        assert np.all(err <= bounds[key]), (key, float(np.max(err / bounds[key])))
