"""Plain-text and Markdown tables for command-line reports (no dependencies).

Plain tables fit in ``width`` columns (default 120): when the natural widths are too wide, the
widest text columns are narrowed and their cells wrapped at word boundaries onto continuation
lines; no line carries trailing spaces. Numbers are formatted by magnitude (:func:`fmt_num`).
"""

from __future__ import annotations

import contextlib
import math
import textwrap
from collections.abc import Iterator, Sequence
from contextvars import ContextVar
from typing import Any

_MARKDOWN: ContextVar[bool] = ContextVar("verified_lora_markdown_tables", default=False)


@contextlib.contextmanager
def markdown_tables(enabled: bool = True) -> Iterator[None]:
    """Inside the block, :func:`format_table` renders Markdown (what a command's ``--markdown`` sets)."""
    token = _MARKDOWN.set(enabled)
    try:
        yield
    finally:
        _MARKDOWN.reset(token)

__all__ = ["format_table", "format_markdown", "fmt_num", "TABLE_WIDTH", "markdown_tables"]

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
    """Column widths whose total fits ``width``. First, columns made wide only by their header wrap the
    header (down to its longest word); then the widest columns are capped at a common width
    (water-filling), never below 12 characters or the longest header word."""
    body = [max([0] + [len(r[i]) for r in cells]) for i in range(len(headers))]
    words = [max(len(w) for w in (h.split() or [""])) for h in headers]
    widths = [max(len(h), b) for h, b in zip(headers, body)]
    room = width - len(_GAP) * (len(widths) - 1)
    if sum(widths) <= room:
        return widths
    widths = [max(b, w, 4) if len(h) > b else n for h, b, w, n in zip(headers, body, words, widths)]
    if sum(widths) <= room:
        return widths
    floors = [min(n, max(12, w)) for n, w in zip(widths, words)]
    lo, hi = 0, max(widths)
    while lo < hi:  # the largest cap c with sum(max(floor, min(width, c))) <= room
        c = (lo + hi + 1) // 2
        if sum(max(f, min(n, c)) for n, f in zip(widths, floors)) <= room:
            lo = c
        else:
            hi = c - 1
    return [max(f, min(n, lo)) for n, f in zip(widths, floors)]


def _wrap(text: str, w: int) -> list[str]:
    return (textwrap.wrap(text, w, break_on_hyphens=False) or [""]) if len(text) > w else [text]


def _lines(row: Sequence[str], widths: list[int]) -> list[str]:
    wrapped = [_wrap(c, w) for c, w in zip(row, widths)]
    return [_GAP.join((p[k] if k < len(p) else "").ljust(w) for p, w in zip(wrapped, widths)).rstrip()
            for k in range(max(len(p) for p in wrapped))]


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], *, title: str | None = None,
                 width: int = TABLE_WIDTH) -> str:
    """A left-aligned text table with a rule under the header, at most ``width`` columns wide
    (Markdown inside :func:`markdown_tables`)."""
    if _MARKDOWN.get():
        return format_markdown(headers, rows, title=title.strip() if title else None)
    cells = _cells(rows)
    widths = _fit(headers, cells, width)
    out = [title] if title else []
    out += _lines(headers, widths) + [_GAP.join("-" * w for w in widths)]
    for row in cells:
        out += _lines(row, widths)
    return "\n".join(out)


def format_markdown(headers: Sequence[str], rows: Sequence[Sequence[Any]], *, title: str | None = None) -> str:
    """A GitHub-flavoured Markdown table (``title`` as a bold line above it)."""
    cells = [[c.replace("|", "\\|") for c in row] for row in _cells(rows)]
    out = [f"**{title}**", ""] if title else []
    out += ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in cells]
    return "\n".join(out)
