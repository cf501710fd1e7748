"""The mpmath reference and its interval enclosures (issue 2, items 5 and 6).

* the reference lies inside its enclosures, whose widths are tiny (both interval backends);
* an independent finite-difference check in mpmath at 60 digits: the loss is re-implemented here
  with ``mpmath.matrix`` straight from the definition and differentiated numerically;
* exact rational cases (uniform or single-key attention) checked with ``fractions.Fraction``;
* conversions, precision scoping and argument checking.
"""

from __future__ import annotations

from fractions import Fraction

import mpmath
import numpy as np
import pytest
from hypothesis import example, given, settings

from verified_lora.testing.strategies import problems
from verified_lora import Adapter, InputError, LoraAttention, exact, reference
from verified_lora.examples import default_problem, random_problem
from verified_lora.tolerances import (EXACT_VS_REFERENCE, FINITE_DIFFERENCE, enclosure_relative_width,
                                      max_relative_error, reference_relative_error)

ENCLOSE_DPS = 30
SATURATED = random_problem(3, scale=1.2, beta=2.5, L_k=9)  # score gaps of several hundred


def _quantities(result):
    out = {"loss": np.asarray([result.loss], dtype=object)}
    out.update(result.grads)
    out.update({f"W_{k}": v for k, v in result.weight_grads.items()})
    return out


# ---------------------------------------------------------------------------- independent loss
def _mp_matrix(a) -> mpmath.matrix:
    return mpmath.matrix(np.asarray(a).tolist())  # binary64 entries are exact at >= 53 bits


def direct_loss(problem: LoraAttention, h=0, direction=None):
    """``1/(2N) sum_n ||softmax(beta X_Q W_Q (X_K W_K)^T) X_V W_V - Y||_F^2`` in mpmath matrices.

    ``direction`` maps "A_Q", "B_Q", ... and "W_Q", "W_K", "W_V" to mpmath matrices ``T``; the
    loss is evaluated at ``A + h T_A``, ``B + h T_B`` and ``W = W* + s B A + h T_W``.
    Written from the definition only; shares nothing with verified_lora.reference.
    """
    direction = direction or {}

    def moved(name, value):
        return value + h * direction[name] if name in direction else value

    weights = {}
    for key, frozen in (("Q", problem.w_q), ("K", problem.w_k), ("V", problem.w_v)):
        w = _mp_matrix(frozen)
        if key in problem.adapters:
            ad = problem.adapters[key]
            s = mpmath.mpf(problem.alpha) / (ad.r if problem.scaling == "lora" else mpmath.sqrt(ad.r))
            w = w + s * moved(f"B_{key}", _mp_matrix(ad.b)) * moved(f"A_{key}", _mp_matrix(ad.a))
        weights[key] = moved(f"W_{key}", w)
    total = mpmath.mpf(0)
    for x_q, x_k, x_v, y in problem.items():
        scores = mpmath.mpf(problem.beta) * (_mp_matrix(x_q) * weights["Q"]) * (_mp_matrix(x_k) * weights["K"]).T
        values = _mp_matrix(x_v) * weights["V"]
        target = _mp_matrix(y)
        for i in range(scores.rows):
            e = [mpmath.exp(scores[i, l]) for l in range(scores.cols)]
            z = sum(e)
            for t in range(values.cols):
                out = sum(e[l] * values[l, t] for l in range(scores.cols)) / z
                total += (out - target[i, t]) ** 2
    return total / (2 * problem.n_batch)


def _directional_check(problem, direction, grads):
    """Central difference of direct_loss along ``direction`` vs ``sum <grad, T>``."""
    dps, h, rtol = FINITE_DIFFERENCE["dps"], mpmath.mpf(FINITE_DIFFERENCE["step"]), FINITE_DIFFERENCE["rtol"]
    with mpmath.mp.workdps(dps):
        fd = (direct_loss(problem, h, direction) - direct_loss(problem, -h, direction)) / (2 * h)
        terms = [grads[name][i, j] * direction[name][i, j]
                 for name in direction for i in range(direction[name].rows) for j in range(direction[name].cols)]
        predicted = mpmath.fsum(terms)
        # The difference's error terms scale with the problem (|D3L|, |L|), not with the gradient:
        # relative to max(sum |grad_i t_i|, |L|), so a near-zero directional derivative (saturated
        # softmax) is still judged to ~1e-30 |L| (see tolerances.FINITE_DIFFERENCE).
        scale = max(mpmath.fsum(abs(t) for t in terms), abs(direct_loss(problem)))
        assert abs(fd - predicted) <= rtol * scale, (float(fd), float(predicted), float(abs(fd - predicted) / scale))


