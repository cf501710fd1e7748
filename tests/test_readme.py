"""Every ```python block of README.md runs as written, and the numbers it shows are what the code prints.

Two conventions are checked:

* doctest-style blocks (``>>> code`` followed by the printed output): each statement is run in
  ``'single'`` mode (an expression prints its ``repr``, as in the interpreter) and its output is
  compared with the lines below it; a line ``...`` stands for any number of lines, and a trailing
  ``# comment`` on an output line is ignored;
* script blocks: run statement by statement; an expression statement followed by ``# VALUE``
  (a comment that starts with a number, a quote, ``(`` or ``[``) must have a ``repr`` matching VALUE
  (the comment up to ``": "`` or ``";"``).

**Stated tolerance:** non-numeric text must match exactly (whitespace-normalised); integers must be
equal; a number with a decimal point or an exponent must agree with the computed one to within one
unit in its last shown digit (``2.98e-15`` accepts ``[2.97e-15, 2.99e-15]``).
"""

from __future__ import annotations

import ast
import contextlib
import io
import re
import sys
from decimal import Decimal
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.M | re.S)
NUMBER = re.compile(r"(?<![\w.])[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?")


def _blocks() -> list[tuple[int, str]]:
    text = README.read_text()
    return [(text[: m.start()].count("\n") + 1, m.group(1)) for m in BLOCK.finditer(text)]


def _unit(token: str) -> Decimal | None:
    """One unit in the last shown digit of a decimal token; ``None`` for an integer (exact)."""
    if not re.search(r"[.eE]", token):
        return None
    mant, _, exp = token.lower().partition("e")
    decimals = len(mant.split(".")[1]) if "." in mant else 0
    return Decimal(1).scaleb(-decimals + (int(exp) if exp else 0))


def assert_numbers_match(expected: str, got: str, where: str) -> None:
    """Text equal outside numbers; numbers equal within one unit of the last shown digit (integers exactly)."""
    e_nums, g_nums = NUMBER.findall(expected), NUMBER.findall(got)
    e_text, g_text = (" ".join(NUMBER.sub("#", s).split()) for s in (expected, got))
    assert e_text == g_text and len(e_nums) == len(g_nums), f"{where}: expected {expected!r}, got {got!r}"
    for e, g in zip(e_nums, g_nums):
        unit = _unit(e)
        if unit is None:
            assert Decimal(e) == Decimal(g), f"{where}: {e} != {g} in {got!r}"
        else:
            assert abs(Decimal(e) - Decimal(g)) <= unit, f"{where}: {g} is not {e} to the digits shown (got {got!r})"


def _run_doctest(code: str, line: int, ns: dict) -> None:
    lines = code.splitlines()
    i = 0
    while i < len(lines):
        if not lines[i].startswith(">>> "):
            i += 1
            continue
        src = [lines[i][4:]]
        i += 1
        while i < len(lines) and lines[i].startswith("... ") and not lines[i].strip() == "...":
            src.append(lines[i][4:])
            i += 1
        expected = []
        while i < len(lines) and not lines[i].startswith(">>> "):
            expected.append(re.sub(r"\s+#.*$", "", lines[i]))
            i += 1
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            hook, sys.displayhook = sys.displayhook, lambda v: print(repr(v)) if v is not None else None
            try:
                exec(compile("\n".join(src), f"README.md:{line}", "single"), ns)
            finally:
                sys.displayhook = hook
        got = out.getvalue().rstrip("\n").splitlines()
        _match_lines([e for e in expected if e.strip()], got, f"README.md:{line}: {src[0]}")


def _match_lines(expected: list[str], got: list[str], where: str) -> None:
    j = 0
    for k, e in enumerate(expected):
        if e.strip() == "...":
            rest = expected[k + 1:]
            j = max(j, len(got) - len(rest))  # '...' swallows whatever lies between
            continue
        assert j < len(got), f"{where}: missing output line {e!r}"
        assert_numbers_match(e, got[j], where)
        j += 1
    if not expected or expected[-1].strip() != "...":
        assert j == len(got), f"{where}: unexpected output {got[j:]!r}"


def _run_script(code: str, line: int, ns: dict) -> None:
    tree = ast.parse(code)
    src = code.splitlines()
    for stmt in tree.body:
        mod = ast.Module(body=[stmt], type_ignores=[])
        if isinstance(stmt, ast.Expr):
            value = eval(compile(ast.Expression(stmt.value), f"README.md:{line}", "eval"), ns)
            comment = src[stmt.end_lineno - 1].partition("  #")[2].strip()
            if comment and comment[0] in "0123456789-'\"([":
                expected = re.split(r":\s|;\s", comment)[0]
                assert_numbers_match(expected, repr(value), f"README.md:{line + stmt.lineno}")
        else:
            exec(compile(mod, f"README.md:{line}", "exec"), ns)


@pytest.mark.parametrize("line,code", _blocks(), ids=[f"line{n}" for n, _ in _blocks()])
def test_readme_python_block_runs(line: int, code: str) -> None:
    ns: dict = {"__name__": "readme_snippet"}
    if any(ln.startswith(">>> ") for ln in code.splitlines()):
        _run_doctest(code, line, ns)
    else:
        _run_script(code, line, ns)


def test_readme_has_python_blocks() -> None:
    assert len(_blocks()) >= 4


def test_the_comparison_can_fail() -> None:
    with pytest.raises(AssertionError):
        assert_numbers_match("2.98e-15", "3.00e-15", "x")
    with pytest.raises(AssertionError):
        assert_numbers_match("16", "17", "x")
    with pytest.raises(AssertionError):
        assert_numbers_match("(True, 2.5e-27)", "(False, 2.5e-27)", "x")
    assert_numbers_match("(True, 2.5e-27)", "(True, 2.5010052e-27)", "x")
