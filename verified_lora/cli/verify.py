"""``verified-lora verify``: every verification layer on one problem, as a verdict table."""

from __future__ import annotations

import argparse

from ._common import json_dumps, json_or_markdown, progress, quiet_flag, runner_flags

__all__ = ["add", "run"]


def add(sub: argparse._SubParsersAction) -> None:
    """Register the ``verify`` subcommand."""
    p = sub.add_parser("verify", help="run every verification layer on the built-in default problem",
                       description="Run every verification layer (exact vs mpmath reference and enclosures, "
                                   "proofs, bounds, fast path, kernels, audit) and print a verdict table per "
                                   "section. A check that does not apply to the problem says N/A and why. A problem too large for "
                                   "the mpmath reference is checked against the blocked interval enclosure, which "
                                   "--workers / --scheduler run on dask.",
                       parents=[json_or_markdown("print the verdicts as JSON", "print the tables as Markdown"),
                                quiet_flag(), runner_flags()])
    p.add_argument("problem", nargs="?", help="a problem .npz (default: the built-in default problem)")
    p.add_argument("--only", action="append", metavar="SECTION",
                   help="run only sections whose title contains this text (repeatable): exact, proofs, bounds, "
                        "fast, audit, kernels")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the sections and print them; exit code 1 when a check failed."""
    from .. import verify
    from .._table import format_markdown, format_table
    from ..examples import default_problem
    from ..problem import LoraAttention

    verify.runner.check_only(args.only, "--only")  # before any work
    problem = LoraAttention.load_npz(args.problem) if args.problem else default_problem()
    report = progress(args)
    if not args.json:
        import textwrap

        print(textwrap.fill(f"verified-lora verify: {problem.describe()}", 120, subsequent_indent="  "))
    sections = verify.run(problem, progress=report, only=args.only, workers=args.workers, scheduler=args.scheduler)
    ok = all(s.passed for s in sections)
    if args.json:
        print(json_dumps({"problem": problem.describe(), "passed": ok, "sections": [
            {"title": s.title, "passed": s.passed, "seconds": round(s.seconds, 3), "checks": [
                {"name": c.name, "verdict": c.verdict, "observed": c.observed,
                 "bound": c.bound, "detail": c.detail} for c in s.checks]} for s in sections]}))
        return 0 if ok else 1
    for s in sections:
        print()
        rows = [(c.name, c.verdict, c.observed, c.bound, c.detail) for c in s.checks]
        na = bool(s.checks) and all(c.verdict == "N/A" for c in s.checks)
        title = f"{s.title} ({s.seconds:.1f}s): {'N/A' if na else 'PASS' if s.passed else 'FAIL'}"
        headers = ("check", "verdict", "observed", "bound", "detail")
        print(format_markdown(headers, rows, title=title) if args.markdown else
              format_table(headers, rows, title=f"== {title}"))
    counts = {v: sum(c.verdict == v for s in sections for c in s.checks) for v in ("PASS", "FAIL", "SKIP", "N/A")}
    print(f"\nverdict: {'PASS' if ok else 'FAIL'} ({counts['PASS']} passed, {counts['FAIL']} failed, "
          f"{counts['SKIP']} skipped, {counts['N/A']} not applicable)")
    return 0 if ok else 1
