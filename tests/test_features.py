"""Symmetric-monomial feature maps (issue 4 item 2): identity, layout, backward, bad inputs."""

from __future__ import annotations

import math
from fractions import Fraction

import mpmath
import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from verified_lora import features as F
from verified_lora.errors import InputError
from verified_lora.tolerances import FINITE_DIFFERENCE, gamma

sizes = st.tuples(st.integers(1, 5), st.integers(0, 6))


def _mp_poly_dot(u, v, coeffs, beta):
    """``sum_t a_t (beta <u, v>)^t`` in mpmath from the exact binary values of the inputs."""
    with mpmath.workdps(50):
        s = mpmath.mpf(0)
        for ui, vi in zip(u, v):
            s += mpmath.mpf(float(ui)) * mpmath.mpf(float(vi))
        x = mpmath.mpf(beta) * s
        return sum(mpmath.mpf(c.numerator) / c.denominator * x ** t for t, c in enumerate(coeffs))


@settings(max_examples=40)
@given(sizes, st.integers(0, 2**32 - 1), st.sampled_from([1.0, 0.5, -0.75]))
@example((1, 0), 0, 1.0)
@example((5, 6), 1, -0.75)
def test_identity_against_mpmath(dg, seed, beta):
    """``phi_U(u) . phi_V(v) = P(beta <u, v>)`` within the dot product's rounding bound."""
    d, g = dg
    rng = np.random.default_rng(seed)
    coeffs = [Fraction(int(rng.integers(-7, 8)), int(rng.integers(1, 9))) for _ in range(g + 1)]
    u = rng.standard_normal((4, d))
    v = rng.standard_normal((3, d))
    A = F.phi_u(u, coeffs, beta) @ F.phi_v(v, g).T
    # forward error: the k-term sum of weighted monomial products (each <= 2g + 2 roundings, the
    # weight one more) is within gamma_{k + 2g + 3} of the same sum over absolute values
    k = F.rank(d, g)
    abs_coeffs = [abs(c) for c in coeffs]
    A_abs = F.phi_u(np.abs(u), abs_coeffs, abs(beta)) @ F.phi_v(np.abs(v), g).T
    for i in range(4):
        for j in range(3):
            ref = _mp_poly_dot(u[i], v[j], coeffs, beta)
            assert abs(float(A[i, j] - ref)) <= gamma(k + 2 * g + 3) * A_abs[i, j] + 1e-300


@pytest.mark.parametrize("d,g", [(1, 0), (1, 5), (2, 3), (3, 4), (4, 2), (8, 3)])
def test_layout_is_all_monomials_once(d, g):
    lay = F.feature_layout(d, g)
    e = lay.exponents()
    assert lay.k == math.comb(d + g, g) == F.rank(d, g)
    assert e.shape == (lay.k, d)
    assert len({tuple(r) for r in e.tolist()}) == lay.k
    assert e.sum(axis=1).max() == g
    # degrees are stored in increasing blocks; degree <= g-1 is a prefix of length C(d+g-1, g-1)
    assert list(lay.degrees()) == sorted(lay.degrees())
    if g >= 1:
        assert (lay.degrees()[: math.comb(d + g - 1, g - 1)] <= g - 1).all()
    # construction steps are contiguous slices that read only already-written columns
    written = {0}
    for (_t, i, dst0, dst1, src0, src1) in lay.steps:
        assert dst1 - dst0 == src1 - src0 and all(c in written for c in range(src0, src1))
        written.update(range(dst0, dst1))
    assert written == set(range(lay.k))


def test_rank_versus_paper_bound():
    assert F.rank(8, 8) == 12870
    assert F.paper_rank_bound(8, 8) == math.comb(32, 16)
    assert F.paper_rank_bound(16, 3) / F.rank(16, 3) > 1e3


def test_monomials_match_exponent_table():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((5, 3))
    M = F.monomials(x, 4)
    e = F.feature_layout(3, 4).exponents()
    ref = np.prod(x[:, None, :] ** e[None, :, :], axis=2)
    assert np.allclose(M, ref, rtol=gamma(8), atol=0)


def test_multinomial_weights_exact():
    w = F.query_weights([Fraction(1), Fraction(1, 2), Fraction(1, 3)], Fraction(2), 2, exact=True)
    e = F.feature_layout(2, 2).exponents().tolist()
    expected = {(0, 0): 1, (1, 0): 1, (0, 1): 1, (2, 0): Fraction(4, 3), (1, 1): Fraction(8, 3), (0, 2): Fraction(4, 3)}
    assert {tuple(r): wi for r, wi in zip(e, w)} == expected


def _mp_monomials(x, exps, dps):
    with mpmath.workdps(dps):
        return [[mpmath.fprod([mpmath.mpf(float(xi)) ** int(ei) for xi, ei in zip(row, ex)]) for ex in exps]
                for row in x]


