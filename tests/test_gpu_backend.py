"""verified_lora.kernels without a GPU: laziness, argument preparation, steps selection, and the
exact/fast kernel steps exercised end to end through the CPU-compiled kernels. Tests marked ``gpu``
run the same kernels through CuPy and are skipped (with the reason) when no GPU is usable."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from verified_lora import exact
from verified_lora import features as F
from verified_lora import steps as steps_module
from verified_lora.kernels import backend as gpu
from verified_lora.kernels.steps import KernelSteps
from verified_lora.errors import InputError
from verified_lora.examples import random_problem
from verified_lora.tolerances import EXACT_VS_REFERENCE, gamma, max_relative_error, unit_roundoff


def test_importing_the_backend_imports_neither_cupy_nor_sympy():
    code = ("import sys, verified_lora, verified_lora.kernels, verified_lora.kernels.steps, verified_lora.exact; "
            "print('cupy' in sys.modules, 'sympy' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "False"]


def test_available_is_false_when_cupy_cannot_be_imported(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)  # import cupy -> ImportError
    assert gpu.available() is False
    assert gpu.device_name() is None


def test_kernel_steps_only_for_cupy():
    class FakeCupy:
        __name__ = "cupy"

    assert steps_module.steps_for(np).uses_kernels is False
    assert isinstance(steps_module.steps_for(FakeCupy()), KernelSteps)


def _force_kernel_steps(monkeypatch, on=True):
    """What CuPy arrays select, forced on NumPy arrays (the kernels then run through the CPU shim)."""
    monkeypatch.setattr(steps_module, "steps_for",
                        (lambda xp: KernelSteps(xp)) if on else (lambda xp: steps_module.ArraySteps(xp)))


def test_prepare_call_selects_the_dtype_variant_and_types_every_scalar():
    s32 = np.ones((3, 5), dtype=np.float32)
    fn, (grid, block), prep = gpu.prepare_call("softmax_rows", {"s": s32, "beta": 0.5})
    assert fn == "vl_softmax_rows_f32" and (grid, block) == (1, 256)
    assert type(prep.args[1]) is np.float32 and [type(a) for a in prep.args[-2:]] == [np.int64, np.int64]
    assert prep.args[-2:] == (3, 5) and prep.outputs["f"].dtype == np.float32
    fn, _, prep = gpu.prepare_call("paper_grad_rows", {"a": np.ones((2, 2)), "b": np.ones((2, 2)),
                                                       "r": np.ones(2), "beta": 2})
    assert fn == "vl_paper_grad_rows_f64" and type(prep.args[3]) is np.float64
    _, (grid, _), _ = gpu.prepare_call("residual", {"fv": np.ones((1000, 1000)), "y": np.ones((1000, 1000))})
    assert grid == 3907  # ceil(10^6 / 256) blocks, below the 4096 cap


def test_mixed_dtypes_are_refused():
    with pytest.raises(InputError, match="one dtype"):
        gpu.prepare_call("residual", {"fv": np.ones((2, 2)), "y": np.ones((2, 2), dtype=np.float32)})


# ---------------------------------------------------------------------------- step functions (CPU runner)
def _within_bound(name, dtype, inputs, outputs):
    """Every output entry within KERNEL_BOUND_FACTOR * u * e of the mpmath reference (accuracy.py)."""
    import mpmath

    from verified_lora.codegen.accuracy import error_bounds, reference
    from verified_lora.tolerances import KERNEL_BOUND_FACTOR

    refs, bounds = reference(name, inputs), error_bounds(name, dtype, inputs)
    assert set(refs) == set(outputs)
    u = unit_roundoff(dtype)
    for key, ref in refs.items():
        got = np.asarray(outputs[key])
        assert got.shape == ref.shape, key
        for idx, r in np.ndenumerate(ref):
            err = abs(mpmath.mpf(float(got[idx])) - r)
            assert err <= KERNEL_BOUND_FACTOR * u * bounds[key][idx], (name, key, idx)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_step_functions_map_their_arguments_to_the_kernel_semantics(dtype):
    """Each kernel step, called positionally as exact/fast call it, against the mpmath reference of
    the kernel it names (a swapped argument or wrong table would fail the per-entry bound)."""
    from verified_lora.features.layout import derivative_tables, feature_layout, monomial_tables

    K = KernelSteps(np)
    rng = np.random.default_rng(5)
    dt = np.dtype(dtype)
    N = lambda *shape: rng.standard_normal(shape).astype(dt)  # noqa: E731
    s = N(4, 6)
    _within_bound("softmax_rows", dtype, {"s": s, "beta": 0.5}, {"f": K.softmax_rows(s, 0.5)[0]})
    fv, y = N(4, 3), N(4, 3)
    _within_bound("residual", dtype, {"fv": fv, "y": y}, {"c": K.residual(fv, y)})
    e = np.exp(N(4, 6).astype(np.float64))
    f, q = (e / e.sum(1, keepdims=True)).astype(dt), N(4, 6)
    p, r = K.softmax_grad_rows(f, q.copy()), gpu.launch("softmax_grad_rows", {"f": f, "q": q})["rvec"]
    _within_bound("softmax_grad_rows", dtype, {"f": f, "q": q}, {"p": p, "rvec": r})
    _within_bound("row_dot", dtype, {"a": fv, "b": y}, {"rvec": K.row_dot(fv, y)[:, 0]})
    t, d = N(5, 3), rng.uniform(1, 2, 5).astype(dt)
    y5 = N(5, 3)
    c, Yp = K.normalised_residual(t, d[:, None], y5)
    yp, rneg = Yp[:, :3], Yp[:, 3]
    r = gpu.launch("normalised_residual_rows", {"t": t, "d": d, "y": y5})["rvec"]
    _within_bound("normalised_residual_rows", dtype, {"t": t, "d": d, "y": y5},
                  {"c": c, "yp": yp, "rvec": r, "rneg": rneg})
    a, w, dd = N(3, 4), N(3), rng.uniform(1, 2, 4).astype(dt)
    _within_bound("scaled_divide", dtype, {"a": a, "w": w, "d": dd}, {"o": K.scaled_divide(a, None, w[:, None], dd[:, None])})
    b = N(2, 4)
    _within_bound("kron_rows_t", dtype, {"a": a, "b": b}, {"o": K.face_split_t(a, b)})
    rr = N(3)
    _within_bound("paper_grad_rows", dtype, {"a": a, "b": 2 * a, "r": rr, "beta": 0.5},
                  {"o": K.paper_grad_rows(a, 2 * a, rr[:, None], 0.5)})
    xT = rng.uniform(-1, 1, (3, 7)).astype(dt)
    parent, var = monomial_tables(3, 3)
    _within_bound("monomials_t", dtype, {"x": xT, "parent": parent, "var": var}, {"mono": K.monomials_t(xT, feature_layout(3, 3), None)})
    mono = np.ascontiguousarray(F.monomials(np.ascontiguousarray(xT.T), 3))
    grad = N(*mono.shape)
    succ, mult = derivative_tables(3, 3, dtype)
    _within_bound("monomials_backward", dtype, {"g": grad, "mono": mono, "succ": succ, "mult": mult},
                  {"dx": K.monomials_vjp(np.ascontiguousarray(xT.T), mono, grad, feature_layout(3, 3))})
    Z, Y = N(7, 6), N(7, 2)
    _within_bound("contract_rows", dtype, {"z": Z, "y": Y}, {"out": K.contract_rows(Z, Y)})


def test_degree_zero_backward_is_zero():
    mono = np.ones((4, 1))
    assert np.array_equal(KernelSteps(np).monomials_vjp(np.ones((4, 2)), mono, np.ones((4, 1)), F.feature_layout(2, 0)),
                          np.zeros((4, 2)))


# ---------------------------------------------------------------------------- dispatch end to end
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_exact_dispatches_to_kernels_and_agrees(monkeypatch, dtype):
    problem = random_problem(3, L=7, L_k=5, d_model=4, d_head=3, d_v=2, r=2, adapters=("Q", "K", "V"),
                             dtype=dtype)
    plain = exact.loss_and_grads(problem, block_size=3)
    calls = []
    real_launch = gpu.launch
    _force_kernel_steps(monkeypatch)
    monkeypatch.setattr(gpu, "launch", lambda name, *a, **k: calls.append(name) or real_launch(name, *a, **k))
    kern = exact.loss_and_grads(problem, block_size=3)
    assert calls.count("softmax_rows") == 3 and calls.count("residual") == 3 and calls.count("softmax_grad_rows") == 3
    # both runs are within EXACT_VS_REFERENCE of the reference on test-suite-sized problems
    tol = 2 * EXACT_VS_REFERENCE[dtype]
    assert abs(kern.loss - plain.loss) <= tol * abs(plain.loss)
    for key in plain.grads:
        assert max_relative_error(kern.grads[key], plain.grads[key]) < tol, key


# ---------------------------------------------------------------------------- on a GPU
@pytest.mark.gpu
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_gpu_kernels_vs_mpmath(dtype):
    from verified_lora.codegen.accuracy import measure, sample_inputs
    from verified_lora.codegen.specs import all_specs

    for spec in all_specs():
        for seed in range(3):
            inputs = sample_inputs(spec.name, dtype, seed, rows=40, cols=33, d=3, g=3)
            for out, (ulp, _rel, ratio) in measure(spec.name, dtype, inputs, runner="gpu").items():
                assert ratio <= 1.0, f"{spec.name}.{out} {dtype}: {ratio:.3g} x bound ({ulp:.3g} ulp)"


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_gpu_exact_matches_numpy(dtype):
    import cupy

    problem = random_problem(4, L=12, L_k=9, d_model=6, d_head=4, d_v=3, r=2, adapters=("Q", "K", "V"),
                             dtype=dtype)
    ref = exact.loss_and_grads(problem)
    dev = exact.loss_and_grads(gpu.to_cupy(problem), block_size=5)
    assert dev.method == "exact" and isinstance(steps_module.steps_for(cupy), KernelSteps)
    tol = 2 * EXACT_VS_REFERENCE[dtype]  # both within EXACT_VS_REFERENCE of the reference (test-suite sizes)
    for key in ref.grads:
        assert max_relative_error(cupy.asnumpy(dev.grads[key]), ref.grads[key]) < tol, key



def test_feature_helpers_dispatch_to_kernels(monkeypatch):
    """features.monomials_t / lowrank_vjp_t run the kernel steps for CuPy; forced here on NumPy."""
    rng = np.random.default_rng(11)
    KT = rng.uniform(-1, 1, (3, 20))
    buf = np.empty((F.rank(3, 3), 32))
    plain = F.monomials_t(np.ascontiguousarray(KT[:, 2:15]), 3).copy()
    Dc = F.derivative_coefficients(rng.standard_normal((plain.shape[0], 4)), 3, 3)
    Y = rng.standard_normal((13, 4))
    vjp_plain = F.lowrank_vjp_t(plain, Dc, Y)
    calls = []
    real_launch = gpu.launch
    _force_kernel_steps(monkeypatch)
    monkeypatch.setattr(gpu, "launch", lambda name, *a, **k: calls.append(name) or real_launch(name, *a, **k))
    out = F.monomials_t(KT[:, 2:15], 3, out=buf[:, :13])        # strided input and output, as fast's cores pass
    assert out.base is buf and np.array_equal(out, plain)        # same products in the same order: bitwise
    # both paths contract the same Z over a = 4 terms in different orders: |diff| <= 2 gamma_4 sum |Z Y|
    Z = (plain[:Dc.shape[0]].T @ Dc).reshape(13, 3, 4)
    assert np.all(np.abs(F.lowrank_vjp_t(out, Dc, Y) - vjp_plain)
                  <= 2 * gamma(4) * np.einsum("nja,na->nj", np.abs(Z), np.abs(Y)))
    grad = rng.standard_normal((13, plain.shape[0]))
    x = np.ascontiguousarray(KT[:, 2:15].T)
    vjp = F.monomials_vjp(x, out.T, grad)                       # transposed (strided) monomials, as phi_*_vjp pass
    _force_kernel_steps(monkeypatch, on=False)
    # both compute sum_m g_m d(x^m)/dx_j, each within gamma_{2k} of sum_m |g_m| |d(x^m)/dx_j| (chains of at
    # most k additions and 2g <= k multiplications); the magnitude is the reference path on |g|, |x|
    k = plain.shape[0]
    magnitude = F.monomials_vjp(np.abs(x), np.abs(plain.T), np.abs(grad))
    assert np.all(np.abs(vjp - F.monomials_vjp(x, plain.T, grad)) <= 2 * gamma(2 * k) * magnitude)
    assert calls == ["monomials_t", "contract_rows", "monomials_backward"]


@pytest.mark.gpu
@pytest.mark.parametrize("method", ["factored", "paper", "antiderivative"])
def test_gpu_fast_matches_numpy(method):
    """The fast path on CuPy (features and contraction kernels, cuBLAS GEMMs) vs on NumPy, same polynomial."""
    import math
    from fractions import Fraction

    import cupy

    from verified_lora import fast
    from verified_lora.features import rank
    from verified_lora.tolerances import fast_path_rounding

    problem = random_problem(6, L=500, d_model=8, d_head=3, d_v=3, r=2, adapters=("Q", "K", "V"), beta=0.3, scale=0.3)
    g = 6
    coeffs = [Fraction(1, math.factorial(t)) for t in range(g + 1)]
    host = fast.run_with_polynomial(problem, coeffs, method)
    dev = fast.run_with_polynomial(gpu.to_cupy(problem), coeffs, method)
    P = problem.x_q @ problem.weight("Q")
    K = problem.x_q @ problem.weight("K")
    R = abs(problem.beta) * np.linalg.norm(P, axis=1).max() * np.linalg.norm(K, axis=1).max()
    gc = g + 1 if method == "antiderivative" else g               # its core runs at degree g + 1
    tol = 2 * fast_path_rounding(rank(3, gc), problem.L_k, gc, R)  # each path is within the rounding model
    assert abs(dev[0] - host[0]) <= tol * abs(host[0])
    for key in host[1]:
        assert max_relative_error(cupy.asnumpy(dev[1][key]), host[1][key]) < tol, key


# ---------------------------------------------------------------------------- the CuPy branch, simulated
def _fake_cupy():
    """A stand-in 'cupy' module: arrays are ndarray subclasses living in module 'cupy', RawModule
    functions run the CPU-compiled kernel library with exactly the arguments backend.launch passes."""
    import ctypes
    import types

    from verified_lora.kernels import cpu

    class ndarray(np.ndarray):
        @property
        def data(self):
            return types.SimpleNamespace(ptr=self.ctypes.data)

    ndarray.__module__ = "cupy"
    lib = cpu._load(cpu.compile_library(cpu.default_sources()))
    launches = []

    class RawModule:
        def __init__(self, code, options=()):
            self.code, self.options = code, options

        def get_function(self, name):
            def run(grid, block, args):
                launches.append((name, grid, block, tuple(type(a) for a in args)))
                cargs = [ctypes.c_uint(grid[0]), ctypes.c_uint(block[0]), ctypes.c_int(0)]
                for a in args:
                    if isinstance(a, np.ndarray):
                        cargs.append(ctypes.c_void_p(a.ctypes.data))
                    elif isinstance(a, np.int64):
                        cargs.append(ctypes.c_longlong(int(a)))
                    elif isinstance(a, np.float32):
                        cargs.append(ctypes.c_float(float(a)))
                    elif isinstance(a, np.float64):
                        cargs.append(ctypes.c_double(float(a)))
                    else:
                        raise TypeError(f"untyped kernel argument {a!r}: CuPy would guess its C type")
                getattr(lib, f"launch_{name}")(*cargs)
            return run

    class Device:
        id = 0

        def __init__(self, i=0):
            pass

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    fake = types.ModuleType("cupy")
    fake.ndarray = ndarray
    fake.RawModule = RawModule
    fake.cuda = types.SimpleNamespace(is_available=lambda: True, Device=Device)
    fake.asarray = lambda a: np.ascontiguousarray(a).view(ndarray)
    fake.ascontiguousarray = lambda a: np.ascontiguousarray(a).view(ndarray)
    fake.empty = lambda shape, dtype: np.empty(shape, dtype).view(ndarray)
    fake.zeros = lambda shape, dtype: np.zeros(shape, dtype).view(ndarray)
    return fake, launches


def test_cupy_branch_of_launch_with_a_simulated_cupy(monkeypatch):
    fake, launches = _fake_cupy()
    monkeypatch.setitem(sys.modules, "cupy", fake)
    gpu._module.cache_clear()
    try:
        rng = np.random.default_rng(2)
        s = rng.standard_normal((300, 7)).astype(np.float32)
        f = gpu.launch("softmax_rows", {"s": fake.asarray(s), "beta": 0.5})["f"]
        assert type(f).__module__ == "cupy" and f.dtype == np.float32
        e = np.exp(0.5 * s.astype(np.float64))
        assert max_relative_error(np.asarray(f), e / e.sum(1, keepdims=True)) < 64 * unit_roundoff("float32")
        name, grid, block, types_ = launches[-1]
        assert (name, grid, block) == ("vl_softmax_rows_f32", (2,), (256,))
        assert types_[1:] == (np.float32, fake.ndarray, np.int64, np.int64)
        xT = fake.asarray(rng.uniform(-1, 1, (2, 9)))
        mono = KernelSteps(fake).monomials_t(xT, F.feature_layout(2, 3), None)
        assert np.allclose(np.asarray(mono), F.monomials_t(np.asarray(xT), 3), rtol=1e-15, atol=0)
        assert launches[-1][0] == "vl_monomials_t_f64" and launches[-1][3][1:3] == (fake.ndarray, fake.ndarray)
        from verified_lora.codegen.emit import module_source

        assert gpu._module(0).code == module_source()
        with pytest.raises(InputError, match="cupy array"):
            gpu.launch("residual", {"fv": fake.asarray(np.ones((2, 2))), "y": np.ones((2, 2))})
    finally:
        gpu._module.cache_clear()


@pytest.mark.parametrize("method, kernels", [
    ("factored", {"monomials_t", "contract_rows", "normalised_residual_rows"}),
    ("paper", {"monomials_t", "kron_rows_t", "scaled_divide", "residual", "row_dot", "paper_grad_rows"}),
    ("antiderivative", {"monomials_t", "contract_rows", "normalised_residual_rows"}),   # the factored core
])
def test_fast_dispatches_to_kernels_and_agrees(monkeypatch, method, kernels):
    """fast's cores run the kernel steps for CuPy; forced here on NumPy (CPU-compiled kernels)."""
    import math
    from fractions import Fraction

    from verified_lora import fast

    problem = random_problem(6, L=90, d_model=6, d_head=3, d_v=2, r=2, adapters=("Q", "K", "V"), beta=0.3, scale=0.3)
    coeffs = [Fraction(1, math.factorial(t)) for t in range(6)]
    host = fast.run_with_polynomial(problem, coeffs, method, block_size=32)
    calls = []
    real_launch = gpu.launch
    _force_kernel_steps(monkeypatch)
    monkeypatch.setattr(gpu, "launch", lambda name, *a, **k: calls.append(name) or real_launch(name, *a, **k))
    dev = fast.run_with_polynomial(problem, coeffs, method, block_size=32)
    assert set(calls) == kernels
    from verified_lora.features import rank
    from verified_lora.tolerances import fast_path_rounding

    P, K = problem.x_q @ problem.weight("Q"), problem.x_q @ problem.weight("K")
    R = abs(problem.beta) * np.linalg.norm(P, axis=1).max() * np.linalg.norm(K, axis=1).max()
    gc = 6 if method == "antiderivative" else 5                    # its core runs at degree g + 1
    tol = 2 * fast_path_rounding(rank(3, gc), problem.L_k, gc, R)  # both runs within the rounding model
    assert abs(dev[0] - host[0]) <= tol * abs(host[0])
    for key in host[1]:
        assert max_relative_error(dev[1][key], host[1][key]) < tol, key
