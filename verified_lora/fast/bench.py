"""The fast-vs-exact benchmark engine (``benchmarks/fast_vs_exact.py`` and ``verified-lora bench``).

Compares, on one machine and in one run: the certified fast path (``factored`` and ``paper``, forced
fast, ``tol`` relative per gradient, certified a posteriori), the exact blocked float64 code, PyTorch
float64 autograd on the CPU (when installed, up to ``torch_max_L``), and an *uncertified* reference
point ``factored@obs`` (the factored algorithm at the least minimax degree whose observed error
meets ``tol``). Reports median time, peak extra RSS (psutil, optional), counted GEMM FLOPs and the
rate against a DGEMM peak measured in the same run, observed and certified relative errors, the
crossover L and the log-log slope over L in [8192, 65536]. Not a test.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import threading
import time
from pathlib import Path

import numpy as np

from .. import exact
from ..errors import RegimeError
from .._table import fmt_num, format_markdown
from .. import features as F
from ..bounds import score_bound
from ..bounds.cost import exact_gemm_flops
from ..examples import random_problem
from . import loss_and_grads as _fast_loss_and_grads, run_with_polynomial
from .proxy_moments import proxy_polynomial

__all__ = ["METHODS", "run_sweep", "summarise", "write_outputs", "dgemm_peak", "make_problem"]

METHODS = ("factored", "paper", "exact", "torch", "factored@obs")


# ------------------------------------------------------------------------------ measurement helpers
class PeakRSS:
    """Peak resident set size above the starting value, sampled every 2 ms in a thread."""

    def __init__(self):
        try:
            import psutil
        except ImportError:  # optional: without psutil the peak is reported as 0
            psutil = None
        self.proc = psutil.Process() if psutil else None
        self.base = self.proc.memory_info().rss if self.proc else 0
        self.peak = self.base
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        if self.proc is None:
            return
        while not self._stop.is_set():
            self.peak = max(self.peak, self.proc.memory_info().rss)
            self._stop.wait(0.002)

    def __enter__(self):
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()
        if self.proc is not None:
            self.peak = max(self.peak, self.proc.memory_info().rss)

    @property
    def extra_bytes(self) -> int:
        return max(0, self.peak - self.base)


def dgemm_peak(n: int = 2048, repeats: int = 3, clock=time.perf_counter) -> float:
    """Best-of-``repeats`` GFLOP/s of an ``n x n`` float64 product, timed with ``clock`` (wall by default;
    ``time.process_time`` for CPU seconds)."""
    a = np.random.default_rng(0).standard_normal((n, n))
    b = np.random.default_rng(1).standard_normal((n, n))
    best = math.inf
    for _ in range(repeats):
        t0 = clock()
        a @ b
        best = min(best, clock() - t0)
    return 2.0 * n ** 3 / best / 1e9


def make_problem(d: int, L: int, R: float, seed: int = 0):
    p = random_problem(seed, L=L, d_model=d, d_head=d, d_v=d, r=4, alpha=8.0, beta=1.0, scale=0.2)
    r0 = score_bound(p).R
    s = math.sqrt(R / r0)  # self-attention: scores are quadratic in X
    p = p.replace(x_q=p.x_q * s)
    # the certified bound is computed with outward rounding: shave until it is <= R
    while score_bound(p).R > R:
        p = p.replace(x_q=p.x_q * (1 - 1e-9))
    return p


def torch_grads(problem):
    import torch

    torch.set_default_dtype(torch.float64)
    t = {k: torch.from_numpy(np.array(v)) for k, v in
         dict(x=problem.x_q, y=problem.y, wq=problem.w_q, wk=problem.w_k, wv=problem.w_v).items()}
    params = {}
    W = {}
    for key, w in (("Q", t["wq"]), ("K", t["wk"]), ("V", t["wv"])):
        ad = problem.adapters[key]
        A = torch.from_numpy(np.array(ad.a)).requires_grad_(True)
        B = torch.from_numpy(np.array(ad.b)).requires_grad_(True)
        params[f"A_{key}"], params[f"B_{key}"] = A, B
        W[key] = w + problem.scale(key) * (B @ A)
    Q, K, V = t["x"] @ W["Q"], t["x"] @ W["K"], t["x"] @ W["V"]
    f = torch.softmax(problem.beta * Q @ K.T, dim=1)
    loss = 0.5 * ((f @ V - t["y"]) ** 2).sum()
    loss.backward()
    return {k: v.grad.numpy() for k, v in params.items()}


def factored_flops(L: int, Lk: int, d: int, dv: int, k: int, kp: int) -> float:
    """GEMM FLOPs the factored core performs (fast/_cores.py): 3 k-wide passes + 2 derivative GEMMs."""
    a = dv + 1
    return 2.0 * Lk * k * a + (2.0 * L * k * a + 2.0 * L * kp * d * a + 2.0 * L * k * a) \
        + (2.0 * Lk * k * dv + 2.0 * Lk * kp * d * a)


def paper_flops(L: int, Lk: int, d: int, dv: int, k: int) -> float:
    """GEMM FLOPs of the paper core: V1^T[V,1,K], V3^T K, U1 H, U3 (V3^T K), U3^T P, ... (fast/_cores.py)."""
    return (2.0 * Lk * k * (dv + 1 + d) + 2.0 * Lk * k * dv * d) \
        + (2.0 * L * k * (dv + 1 + d + d + dv) + 4.0 * L * k * dv * d) \
        + (2.0 * Lk * k * dv * d + 2.0 * Lk * k * (d + dv))


def moment_flops(L: int, Lk: int, d: int, dv: int, k: int, extra: int = 0) -> float:
    """GEMM FLOPs of the certificate's moment pass: ``Phi_V^T [V, V o V, K, K o K, (extra columns), 1]`` and
    its contraction (``extra``: :func:`moment_extra_columns`)."""
    return 2.0 * (L + Lk) * k * (2 * dv + 2 * d + 1 + extra)


def moment_extra_columns(problem) -> int:
    """Moment columns beyond ``[V, V o V, K, K o K, 1]`` (fast/certificate.py ``item_moments``): the squared
    ``[X_K, X_V]`` and adapter columns, the cross moments ``V_j V_j'`` and the first moments of ``X_V``."""
    from .adapter_chain import extra_layout

    dv = problem.d_v
    return sum(w for _n, w in extra_layout(problem)) + dv * (dv - 1) // 2 + problem.d_model


