"""Command-line interface: argparse subcommands only; every computation lives in the library.

One module per command (:mod:`.verify`, :mod:`.grad`, :mod:`.audit`, :mod:`.kernels`,
:mod:`.bench`, :mod:`.bounds`, :mod:`.phase`, :mod:`.prove`), each with ``add(subparsers)`` and
``run(args) -> exit code``; the flags they share (``-q``, ``--json``, ``--markdown``) are parent
parsers in :mod:`._common`, and every command takes ``--debug``. Exit codes: 0 on success, 1 when a
check failed, 2 on bad input or an error of the tool itself (one line on stderr; the traceback only
with ``--debug``).
``verified_lora.cli:main`` is the ``verified-lora`` console script; ``python -m verified_lora`` runs it too.
"""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Sequence

from ..errors import VerifiedLoraError
from . import audit, bench, bounds, grad, kernels, phase, prove, verify
from ._common import add_debug

__all__ = ["main", "build_parser", "COMMANDS"]

COMMANDS = (verify, grad, audit, kernels, bench, bounds, phase, prove)
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
    for command_parser in sub.choices.values():
        if "--debug" not in command_parser._option_string_actions:
            add_debug(command_parser)
    return parser


def _version() -> str:
    from .. import __version__

    return __version__


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` (default ``sys.argv[1:]``), run the command and return its exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    debug = bool(getattr(args, "debug", False))
    try:
        return int(args.func(args))
    except VerifiedLoraError as exc:
        if debug:
            traceback.print_exc()
        print(f"verified-lora {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # an error of the tool itself: one line, exit 2; the traceback with --debug
        if debug:
            traceback.print_exc()
        print(f"verified-lora {args.command}: internal error: {type(exc).__name__}: {_one_line(exc)}"
              + ("" if debug else " (rerun with --debug for the traceback)"), file=sys.stderr)
        return 2


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:400] + ("..." if len(text) > 400 else "")
