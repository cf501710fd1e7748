"""What every command shares: the parent parsers of the common flags, progress messages, JSON values.

Each common flag is declared here once; a command takes it with ``parents=[...]``. The help text
of ``--json`` and ``--markdown`` says what the command prints, so those parents take it as an argument.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Callable
from typing import Any

__all__ = ["quiet_flag", "json_flag", "markdown_flag", "json_or_markdown", "debug_flag", "add_debug", "runner_flags", "progress",
           "jsonable", "json_dumps", "writable_path"]


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
    # SUPPRESS: a subcommand's own (absent) flag must not reset a --debug given before the command
    parser.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=DEBUG_HELP)


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


def runner_flags() -> argparse.ArgumentParser:
    """Parent parser of ``--workers N`` / ``--scheduler ADDRESS`` (mutually exclusive; default serial)."""
    p = _parent()
    group = p.add_mutually_exclusive_group()
    group.add_argument("--workers", type=int, metavar="N",
                       help="run the independent tasks on a dask LocalCluster of N worker processes "
                            "(needs the 'distributed' extra; default: serial, in this process)")
    group.add_argument("--scheduler", metavar="ADDRESS",
                       help="run them on an existing dask cluster, e.g. tcp://10.0.0.5:8786 (its workers must "
                            "import the same verified-lora)")
    return p


def progress(args: argparse.Namespace) -> Callable[[str], None]:
    """A progress callback printing ``[elapsed s] message`` to stderr, silent with ``-q``.

    It goes through :func:`verified_lora.progress.note`, so it is active inside the
    :func:`verified_lora.progress.reporting` block that :func:`verified_lora.cli.main` opens.
    """
    from ..progress import note

    quiet = getattr(args, "quiet", False)

    def report(message: str) -> None:
        if not quiet:
            note(message)

    return report


def jsonable(x: Any) -> Any:
    """``x`` as a JSON value: None/bool/int/str unchanged, numbers as float, anything else as ``str``.

    Non-finite numbers become the strings ``"inf"``, ``"-inf"``, ``"nan"`` (JSON has no such numbers).
    """
    if x is None or isinstance(x, (bool, str)):
        return x
    if isinstance(x, int):
        return x
    try:
        v = float(x)
    except (TypeError, ValueError):
        return str(x)
    if math.isfinite(v):
        return int(v) if _is_integer(x) else v
    return "nan" if v != v else ("inf" if v > 0 else "-inf")


def _is_integer(x: Any) -> bool:
    import numpy as np

    return isinstance(x, np.integer)


def _clean(x: Any, flags: list[str], path: str) -> Any:
    if isinstance(x, dict):
        return {str(k): _clean(v, flags, f"{path}.{k}" if path else str(k)) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v, flags, path) for v in x]
    if hasattr(x, "tolist") and not isinstance(x, (str, bytes)):
        return _clean(x.tolist(), flags, path)
    if isinstance(x, float) or (x is not None and not isinstance(x, (bool, int, str)) and _numeric(x)):
        v = jsonable(x)
        if isinstance(v, str) and v in ("nan", "inf", "-inf"):
            if path not in flags:
                flags.append(path)
        return v
    return jsonable(x) if not isinstance(x, (bool, int, str)) and x is not None else x


def _numeric(x: Any) -> bool:
    try:
        float(x)
        return True
    except (TypeError, ValueError):
        return False


def json_dumps(data: Any, indent: int | None = 2) -> str:
    """Strict JSON of ``data`` (never ``NaN``/``Infinity``): non-finite numbers become ``"nan"``/``"inf"``
    strings and a top-level ``"nonfinite"`` list names where they are (for a dict ``data``)."""
    flags: list[str] = []
    clean = _clean(data, flags, "")
    if isinstance(clean, dict):
        clean["nonfinite"] = flags
    return json.dumps(clean, indent=indent, allow_nan=False)


def writable_path(path: str, flag: str) -> str:
    """Check, before any long work, that ``path`` can be written (its folder exists and is writable)."""
    import os

    from ..errors import InputError

    folder = os.path.dirname(os.path.abspath(path)) or "."
    if os.path.isdir(path):
        raise InputError(flag, "a file path", f"the directory {path!r}", "add a file name, e.g. out/phase.png")
    if not os.path.isdir(folder):
        raise InputError(flag, "a path in an existing directory", repr(path), f"create {folder!r} first")
    if not os.access(folder, os.W_OK):
        raise InputError(flag, "a path in a writable directory", repr(path), "choose another location")
    return path
