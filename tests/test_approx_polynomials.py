"""Polynomial families, certificates, min_degree, the Taylor bound and the Aggarwal-Alman fit.

Independent references: dense 60-digit mpmath sampling of ``|P(x) e^{-x} - 1|`` (written here,
sharing no code with the branch-and-bound), SymPy exact root counting, exact Fraction algebra.
"""

from __future__ import annotations

import math
import sys
from fractions import Fraction

import mpmath
import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from verified_lora.approx import aggarwal_alman as aa
from verified_lora.approx.certify import certify_relative_error
from verified_lora.approx.lower_bounds import (alternation_lower_bound, any_polynomial_lower_bound,
                                               divided_difference_lower_bound, relative_error_lower_bound)
from verified_lora.approx.degree import (best_polynomial, certified_on_grid, degree_table, grid_radius,
                                         min_degree)
from verified_lora.approx.polynomials import (FAMILIES, MAX_DEGREE, Polynomial, chebyshev, make_polynomial,
                                              minimax, minimax_reference, taylor, taylor_even,
                                              working_precision)
from verified_lora.approx.remainder import derive_taylor_relative_bound, taylor_remainder_bound
from verified_lora.errors import CertificationError, InputError
from verified_lora.numerics.rounding import fraction_to_float_up
from verified_lora.testing.sampling import sampled_max

flint = pytest.importorskip("flint")  # the 'rigorous' extra; the mpmath backend is tested too


# sampled_max (verified_lora.testing.sampling): dense 60-digit sampling of max |P(x) e^{-x} - 1|, a lower estimate.
CASES = [(0.5, 6), (1, 9), (2, 12), (4, 16), (8, 24), (16, 36)]  # R = 16: the Taylor-shift remainder path


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("R,g", CASES)
def test_certified_matches_dense_sampling(family, R, g):
    g = g + (g % 2) if family == "taylor_even" else g
    p = make_polynomial(family, g, R)
    cert = certify_relative_error(p, R).value
    s = sampled_max(p, R)
    assert s <= cert, (family, R, g, float(s), cert)
    assert cert <= 1.01 * s + 1e-30, (family, R, g, float(s), cert)


@settings(max_examples=12)
@given(st.sampled_from(FAMILIES), st.fractions(Fraction(1, 10), Fraction(6)), st.integers(0, 7))
@example("minimax", Fraction(6), 7)
@example("taylor_even", Fraction(1, 10), 0)
def test_certified_matches_sampling_random_cases(family, R, m):
    g = 2 * m if family == "taylor_even" else 2 * m + (m % 2)
    p = make_polynomial(family, g, R)
    cert = certify_relative_error(p, R).value
    s = sampled_max(p, R, n=300)
    assert s <= cert <= 1.01 * s + 1e-30


@settings(max_examples=12)
@given(st.lists(st.fractions(Fraction(-3), Fraction(3), max_denominator=50), min_size=1, max_size=7),
       st.fractions(Fraction(1, 4), Fraction(3), max_denominator=16))
@example([Fraction(0)], Fraction(1))
@example([Fraction(1), Fraction(-1)], Fraction(2))
def test_certifier_works_for_arbitrary_rational_polynomials(coeffs, R):
    # not an approximation of exp at all: errors of order 1..e^R, sign changes, zeros of P
    p = Polynomial("taylor", len(coeffs) - 1, Fraction(R), tuple(coeffs))
    cert = certify_relative_error(p, R).value
    s = sampled_max(p, R, n=300)
    assert s <= cert <= 1.01 * s + 1e-30


@pytest.mark.parametrize("family", ["taylor", "chebyshev", "minimax"])
@pytest.mark.parametrize("R,g", [(1, 9), (4, 16)])
def test_derivative_certified_matches_sampling(family, R, g):
    p = make_polynomial(family, g, R)
    cert = certify_relative_error(p.derivative(), R).value
    s = sampled_max(p.derivative(), R)
    assert s <= cert <= 1.01 * s + 1e-30, (family, R, g, float(s), cert)


