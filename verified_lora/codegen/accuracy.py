"""Accuracy of the CPU-executed kernels against independent mpmath references, with derived bounds.

For every kernel this module provides

* an **independent reference** in mpmath (``dps = 40``) written from the mathematics directly
  (e.g. softmax without the max shift, monomials as ``x^m`` from the exponent table), never from
  the printed expressions;
* a **forward error bound** from a first-order running-error analysis of exactly the program the
  template prints (the CSE'd expressions, the loop order of every reduction): with the standard
  model ``fl(a op b) = (a op b)(1 + delta)``, ``|delta| <= u`` and a libm ``exp`` within
  ``LIBM_EXP_ULP`` ulp, each value carries a bound ``e`` on ``|computed - exact| / u``:
  ``a + b: e_a + e_b + |a + b|``; ``a b: e_a |b| + |a| e_b + |a b|``; ``1/b: e_b / b^2 + |1/b|``;
  ``exp(a): |exp a| (e_a + 2 LIBM_EXP_ULP)``; ``max: max(e_a, e_b)``; inputs exact (``e = 0``);
  a row sum adds ``|partial sum|`` per addition. The tolerance is
  ``tolerances.KERNEL_BOUND_FACTOR * u * e`` entrywise (see tolerances.py for the factor).

:func:`measure` runs one kernel on the CPU (through :mod:`verified_lora.kernels.cpu`) and
returns the max ulp error, the max relative error and the max ratio error / bound per output.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from ..tolerances import KERNEL_BOUND_FACTOR, LIBM_EXP_ULP, unit_roundoff
from ..features.layout import derivative_tables, feature_layout, monomial_tables
from .specs import KernelSpec, all_specs, get_spec
from .templates import stage_program

__all__ = ["sample_inputs", "reference", "error_bounds", "KernelAccuracy", "measure", "accuracy_table"]

DPS = 40


# ----------------------------------------------------------------------------- inputs
def sample_inputs(name: str, dtype: str, seed: int, rows: int = 5, cols: int = 4, d: int = 2, g: int = 3,
                  beta: float = 0.75) -> dict[str, Any]:
    """Random inputs of kernel ``name`` in ``dtype`` (bounded magnitudes, positive normalisers)."""
    rng = np.random.default_rng(seed)
    dt = np.dtype(dtype)

    def normal(*shape):
        return rng.standard_normal(shape).astype(dt)

    def positive(*shape):
        return rng.uniform(0.5, 2.0, shape).astype(dt)

    if name == "softmax_rows":
        return {"s": (2 * rng.standard_normal((rows, cols))).astype(dt), "beta": beta}
    if name == "residual":
        return {"fv": normal(rows, cols), "y": normal(rows, cols)}
    if name == "softmax_grad_rows":
        e = np.exp(rng.standard_normal((rows, cols)))
        return {"f": (e / e.sum(axis=1, keepdims=True)).astype(dt), "q": normal(rows, cols)}
    if name == "row_dot":
        return {"a": normal(rows, cols), "b": normal(rows, cols)}
    if name == "normalised_residual_rows":
        return {"t": normal(rows, cols), "d": positive(rows), "y": normal(rows, cols)}
    if name == "scaled_divide":
        return {"a": normal(rows, cols), "w": normal(rows), "d": positive(cols)}
    if name == "kron_rows_t":
        return {"a": normal(rows, cols), "b": normal(max(1, d), cols)}
    if name == "paper_grad_rows":
        return {"a": normal(rows, cols), "b": normal(rows, cols), "r": normal(rows), "beta": beta}
    if name == "monomials_t":
        parent, var = monomial_tables(d, g)
        return {"x": rng.uniform(-1.5, 1.5, (d, cols)).astype(dt), "parent": parent, "var": var}
    if name == "monomials_backward":
        from ..features.maps import monomials

        succ, mult = derivative_tables(d, g, dtype)
        x = rng.uniform(-1.5, 1.5, (rows, d))
        mono = np.ascontiguousarray(monomials(x, g), dtype=dt)
        return {"g": normal(rows, mono.shape[1]), "mono": mono, "succ": succ, "mult": mult}
    if name == "contract_rows":
        return {"z": normal(rows, d * cols), "y": normal(rows, cols)}
    raise KeyError(name)


# ----------------------------------------------------------------------------- references
def _mp(a) -> np.ndarray:
    import mpmath

    arr = np.asarray(a)
    out = np.empty(arr.shape, dtype=object)
    for idx, v in np.ndenumerate(arr):
        out[idx] = mpmath.mpf(float(v)) if arr.dtype.kind == "f" else int(v)
    return out


def reference(name: str, inputs: dict[str, Any]) -> dict[str, np.ndarray]:
    """Exact-to-``dps 40`` outputs of kernel ``name`` as object arrays of ``mpf``, from the math."""
    import mpmath

    with mpmath.workdps(DPS):
        X = {k: (_mp(v) if isinstance(v, np.ndarray) else mpmath.mpf(float(v))) for k, v in inputs.items()}
        return _reference(name, X, inputs, mpmath)


def _reference(name, X, raw, mpmath):
    if name == "softmax_rows":
        e = np.vectorize(lambda v: mpmath.exp(X["beta"] * v), otypes=[object])(X["s"])
        return {"f": e / e.sum(axis=1, keepdims=True)}
    if name == "residual":
        return {"c": X["fv"] - X["y"]}
    if name == "softmax_grad_rows":
        r = (X["f"] * X["q"]).sum(axis=1)
        return {"p": X["f"] * X["q"] - r[:, None] * X["f"], "rvec": r}
    if name == "row_dot":
        return {"rvec": (X["a"] * X["b"]).sum(axis=1)}
    if name == "normalised_residual_rows":
        fv = X["t"] / X["d"][:, None]
        c = fv - X["y"]
        r = (c * fv).sum(axis=1)
        return {"c": c, "yp": c / X["d"][:, None], "rvec": r, "rneg": -r / X["d"]}
    if name == "scaled_divide":
        return {"o": X["w"][:, None] * X["a"] / X["d"][None, :]}
    if name == "kron_rows_t":
        a, b = X["a"], X["b"]
        return {"o": (a[:, None, :] * b[None, :, :]).reshape(a.shape[0] * b.shape[0], a.shape[1])}
    if name == "paper_grad_rows":
        return {"o": X["beta"] * (X["a"] - X["r"][:, None] * X["b"])}
    if name == "monomials_t":
        d, n = raw["x"].shape
        k = raw["parent"].shape[0]
        g = _degree(d, k)
        E = feature_layout(d, g).exponents()
        out = np.empty((k, n), dtype=object)
        for m in range(k):
            for i in range(n):
                out[m, i] = mpmath.fprod(X["x"][j, i] ** int(E[m, j]) for j in range(d))
        return {"mono": out}
    if name == "monomials_backward":
        n, k = raw["g"].shape
        d = raw["succ"].shape[1]
        g = _degree(d, k)
        E = feature_layout(d, g).exponents()
        index = {tuple(row): col for col, row in enumerate(E.tolist())}
        dx = np.empty((n, d), dtype=object)
        for i in range(n):
            for j in range(d):
                total = mpmath.mpf(0)
                for m in range(k):
                    if E[m, j] > 0:
                        lower = list(E[m])
                        lower[j] -= 1
                        total += X["g"][i, m] * int(E[m, j]) * X["mono"][i, index[tuple(lower)]]
                dx[i, j] = total
        return {"dx": dx}
    if name == "contract_rows":
        n, a = raw["y"].shape
        z = X["z"].reshape(n, -1, a)
        return {"out": (z * X["y"][:, None, :]).sum(axis=2)}
    raise KeyError(name)


def _degree(d: int, k: int) -> int:
    import math

    g = 0
    while math.comb(d + g, g) < k:
        g += 1
    return g


# ----------------------------------------------------------------------------- error model
class _EV:
    """A value with a first-order bound on its accumulated rounding error, in units of u."""

    __slots__ = ("v", "e")

    def __init__(self, v, e=0):
        self.v = v
        self.e = e


def _ev(expr, env: dict[str, _EV], mp, exp_units) -> _EV:
    import sympy as sp

    if expr.is_Symbol:
        return env[expr.name]
    if expr.is_Number:
        v = mp.mpf(expr.p) / expr.q
        return _EV(v, 0 if expr.is_Integer else abs(v))
    if expr.is_Add:
        terms = [_ev(a, env, mp, exp_units) for a in expr.args]
        v = mp.fsum(t.v for t in terms)
        # n-1 roundings, each at most |partial sum| <= sum |terms| (order-independent bound)
        return _EV(v, mp.fsum(t.e for t in terms) + (len(terms) - 1) * mp.fsum(abs(t.v) for t in terms))
    if expr.is_Mul:
        factors = [_ev(a, env, mp, exp_units) for a in expr.args]
        exact_signs = [a for a in expr.args if a in (sp.S.One, sp.S.NegativeOne)]
        v = mp.fprod(f.v for f in factors)
        e = mp.mpf(0)
        for i, f in enumerate(factors):
            e += f.e * mp.fprod(abs(h.v) for j, h in enumerate(factors) if j != i)
        n_round = len(factors) - len(exact_signs) - 1
        return _EV(v, e + max(0, n_round) * abs(v))
    if expr.is_Pow:
        base = _ev(expr.base, env, mp, exp_units)
        n = int(expr.exp)
        if n > 0:
            v = base.v ** n
            return _EV(v, n * abs(base.v) ** (n - 1) * base.e + (n - 1) * abs(v))
        n = -n
        v = 1 / base.v ** n
        return _EV(v, n * base.e / abs(base.v) ** (n + 1) + n * abs(v))
    if isinstance(expr, sp.exp):
        a = _ev(expr.args[0], env, mp, exp_units)
        v = mp.exp(a.v)
        return _EV(v, abs(v) * (a.e + exp_units))
    if isinstance(expr, sp.Max):
        args = [_ev(a, env, mp, exp_units) for a in expr.args]
        return _EV(max(a.v for a in args), max(a.e for a in args))
    raise NotImplementedError(f"error model: {expr.func}")  # pragma: no cover - printer rejects these first


@lru_cache(maxsize=None)
def _programs(name: str, dtype: str):
    """The printed programs of every stage, exactly as the template prints them."""
    spec = get_spec(name)
    forms = spec.forms()
    if spec.template == "rows":
        (form,) = forms
        reduced: dict[str, str] = {}
        reds = []
        for rname, op, e in form.reductions:
            reds.append((rname, op, stage_program(spec, dtype, [("term", e)], dict(reduced))))
            reduced[rname] = f"acc_{rname}"
        entry = stage_program(spec, dtype, list(form.entry_outputs), reduced) if form.entry_outputs else ()
        row = stage_program(spec, dtype, list(form.row_outputs), reduced) if form.row_outputs else ()
        return {"reductions": tuple(reds), "entry": entry, "row": row}
    (form,) = forms
    return {"entry": stage_program(spec, dtype, list(form.outputs), {})}


def _run(program, env, mp, exp_units) -> dict[str, _EV]:
    for target, e in program:
        env[target] = _ev(e, env, mp, exp_units)
    return env


def error_bounds(name: str, dtype: str, inputs: dict[str, Any], platform: str = "cpu") -> dict[str, np.ndarray]:
    """First-order bounds ``e`` (units of u) on ``|computed - exact|`` for every output entry."""
    import mpmath as mp

    spec = get_spec(name)
    exp_units = 2 * LIBM_EXP_ULP[platform][dtype]  # 1 ulp <= 2u relative
    progs = _programs(name, dtype)
    with mp.workdps(DPS):
        X = {k: (_mp(v) if isinstance(v, np.ndarray) else mp.mpf(float(v))) for k, v in inputs.items()}
        scal = {a.name: _EV(X[a.name]) for a in spec.inputs if a.role == "scalar"}
        t = spec.template
        if t == "elementwise":
            return _bounds_elementwise(spec, X, progs, scal, mp, exp_units)
        if t == "rows":
            return _bounds_rows(spec, X, progs, scal, mp, exp_units)
        if t == "kron_t":
            a, b = X["a"], X["b"]
            k1, n = a.shape
            k2 = b.shape[0]
            o = np.empty((k1 * k2, n), dtype=object)
            for l1 in range(k1):
                for l2 in range(k2):
                    for i in range(n):
                        env = _run(progs["entry"], {"v_a": _EV(a[l1, i]), "v_b": _EV(b[l2, i])}, mp, exp_units)
                        o[l1 * k2 + l2, i] = env["o"].e
            return {"o": o}
        if t == "monomials_t":
            x, parent, var = X["x"], inputs["parent"], inputs["var"]
            d, n = x.shape
            k = parent.shape[0]
            out = np.empty((k, n), dtype=object)
            for i in range(n):
                mono = [_EV(mp.mpf(1))]
                for m in range(1, k):
                    env = _run(progs["entry"], {"v_prev": mono[parent[m]], "v_x": _EV(x[var[m], i])}, mp, exp_units)
                    mono.append(env["mono"])
                out[:, i] = [ev.e for ev in mono]
            return {"mono": out}
        if t == "monomials_backward":
            g, mono, succ, mult = X["g"], X["mono"], inputs["succ"], X["mult"]
            n, _k = g.shape
            kp, d = succ.shape
            dx = np.empty((n, d), dtype=object)
            for i in range(n):
                for j in range(d):
                    terms = [_run(progs["entry"], {"v_g": _EV(g[i, succ[m, j]]), "v_mult": _EV(mult[m, j]),
                                                   "v_mono": _EV(mono[i, m])}, mp, exp_units)["term"]
                             for m in range(kp)]
                    dx[i, j] = _sum_bound(terms, mp).e
            return {"dx": dx}
        if t == "row_contract":
            z, y = X["z"], X["y"]
            n, a = y.shape
            n_out = z.shape[1] // a
            out = np.empty((n, n_out), dtype=object)
            for i in range(n):
                for j in range(n_out):
                    terms = [_run(progs["entry"], {"v_z": _EV(z[i, j * a + c]), "v_y": _EV(y[i, c])}, mp,
                                  exp_units)["term"] for c in range(a)]
                    out[i, j] = _sum_bound(terms, mp).e
            return {"out": out}
    raise KeyError(t)  # pragma: no cover


def _sum_bound(terms: list[_EV], mp) -> _EV:
    """Sequential ``acc = 0; acc += term`` as the kernels do it (the first addition is exact)."""
    acc = _EV(mp.mpf(0))
    for k, term in enumerate(terms):
        v = acc.v + term.v
        acc = _EV(v, acc.e + term.e + (abs(v) if k > 0 else 0))
    return acc


def _load_env(spec: KernelSpec, X, row: int, col: int, scal) -> dict[str, _EV]:
    env = dict(scal)
    for a in spec.inputs:
        if a.role == "entry":
            env[f"v_{a.name}"] = _EV(X[a.name][row, col])
        elif a.role == "row":
            env[f"v_{a.name}"] = _EV(X[a.name][row])
        elif a.role == "col":
            env[f"v_{a.name}"] = _EV(X[a.name][col])
    return env


def _bounds_elementwise(spec, X, progs, scal, mp, exp_units):
    first = next(a.name for a in spec.inputs if a.role == "entry")
    n_rows, n_cols = X[first].shape
    outs = {a.name: np.empty((n_rows, n_cols), dtype=object) for a in spec.outputs}
    for i in range(n_rows):
        for j in range(n_cols):
            env = _run(progs["entry"], _load_env(spec, X, i, j, scal), mp, exp_units)
            for name in outs:
                outs[name][i, j] = env[f"{name}[i]"].e if f"{name}[i]" in env else env[name].e
    return outs


def _bounds_rows(spec, X, progs, scal, mp, exp_units):
    first = next(a.name for a in spec.inputs if a.role == "entry")
    n_rows, n_cols = X[first].shape
    outs = {a.name: np.empty((n_rows, n_cols) if a.role == "out_entry" else (n_rows,), dtype=object)
            for a in spec.outputs}
    for i in range(n_rows):
        reduced: dict[str, _EV] = {}
        for rname, op, prog in progs["reductions"]:
            terms = []
            for j in range(n_cols):
                env = _load_env(spec, X, i, j, scal)
                env.update(reduced)
                terms.append(_run(prog, env, mp, exp_units)["term"])
            if op == "sum":
                acc = _sum_bound(terms, mp)
            else:
                acc = _EV(max(t.v for t in terms), max(t.e for t in terms))
            reduced[f"acc_{rname}"] = acc
        for j in range(n_cols):
            if not progs["entry"]:
                break
            env = _load_env(spec, X, i, j, scal)
            env.update(reduced)
            env = _run(progs["entry"], env, mp, exp_units)
            for a in spec.outputs:
                if a.role == "out_entry":
                    outs[a.name][i, j] = env[a.name].e
        if progs["row"]:
            env = _load_env(spec, X, i, 0, scal)
            env.update(reduced)
            env = _run(progs["row"], env, mp, exp_units)
            for a in spec.outputs:
                if a.role == "out_row":
                    outs[a.name][i] = env[a.name].e
    return outs


# ----------------------------------------------------------------------------- measurement
@dataclass(frozen=True)
class KernelAccuracy:
    """Worst observed errors of one kernel output in one dtype, over the samples measured."""

    kernel: str
    output: str
    dtype: str
    max_ulp: float
    max_rel: float
    max_bound_ratio: float
    samples: int

    @property
    def passed(self) -> bool:
        return self.max_bound_ratio <= 1.0


def measure(name: str, dtype: str, inputs: dict[str, Any], *, source: str | None = None, grid: int | None = None,
            block: int = 3, reverse: bool = False, runner: str = "cpu") -> dict[str, tuple[float, float, float]]:
    """Run kernel ``name``; per output ``(max ulp, max rel error, max error / tolerance)``.

    ``runner="cpu"`` compiles the kernel text with g++ (``source``: the text to run, default the
    generated text); ``runner="gpu"`` launches it through CuPy (:mod:`verified_lora.kernels`) and uses
    the CUDA libm figures in the bound. The tolerance of an entry is
    ``KERNEL_BOUND_FACTOR * u * e`` with ``e`` from :func:`error_bounds`; an entry whose bound is 0
    (an exact operation) must match exactly.
    """
    import mpmath as mp

    if runner == "gpu":
        import cupy

        from .. import kernels as gpu

        dev = {k: cupy.asarray(v) if isinstance(v, np.ndarray) else v for k, v in inputs.items()}
        outs = {k: cupy.asnumpy(v) for k, v in gpu.launch(name, dev).items()}
        platform = "cuda"
    else:
        from ..kernels.cpu import run_kernel

        outs = run_kernel(name, dtype, inputs, source=source, grid=grid, block=block, reverse=reverse)
        platform = "cpu"
    refs = reference(name, inputs)
    bounds = error_bounds(name, dtype, inputs, platform)
    u = mp.mpf(unit_roundoff(dtype))
    result = {}
    with mp.workdps(DPS):
        for key, ref in refs.items():
            got = outs[key]
            worst_ulp = worst_rel = worst_ratio = 0.0
            scale = max((abs(r) for r in ref.flat), default=mp.mpf(0))
            for idx, r in np.ndenumerate(ref):
                c = mp.mpf(float(got[idx]))
                err = abs(c - r)
                spacing = mp.mpf(float(np.spacing(np.abs(np.array(float(r), dtype=dtype)))))
                worst_ulp = max(worst_ulp, float(err / spacing) if spacing else 0.0)
                worst_rel = max(worst_rel, float(err / scale) if scale else float(err))
                tol = KERNEL_BOUND_FACTOR * u * bounds[key][idx]
                ratio = float(err / tol) if tol else (0.0 if err == 0 else float("inf"))
                worst_ratio = max(worst_ratio, ratio)
            result[key] = (worst_ulp, worst_rel, worst_ratio)
    return result


def _default_sizes(name: str, seed: int) -> dict[str, int]:
    rng = np.random.default_rng(10_000 + seed)
    return {"rows": int(rng.integers(1, 7)), "cols": int(rng.integers(1, 7)), "d": int(rng.integers(1, 4)),
            "g": int(rng.integers(0, 5))}


def accuracy_table(samples: int = 4, *, sources: dict[str, str] | None = None,
                   names: list[str] | None = None, dtypes: tuple[str, ...] = ("float64", "float32"),
                   progress=None) -> list[KernelAccuracy]:
    """Worst errors per kernel output and dtype over ``samples`` random inputs each (CPU runner)."""
    rows = []
    for spec in all_specs():
        if names and spec.name not in names:
            continue
        if progress:
            progress(f"kernel {spec.name}")
        for dtype in dtypes:
            worst: dict[str, list[float]] = {}
            for seed in range(samples):
                sz = _default_sizes(spec.name, seed)
                inputs = sample_inputs(spec.name, dtype, seed, **sz)
                got = measure(spec.name, dtype, inputs, source=(sources or {}).get(spec.name), reverse=bool(seed % 2))
                for key, vals in got.items():
                    w = worst.setdefault(key, [0.0, 0.0, 0.0])
                    worst[key] = [max(a, b) for a, b in zip(w, vals)]
            for key, (ulp, rel, ratio) in worst.items():
                rows.append(KernelAccuracy(spec.name, key, dtype, ulp, rel, ratio, samples))
    return rows
