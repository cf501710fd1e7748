"""GPU benchmark: exact vs fast ("factored", "paper") vs torch scaled_dot_product_attention, fwd+bwd.

Needs a CUDA GPU with CuPy (``pip install cupy-cuda13x``) and, for the torch column, a CUDA
build of torch. Not run in CI (no GPU there); run it through ``gpu/run_checks.sh`` or directly::

    python3 benchmarks/gpu_fast_vs_exact.py --lengths 1024 4096 16384 65536 --json gpu_bench.json

For each L (self-attention, L_k = L) it builds one random problem (small heads: the polynomial
method only pays off at small d), moves it to the GPU (``verified_lora.kernels.to_cupy``) and times,
with device synchronisation, the median of ``--repeats`` runs after one warm-up:

* ``exact``: :func:`verified_lora.exact.loss_and_grads` on CuPy (blocked, cuBLAS GEMMs, the
  generated softmax / residual / softmax-gradient kernels);
* ``factored`` / ``paper``: :func:`verified_lora.fast.run_with_polynomial` with the Taylor
  polynomial of degree ``--degree`` (generated monomial / contraction kernels);
* ``torch-sdpa``: ``torch.nn.functional.scaled_dot_product_attention`` forward + backward of the
  same loss (``scale = beta``) with the LoRA factors as leaf tensors, in the problem's dtype.

Every column's gradients are compared with ``exact`` (max-entry relative error). The GPU model,
driver/runtime and library versions are recorded in the output.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from fractions import Fraction
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _timed(fn, sync, repeats):
    fn()
    sync()
    times = []
    out = None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def _torch_sdpa(problem, repeats, device="cuda"):
    import torch
    import torch.nn.functional as tf

    dev = torch.device(device)
    dt = {"float32": torch.float32, "float64": torch.float64}[str(problem.dtype)]
    pr = problem.to_numpy()
    t = lambda a, grad=False: torch.tensor(a, dtype=dt, device=dev, requires_grad=grad)  # noqa: E731
    x_q, x_k, x_v, y = t(pr.x_q), t(pr.x_k), t(pr.x_v), t(pr.y)
    leaves = {}
    for key in ("Q", "K", "V"):
        w = t(pr.frozen_weight(key))
        if key in pr.adapters:
            leaves[key] = (t(pr.adapters[key].a, True), t(pr.adapters[key].b, True), w, pr.scale(key))
        else:
            leaves[key] = (None, None, w, 0.0)

    def weight(key):
        a, b, w, s = leaves[key]
        return w if a is None else w + s * (b @ a)

    def step():
        for a, b, _w, _s in leaves.values():
            if a is not None:
                a.grad = b.grad = None
        Q, K, V = x_q @ weight("Q"), x_k @ weight("K"), x_v @ weight("V")
        out = tf.scaled_dot_product_attention(Q[None], K[None], V[None], scale=float(pr.beta))[0]
        loss = 0.5 * ((out - y) ** 2).sum()
        loss.backward()
        return {f"{n}_{key}": (a if n == "A" else b).grad.detach().cpu().numpy()
                for key, (a, b, _w, _s) in leaves.items() if a is not None for n in ("A", "B")}

    return _timed(step, torch.cuda.synchronize if device == "cuda" else (lambda: None), repeats)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[1024, 4096, 16384, 65536])
    parser.add_argument("--d-model", type=int, default=16)
    parser.add_argument("--d-head", type=int, default=4)
    parser.add_argument("--d-v", type=int, default=4)
    parser.add_argument("--rank", type=int, default=4)
    parser.add_argument("--degree", type=int, default=6, help="Taylor degree of the fast path")
    parser.add_argument("--beta", type=float, default=0.25)
    parser.add_argument("--scale", type=float, default=0.3, help="entry size of the random problem")
    parser.add_argument("--dtype", default="float64", choices=("float64", "float32"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-torch", action="store_true")
    parser.add_argument("--json", metavar="PATH", help="write the results as JSON")
    parser.add_argument("--dry-run-cpu", action="store_true",
                        help="exercise the benchmark logic on the CPU (NumPy arrays, torch on CPU); no GPU numbers")
    args = parser.parse_args(argv)

    import numpy as np

    from verified_lora import exact, fast, kernels as gpu
    from verified_lora._table import format_table
    from verified_lora.examples import random_problem
    from verified_lora.tolerances import max_relative_error

    if args.dry_run_cpu:
        xp, to_device, sync, device = np, (lambda p: p), (lambda: None), "cpu"
        env = {"gpu": "none (CPU dry run: timings are NOT GPU results)"}
    else:
        if not gpu.available():
            print("no usable CUDA GPU (cupy missing or cupy.cuda.is_available() is False): nothing to benchmark",
                  file=sys.stderr)
            return 2
        import cupy

        xp, to_device, sync, device = cupy, gpu.to_cupy, cupy.cuda.Device().synchronize, "cuda"
        env = {"gpu": gpu.device_name(), "cuda_runtime": cupy.cuda.runtime.runtimeGetVersion(),
               "cuda_driver": cupy.cuda.runtime.driverGetVersion(), "cupy": cupy.__version__}
    try:
        import torch

        env["torch"] = torch.__version__
        use_torch = not args.no_torch and (device == "cpu" or torch.cuda.is_available())
    except ImportError:
        use_torch = False
    print("device:", json.dumps(env), file=sys.stderr)
    coeffs = [Fraction(1, math.factorial(t)) for t in range(args.degree + 1)]
    host = (lambda a: a.get()) if xp is not np else np.asarray
    rows, records = [], []
    for L in args.lengths:
        problem = random_problem(L, L=L, d_model=args.d_model, d_head=args.d_head, d_v=args.d_v, r=args.rank,
                                 adapters=("Q", "K", "V"), beta=args.beta, scale=args.scale, dtype=args.dtype)
        dev = to_device(problem)
        t_exact, ex = _timed(lambda: exact.loss_and_grads(dev), sync, args.repeats)
        ref = {k: host(v) for k, v in ex.grads.items()}
        results = {"exact": (t_exact, ref)}
        for method in ("factored", "paper"):
            t, out = _timed(lambda m=method: fast.run_with_polynomial(dev, coeffs, m), sync, args.repeats)
            results[method] = (t, {k: host(v) for k, v in out[1].items()})
        if use_torch:
            results["torch-sdpa"] = _torch_sdpa(problem, args.repeats, device)
        for name, (t, grads) in results.items():
            err = max(max_relative_error(grads[k], ref[k]) for k in ref)
            rows.append((L, name, t, t_exact / t, err))
            records.append({"L": L, "method": name, "seconds": t, "speedup_vs_exact": t_exact / t,
                            "max_rel_err_vs_exact": err})
        print(f"L={L} done", file=sys.stderr)
    print(format_table(("L", "method", "seconds", "speedup vs exact", "max rel err vs exact"), rows,
                       title=f"fwd+bwd on {env['gpu']} ({args.dtype}, d_model={args.d_model}, d_head={args.d_head}, "
                             f"d_v={args.d_v}, r={args.rank}, Taylor degree {args.degree}, beta={args.beta})"))
    if args.json:
        Path(args.json).write_text(json.dumps({"environment": env, "arguments": vars(args), "results": records},
                                              indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
