"""``verified-lora bench``: a small fast-vs-exact benchmark (certified fast path, exact, torch)."""

from __future__ import annotations

import argparse

from ._common import progress, quiet_flag

__all__ = ["add", "run"]


def add(sub: argparse._SubParsersAction) -> None:
    """Register the ``bench`` subcommand."""
    p = sub.add_parser("bench", help="small fast-vs-exact benchmark (certified fast path, exact, torch)",
                       description="Time the certified fast path (factored, paper) against exact float64 and "
                                   "PyTorch autograd on a small sweep, with observed vs certified errors. The full "
                                   "sweep is benchmarks/fast_vs_exact.py.",
                       parents=[quiet_flag()])
    p.add_argument("--d", type=int, action="append", help="head dimension(s) (default 4)")
    p.add_argument("--L", type=int, action="append", help="sequence length(s) (default 512 and 1024)")
    p.add_argument("--R", type=float, default=1.0, help="certified score bound of the inputs (default 1)")
    p.add_argument("--tol", type=float, default=1e-6, help="relative tolerance per gradient (default 1e-6)")
    p.add_argument("--repeats", type=int, default=3, help="runs per measurement (median; default 3)")
    p.add_argument("--out", help="directory for fast_vs_exact_bench.md/.json/.png (default: print only)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Check the flags, run the sweep and print its Markdown table."""
    import tempfile
    from pathlib import Path

    from ..errors import InputError
    from ..fast.bench import METHODS, run_sweep, write_outputs

    if args.tol <= 0 or args.tol >= 1:
        raise InputError("--tol", "a relative tolerance in (0, 1)", repr(args.tol))
    if args.R <= 0:
        raise InputError("--R", "a score bound > 0", repr(args.R))
    if args.repeats < 1:
        raise InputError("--repeats", "a positive int", repr(args.repeats))
    for L in args.L or []:
        if L < 1:
            raise InputError("--L", "positive sequence lengths", repr(L))
    for d in args.d or []:
        if d < 1:
            raise InputError("--d", "positive head dimensions", repr(d))
    data = run_sweep(args.d or [4], sorted(args.L or [512, 1024]), R=args.R, tol=args.tol, repeats=args.repeats,
                     long_s=30.0, max_s=60.0, torch_max_L=4096, methods=METHODS, log=progress(args))
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="verified-lora-bench-"))
    stem = out / "fast_vs_exact_bench"
    write_outputs(data, stem)
    print(stem.with_suffix(".md").read_text())
    if args.out:
        print(f"written: {stem}.md, .json" + (", .png" if stem.with_suffix('.png').exists() else ""))
    return 0