@pytest.mark.parametrize("family,g,R", [("minimax", 7, 1), ("chebyshev", 10, 2), ("taylor", 12, "1/3"),
                                        ("minimax", 9, 3), ("minimax", 14, 12)])
def test_backends_agree(family, g, R):
    p = make_polynomial(family, g, R)
    for poly in (p, p.derivative()):
        cf = certify_relative_error(poly, backend="arb")
        cm = certify_relative_error(poly, backend="iv")
        assert (cf.backend, cm.backend) == ("arb", "iv")
        # each is a proof, so the brackets must intersect, and both are tight
        assert cf.lower <= cm.upper and cm.lower <= cf.upper
        assert abs(cf.value / cm.value - 1) < 3e-3


def test_certificate_brackets_are_consistent():
    c = certify_relative_error(minimax(12, 2))
    assert c.lower <= c.upper <= c.lower * (1 + Fraction(2, 1000))
    assert c.value >= float(c.upper) and c.lower_value <= float(c.lower)
    assert -2 <= c.argmax <= 2
    # the certificate on a smaller interval is no larger
    assert certify_relative_error(minimax(12, 2), 1).value <= c.value


@pytest.mark.parametrize("R", [200, 1000, 10 ** 4])
def test_huge_radius_errors_do_not_overflow(R):
    """Regression: errors like e^{10^4} exceed the float range; they are certified as inf, never raise."""
    p = taylor(3, R)
    lo = relative_error_lower_bound(p)  # exact; was an OverflowError in the precision choice
    c = certify_relative_error(p)  # the heap order must stay exact when every bound is beyond floats
    # independent value: the maximum is at x = -R where T_3(-R) < 0, so it is |T_3(-R)| e^R + 1, enclosed by mpmath.iv with
    # more digits than the certifier used (it works with ~2R log2(e) bits)
    iv = mpmath.iv
    saved, iv.dps = iv.dps, int(R * 0.9) + 120
    try:
        def enc(q: Fraction):
            return iv.mpf(q.numerator) / q.denominator
        true = (iv.mpf(R) ** 3 / 6 - iv.mpf(R) ** 2 / 2 + R - 1) * iv.exp(iv.mpf(R)) + 1
        assert enc(lo).a <= true.b and enc(c.lower).a <= true.b and true.a <= enc(c.upper).b
    finally:
        iv.dps = saved
    assert c.upper <= c.lower * (1 + Fraction(2, 1000))
    if R >= 1000:
        assert c.value == math.inf and c.lower_value == sys.float_info.max
    assert fraction_to_float_up(Fraction(10) ** 400) == math.inf
    assert fraction_to_float_up(-Fraction(10) ** 400) < -1e308


def test_minimax_on_a_huge_interval_builds():
    """Regression: the Remez stopping test compared huge fixed-point errors in floats (OverflowError)."""
    p = minimax(3, 200)
    assert p.degree == 3
    assert certify_relative_error(p).upper > 1  # degree 3 is hopeless on [-200, 200]


@pytest.mark.parametrize("family,R,g", [("minimax", 2, 1), ("minimax", 8, 1), ("minimax", 8, 4), ("minimax", 20, 8),
                                        ("minimax", 16, 12), ("chebyshev", 20, 4), ("taylor", 8, 6),
                                        ("minimax", 1, 8), ("minimax", 0.5, 6), ("minimax", 4, 10),
                                        ("chebyshev", 1, 9), ("taylor_even", 2, 8)])
def test_any_polynomial_lower_bound_is_below_certified_errors(family, R, g):
    """The bound holds for every polynomial of degree <= g: the minimax one (the best, so this is the
    tight case) included, lower degrees and derivatives too; checked against the certified upper bounds
    of the approx layer (independent code: interval branch-and-bound on the polynomial itself)."""
    lb = any_polynomial_lower_bound(g, R)
    assert 0 <= lb <= 1
    for h in range(1, g + 1):
        if family == "taylor_even" and h % 2:
            continue
        p = make_polynomial(family, h, R)
        assert lb <= certify_relative_error(p).upper
        if h >= 2:
            assert lb <= certify_relative_error(p.derivative(), R).upper


