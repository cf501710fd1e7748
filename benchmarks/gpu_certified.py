"""GPU benchmark: the certified fast path (:func:`verified_lora.fast.loss_and_grads`, forced fast, tol 1e-6
relative) against exact float64, both on CuPy, on the problems of ``benchmarks/fast_vs_exact.py``
(self-attention, d_model = d_head = d_v = d, LoRA rank 4 on Q, K, V, inputs scaled so the certified score
bound is R = 1).

Needs a CUDA GPU with CuPy; not run in CI. Usage::

    python3 benchmarks/gpu_certified.py --d 4 8 --lengths 4096 16384 65536 --json gpu_certified.json

Per (d, L): cold (first call: the polynomial certification of its (family, R) cell included) and warm
(median of the later calls) seconds of each path, with device synchronisation; the certified degree;
the observed max relative error against exact; and ``obs/bound``, the largest ratio over the adapter
gradients of the observed max-entry error to the certified bound (it must stay <= 1). ``--cpu`` runs the
same on NumPy (logic check; those timings are no GPU result).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _host(a):
    import numpy as np

    return np.asarray(a.get() if hasattr(a, "get") else a)


def _timed(fn, sync, runs: int):
    times, out = [], None
    for _ in range(runs):
        t0 = time.perf_counter()
        out = fn()
        sync()
        times.append(time.perf_counter() - t0)
    return times[0], statistics.median(times[1:]), out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--d", type=int, nargs="+", default=[4, 8])
    ap.add_argument("--lengths", type=int, nargs="+", default=[4096, 16384, 65536])
    ap.add_argument("--tol", type=float, default=1e-6)
    ap.add_argument("--runs", type=int, default=3, help="calls per path: the first is cold, the rest warm")
    ap.add_argument("--json", metavar="PATH")
    ap.add_argument("--cpu", action="store_true", help="run on NumPy (no GPU numbers)")
    args = ap.parse_args(argv)
    if args.runs < 2:
        ap.error("--runs must be at least 2 (one cold call, then warm ones)")

    import numpy as np

    from verified_lora import exact, fast
    from verified_lora._table import format_table
    from verified_lora.fast.bench import make_problem
    from verified_lora.tolerances import max_relative_error

    if args.cpu:
        move, sync, device = (lambda p: p), (lambda: None), "none (CPU run: timings are NOT GPU results)"
    else:
        import cupy

        from verified_lora.kernels import to_cupy

        move, sync = to_cupy, cupy.cuda.Device().synchronize
        device = cupy.cuda.runtime.getDeviceProperties(0)["name"].decode()
    rows = []
    for d in args.d:
        for L in args.lengths:
            p = move(make_problem(d, L, 1.0))
            ec, ew, ex = _timed(lambda: exact.loss_and_grads(p), sync, args.runs)
            fc, fw, r = _timed(lambda: fast.loss_and_grads(p, args.tol, force="fast"), sync, args.runs)
            g = {k: _host(v) for k, v in r.grads.items()}
            e = {k: _host(v) for k, v in ex.grads.items()}
            worst = 0.0
            for k in g:
                err = float(np.max(np.abs(g[k] - e[k])))
                worst = max(worst, err / r.bounds[k] if r.bounds[k] > 0 else (0.0 if err == 0 else float("inf")))
            rows.append({"d": d, "L": L, "exact_cold": ec, "exact_warm": ew, "fast_cold": fc, "fast_warm": fw,
                         "path": r.path, "certified": bool(r.certified), "degree": int(r.info.get("degree", -1)),
                         "obs_rel": max(max_relative_error(g[k], e[k]) for k in g), "obs_over_bound": worst,
                         "ratio_warm": ew / fw})
            print(f"d={d} L={L} done", flush=True)
    print(f"certified fast vs exact on {device} (float64, tol {args.tol:g} relative, R = 1)")
    print(format_table(
        ["d", "L", "exact cold s", "exact warm s", "fast cold s", "fast warm s", "warm ratio", "g", "certified",
         "obs rel err", "obs/bound"],
        [[r["d"], r["L"], f"{r['exact_cold']:.4g}", f"{r['exact_warm']:.4g}", f"{r['fast_cold']:.4g}",
          f"{r['fast_warm']:.4g}", f"{r['ratio_warm']:.3g}", r["degree"], r["certified"], f"{r['obs_rel']:.3g}",
          f"{r['obs_over_bound']:.3g}"] for r in rows]))
    if args.json:
        Path(args.json).write_text(json.dumps({"device": device, "arguments": vars(args), "results": rows}, indent=1))
    return 0 if all(r["obs_over_bound"] <= 1 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
