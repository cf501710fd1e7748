"""What every command shares: the parent parsers of the common flags, progress messages, JSON values.

Each common flag is declared here once; a command takes it with ``parents=[...]``. The help text
of ``--json`` and ``--markdown`` says what the command prints, so those parents take it as an argument.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from typing import Any

__all__ = ["quiet_flag", "debug_flag", "add_debug", "json_flag", "markdown_flag", "json_or_markdown", "progress",
           "jsonable"]


def _parent() -> argparse.ArgumentParser:
    return argparse.ArgumentParser(add_help=False)


def quiet_flag() -> argparse.ArgumentParser:
    """Parent parser of ``-q/--quiet`` (no progress messages on stderr)."""
    p = _parent()
    p.add_argument("-q", "--quiet", action="store_true", help="no progress messages")
    return p


DEBUG_HELP = "on an error of the tool itself, print the full traceback (default: one line, exit 2)"


def add_debug(parser: argparse.ArgumentParser) -> None:
    """Give ``parser`` the ``--debug`` flag (every command has it: :func:`verified_lora.cli.build_parser`)."""
    parser.add_argument("--debug", action="store_true", help=DEBUG_HELP)


def debug_flag() -> argparse.ArgumentParser:
    """Parent parser of ``--debug`` (a traceback on errors of the tool itself)."""
    p = _parent()
    add_debug(p)
    return p


def _add_json(container: Any, help: str) -> None:
    container.add_argument("--json", action="store_true", help=help)


def _add_markdown(container: Any, help: str) -> None:
    container.add_argument("--markdown", action="store_true", help=help)


def json_flag(help: str = "print JSON") -> argparse.ArgumentParser:
    """Parent parser of ``--json``; ``help`` says what is printed."""
    p = _parent()
    _add_json(p, help)
    return p


def markdown_flag(help: str) -> argparse.ArgumentParser:
    """Parent parser of ``--markdown``; ``help`` says what is printed."""
    p = _parent()
    _add_markdown(p, help)
    return p


def json_or_markdown(json_help: str, markdown_help: str) -> argparse.ArgumentParser:
    """Parent parser of ``--json`` and ``--markdown`` as mutually exclusive output formats."""
    p = _parent()
    group = p.add_mutually_exclusive_group()
    _add_json(group, json_help)
    _add_markdown(group, markdown_help)
    return p


def progress(args: argparse.Namespace) -> Callable[[str], None]:
    """A progress callback printing ``[elapsed s] message`` to stderr, silent with ``-q``."""
    quiet = getattr(args, "quiet", False)
    t0 = time.perf_counter()

    def report(message: str) -> None:
        if not quiet:
            print(f"  [{time.perf_counter() - t0:7.1f}s] {message}", file=sys.stderr, flush=True)

    return report


def jsonable(x: Any) -> Any:
    """``x`` as a JSON value: None/bool/int/str unchanged, numbers as float, anything else as ``str``."""
    if x is None or isinstance(x, (bool, int, str)):
        return x
    try:
        return float(x)
    except (TypeError, ValueError):
        return str(x)