@pytest.mark.parametrize("R,g,factor", [(1, 8, 2), (2, 6, 2), (4, 10, 8), (8, 12, 64)])
def test_divided_difference_bound_is_nearly_the_minimax_error(R, g, factor):
    """Valid, and tight for small R: below the certified error of the minimax polynomial, within the
    measured factor of it (1.2, 1.8, 6, 48: the Chebyshev extrema drift from the alternation points of
    the relative minimax as R grows; a looser bound only makes the planner certify more degrees)."""
    lb = divided_difference_lower_bound(g, R)
    c = certify_relative_error(minimax(g, R))
    assert c.upper / factor <= lb <= c.upper
    assert divided_difference_lower_bound(g, R, backend="iv") <= c.upper


def test_any_polynomial_lower_bound_decides_huge_radii():
    """R >> degree: every polynomial is off by a relative error 1 - O(e^{-R}); exact and quick."""
    assert any_polynomial_lower_bound(40, 200) > 1 - Fraction(1, 10 ** 20)
    assert any_polynomial_lower_bound(40, 10 ** 4) > 1 - Fraction(1, 10 ** 1000)
    # against an mpmath evaluation of the best polynomial's error lower bound at R = 8, g = 2:
    # minimax error on [-8, 8] at degree 2 is 0.99983 (certified above); the bound is below it
    assert Fraction(9985, 10000) < any_polynomial_lower_bound(2, 8) < Fraction(99983, 100000)
    with pytest.raises(InputError):
        any_polynomial_lower_bound(-1, 1)


# ----------------------------------------------------------------------------- families
def test_polynomial_type_and_evaluation():
    p = chebyshev(8, 2)
    assert all(isinstance(c, Fraction) for c in p.coeffs) and len(p.coeffs) == 9
    x = np.linspace(-2, 2, 17)
    exact = np.array([float(p.exact(Fraction(float(v)))) for v in x])
    # float Horner vs exact: |fl(P(x)) - P(x)| <= gamma_{2g} sum|a_t||x|^t (Higham 5.3)
    u = 2.0 ** -53
    gam = 2 * 8 * u / (1 - 2 * 8 * u)
    assert np.all(np.abs(p(x) - exact) <= gam * float(p.abs_sum(2)) + 1e-300)
    assert p.as_float().dtype == np.float64
    d = p.derivative()
    assert d.degree == 7 and d.derivative_order == 1
    assert d.coeffs == tuple(t * c for t, c in enumerate(p.coeffs) if t)
    import sympy as sp

    xs = sp.Symbol("x")
    assert sp.expand(sp.diff(p.as_sympy(xs), xs) - d.as_sympy(xs)) == 0
    assert taylor(0, 1).derivative().coeffs == (Fraction(0),)
    assert Polynomial.__hash__ is not None and hash(taylor(3, 1)) == hash(taylor(3, 1))


def test_taylor_coefficients_are_exact_reciprocal_factorials():
    assert taylor(6, 1).coeffs == tuple(Fraction(1, math.factorial(t)) for t in range(7))


def test_chebyshev_interpolates_at_chebyshev_nodes():
    g, R = 11, Fraction(3, 2)
    p = chebyshev(g, R)
    # The Chebyshev coefficients are computed at working precision p_w (sums of g+1 terms of
    # size <= e^R, so absolute error <= (g+1) 2^-p_w e^R each) and then converted exactly, so
    # the interpolation identity holds up to (g+1)^2 2^-p_w e^{2R} relatively -- far below the
    # approximation error itself (~1e-10 here), which is what makes this a test of interpolation.
    tol = (g + 1) ** 2 * 2.0 ** -working_precision(R, g) * math.exp(3)
    assert tol < 1e-25
    with mpmath.workdps(80):
        cs = [mpmath.mpf(c.numerator) / c.denominator for c in reversed(p.coeffs)]
        for j in range(g + 1):
            x = mpmath.mpf(3) / 2 * mpmath.cos(mpmath.pi * (2 * j + 1) / (2 * g + 2))
            assert abs(mpmath.polyval(cs, x) / mpmath.exp(x) - 1) < tol
        mid = mpmath.mpf(3) / 2 * mpmath.cos(mpmath.pi * 2 / (2 * g + 2))  # between nodes
        assert abs(mpmath.polyval(cs, mid) / mpmath.exp(mid) - 1) > 1e6 * tol