def _random_direction(rng, shapes):
    return {name: _mp_matrix(rng.standard_normal(shape)) for name, shape in shapes.items()}


@settings(max_examples=40)
@given(problem=problems())
@example(problem=default_problem())
@example(problem=SATURATED)
def test_finite_differences_along_random_directions(problem):
    """The reference gradients are the derivative of the independently written loss (mpmath, 60 digits)."""
    ref = reference.loss_and_grads(problem, dps=FINITE_DIFFERENCE["dps"])
    with mpmath.mp.workdps(FINITE_DIFFERENCE["dps"]):
        assert abs(direct_loss(problem) - ref.loss) <= reference_relative_error(50) * max(abs(ref.loss), 1)
    rng = np.random.default_rng(len(problem.grad_keys) + problem.L)
    grads = {**ref.grads, **{f"W_{k}": v for k, v in ref.weight_grads.items()}}
    if problem.grad_keys:
        _directional_check(problem, _random_direction(rng, {k: ref.grads[k].shape for k in problem.grad_keys}),
                           grads)
    _directional_check(problem, _random_direction(rng, {f"W_{k}": ref.weight_grads[k].shape for k in "QKV"}),
                       grads)


# Found by a randomized run: L = 1, a saturated softmax row, so the Q-adapter directional derivative
# is ~3e-15 while the loss is ~2; the difference error (~5e-42) exceeded 1e-30 x sum|grad_i t_i|.
_SATURATED_ROW = """LoraAttention(x_q=array([[-2.71116248, -1.88901325, -0.17477209, -0.42219041,  0.213643  ,
              0.21732193]]),
     y=array([[2.11783876]]),
     w_q=array([[-1.11202076, -0.37760501,  2.04277161,  0.646703  ,  0.66306337,
             -0.51400637],
            [-1.64807517,  0.16746474,  0.10901409, -1.22735205, -0.68322666,
             -0.07204368],
            [-0.94475162, -0.09826997,  0.09548303,  0.03558624, -0.50629166,
              0.59374807],
            [ 0.89116695,  0.3208483 , -0.81823023,  0.73165228, -0.50144002,
              0.87916062],
            [-1.07178742,  0.9144672 , -0.02006345, -1.24874889, -0.31389947,
              0.05410228],
            [ 0.27279134, -0.98218812, -1.10737305,  0.19958453, -0.46674962,
              0.23550561]]),
     w_k=array([[ 7.59519522e-01, -1.64878737e+00,  2.54388117e-01,
              1.22464697e+00, -2.97526844e-01, -8.10814583e-01],
            [ 7.52243827e-01,  2.53446516e-01,  8.95883071e-01,
             -3.45215710e-01, -1.48181827e+00, -1.10010765e-01],
            [-4.45828153e-01,  7.75323822e-01,  1.93632848e-01,
             -1.63084923e+00, -1.19516308e+00,  8.83789037e-01],
            [ 6.79765017e-01, -6.40243366e-01, -1.04879657e-03,
              4.45573554e-01,  4.68404336e-01,  8.76242196e-01],
            [ 2.56485627e-01, -9.48283390e-02, -2.58848065e-01,
              1.05574280e+00, -2.25085428e+00, -1.38655325e-01],
            [ 3.30001040e-02, -1.42534896e+00,  3.32813613e-01,
             -6.51281012e-01,  8.62444796e-01, -1.25592084e-01]]),
     w_v=array([[ 0.66915324],
            [ 1.21884361],
            [ 0.38292958],
            [-0.87572114],
            [-1.51431863],
            [ 1.75338412]]),
     x_k=array([[-0.11129219, -0.68856495,  0.14425709, -0.19141133,  0.85214226,
              0.03392818],
            [ 0.01374958, -0.71457972,  0.4695681 , -1.03386672,  0.66588944,
              1.52393751],
            [-1.52468604, -2.46622923,  0.61687876,  2.54789782, -1.00092485,
             -1.25069576]]),
     x_v=array([[ 0.58896893, -0.84072159, -0.50602548, -0.34811747,  0.53200209,
             -0.40530236],
            [ 0.27788284, -0.17653326, -0.8446711 , -0.31982626, -0.95039967,
              0.00651499],
            [-1.12386623, -1.09289437,  1.45696182, -0.05318422, -0.05390203,
              0.51153642]]),
     adapters={'Q': Adapter(a=array([[ 0.34558419,  0.82161814,  0.33043708, -1.30315723,  0.90535587,
                0.44637457],
              [-0.53695324,  0.5811181 ,  0.3645724 ,  0.2941325 ,  0.02842224,
                0.54671299]]), b=array([[-0.73645409, -0.16290995],
              [-0.48211931,  0.59884621],
              [ 0.03972211, -0.29245675],
              [-0.78190846, -0.25719224],
              [ 0.00814218, -0.27560291],
              [ 1.29406381,  1.00672432]]))},
     alpha=1.5,
     beta=1.0,
     scaling='lora')"""


