"""Command-line interface: argparse subcommands only; every computation lives in the library.

One module per command (:mod:`.verify`, :mod:`.grad`, :mod:`.enclose`, :mod:`.audit`, :mod:`.kernels`,
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

from ..errors import InputError, VerifiedLoraError
from . import audit, bench, bounds, enclose, grad, kernels, phase, prove, verify
from ._common import add_debug, debug_flag

__all__ = ["main", "build_parser", "COMMANDS"]

COMMANDS = (verify, grad, enclose, audit, kernels, bench, bounds, phase, prove)
"""The command modules, in the order ``--help`` lists them."""


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors: ``PROG: error: MESSAGE (see PROG --help)``, exit 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {' '.join(message.split())} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The ``verified-lora`` parser with every subcommand registered (each also takes ``--debug``)."""
    parser = _Parser(
        prog="verified-lora",
        description="Verification-backed LoRA attention gradients (Hu et al., ICLR 2025). Exit codes: 0 success, "
                    "1 a check failed, 2 bad input (one line naming the flag or field) or an error of the tool itself.",
        parents=[debug_flag()])
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


def _flag_names(parser: argparse.ArgumentParser, command: str) -> dict[str, str]:
    """``{dest: '--flag'}`` of a subcommand (plus its module's ``FIELD_FLAGS``, API parameter -> flag),
    so errors raised with API names report the flag."""
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[command]
    names: dict[str, str] = {}
    func = sub.get_default("func")
    names.update(getattr(sys.modules.get(getattr(func, "__module__", ""), None), "FIELD_FLAGS", {}))
    for action in sub._actions:
        if action.option_strings:
            long = [o for o in action.option_strings if o.startswith("--")] or action.option_strings
            names[action.dest] = long[0]
    return names


def _message(exc: BaseException, flags: dict[str, str]) -> str:
    """One line: an :class:`InputError` whose field is an API parameter is reported under its flag."""
    if isinstance(exc, InputError) and exc.field in flags and not exc.field.startswith("-"):
        exc = InputError(flags[exc.field], exc.expected, exc.got, exc.fix)
    return " ".join(str(exc).split())


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` (default ``sys.argv[1:]``), run the command and return its exit code.

    Errors are one line on stderr (the full traceback too with ``--debug``): exit 2 for bad input,
    every deliberate verified_lora error and an unexpected error of the tool itself.
    """
    from .._table import markdown_tables
    from ..progress import reporting

    parser = build_parser()
    args = parser.parse_args(argv)
    debug = bool(getattr(args, "debug", False))
    try:
        with reporting(enabled=not getattr(args, "quiet", False)), markdown_tables(getattr(args, "markdown", False)):
            return int(args.func(args))
    except VerifiedLoraError as exc:
        if debug:
            traceback.print_exc()
        print(f"verified-lora {args.command}: error: {_message(exc, _flag_names(parser, args.command))}",
              file=sys.stderr)
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