def test_minimax_equioscillates_and_beats_chebyshev():
    g, R = 10, 2
    p = minimax(g, R)
    ref = minimax_reference(g, R)
    assert len(ref) == g + 2 and list(ref) == sorted(ref)
    with mpmath.workdps(60):
        cs = [mpmath.mpf(c.numerator) / c.denominator for c in reversed(p.coeffs)]
        errs = [mpmath.polyval(cs, mpmath.mpf(x.numerator) / x.denominator) * mpmath.exp(
            -mpmath.mpf(x.numerator) / x.denominator) - 1 for x in ref]
    signs = [1 if e > 0 else -1 for e in errs]
    assert all(a == -b for a, b in zip(signs, signs[1:]))
    mags = [abs(e) for e in errs]
    assert max(mags) / min(mags) - 1 < 1e-5
    assert sampled_max(p, R) < sampled_max(chebyshev(g, R), R)


def test_alternation_bound_holds_for_other_polynomials():
    # de la Vallee Poussin: no polynomial of degree <= g has smaller error than the bound
    g, R = 9, 2
    lb_q = alternation_lower_bound(minimax(g, R), minimax_reference(g, R))
    assert lb_q > 0
    with mpmath.workdps(60):
        lb = mpmath.mpf(lb_q.numerator) / lb_q.denominator
    for q in (chebyshev(g, R), taylor(g, R), chebyshev(g - 3, R), minimax(g - 1, R)):
        assert sampled_max(q, R, n=600) >= lb
    # and it is tight: the minimax polynomial itself is within 1e-5 of it
    assert sampled_max(minimax(g, R), R, n=600) <= lb * (1 + mpmath.mpf(10) ** -5)


@pytest.mark.parametrize("g", [2, 4, 6, 8, 10, 14, 20])
def test_taylor_even_is_positive_everywhere(g):
    import sympy as sp

    x = sp.Symbol("x")
    poly = sp.Poly(taylor_even(g, 1).as_sympy(x), x)
    assert poly.count_roots() == 0 and poly.eval(0) == 1  # Sturm: no real root, positive at 0


def test_odd_taylor_is_not_positive():
    import sympy as sp

    x = sp.Symbol("x")
    assert sp.Poly(taylor(5, 1).as_sympy(x), x).count_roots() == 1


@settings(max_examples=40)
@given(st.integers(1, 15), st.floats(-200, 200, allow_nan=False))
@example(1, -2.0)
def test_taylor_even_positive_at_points(m, x):
    assert taylor_even(2 * m, 1).exact(x) > 0


# ----------------------------------------------------------------------------- min_degree
MIN_DEGREE_CASES = [(f, R, eps) for f in FAMILIES for (R, eps) in [(1, 1e-6), (4, 1e-9), (0.5, 1e-12)]]


@pytest.mark.parametrize("family,R,eps", MIN_DEGREE_CASES)
def test_min_degree_is_minimal(family, R, eps):
    g = min_degree(R, eps, family)
    step = 2 if family == "taylor_even" else 1
    assert certify_relative_error(make_polynomial(family, g, R), R).value <= eps
    assert certify_relative_error(make_polynomial(family, g - step, R), R).value > eps
    assert sampled_max(make_polynomial(family, g, R), R, n=500) <= eps
    poly, cert = best_polynomial(R, eps, family)
    assert poly.degree == g and cert <= eps


@pytest.mark.parametrize("family", ["taylor", "chebyshev", "minimax"])
def test_min_degree_with_derivative(family):
    R, eps = 2, 1e-8
    c = certified_on_grid(R, eps, family, derivative=True)
    g = c.degree
    assert c.R == 2 and c.derivative_certificate is not None
    p = make_polynomial(family, g, R)
    assert c.certified <= eps and c.derivative_certified() <= eps
    assert sampled_max(p.derivative(), R, n=400) <= eps
    below = make_polynomial(family, g - 1, R)
    assert max(certify_relative_error(below, R).value, certify_relative_error(below.derivative(), R).value) > eps
    assert g >= min_degree(R, eps, family)