@settings(max_examples=25)
@given(st.tuples(st.integers(1, 4), st.integers(1, 5)), st.integers(0, 2**32 - 1))
@example((1, 1), 0)
def test_monomial_vjp_dot_product(dg, seed):
    """``<J t, c> = <t, J^T c>`` with ``J t`` from mpmath central differences (60 digits)."""
    d, g = dg
    rng = np.random.default_rng(seed)
    n = 3
    x = rng.standard_normal((n, d))
    t = rng.standard_normal((n, d))
    k = F.rank(d, g)
    c = rng.standard_normal((n, k))
    exps = F.feature_layout(d, g).exponents().tolist()
    dps, h = FINITE_DIFFERENCE["dps"], mpmath.mpf(FINITE_DIFFERENCE["step"])
    with mpmath.workdps(dps):
        xp_ = [[mpmath.mpf(float(a)) + h * mpmath.mpf(float(b)) for a, b in zip(r, s)] for r, s in zip(x, t)]
        xm_ = [[mpmath.mpf(float(a)) - h * mpmath.mpf(float(b)) for a, b in zip(r, s)] for r, s in zip(x, t)]
        Mp = [[mpmath.fprod([xi ** int(ei) for xi, ei in zip(row, ex)]) for ex in exps] for row in xp_]
        Mm = [[mpmath.fprod([xi ** int(ei) for xi, ei in zip(row, ex)]) for ex in exps] for row in xm_]
        lhs = mpmath.fsum((Mp[i][m] - Mm[i][m]) / (2 * h) * mpmath.mpf(float(c[i, m])) for i in range(n)
                          for m in range(k))
    grad = F.monomials_vjp(x, F.monomials(x, g), c)
    rhs = float((grad * t).sum())
    # rounding: the reverse sweep is a chain of <= k + 2g roundings per entry; bound by the same
    # computation on absolute values
    abs_grad = F.monomials_vjp(np.abs(x), F.monomials(np.abs(x), g), np.abs(c))
    tol = gamma(k + 2 * g + 2 + d) * float((abs_grad * np.abs(t)).sum())
    assert abs(float(lhs) - rhs) <= tol + 1e-300


@settings(max_examples=20)
@given(st.tuples(st.integers(1, 4), st.integers(0, 5)), st.integers(0, 2**32 - 1), st.sampled_from([1.0, -0.6]))
def test_phi_vjps_dot_product(dg, seed, beta):
    """Backward of ``phi_U`` (weights included) and ``phi_V`` against mpmath central differences."""
    d, g = dg
    rng = np.random.default_rng(seed)
    coeffs = [Fraction(1, math.factorial(t)) for t in range(g + 1)]
    u = rng.standard_normal((2, d))
    t = rng.standard_normal((2, d))
    k = F.rank(d, g)
    c = rng.standard_normal((2, k))
    w = F.query_weights(coeffs, Fraction(beta), d, exact=True)
    exps = F.feature_layout(d, g).exponents().tolist()
    dps, h = FINITE_DIFFERENCE["dps"], mpmath.mpf(FINITE_DIFFERENCE["step"])
    with mpmath.workdps(dps):
        def phi(rows, weighted):
            out = []
            for row in rows:
                mono = [mpmath.fprod([xi ** int(ei) for xi, ei in zip(row, ex)]) for ex in exps]
                out.append([mpmath.mpf(wi.numerator) / wi.denominator * m for wi, m in zip(w, mono)] if weighted
                           else mono)
            return out

        def jt(weighted):
            plus = [[mpmath.mpf(float(a)) + h * mpmath.mpf(float(b)) for a, b in zip(r, s)] for r, s in zip(u, t)]
            minus = [[mpmath.mpf(float(a)) - h * mpmath.mpf(float(b)) for a, b in zip(r, s)] for r, s in zip(u, t)]
            Pp, Pm = phi(plus, weighted), phi(minus, weighted)
            return float(mpmath.fsum((Pp[i][m] - Pm[i][m]) / (2 * h) * mpmath.mpf(float(c[i, m]))
                                     for i in range(2) for m in range(k)))

        lhs_u, lhs_v = jt(True), jt(False)
    gu = F.phi_u_vjp(u, coeffs, beta, c)
    gv = F.phi_v_vjp(u, c)
    wabs = np.abs(F.query_weights(coeffs, beta, d))
    abs_u = F.monomials_vjp(np.abs(u), F.monomials(np.abs(u), g), np.abs(c) * wabs)
    abs_v = F.monomials_vjp(np.abs(u), F.monomials(np.abs(u), g), np.abs(c))
    n_ops = k + 2 * g + 3 + d
    assert abs(lhs_u - float((gu * t).sum())) <= gamma(n_ops) * float((abs_u * np.abs(t)).sum()) + 1e-300
    assert abs(lhs_v - float((gv * t).sum())) <= gamma(n_ops) * float((abs_v * np.abs(t)).sum()) + 1e-300


