"""``verified-lora audit``: audit a LoRA implementation (peft, loralib, module.path:factory)."""

from __future__ import annotations

import argparse

from ._common import json_or_markdown, progress, quiet_flag

__all__ = ["add", "run"]


def add(sub: argparse._SubParsersAction) -> None:
    """Register the ``audit`` subcommand."""
    p = sub.add_parser("audit", help="audit a LoRA implementation (peft, loralib, module.path:factory)",
                       description="Audit a LoRA implementation against the mpmath reference with derived per-entry "
                                   "error bounds: layout, fused-qkv slices, scaling convention, forward, gradients, "
                                   "merge, dropout, input mutation, low-precision gradients. TARGET is 'peft', "
                                   "'loralib' or 'module.path:factory' (a factory returning a torch module).",
                       parents=[json_or_markdown("print the report as JSON", "print the report as Markdown"),
                                quiet_flag()])
    p.add_argument("target", metavar="TARGET", help="peft | loralib | module.path:factory")
    p.add_argument("--seed", type=int, default=0, help="seed of the drawn problems (default 0)")
    p.add_argument("--examples", type=int, default=3, help="drawn problems per case (default 3)")
    p.add_argument("--check", action="append", metavar="NAME", help="run only this check (repeatable)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Audit the target and print the report; exit code 1 when a check failed."""
    from ..errors import InputError

    if args.examples < 1:  # checked before torch and the target are imported
        raise InputError("--examples", "a positive int (drawn problems per case)", repr(args.examples))
    if ":" in args.target:  # module.path:factory -- a missing module is named before torch is imported
        import importlib.util

        module = args.target.split(":", 1)[0]
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            raise InputError("TARGET", "peft, loralib or an importable module.path:factory",
                             f"{args.target!r}: module {module!r} is not importable",
                             "run from the directory that contains it, or install it")
    from ..audit import audit

    report = audit(args.target, seed=args.seed, examples=args.examples, checks=args.check,
                   progress=progress(args))
    print(report.to_json() if args.json else report.to_markdown() if args.markdown else report.to_text())
    return 0 if report.passed else 1
