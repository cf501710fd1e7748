"""Plain-text and Markdown tables for command-line reports (no dependencies).

Plain tables fit in ``width`` columns (default 120): when the natural widths are too wide, the
widest text columns are narrowed and their cells wrapped at word boundaries onto continuation
lines; no line carries trailing spaces. Numbers are formatted by magnitude (:func:`fmt_num`).
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence
from typing import Any

__all__ = ["format_table", "format_markdown", "fmt_num", "TABLE_WIDTH"]

TABLE_WIDTH = 120
"""Default width of plain tables, in characters."""

_GAP = "  "


def fmt_num(x: Any, digits: int = 3) -> str:
    """Numbers by magnitude: integers as integers (``43760``), ``0.5``, ``12.34``, ``1.23e-14``; others via ``str``.

    Floats with an integral value below ``1e15`` print as integers; non-finite ones as ``inf``/``nan``.
    """
    if x is None:
        return "-"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, int) or type(x).__module__ == "numpy" and type(x).__name__.startswith(("int", "uint")):
        return str(int(x))
    try:
        v = float(x)
    except (TypeError, ValueError):
        return str(x)
    if not math.isfinite(v):
        return str(v)
    if v == 0:
        return "0"
    if v == int(v) and abs(v) < 1e15:
        return str(int(v))
    if 1e-3 <= abs(v) < 1e5:
        return f"{v:.{digits + 1}g}"
    return f"{v:.{digits - 1}e}"


def _cells(rows: Sequence[Sequence[Any]]) -> list[list[str]]:
    return [[c if isinstance(c, str) else fmt_num(c) for c in row] for row in rows]


def _fit(headers: Sequence[str], cells: list[list[str]], width: int) -> list[int]:
    """Column widths whose total fits ``width``: the widest columns are capped at a common width
    (water-filling), never below 12 characters or their header."""
    natural = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    room = width - len(_GAP) * (len(natural) - 1)
    if sum(natural) <= room:
        return natural
    floors = [min(n, max(12, len(h))) for n, h in zip(natural, headers)]
    lo, hi = 0, max(natural)
    while lo < hi:  # the largest cap c with sum(max(floor, min(natural, c))) <= room
        c = (lo + hi + 1) // 2
        if sum(max(f, min(n, c)) for n, f in zip(natural, floors)) <= room:
            lo = c
        else:
            hi = c - 1
    return [max(f, min(n, lo)) for n, f in zip(natural, floors)]


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], *, title: str | None = None,
                 width: int = TABLE_WIDTH) -> str:
    """A left-aligned text table with a rule under the header, at most ``width`` columns wide."""
    cells = _cells(rows)
    widths = _fit(headers, cells, width)
    out = [title] if title else []
    out += [_GAP.join(h.ljust(w) for h, w in zip(headers, widths)).rstrip(),
            _GAP.join("-" * w for w in widths)]
    for row in cells:
        wrapped = [textwrap.wrap(c, w, break_on_hyphens=False) or [""] if len(c) > w else [c]
                   for c, w in zip(row, widths)]
        for k in range(max(len(p) for p in wrapped)):
            out.append(_GAP.join((p[k] if k < len(p) else "").ljust(w) for p, w in zip(wrapped, widths)).rstrip())
    return "\n".join(out)


def format_markdown(headers: Sequence[str], rows: Sequence[Sequence[Any]], *, title: str | None = None) -> str:
    """A GitHub-flavoured Markdown table (``title`` as a bold line above it)."""
    cells = [[c.replace("|", "\\|") for c in row] for row in _cells(rows)]
    out = [f"**{title}**", ""] if title else []
    out += ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in cells]
    return "\n".join(out)