def rel_err(got: dict, ref: dict) -> float:
    return max(float(np.abs(got[k] - ref[k]).max() / np.abs(ref[k]).max()) for k in ref)


def clear_certificate_caches() -> None:
    """Forget every in-process certificate, so the next fast call pays its certification (cold)."""
    from ..approx import degree as _degree
    from ..approx import polynomials as _poly
    from ..features import maps as _maps
    from ..bounds import _approx_api as _api

    for cached in (_api._cert, _api._lower, _api._any_lower, _maps._float_weights, _degree.degree_table,
                   _degree._choose, _degree._on_grid_memo, _poly._minimax_cached, _poly._chebyshev_cached):
        cached.cache_clear()


def timed_cold_warm(fn, repeats: int, long_s: float):
    """``(cold, warm median, warm times, peak, out)``: the first call after clearing the certificate
    caches (certification included), then the median of ``repeats`` later calls (never mixed)."""
    clear_certificate_caches()
    with PeakRSS() as m:
        t0 = time.perf_counter()
        out = fn()
        cold = time.perf_counter() - t0
    peak = m.extra_bytes
    if cold > long_s:  # one more call only: the warm figure is still a separate measurement
        repeats = 1
    med, times, peak2, out = timed(fn, repeats, long_s)
    return cold, med, times, max(peak, peak2), out


def timed(fn, repeats: int, long_s: float):
    times, out, peak = [], None, 0
    for i in range(repeats):
        with PeakRSS() as m:
            t0 = time.perf_counter()
            out = fn()
            times.append(time.perf_counter() - t0)
        peak = max(peak, m.extra_bytes)
        if times[-1] > long_s and i >= 0:
            break
    return statistics.median(times), times, peak, out


