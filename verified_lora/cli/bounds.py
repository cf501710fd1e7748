"""``verified-lora bounds``: certified score bound, error bounds and plan (one problem or one point)."""

from __future__ import annotations

import argparse

from ._common import json_dumps, json_or_markdown, progress, quiet_flag

__all__ = ["add", "run"]


def add(sub: argparse._SubParsersAction) -> None:
    """Register the ``bounds`` subcommand."""
    p = sub.add_parser("bounds", help="certified score bound, error bounds and plan (one problem or one point)",
                       description="With PROBLEM.npz: the certified score bound R, the plan (polynomial family, "
                                   "degree, rank, predicted cost) and the certified max-entry error bound of every "
                                   "gradient. With --L --d --R --eps: the least certified degree per family, the "
                                   "rank and the predicted cost ratio at that point.",
                       parents=[json_or_markdown("print JSON", "print the tables as Markdown"), quiet_flag()])
    p.add_argument("problem", nargs="?", help="a problem .npz")
    p.add_argument("--tol", type=float, default=1e-6, help="absolute max-entry tolerance per gradient (default 1e-6)")
    p.add_argument("--method", choices=("factored", "paper", "antiderivative", "both"), default="both",
                   help="which fast algorithm to bound (default both: factored and paper; antiderivative has the "
                        "paper's bounds at the factored path's cost)")
    p.add_argument("--family", action="append", help="polynomial family (repeatable; default all)")
    p.add_argument("--max-degree", type=int, default=40, help="largest degree tried (default 40)")
    p.add_argument("--full", action="store_true",
                   help="search degrees past the last one that pays, to report the degree tol needs")
    p.add_argument("--exp-cost", type=float, default=0.0,
                   help="FLOP-equivalents of one exp in the exact cost (default 0; about 227 on a 2-core CPU)")
    p.add_argument("--L", type=int, help="sequence length of a point (instead of a problem)")
    p.add_argument("--d", type=int, help="head dimension of a point")
    p.add_argument("--R", type=float, help="score bound of a point")
    p.add_argument("--eps", type=float, help="relative error of the polynomial at a point")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print the problem report or the point report (text or JSON)."""
    from ..bounds.cost import CostModel
    from ..bounds.report import point_report, problem_report
    from ..errors import InputError

    import math

    if not (math.isfinite(args.tol) and args.tol > 0):  # flags first, before any long work
        raise InputError("--tol", "a finite absolute error bound > 0", repr(args.tol), "e.g. --tol 1e-6")
    if args.max_degree < 1:
        raise InputError("--max-degree", "a positive int", repr(args.max_degree))
    model = CostModel(exp_cost=args.exp_cost)
    point = [args.L, args.d, args.R, args.eps]
    if args.problem is not None:
        if any(v is not None for v in point):
            raise InputError("bounds", "either PROBLEM.npz or --L --d --R --eps", "both")
        from ..problem import LoraAttention

        problem = LoraAttention.load_npz(args.problem)
        methods = ("factored", "paper") if args.method == "both" else (args.method,)
        text, data = problem_report(problem, args.tol, methods, families=args.family, max_degree=args.max_degree,
                                    cost_model=model, full_search=args.full, progress=progress(args))
    else:
        if any(v is None for v in point):
            raise InputError("bounds", "PROBLEM.npz, or all of --L --d --R --eps", "neither",
                             "e.g. verified-lora bounds --L 4096 --d 8 --R 1 --eps 1e-6")
        from ..approx.polynomials import FAMILIES

        text, data = point_report(args.L, args.d, args.R, args.eps, families=args.family or FAMILIES,
                                  cost_model=model)
    print(json_dumps(data) if args.json else text)
    return 0