def test_finite_differences_saturated_row_regression():
    problem = eval(_SATURATED_ROW, {"array": np.array, "LoraAttention": LoraAttention, "Adapter": Adapter})
    test_finite_differences_along_random_directions.hypothesis.inner_test(problem)


def test_finite_differences_every_entry():
    """One-entry directions: every entry of every adapter and weight gradient, on a small batched
    cross-attention rsLoRA problem with all three adapters."""
    p = random_problem(8, L=3, L_k=2, d_model=3, d_head=2, d_v=2, r=2, n_batch=2, scaling="rslora",
                       beta=0.8, alpha=1.5)
    ref = reference.loss_and_grads(p, dps=FINITE_DIFFERENCE["dps"])
    grads = {**ref.grads, **{f"W_{k}": v for k, v in ref.weight_grads.items()}}
    checked = 0
    for name, g in grads.items():
        for index in np.ndindex(g.shape):
            t = mpmath.matrix(*g.shape)
            t[index] = 1
            _directional_check(p, {name: t}, grads)
            checked += 1
    assert checked == sum(g.size for g in grads.values()) == 3 * (2 * 2 + 3 * 2) + 3 * 6


# ---------------------------------------------------------------------------- enclosures
def _check_enclosure(problem, backend, dps=ENCLOSE_DPS):
    enc = reference.enclose(problem, dps=dps, backend=backend)
    ref = reference.loss_and_grads(problem, dps=dps + 20)
    assert enc.outside(ref) == []
    width = enc.max_relative_width()
    assert width <= enclosure_relative_width(dps), (width, enc.relative_widths())
    assert set(dict(enc.items())) == set(_quantities(ref))
    return enc


@settings(max_examples=50)
@given(problem=problems())
@example(problem=SATURATED)
@example(problem=random_problem(4, L=3, L_k=1, d_model=2, d_head=1, d_v=1, r=1))
def test_reference_inside_iv_enclosure(problem):
    enc = _check_enclosure(problem, "iv")
    assert enc.backend == "mpmath.iv"


@settings(max_examples=50)
@given(problem=problems())
@example(problem=SATURATED)
def test_reference_inside_arb_enclosure(problem):
    pytest.importorskip("flint")
    enc = _check_enclosure(problem, "arb")
    assert enc.backend == "flint.arb"


def test_backends_overlap_and_auto():
    pytest.importorskip("flint")
    p = random_problem(9, n_batch=2, L_k=5)
    a, b = reference.enclose(p, backend="iv"), reference.enclose(p, backend="arb")
    for (name, x), (_, y) in zip(a.items(), b.items()):
        for u, v in zip(x.ravel(), y.ravel()):  # both contain the exact value, so they intersect
            assert max(u.a, v.a) <= min(u.b, v.b), name
    assert reference.enclose(p).backend == "flint.arb"
    assert reference.available_backends() == ("iv", "arb")


def test_saturated_softmax_enclosure_stays_tight():
    """Regression: diag(f) - f f^T written as f - f^2 gave widths of 1e31 relative here."""
    enc = reference.enclose(SATURATED, backend="iv")
    assert enc.max_relative_width() <= enclosure_relative_width(ENCLOSE_DPS)