# ------------------------------------------------------------------------------ the sweep
def observed_degree(problem, ref, tol: float) -> int:
    from fractions import Fraction

    from verified_lora.approx.polynomials import make_polynomial

    R = Fraction(score_bound(problem).R).limit_denominator(10**6) + Fraction(1, 10**6)
    for g in range(1, 30):
        coeffs = make_polynomial("minimax", g, R).coeffs
        _, grads, _, _ = run_with_polynomial(problem, list(coeffs))
        if rel_err(grads, ref) <= tol:
            return g
    return 30


def run_sweep(ds, Ls, *, R: float, tol: float, repeats: int, long_s: float, max_s: float, torch_max_L: int,
              methods, log, obs_degree: int | None = None) -> dict:
    peak = dgemm_peak()
    log(f"DGEMM 2048^3: {peak:.1f} GFLOP/s")
    rows = []
    for d in ds:
        last: dict[str, tuple[int, float, int]] = {}
        g_obs = obs_degree
        for L in Ls:
            problem = make_problem(d, L, R)
            log(f"d={d} L={L}: R={score_bound(problem).R:.6g}")
            ref = None
            results = {}

            def predicted(name, k_now=None):
                if name not in last:
                    return 0.0
                L0, t0, k0 = last[name]
                slope = 2.0 if name in ("exact", "torch") else 1.0
                grow = (k_now / k0) if (k_now and k0) else 1.0
                return t0 * (L / L0) ** slope * grow

            # exact first: it is the reference for the errors
            if "exact" in methods or True:
                if predicted("exact") > max_s and "exact" in last:
                    log(f"  exact: skipped (predicted {predicted('exact'):.0f} s)")
                    results["exact"] = dict(skipped=f"predicted {predicted('exact'):.0f} s")
                else:
                    med, times, mem, res = timed(lambda: exact.loss_and_grads(problem), repeats, long_s)
                    ref = res.grads
                    results["exact"] = dict(time=med, times=times, mem=mem, flops=exact_gemm_flops(L, L, d, d),
                                            err=0.0)
                    last["exact"] = (L, med, 0)
                    log(f"  exact: {med:.3f} s (runs {['%.2f' % t for t in times]}), +{mem / 2**20:.0f} MiB")
            if "torch" in methods:
                if L > torch_max_L:
                    results["torch"] = dict(skipped=f"L > {torch_max_L} (dense L x L float64 autograd memory)")
                elif predicted("torch") > max_s:
                    results["torch"] = dict(skipped=f"predicted {predicted('torch'):.0f} s")
                else:
                    import torch  # noqa: F401  (import cost outside the timing)

                    med, times, mem, tg = timed(lambda: torch_grads(problem), repeats, long_s)
                    results["torch"] = dict(time=med, times=times, mem=mem, flops=exact_gemm_flops(L, L, d, d),
                                            err=rel_err(tg, ref) if ref else None)
                    last["torch"] = (L, med, 0)
                    log(f"  torch: {med:.3f} s, +{mem / 2**20:.0f} MiB")
            for method in ("factored", "paper"):
                if method not in methods:
                    continue
                plan_probe = _fast_loss_and_grads  # the planner runs inside; its certificates are cached
                k_prev = last.get(method, (0, 0, 0))[2]
                if predicted(method, None) > max_s:
                    results[method] = dict(skipped=f"predicted {predicted(method):.0f} s")
                    log(f"  {method}: skipped ({results[method]['skipped']})")
                    continue
                try:
                    cold, med, times, mem, res = timed_cold_warm(
                        lambda: plan_probe(problem, tol, method=method, force="fast"), repeats, long_s)
                except RegimeError as exc:  # tol not certifiable: say so, with the reason
                    results[method] = dict(skipped=f"not certifiable: {str(exc)[:160]}")
                    log(f"  {method}: {results[method]['skipped']}")
                    continue
                k, g = res.rank, res.degree
                kp = F.rank(d, g - 1) if g >= 1 else 0
                flops = factored_flops(L, L, d, d, k, kp) if method == "factored" else paper_flops(L, L, d, d, k)
                # the certificate's moment pass and the planner's scale run, both at the proxy's small rank
                # (fast/proxy_moments.py)
                prox = proxy_polynomial(float(res.R))
                if prox is not None:
                    kh = F.rank(d, prox[0])
                    flops += moment_flops(L, L, d, d, kh, moment_extra_columns(problem))
                    flops += factored_flops(L, L, d, d, kh, F.rank(d, prox[0] - 1))
                rb = max(res.relative_bounds.values())
                results[method] = dict(time=med, cold=cold, times=times, mem=mem, flops=flops, degree=g, rank=k,
                                       family=res.family, cert_rel=rb, certified=res.certified,
                                       err=rel_err(res.grads, ref) if ref else None, attempts=res.attempts)
                last[method] = (L, med, k)
                log(f"  {method}: cold {cold:.3f} s, warm {med:.3f} s (runs {['%.2f' % t for t in times]}), "
                    f"{res.family} g={g} k={k}, attempts {res.attempts}, certified rel {rb:.2e}, "
                    f"observed {results[method]['err']}")
            if "factored@obs" in methods:
                if g_obs is None and ref is not None:
                    g_obs = observed_degree(problem, ref, tol)
                    log(f"  observed-accurate minimax degree: {g_obs}")
                if g_obs is not None and predicted("factored@obs") <= max_s:
                    from fractions import Fraction

                    from verified_lora.approx.polynomials import make_polynomial

                    Rf = Fraction(score_bound(problem).R).limit_denominator(10**6) + Fraction(1, 10**6)
                    coeffs = list(make_polynomial("minimax", g_obs, Rf).coeffs)
                    med, times, mem, out = timed(lambda: run_with_polynomial(problem, coeffs), repeats, long_s)
                    k = F.rank(d, g_obs)
                    results["factored@obs"] = dict(time=med, times=times, mem=mem, degree=g_obs, rank=k,
                                                   flops=factored_flops(L, L, d, d, k, F.rank(d, g_obs - 1)),
                                                   err=rel_err(out[1], ref) if ref else None, cert_rel=None)
                    last["factored@obs"] = (L, med, k)
                    log(f"  factored@obs (uncertified, g={g_obs}): {med:.3f} s, observed {results['factored@obs']['err']}")
                else:
                    results["factored@obs"] = dict(skipped="predicted too long" if g_obs else "no exact reference")
            for name, r in results.items():
                rows.append(dict(d=d, L=L, method=name, **r))
    peak_end = dgemm_peak()
    log(f"DGEMM 2048^3 at the end: {peak_end:.1f} GFLOP/s (the larger of the two is the reference)")
    peak = max(peak, peak_end)
    return dict(dgemm_gflops=peak, R=R, tol=tol, repeats=repeats, rows=rows, cpu_count=os.cpu_count(),
                load_average=os.getloadavg(),
                blas_threads=os.environ.get("OPENBLAS_NUM_THREADS", "default"))