def test_min_degree_orders_families():
    # minimax is optimal among degree-g polynomials, so it never needs more than another family
    for R, eps in [(2, 1e-6), (8, 1e-9)]:
        gm = min_degree(R, eps, "minimax")
        assert gm <= min_degree(R, eps, "chebyshev") <= min_degree(R, eps, "taylor") <= \
            min_degree(R, eps, "taylor_even")


def test_min_degree_lower_degrees_all_fail():
    R, eps = 2, 1e-9
    g = min_degree(R, eps, "chebyshev")
    for h in range(g):
        assert relative_error_lower_bound(chebyshev(h, R), R) > eps or \
            certify_relative_error(chebyshev(h, R), R).value > eps


@settings(max_examples=30)
@given(st.fractions(Fraction(1, 1000), Fraction(10 ** 4)))
@example(Fraction(1))
@example(Fraction(9, 8))
@example(Fraction(17, 16))
def test_grid_radius_rounds_up_within_an_eighth(R):
    G = grid_radius(R)
    assert R <= G < Fraction(9, 8) * R
    assert grid_radius(G) == G


def test_certified_on_grid_is_valid_and_cached():
    c = certified_on_grid(3.1, 1e-8, "minimax")
    assert c.R == grid_radius(3.1) >= Fraction(3.1)
    assert c.certified <= 1e-8 and c.degree >= min_degree(3.1, 1e-8, "minimax")
    assert c.below_lower is not None and c.below_lower > Fraction(1e-8)
    tbl = degree_table("minimax", c.R)
    assert degree_table("minimax", grid_radius(3.05)) is tbl  # same grid cell, same memo
    before = dict(tbl._cert)
    c2 = certified_on_grid(3.05, 2e-8, "minimax")  # new eps: answered from the memo
    assert c2.degree <= c.degree and dict(tbl._cert).keys() >= before.keys()


def test_impossible_requests_raise_certification_error():
    with pytest.raises(CertificationError, match="shrink"):
        min_degree(1000, 1e-12, "minimax")
    with pytest.raises(CertificationError, match="degree"):
        min_degree(70, 1e-14, "taylor")


# ----------------------------------------------------------------------------- Taylor bound
@pytest.mark.parametrize("R,g", [(0.5, 4), (1, 10), (2, 14), (4, 25), (8, 44)])
def test_taylor_lagrange_bound_dominates_certified(R, g):
    bound = taylor_remainder_bound(R, g)
    cert = certify_relative_error(taylor(g, R), R).value
    assert cert <= bound
    # and it is nearly tight: at x = -R the Taylor tail alternates with decreasing terms
    # (R < g + 2), so the true error is >= (1 - R/(g+2)) times the bound
    assert bound * (1 - R / (g + 2)) <= cert
    with mpmath.workdps(50):  # the closed form, evaluated independently
        ref = mpmath.exp(R) * mpmath.mpf(R) ** (g + 1) / mpmath.factorial(g + 1)
        assert ref <= bound <= ref * (1 + mpmath.mpf(2) ** -50)


def test_taylor_bound_derivation_steps():
    import sympy as sp

    bound, (R, g), steps = derive_taylor_relative_bound()
    assert sp.simplify(bound - sp.exp(R) * R ** (g + 1) / sp.factorial(g + 1)) == 0
    # independent check of the Lagrange step via the integral remainder for small degrees:
    x, t = sp.symbols("x t", real=True)
    for gg in range(4):
        integral = sp.integrate(sp.exp(t) * (x - t) ** gg / sp.factorial(gg), (t, 0, x))
        taylor_poly = sum(x ** k / sp.factorial(k) for k in range(gg + 1))
        assert sp.simplify(sp.exp(x) - taylor_poly - integral) == 0