@settings(max_examples=20)
@given(st.tuples(st.integers(1, 5), st.integers(1, 5)), st.integers(1, 4), st.integers(0, 2**32 - 1))
def test_lowrank_vjp_equals_reverse_sweep(dg, a, seed):
    """The GEMM-form VJP for gradients ``Y C^T`` equals the reverse sweep (two algorithms)."""
    d, g = dg
    rng = np.random.default_rng(seed)
    n, k = 6, F.rank(d, g)
    x = rng.standard_normal((n, d))
    C = rng.standard_normal((k, a))
    Y = rng.standard_normal((n, a))
    ref = F.monomials_vjp(x, F.monomials(x, g), Y @ C.T)
    got = F.lowrank_vjp_t(F.monomials_t(np.ascontiguousarray(x.T), g), F.derivative_coefficients(C, d, g), Y)
    scale = F.monomials_vjp(np.abs(x), F.monomials(np.abs(x), g), np.abs(Y) @ np.abs(C).T)
    assert (np.abs(got - ref) <= 2 * gamma(k + 2 * g + a + 2) * scale + 1e-300).all()


def test_bad_inputs_are_named():
    x = np.ones((3, 2))
    with pytest.raises(InputError, match="^g:"):
        F.monomials(x, -1)
    with pytest.raises(InputError, match="^d:"):
        F.rank(0, 2)
    with pytest.raises(InputError, match="^x:"):
        F.monomials(np.ones(3), 2)
    with pytest.raises(InputError, match="^x:"):
        F.monomials(np.ones((3, 2), dtype=np.int64), 2)
    with pytest.raises(InputError, match="^coefficients:"):
        F.phi_u(x, [], 1.0)
    with pytest.raises(InputError, match="^mono:"):
        F.monomials_vjp(x, np.ones((3, 7)), np.ones((3, 7)))
    with pytest.raises(InputError, match="^out:"):
        F.monomials_t(x.T.copy(), 2, out=np.empty((5, 3)))
    with pytest.raises(InputError, match="^g:"):
        F.rank(2, True)


@pytest.mark.parametrize("d, g, beta", [(8, 10, Fraction(1)), (3, 7, Fraction(-7, 5)), (5, 4, Fraction(1, 3))])
def test_float_query_weights_are_the_exact_weights_rounded_once(d, g, beta):
    """The float weights (computed with integer division per distinct (degree, multinomial)) must be
    exactly float(Fraction) of the exact weights, entry by entry."""
    from verified_lora.approx.polynomials import make_polynomial

    coeffs = list(make_polynomial("minimax", g, Fraction(3, 2)).coeffs)
    from verified_lora.features import maps

    maps._float_weights.cache_clear()
    got = F.query_weights(coeffs, beta, d)
    want = np.array([float(Fraction(x)) for x in F.query_weights(coeffs, beta, d, exact=True)])
    assert got.dtype == np.float64 and got.shape == want.shape
    assert np.array_equal(got, want)


@pytest.mark.parametrize("d,g,chunk", [(1, 0, 1), (2, 3, 1), (3, 4, 4), (4, 5, 7), (8, 3, 64)])
def test_monomials_built_in_chunks_are_the_same_floats(d, g, chunk):
    """``monomials_t_chunks`` yields each chunk once, in order, and fills exactly the floats of
    ``monomials_t`` (the same products); rows of a chunk are final when it is yielded."""
    from verified_lora.features.maps import monomials_t_chunks

    xT = np.random.default_rng(d * 10 + g).standard_normal((d, 5))
    whole = F.monomials_t(xT, g)
    k = whole.shape[0]
    kp = math.comb(d + g - 1, g - 1) if g else 0
    cuts = sorted(set(list(range(0, kp, chunk)) + list(range(kp, k, chunk)) + [kp, k]))
    out = np.full_like(whole, np.nan)
    seen = []
    for c0, c1 in monomials_t_chunks(xT, g, cuts, out):
        assert np.array_equal(out[:c1], whole[:c1])   # this chunk and all before it are complete
        seen.append((c0, c1))
    assert seen == list(zip(cuts[:-1], cuts[1:]))
    assert np.array_equal(out, whole)


def test_monomial_chunks_refuse_bad_cuts():
    from verified_lora.features.maps import monomials_t_chunks

    xT = np.ones((2, 3))
    k = F.monomials_t(xT, 2).shape[0]
    for cuts in ([0, 3], [1, k], [0, 4, 4, k]):
        with pytest.raises(InputError, match="cuts"):
            monomials_t_chunks(xT, 2, cuts, np.empty((k, 3)))
    with pytest.raises(InputError, match="out"):
        monomials_t_chunks(xT, 2, [0, k], np.empty((k + 1, 3)))