def summarise(data: dict) -> dict:
    """Crossover L, log-log slope (8k-64k) and the targets, per d."""
    out = {}
    rows = data["rows"]
    for d in sorted({r["d"] for r in rows}):
        per = {}
        for m in METHODS:
            pts = sorted((r["L"], r["time"]) for r in rows if r["d"] == d and r["method"] == m and "time" in r)
            per[m] = pts
        best_exact = {}
        for m in ("exact", "torch"):
            for L, t in per.get(m, []):
                best_exact[L] = min(best_exact.get(L, math.inf), t)
        s = {}
        for m in ("factored", "paper", "factored@obs", "exact", "torch"):
            pts = [(L, t) for L, t in per.get(m, []) if 8192 <= L <= 65536]
            if len(pts) >= 2:
                x = np.log([p[0] for p in pts])
                y = np.log([p[1] for p in pts])
                s[f"slope_{m}"] = float(np.polyfit(x, y, 1)[0])
            if m in ("factored", "paper", "factored@obs"):
                cross = [L for L, t in per.get(m, []) if L in best_exact and t < best_exact[L]]
                s[f"crossover_{m}"] = min(cross) if cross else None
                at = dict(per.get(m, []))
                Lmax = max(best_exact) if best_exact else None
                if Lmax and Lmax in at:
                    s[f"speedup_{m}_at_{Lmax}"] = best_exact[Lmax] / at[Lmax]
        out[d] = s
    return out