@pytest.mark.parametrize("dps", [20, 60])
def test_widths_follow_precision(dps):
    enc = _check_enclosure(random_problem(10), "iv", dps=dps)
    assert enc.dps == dps and enc.max_relative_width() <= enclosure_relative_width(dps)


def test_float_inputs_are_exact_binary_values():
    """A float32 problem and its float64 copy hold the same reals, so their enclosures coincide."""
    p32 = random_problem(12, dtype="float32", adapters=("Q", "V"))
    p64 = p32.replace(x_q=p32.x_q.astype(np.float64), y=p32.y.astype(np.float64), w_q=p32.w_q.astype(np.float64),
                      w_k=p32.w_k.astype(np.float64), w_v=p32.w_v.astype(np.float64),
                      adapters={k: Adapter(a=ad.a.astype(np.float64), b=ad.b.astype(np.float64))
                                for k, ad in p32.adapters.items()})
    a, b = reference.enclose(p32, backend="iv"), reference.enclose(p64, backend="iv")
    for (_, x), (_, y) in zip(a.items(), b.items()):
        assert all(u.a == v.a and u.b == v.b for u, v in zip(x.ravel(), y.ravel()))
    # and 0.1 is the binary value 0.1000000000000000055511151231257827..., not 1/10
    one = np.array([[1.0]])
    p = LoraAttention(x_q=one, y=np.array([[0.0]]), w_q=one, w_k=one, w_v=np.array([[0.1]]))
    enc = reference.enclose(p, dps=40, backend="iv")
    exact_loss = Fraction(0.1) ** 2 / 2                 # f = 1, output x_v w_v = 0.1 (binary)
    lo, hi = (Fraction(*mpmath.libmp.to_rational(e)) for e in enc.loss._mpi_)
    assert lo <= exact_loss <= hi and not lo <= Fraction(1, 200) <= hi


def _dyadic(seed, *, L, L_k, beta, n_batch=2):
    rng = np.random.default_rng(seed)

    def draw(*shape):
        return rng.integers(-8, 9, size=shape) / 8.0

    d_model, d_head, d_v, r = 3, 2, 2, 2
    ads = {k: Adapter(a=draw(r, d_v if k == "V" else d_head), b=draw(d_model, r) + 1 / 16) for k in "QKV"}
    return LoraAttention(x_q=draw(n_batch, L, d_model), x_k=draw(n_batch, L_k, d_model),
                         x_v=draw(n_batch, L_k, d_model), y=draw(n_batch, L, d_v), w_q=draw(d_model, d_head),
                         w_k=draw(d_model, d_head), w_v=draw(d_model, d_v), adapters=ads, alpha=3.0, beta=beta)


def _fraction_expectations(p):
    """Loss and dL/dW_V, dL/dA_V, dL/dB_V as exact fractions when every row of f is known exactly:
    beta = 0 (uniform attention, f = 1/L_k) or L_k = 1 (f = 1). Then dL/dS = 0 for L_k = 1 and
    dL/dW_Q = dL/dW_K = 0 in both cases (beta = 0 multiplies them)."""
    F = np.vectorize(Fraction, otypes=[object])
    s = Fraction(p.alpha) / p.adapters["V"].r
    ad = p.adapters["V"]
    w_v = F(p.w_v) + s * (F(ad.b) @ F(ad.a))
    loss, d_wv = Fraction(0), np.zeros(w_v.shape, dtype=object)
    for _, _, x_v, y in p.items():
        v = F(x_v) @ w_v
        f = np.full((p.L, p.L_k), Fraction(1, p.L_k), dtype=object)
        c = f @ v - F(y)
        loss += sum(x * x for x in c.ravel()) / 2
        d_wv = d_wv + F(x_v).T @ (f.T @ c)
    n = p.n_batch
    d_wv = d_wv / n
    return {"loss": loss / n, "W_V": d_wv, "A_V": s * (F(ad.b).T @ d_wv), "B_V": s * (d_wv @ F(ad.a).T)}


