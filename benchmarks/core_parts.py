"""Per-part CPU time of the factored core against a DGEMM rate measured in the same process.

Runs :func:`verified_lora.fast.run_with_polynomial` (method "factored") with a fixed certified
minimax polynomial (family ``minimax-antiderivative`` on ``[-R, R]``), and times the core's parts by
wrapping the functions it calls (monomial construction, the chunked feature GEMMs, the thin GEMMs, the
derivative contraction, the normalised residual; "other" is the rest of the core). CPU seconds
(``time.process_time``): run with ``OPENBLAS_NUM_THREADS=1`` so they equal one core's time. Not a test.

    OPENBLAS_NUM_THREADS=1 PYTHONPATH=. python benchmarks/core_parts.py --d 8 --g 10 --L 4096 16384
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict

from verified_lora.fast.bench import dgemm_peak


def _timed(name, fn, acc):
    def wrapper(*args, **kwargs):
        t0 = time.process_time()
        try:
            return fn(*args, **kwargs)
        finally:
            acc[name] += time.process_time() - t0
    return wrapper


def measure(d: int, g: int, L: int, R: float = 1.0, repeats: int = 2, block: int | None = None) -> dict:
    from verified_lora import fast
    from verified_lora.bounds._approx_api import certify
    from verified_lora.fast import _cores, bench
    from verified_lora.features.layout import feature_layout

    p = bench.make_problem(d, L, R)
    coeffs = list(certify("minimax-antiderivative", g, R).polynomial.coeffs)
    k = feature_layout(d, g).k
    kp = feature_layout(d, g - 1).k if g > 0 else 0
    flops = bench.factored_flops(L, L, d, d, k, kp)
    best = None
    for _ in range(repeats):
        acc: dict = defaultdict(float)
        saved = {}
        names = [n for n in ("tmatmul_bt", "add_product", "_top_product", "_thin_rows") if hasattr(_cores, n)]
        for n in names:
            saved[n] = getattr(_cores, n)
            setattr(_cores, n, _timed(n, saved[n], acc))
        Fmod = _cores.F
        Fsaved = {n: getattr(Fmod, n) for n in ("contract_derivative", "derivative_coefficients")}
        core_saved = _cores.factored_core
        steps_for_saved = _cores._steps.steps_for

        def steps_for(xp, _orig=steps_for_saved):
            s = _orig(xp)
            for n in ("normalised_residual", "monomial_steps", "monomials_t", "contract_rows"):
                if hasattr(s, n):
                    setattr(s, n, _timed("steps." + n, getattr(s, n), acc))
            return s

        try:
            for n, f in Fsaved.items():
                setattr(Fmod, n, _timed(n, f, acc))
            _cores._steps.steps_for = steps_for
            _cores.factored_core = _timed("core", core_saved, acc)
            t0 = time.process_time()
            fast.run_with_polynomial(p, coeffs, "factored", block_size=block)
            total = time.process_time() - t0
        finally:
            for n, f in saved.items():
                setattr(_cores, n, f)
            for n, f in Fsaved.items():
                setattr(Fmod, n, f)
            _cores._steps.steps_for = steps_for_saved
            _cores.factored_core = core_saved
        acc["total"] = total
        if best is None or acc["core"] < best["core"]:
            best = dict(acc)
    best["flops"] = flops
    best["k"], best["kp"] = k, kp
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--d", type=int, default=8)
    ap.add_argument("--g", type=int, nargs="+", default=[10])
    ap.add_argument("--L", type=int, nargs="+", default=[4096])
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--block", type=int, default=None, help="rows per block (default: the package's default)")
    args = ap.parse_args()
    rate = dgemm_peak(clock=time.process_time)
    print(f"DGEMM 2048^3: {rate:.1f} GFLOP/s (CPU time)")
    for g in args.g:
        for L in args.L:
            r = measure(args.d, g, L, repeats=args.repeats, block=args.block)
            core = r["core"]
            parts = {"construction": r.get("steps.monomial_steps", 0.0) or r.get("steps.monomials_t", 0.0),
                     "wide chunk GEMMs": r.get("tmatmul_bt", 0.0) + r.get("add_product", 0.0),
                     "thin degree-g products (O, dV)": r.get("_top_product", 0.0),
                     "thin H, E GEMMs": r.get("_thin_rows", 0.0),
                     "contraction": r.get("contract_derivative", 0.0),
                     "residual": r.get("steps.normalised_residual", 0.0),
                     "derivative coefficients": r.get("derivative_coefficients", 0.0)}
            parts["other"] = core - sum(parts.values())
            text = ", ".join(f"{n} {v:.3f}" for n, v in parts.items())
            print(f"d={args.d} g={g} k={r['k']} L={L} block={args.block or 'default'}: run {r['total']:.3f} s, "
                  f"core {core:.3f} s ({text}); core {r['flops'] / core / 1e9:.2f} GFLOP/s = "
                  f"{100 * r['flops'] / core / 1e9 / rate:.1f}% DGEMM (run: {100 * r['flops'] / r['total'] / 1e9 / rate:.1f}%)",
                  flush=True)


if __name__ == "__main__":
    main()
