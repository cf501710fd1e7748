"""Command-line interface: argparse subcommands only; every computation lives in the library.

One module per command (:mod:`.verify`, :mod:`.grad`, :mod:`.enclose`, :mod:`.audit`, :mod:`.kernels`,
:mod:`.bench`, :mod:`.bounds`, :mod:`.phase`, :mod:`.prove`), each with ``add(subparsers)`` and
``run(args) -> exit code``; the flags they share (``-q``, ``--json``, ``--markdown``) are parent
parsers in :mod:`._common`. Exit codes: 0 on success, 1 when a check failed, 2 on bad input.
``verified_lora.cli:main`` is the ``verified-lora`` console script; ``python -m verified_lora`` runs it too.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ..errors import VerifiedLoraError
from . import audit, bench, bounds, enclose, grad, kernels, phase, prove, verify

__all__ = ["main", "build_parser", "COMMANDS"]

COMMANDS = (verify, grad, enclose, audit, kernels, bench, bounds, phase, prove)
"""The command modules, in the order ``--help`` lists them."""


def build_parser() -> argparse.ArgumentParser:
    """The ``verified-lora`` parser with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="verified-lora",
        description="Verification-backed LoRA attention gradients (Hu et al., ICLR 2025).")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.add(sub)
    return parser


def _version() -> str:
    from .. import __version__

    return __version__


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` (default ``sys.argv[1:]``), run the command and return its exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except VerifiedLoraError as exc:
        print(f"verified-lora {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