@pytest.mark.parametrize("backend", ["iv", "arb"])
@pytest.mark.parametrize("L, L_k, beta", [(3, 4, 0.0), (3, 1, 0.7)])
def test_enclosures_contain_exact_rational_values(backend, L, L_k, beta):
    if backend == "arb":
        pytest.importorskip("flint")
    p = _dyadic(14, L=L, L_k=L_k, beta=beta)
    want = _fraction_expectations(p)
    enc = dict(reference.enclose(p, dps=ENCLOSE_DPS, backend=backend).items())
    ref = _quantities(reference.loss_and_grads(p, dps=40))
    for name, value in want.items():
        for box, exact_value, approx in zip(enc[name].ravel(), np.asarray([value]).ravel() if name == "loss"
                                            else value.ravel(), ref[name].ravel()):
            lo, hi = (Fraction(*mpmath.libmp.to_rational(e)) for e in box._mpi_)
            assert lo <= exact_value <= hi, name
            with mpmath.mp.workdps(50):
                assert abs(approx - mpmath.mpf(exact_value.numerator) / exact_value.denominator) <= \
                    reference_relative_error(40) * max(1, abs(approx))
    for name in ("W_Q", "W_K", "A_Q", "B_Q", "A_K", "B_K"):
        assert all(box.a <= 0 <= box.b for box in enc[name].ravel()), name
        assert all(v == 0 for v in ref[name].ravel()), name   # exactly zero in the reference too


# ---------------------------------------------------------------------------- the Enclosure object
def test_contains_detects_every_kind_of_mismatch():
    p = random_problem(15, adapters=("Q", "V"))
    enc = reference.enclose(p, backend="iv")
    ref = reference.loss_and_grads(p, dps=50)
    assert enc.contains(ref)
    # nudge one entry by 1e-20 relative (far beyond the ~1e-26 width): caught and named
    grads = {k: v.copy() for k, v in ref.grads.items()}
    grads["B_V"][2, 1] = grads["B_V"][2, 1] * (1 + mpmath.mpf("1e-20"))
    moved = type(ref)(loss=ref.loss, grads=grads, weight_grads=ref.weight_grads, method="x")
    assert enc.outside(moved) == ["B_V[2, 1]"] and not enc.contains(moved)
    # float64 results are not inside (they carry ~1e-16 errors), and the culprits are listed
    ex = exact.loss_and_grads(p)
    assert not enc.contains(ex) and len(enc.outside(ex)) > 0
    # a missing gradient, or a wrong shape, is reported
    missing = type(ref)(loss=ref.loss, grads={k: v for k, v in ref.grads.items() if k != "A_Q"},
                        weight_grads=ref.weight_grads, method="x")
    assert enc.outside(missing) == ["A_Q (missing)"]
    wrong = type(ref)(loss=ref.loss, grads={**ref.grads, "A_Q": ref.grads["A_Q"].T},
                      weight_grads=ref.weight_grads, method="x")
    assert enc.outside(wrong)[0].startswith("A_Q (shape")
    extra = type(ref)(loss=ref.loss, grads={**ref.grads, "A_K": ref.grads["A_Q"]},
                      weight_grads=ref.weight_grads, method="x")
    assert enc.outside(extra) == ["A_K (not enclosed)"]
    loss_only = type(ref)(loss=ref.loss * 2, grads=ref.grads, weight_grads={}, method="x")
    assert enc.outside(loss_only) == ["loss"]


def test_certified_error_of_exact_float64():
    """error_bounds turns the enclosure into a rigorous error bound for the float64 result."""
    p = default_problem()
    enc = reference.enclose(p)
    ex = exact.loss_and_grads(p)
    bounds, scales = enc.error_bounds(ex), enc.magnitudes()
    ref = _quantities(reference.loss_and_grads(p, dps=50))
    got = _quantities(ex)
    with mpmath.mp.workdps(50):
        for name, q in ref.items():
            observed = max(abs(mpmath.mpf(float(x)) - y) for x, y in zip(np.ravel(got[name]), q.ravel()))
            assert observed <= bounds[name]                      # the bound really bounds the error
            assert bounds[name] <= observed * (1 + 1e-9) + 1e-25   # ... and is essentially sharp
            assert bounds[name] <= EXACT_VS_REFERENCE["float64"] * scales[name]
    mid = _quantities(enc.midpoint())
    for name, q in _quantities(reference.to_float(reference.loss_and_grads(p, dps=50))).items():
        assert max_relative_error(np.asarray(mid[name], dtype=float), q) <= 1e-15