# ----------------------------------------------------------------------------- Aggarwal-Alman
def test_aa_fit_recovers_known_constants():
    samples, truth = [], (1.3, 0.9, 0.5)
    for R in (0.5, 1, 2, 4, 8, 16):
        for eps in (1e-3, 1e-6, 1e-9, 1e-12, 1e-15):
            tb, tl = aa.aggarwal_alman_terms(R, eps)
            samples.append((R, eps, truth[2] + max(truth[0] * tb, truth[1] * tl)))
    # degrees must be integers for validation; fit the exact real-valued model through the core
    data = np.array([(*aa.aggarwal_alman_terms(R, e), g) for R, e, g in samples])
    sse, cb, cl, c0 = aa._refine(1.0, 1.0, 0.0, data[:, 0], data[:, 1], data[:, 2], True)
    assert sse < 1e-16 and abs(cb - 1.3) < 1e-9 and abs(cl - 0.9) < 1e-9 and abs(c0 - 0.5) < 1e-9
    ints = [(R, e, int(round(g))) for R, e, g in samples]
    fit = aa.fit_aggarwal_alman(ints)
    assert abs(fit.c_B - 1.3) < 0.1 and abs(fit.c_L - 0.9) < 0.1 and fit.max_abs_residual <= 1.0


def test_aa_fit_on_certified_degrees():
    samples = aa.min_degree_samples([0.5, 1, 2, 4], [1e-3, 1e-6, 1e-9], "minimax")
    fit = aa.fit_aggarwal_alman(samples, family="minimax")
    assert fit.n == 12 and fit.c_B > 0 and fit.c_L > 0 and fit.r2 > 0.8
    assert abs(fit.predict(2, 1e-6) - min_degree(2, 1e-6)) < 3 * fit.rmse + 1


def test_aa_terms_mapping():
    tb, tl = aa.aggarwal_alman_terms(2, math.exp(-40))
    assert tb == 4 and math.isclose(tl, 40 / math.log(10))
    tb, tl = aa.aggarwal_alman_terms(8, 1e-3)  # L/B < e: log clamped at 1
    assert tb == 16 and math.isclose(tl, math.log(1e3))


# ----------------------------------------------------------------------------- bad inputs
@pytest.mark.parametrize("R", [0, -1, float("nan"), float("inf"), True, None, "abc", 1j])
def test_bad_radius(R):
    with pytest.raises(InputError) as ei:
        min_degree(R, 1e-6, "taylor")
    assert ei.value.field == "R"


@pytest.mark.parametrize("eps", [0, 1, -1e-3, 2, float("nan"), float("inf"), None])
def test_bad_eps(eps):
    with pytest.raises(InputError) as ei:
        min_degree(1, eps, "taylor")
    assert ei.value.field == "eps"


@pytest.mark.parametrize("family", ["Taylor", "remez", "", None, 3])
def test_bad_family(family):
    with pytest.raises(InputError) as ei:
        min_degree(1, 1e-6, family)
    assert ei.value.field == "family"


@pytest.mark.parametrize("degree,family", [(-1, "taylor"), (1.5, "taylor"), (True, "minimax"),
                                           (3, "taylor_even"), (MAX_DEGREE + 1, "chebyshev"), ("4", "taylor")])
def test_bad_degree(degree, family):
    with pytest.raises(InputError) as ei:
        make_polynomial(family, degree, 1)
    assert ei.value.field == "degree"


def test_bad_certify_arguments():
    with pytest.raises(InputError) as ei:
        certify_relative_error([1, 1, 0.5], 1)
    assert ei.value.field == "poly"
    with pytest.raises(InputError) as ei:
        certify_relative_error(taylor(3, 1), -2)
    assert ei.value.field == "R"
    with pytest.raises(InputError) as ei:
        certify_relative_error(taylor(3, 1), backend="ball")
    assert ei.value.field == "backend"
    with pytest.raises(InputError) as ei:
        aa.fit_aggarwal_alman([(1, 1e-3, 4)])
    assert ei.value.field == "samples"
    with pytest.raises(InputError) as ei:
        aa.fit_aggarwal_alman([(1, 1e-3, 4), (2, 1e-3, 6), (0, 1e-3, 6)])
    assert ei.value.field == "samples[2].R"
