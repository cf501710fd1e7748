"""``verified-lora enclose``: rigorous interval enclosures of a stored problem's loss and gradients."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from ._common import json_flag, quiet_flag, runner_flags

__all__ = ["add", "run"]

LONG_RUN_S = 30.0
"""Runs estimated longer than this are called long runs in the estimate line."""



def _estimate_line(plan: Any, workers: int | None, scheduler: str | None) -> str:
    """``estimated ... s`` from the plan: serial seconds, and shared among ``workers`` when given."""
    how = f"measured on one block of {plan.block} rows here" if plan.calibrated else "cost model"
    line = f"estimated {plan.estimate_s:.0f} s in one process ({how})"
    if workers:
        line += f", about {plan.estimate_s / workers:.0f} s on {workers} workers (plus cluster start-up)"
    elif scheduler:
        line += ", divided among your cluster's workers"
    return line + (" -- a long run" if plan.estimate_s >= LONG_RUN_S * (workers or 1) else "")


def add(sub: argparse._SubParsersAction) -> None:
    """Register the ``enclose`` subcommand."""
    p = sub.add_parser("enclose", help="rigorous enclosures of the loss and every gradient (python-flint, dask)",
                       description="Interval enclosures of the loss, the adapter gradients and dL/dW_mu of a problem "
                                   "stored as .npz (keys as for 'grad'), by the blocked O(L L_k d) form on python-flint "
                                   "ball matrices. Every true value lies in its interval. Row blocks run serially, on a "
                                   "local dask cluster (--workers N) or on your dask cluster (--scheduler ADDRESS); the "
                                   "result is bit-identical on every runner.",
                       parents=[json_flag("print JSON: per quantity, float64 lower/upper bounds rounded outward, "
                                          "midpoints and widths"), quiet_flag(), runner_flags()])
    p.add_argument("problem", help="path of the .npz problem")
    p.add_argument("--digits", type=int, default=20, help="requested relative width 10^-D (default 20)")
    p.add_argument("--block-size", type=int, metavar="ROWS", help="query rows per block (default from a memory budget)")
    p.add_argument("--method", choices=("blocked", "jacobian"), default="blocked",
                   help="blocked O(L L_k d) form (default) or the small-size Jacobian-form oracle")
    p.set_defaults(func=run)


def _progress(args: argparse.Namespace, estimate: float) -> Any:
    """``progress(done, total)``: a tqdm bar on a terminal, plain lines otherwise, nothing with -q."""
    if args.quiet:
        return None
    if sys.stderr.isatty():
        try:
            from tqdm import tqdm
        except ImportError:
            tqdm = None
        if tqdm is not None:
            bar: dict[str, Any] = {}

            def update(done: int, total: int) -> None:
                if "bar" not in bar:
                    bar["bar"] = tqdm(total=total, unit="chunk", file=sys.stderr, desc="enclose")
                bar["bar"].update(done - bar["bar"].n)
                if done == total:
                    bar["bar"].close()

            return update
    t0 = time.perf_counter()

    def plain(done: int, total: int) -> None:
        elapsed = time.perf_counter() - t0
        eta = f", about {elapsed / done * (total - done):.0f} s left" if done else f", estimate {estimate:.0f} s"
        print(f"  [{elapsed:7.1f}s] chunks {done}/{total}{eta}", file=sys.stderr, flush=True)

    return plain


def _outward(end: Any, rnd: Any, direction: float) -> float:
    """An exact mpf endpoint as a float64 rounded towards ``direction`` (-inf or +inf)."""
    import math

    from mpmath.libmp import to_float

    v = to_float(end, rnd=rnd)
    if abs(v) < 2.2250738585072014e-308:  # mpmath may round a subnormal result the wrong way: step out
        v = math.nextafter(v, direction)
    return v


def _float_bounds(box: Any) -> dict[str, Any]:
    """Outward-rounded float64 bounds, midpoints and widths of an object array of intervals."""
    import mpmath
    import numpy as np
    from mpmath.libmp import round_ceiling, round_floor

    lo = np.array([_outward(x._mpi_[0], round_floor, -np.inf) for x in box.ravel()]).reshape(box.shape)
    hi = np.array([_outward(x._mpi_[1], round_ceiling, np.inf) for x in box.ravel()]).reshape(box.shape)
    with mpmath.mp.workdps(60):
        mid = [mpmath.nstr((mpmath.mpf(x._mpi_[0]) + mpmath.mpf(x._mpi_[1])) / 2, 30) for x in box.ravel()]
        width = [float(mpmath.mpf(x._mpi_[1]) - mpmath.mpf(x._mpi_[0])) for x in box.ravel()]
    return {"shape": list(box.shape), "lower": lo.tolist(), "upper": hi.tolist(),
            "mid": np.array(mid, dtype=object).reshape(box.shape).tolist(), "max_width": max(width)}


def run(args: argparse.Namespace) -> int:
    """Print the enclosure summary (or JSON); exit 0 when the requested width was met, 1 when not."""
    from ..problem import LoraAttention
    from ..reference import blocked, calibrate_plan, enclose, enclose_blocked, plan_blocks

    problem = LoraAttention.load_npz(args.problem)
    if args.method == "jacobian":
        enc = enclose(problem, dps=max(args.digits, 16), method="jacobian")
        met = True
    else:
        plan = plan_blocks(problem, args.digits, block_size=args.block_size)
        workers = args.workers
        if not args.quiet:
            print(f"verified-lora enclose: {problem.describe()}", file=sys.stderr)
            print(f"  {plan.prec} bits, blocks of {plan.block} rows, {plan.chunks * problem.n_batch} chunks",
                  file=sys.stderr, flush=True)
            if plan.estimate_s >= blocked.CALIBRATE_ABOVE_S:  # measure one block here, then extrapolate
                plan = calibrate_plan(problem, plan)
            print(f"  {_estimate_line(plan, workers, args.scheduler)}", file=sys.stderr, flush=True)
        enc = enclose_blocked(problem, args.digits, block_size=args.block_size, workers=workers,
                              scheduler=args.scheduler, progress=_progress(args, plan.estimate_s / (workers or 1)))
        met = bool(enc.info["target_met"])
    widths = enc.relative_widths()
    if args.json:
        print(json.dumps({"problem": problem.describe(), "backend": enc.backend, "digits": args.digits,
                          "target_met": met, "info": {k: v for k, v in enc.info.items()},
                          "relative_widths": widths,
                          "quantities": {name: _float_bounds(box) for name, box in enc.items()}}))
        return 0 if met else 1
    mags = enc.magnitudes()
    print(problem.describe())
    print(f"backend: {enc.backend}, {enc.dps} working digits"
          + (f", {enc.info['runner']}, {enc.info['seconds']:.1f} s" if "runner" in enc.info else ""))
    print(f"loss in {enc.loss}")
    print(f"{'quantity':<10} {'shape':<10} {'max |mid|':>12} {'rel. width':>12}")
    for name, box in enc.items():
        print(f"{name:<10} {str(box.shape):<10} {mags[name]:12.4e} {widths[name]:12.3e}")
    verdict = "met" if met else "NOT met"
    print(f"requested relative width 1e-{args.digits}: {verdict} (worst {max(widths.values()):.3e})")
    return 0 if met else 1