def test_one_body_runs_in_fp_mp_and_iv():
    """The reference body in mpmath.fp (plain float64 arithmetic) lands within the float64 tolerance."""
    p = random_problem(19, L=6, L_k=5, n_batch=2, scaling="rslora")
    loss, grads, weight_grads = reference.evaluate(mpmath.fp, p)
    ref = reference.to_float(reference.loss_and_grads(p, dps=40))
    tol = EXACT_VS_REFERENCE["float64"]
    assert isinstance(loss, float) and abs(loss - ref.loss) <= tol * abs(ref.loss)
    for k in ref.grads:
        assert max_relative_error(np.array(grads[k], dtype=float), ref.grads[k]) <= tol, k
    for k in ref.weight_grads:
        assert max_relative_error(np.array(weight_grads[k], dtype=float), ref.weight_grads[k]) <= tol, k


def test_reference_converges_with_precision():
    p = random_problem(16, L=7, L_k=5, n_batch=2)
    lo, hi = _quantities(reference.loss_and_grads(p, dps=30)), _quantities(reference.loss_and_grads(p, dps=70))
    with mpmath.mp.workdps(80):
        for name in lo:
            err = max(abs(a - b) for a, b in zip(lo[name].ravel(), hi[name].ravel()))
            scale = max(abs(b) for b in hi[name].ravel())
            assert err <= reference_relative_error(30) * scale, name


# ---------------------------------------------------------------------------- API, conversion, scoping
def test_reference_result_api():
    p = random_problem(17, adapters=("K", "V"), L_k=4)
    ref = reference.loss_and_grads(p, dps=25)
    ex = exact.loss_and_grads(p)
    assert ref.method == "reference" and ref.info["dps"] == 25 and isinstance(ref.loss, mpmath.mpf)
    assert list(ref.grads) == list(ex.grads) and list(ref.weight_grads) == ["Q", "K", "V"]
    for k in ref.grads:
        assert ref.grads[k].dtype == object and ref.grads[k].shape == ex.grads[k].shape
        assert all(isinstance(v, mpmath.mpf) for v in ref.grads[k].ravel())
    f = reference.to_float(ref)
    assert isinstance(f.loss, float) and f.method == "reference"
    for k in f.grads:
        assert f.grads[k].dtype == np.float64 and f.grads[k].shape == ex.grads[k].shape


def test_to_float_rounds_to_nearest():
    with mpmath.mp.workprec(200):
        just_above_half = 1 + mpmath.mpf(2) ** -53 + mpmath.mpf(2) ** -90   # nearest float: 1 + 2^-52
        below_half = 1 + mpmath.mpf(2) ** -53 - mpmath.mpf(2) ** -90        # nearest float: 1
        negative = -just_above_half
    arr = np.array([[just_above_half, below_half, negative]], dtype=object)
    result = type(reference.loss_and_grads(random_problem(0, adapters=()), dps=20))(
        loss=just_above_half, grads={"A_Q": arr}, weight_grads={}, method="reference")
    out = reference.to_float(result)
    assert out.loss == 1 + 2.0**-52
    np.testing.assert_array_equal(out.grads["A_Q"], [[1 + 2.0**-52, 1.0, -(1 + 2.0**-52)]])


def test_precision_is_scoped():
    before = (mpmath.mp.prec, mpmath.iv.prec)
    p = random_problem(18)
    reference.loss_and_grads(p, dps=80)
    reference.enclose(p, dps=45, backend="iv")
    assert (mpmath.mp.prec, mpmath.iv.prec) == before
    try:
        import flint
    except ImportError:
        return
    prec = flint.ctx.prec
    reference.enclose(p, dps=45, backend="arb")
    assert flint.ctx.prec == prec


@pytest.mark.parametrize("dps", [10, 15, 0, -3, 30.0, "50", True, None])
def test_bad_dps(dps):
    p = random_problem(0)
    with pytest.raises(InputError) as info:
        reference.loss_and_grads(p, dps=dps)
    assert info.value.field == "dps"
    with pytest.raises(InputError):
        reference.enclose(p, dps=dps)


def test_bad_backend_and_problem():
    with pytest.raises(InputError) as info:
        reference.enclose(random_problem(0), backend="ball")
    assert info.value.field == "backend"
    for call in (reference.loss_and_grads, reference.enclose):
        with pytest.raises(InputError) as info:
            call({"x_q": np.ones((2, 2))})
        assert info.value.field == "problem"
