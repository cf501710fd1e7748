"""``verified-lora verify``: every verification layer on one problem, as a verdict table."""

from __future__ import annotations

import argparse
import json

from ._common import json_flag, jsonable, progress, quiet_flag

__all__ = ["add", "run"]


def add(sub: argparse._SubParsersAction) -> None:
    """Register the ``verify`` subcommand."""
    p = sub.add_parser("verify", help="run every verification layer on the built-in default problem",
                       description="Run every verification layer (exact vs mpmath reference and enclosures, "
                                   "proofs, bounds, fast path, kernels, audit) and print a verdict table.",
                       parents=[json_flag("print the verdicts as JSON"), quiet_flag()])
    p.add_argument("problem", nargs="?", help="a problem .npz (default: the built-in default problem)")
    p.add_argument("--only", action="append", metavar="SECTION",
                   help="run only sections whose title contains this text (repeatable)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the sections and print them; exit code 1 when a check failed."""
    from .. import verify
    from .._table import format_table
    from ..examples import default_problem
    from ..problem import LoraAttention

    problem = LoraAttention.load_npz(args.problem) if args.problem else default_problem()
    report = progress(args)
    if not args.json:
        print(f"verified-lora verify: {problem.describe()}")
    sections = verify.run(problem, progress=report, only=args.only)
    ok = all(s.passed for s in sections)
    if args.json:
        print(json.dumps({"problem": problem.describe(), "passed": ok, "sections": [
            {"title": s.title, "passed": s.passed, "seconds": round(s.seconds, 3), "checks": [
                {"name": c.name, "verdict": c.verdict, "observed": jsonable(c.observed),
                 "bound": jsonable(c.bound), "detail": c.detail} for c in s.checks]} for s in sections]},
            indent=2))
        return 0 if ok else 1
    for s in sections:
        print()
        rows = [(c.name, c.verdict, c.observed, c.bound, c.detail) for c in s.checks]
        print(format_table(("check", "verdict", "observed", "bound", "detail"), rows,
                           title=f"== {s.title} ({s.seconds:.1f}s): {'PASS' if s.passed else 'FAIL'}"))
    n_fail = sum(c.passed is False for s in sections for c in s.checks)
    n_skip = sum(c.passed is None for s in sections for c in s.checks)
    n_pass = sum(c.passed is True for s in sections for c in s.checks)
    print(f"\nverdict: {'PASS' if ok else 'FAIL'} ({n_pass} passed, {n_fail} failed, {n_skip} skipped)")
    return 0 if ok else 1