def write_outputs(data: dict, path_stem: Path) -> None:
    summ = summarise(data)
    data["summary"] = {str(k): v for k, v in summ.items()}
    path_stem.parent.mkdir(parents=True, exist_ok=True)
    path_stem.with_suffix(".json").write_text(json.dumps(data, indent=1, default=str) + "\n")
    peak = data["dgemm_gflops"]
    headers = ("d", "L", "method", "cold s", "warm median s", "runs", "peak +MiB", "GEMM GFLOP/s", "% DGEMM", "g",
               "k", "observed rel err", "certified rel bound", "note")
    table = []
    for r in data["rows"]:
        if "time" not in r:
            table.append((r["d"], r["L"], r["method"], "-", "-", 0, "-", "-", "-", "-", "-", "-", "-",
                          r.get("skipped", "")))
            continue
        rate = r["flops"] / r["time"] / 1e9 if r.get("flops") else None
        table.append((r["d"], r["L"], r["method"], r.get("cold", "-"), r["time"], len(r["times"]), r["mem"] / 2**20, rate,
                      100 * rate / peak if rate else None, r.get("degree", "-"), r.get("rank", "-"),
                      r.get("err"), r.get("cert_rel"),
                      "uncertified" if r["method"] == "factored@obs" else ""))
    lines = [f"# fast vs exact (benchmarks/fast_vs_exact.py)", "",
             f"DGEMM peak measured in this run: {peak:.1f} GFLOP/s; {data['cpu_count']} CPUs; load average at the "
             f"end {tuple(round(x, 2) for x in data['load_average'])}; OPENBLAS_NUM_THREADS="
             f"{data.get('blas_threads', 'default')}; R = {data['R']}, tol = {data['tol']} relative "
             f"(per gradient, certified a posteriori); certified paths: cold = the first call with every "
             f"certificate cache cleared (certification included), warm = median of up to {data['repeats']} "
             "later calls (the two are never mixed); baselines: median of up to "
             f"{data['repeats']} runs. GEMM GFLOP/s of the certified paths (warm) counts the core's GEMMs and "
             "the certificate's row moments and the planner's scale run, both at the small rank of the proxy "
             "polynomial (fast/proxy_moments.py).", "",
             format_markdown(headers, table), "", "## Summary", ""]
    for d, s in summ.items():
        lines.append(f"- d = {d}: " + ", ".join(f"{k} = {fmt_num(v)}" for k, v in s.items()))
    path_stem.with_suffix(".md").write_text("\n".join(lines) + "\n")
    try:
        import matplotlib

        matplotlib.use("Agg", force=True)
        import matplotlib.pyplot as plt
    except ImportError:
        return
    ds = sorted({r["d"] for r in data["rows"]})
    fig, axes = plt.subplots(1, len(ds), figsize=(5 * len(ds), 4), squeeze=False)
    for ax, d in zip(axes[0], ds):
        for m in METHODS:
            pts = sorted((r["L"], r["time"]) for r in data["rows"] if r["d"] == d and r["method"] == m and "time" in r)
            if pts:
                ax.loglog(*zip(*pts), "o-" if m != "factored@obs" else "o--", label=m)
        ax.set_title(f"d = {d}, R = {data['R']}, tol = {data['tol']} rel")
        ax.set_xlabel("L")
        ax.set_ylabel("seconds (median)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path_stem.with_suffix(".png"), dpi=110)
