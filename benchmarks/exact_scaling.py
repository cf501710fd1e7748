"""Time and peak memory of ``verified_lora.exact.loss_and_grads`` as L grows (issue 2 acceptance).

Self-attention, d_model = d_head = d_v = 64, adapters on Q, K and V with r = 8, float64, default
block size. Each length runs in a fresh Python process so that its peak resident set size
(``resource.getrusage(...).ru_maxrss``) is its own; the process first records its RSS after
building the problem (the baseline), then times ``--runs`` calls (median reported), then makes one
extra untimed call under ``tracemalloc`` to report the peak of NumPy's own allocations.

    python3 benchmarks/exact_scaling.py            # L = 4096, 16384, 32768; writes benchmarks/results/exact_scaling.md
    python3 benchmarks/exact_scaling.py --quick    # L = 256, 512, 1024; prints only

The exit status is 1 if any peak RSS reaches the 4 GiB limit of the issue.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

SIZES = (4096, 16384, 32768)
QUICK_SIZES = (256, 512, 1024)
LIMIT_BYTES = 4 * 2**30
D, R = 64, 8
RESULTS = Path(__file__).resolve().parent / "results" / "exact_scaling.md"


def _maxrss_bytes() -> int:
    import resource

    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb if sys.platform == "darwin" else kb * 1024   # Linux reports KiB, macOS bytes


def child(L: int, runs: int, seed: int) -> dict:
    """Run inside the fresh process: build, time, measure; return one JSON-able row."""
    import tracemalloc

    import numpy as np

    from verified_lora import exact
    from verified_lora.examples import random_problem

    problem = random_problem(seed, L=L, d_model=D, d_head=D, d_v=D, r=R, adapters=("Q", "K", "V"),
                             alpha=16.0, beta=1 / 8, scale=0.5)
    baseline = _maxrss_bytes()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        result = exact.loss_and_grads(problem)
        times.append(time.perf_counter() - t0)
    peak = _maxrss_bytes()
    tracemalloc.start()
    exact.loss_and_grads(problem)
    traced_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert np.isfinite(result.loss)
    return {"L": L, "L_k": problem.L_k, "block": result.info["block_size"], "runs": runs,
            "median_s": statistics.median(times), "min_s": min(times), "max_s": max(times),
            "peak_rss": peak, "baseline_rss": baseline, "traced_peak": traced_peak}


def run_one(L: int, runs: int, seed: int) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), "--child", str(L), "--runs", str(runs), "--seed", str(seed)]
    print(f"L = {L}: {runs} runs in a fresh process ...", file=sys.stderr, flush=True)
    done = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def table(rows: list[dict]) -> str:
    mib = 2**20
    lines = [
        "| L = L_k | block | runs | median time (s) | min / max (s) | ns per score | peak RSS (MiB) "
        "| RSS over baseline (MiB) | tracemalloc peak (MiB) | under 4 GiB |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|:---:|",
    ]
    for r in rows:
        per_score = r["median_s"] / (r["L"] * r["L_k"]) * 1e9
        lines.append(
            f"| {r['L']} | {r['block']} | {r['runs']} | {r['median_s']:.3f} | {r['min_s']:.3f} / {r['max_s']:.3f} "
            f"| {per_score:.1f} | {r['peak_rss'] / mib:.0f} | {(r['peak_rss'] - r['baseline_rss']) / mib:.0f} "
            f"| {r['traced_peak'] / mib:.0f} | {'yes' if r['peak_rss'] < LIMIT_BYTES else 'NO'} |")
    return "\n".join(lines)


def machine() -> str:
    import numpy as np

    return (f"{platform.machine()}, {os.cpu_count()} logical CPUs, Python {platform.python_version()}, "
            f"NumPy {np.__version__}, {platform.system()} {platform.release()}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help=f"tiny sizes {QUICK_SIZES}; print only")
    parser.add_argument("--sizes", type=int, nargs="+", help=f"sequence lengths (default {SIZES})")
    parser.add_argument("--runs", type=int, default=3, help="timed runs per size (median reported; >= 3)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path, help=f"markdown file (default {RESULTS} unless --quick)")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.runs < 3:
        parser.error("--runs must be at least 3 (a median of fewer runs is not a median)")
    if args.child is not None:
        print(json.dumps(child(args.child, args.runs, args.seed)))
        return 0

    sizes = args.sizes or (QUICK_SIZES if args.quick else SIZES)
    rows = [run_one(L, args.runs, args.seed) for L in sizes]
    text = (f"# exact.loss_and_grads: time and peak memory\n\n"
            f"Self-attention, d_model = d_head = d_v = {D}, adapters Q, K, V with r = {R}, float64, default "
            f"block size; each L in a fresh process; median of {args.runs} runs.\n"
            f"Machine: {machine()}. Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.\n"
            f"Command: `python3 benchmarks/exact_scaling.py{' --quick' if args.quick else ''}`\n\n"
            f"{table(rows)}\n")
    print(text)
    output = args.output or (None if args.quick else RESULTS)
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text)
        print(f"written to {output}", file=sys.stderr)
    return 0 if all(r["peak_rss"] < LIMIT_BYTES for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
