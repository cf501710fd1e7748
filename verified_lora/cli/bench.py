"""``verified-lora bench``: a small fast-vs-exact benchmark (certified fast path, exact, torch)."""

from __future__ import annotations

import argparse
import statistics

from ._common import progress, quiet_flag

__all__ = ["add", "run", "verdict"]


def add(sub: argparse._SubParsersAction) -> None:
    """Register the ``bench`` subcommand."""
    p = sub.add_parser("bench", help="small fast-vs-exact benchmark (certified fast path, exact, torch)",
                       description="Time the certified fast path (factored, paper) against exact float64 and "
                                   "PyTorch autograd on a small sweep, with observed vs certified errors. The first "
                                   "(cold) run and the median of the later (warm) runs are reported separately. The "
                                   "full sweep is benchmarks/fast_vs_exact.py.",
                       parents=[quiet_flag()])
    p.add_argument("--d", type=int, action="append", help="head dimension(s) (default 4)")
    p.add_argument("--L", type=int, action="append", help="sequence length(s) (default 512 and 1024)")
    p.add_argument("--R", type=float, default=1.0, help="certified score bound of the inputs (default 1)")
    p.add_argument("--tol", type=float, default=1e-6, help="relative tolerance per gradient (default 1e-6)")
    p.add_argument("--repeats", type=int, default=3, help="runs per measurement (1 cold + warm; default 3)")
    p.add_argument("--out", help="directory for fast_vs_exact_bench.md/.json/.png (default: print only, "
                                 "nothing is kept on disk)")
    p.set_defaults(func=run)


def _cold_warm(row: dict) -> tuple[float, float | None]:
    times = row["times"]
    return times[0], (statistics.median(times[1:]) if len(times) > 1 else None)


def verdict(data: dict) -> str:
    """One paragraph: per head dimension, the warm speedup of each certified method at the largest L and
    the crossover (least L where it beats exact, warm times), with cold times alongside."""
    rows = [r for r in data["rows"] if "times" in r]
    parts = []
    for d in sorted({r["d"] for r in rows}):
        exact = {r["L"]: _cold_warm(r) for r in rows if r["d"] == d and r["method"] == "exact"}
        for method in ("factored", "paper"):
            mine = {r["L"]: _cold_warm(r) for r in rows if r["d"] == d and r["method"] == method}
            common = sorted(set(mine) & set(exact))
            if not common:
                continue
            L = common[-1]
            (fc, fw), (ec, ew) = mine[L], exact[L]
            warm = fw is not None and ew is not None
            f, e = (fw, ew) if warm else (fc, ec)
            ratio = e / f if f > 0 else float("inf")
            speed = f"{ratio:.2g}x faster than" if ratio >= 1 else f"{1 / ratio:.2g}x slower than"
            cross = [x for x in common if (mine[x][1] or mine[x][0]) < (exact[x][1] or exact[x][0])]
            where = f"crossover at L = {cross[0]}" if cross else f"no crossover up to L = {common[-1]}"
            parts.append(f"at d = {d}, L = {L}, certified {method} is {speed} exact ({f:.3g} s vs {e:.3g} s "
                         f"{'warm' if warm else 'single run'}; cold first runs {fc:.3g} s vs {ec:.3g} s); {where}")
    if not parts:
        return "Verdict: no timed pair of a certified method and exact in this sweep."
    return "Verdict: " + "; ".join(parts) + "."


def run(args: argparse.Namespace) -> int:
    """Check the flags, run the sweep and print its Markdown table and a verdict paragraph."""
    import os
    import tempfile
    from pathlib import Path

    from ..errors import InputError
    from ..fast.bench import METHODS, run_sweep, write_outputs

    if not 0 < args.tol < 1:
        raise InputError("--tol", "a relative tolerance in (0, 1)", repr(args.tol))
    if not args.R > 0 or args.R == float("inf"):
        raise InputError("--R", "a finite score bound > 0", repr(args.R))
    if args.repeats < 1:
        raise InputError("--repeats", "a positive int", repr(args.repeats))
    for L in args.L or []:
        if L < 1:
            raise InputError("--L", "positive sequence lengths", repr(L))
    for d in args.d or []:
        if d < 1:
            raise InputError("--d", "positive head dimensions", repr(d))
    if args.out:  # checked before the sweep, not after it
        out = Path(args.out)
        if out.exists() and not out.is_dir():
            raise InputError("--out", "a directory", f"the file {args.out!r}")
        parent = out if out.exists() else out.parent
        if not parent.exists() or not os.access(parent, os.W_OK):
            raise InputError("--out", "a writable directory (or a new one in a writable directory)", repr(args.out))
    data = run_sweep(args.d or [4], sorted(args.L or [512, 1024]), R=args.R, tol=args.tol, repeats=args.repeats,
                     long_s=30.0, max_s=60.0, torch_max_L=4096, methods=METHODS, log=progress(args))
    if args.out:
        stem = Path(args.out) / "fast_vs_exact_bench"
        write_outputs(data, stem)
        print(stem.with_suffix(".md").read_text())
        print(verdict(data))
        print(f"written: {stem}.md, .json" + (", .png" if stem.with_suffix('.png').exists() else ""))
        return 0
    with tempfile.TemporaryDirectory(prefix="verified-lora-bench-") as tmp:  # removed on exit
        stem = Path(tmp) / "fast_vs_exact_bench"
        write_outputs(data, stem)
        print(stem.with_suffix(".md").read_text())
    print(verdict(data))
    return 0
