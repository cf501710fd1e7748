"""Proof obligations: the machine-readable evidence a certificate carries.

While a proof runs (:func:`recording`), every decision it makes through the shared helpers
(:mod:`.prooftools`, :mod:`.chainrule`, :mod:`.smt`, :mod:`.index_calculus`) is appended here as
one *obligation*: a JSON dict naming the kind of check, the method that decided it, the SymPy
``srepr`` of both sides (or the SMT-LIB query and the solver's answer), the substitutions and
hypotheses used, and a LaTeX rendering generated from the checked expressions (never typed by
hand). The list is stored in the certificate in the order the checks ran, so deleting a check
changes the certificate bytes, and :mod:`verified_lora.recheck` can re-decide each obligation with
SymPy or z3 alone, without importing the derivation code.

Kinds (the re-checker knows each one):

* ``identity``: ``lhs == rhs``; ``method`` ``"polynomial"`` (formal exponentials and reciprocals of
  their sums become independent symbols; a polynomial identity over QQ) or ``"cancel"`` (rational
  function / radical simplification to 0);
* ``matrix-identity``: MatrixSymbol expressions at symbolic sizes: every product is dimension
  checked, then ``(lhs - rhs).doit()`` must expand to the zero matrix;
* ``matrix-derivative``: ``d/dwrt expr == claimed`` by SymPy's matrix calculus, guarded against
  its silent zero for sums of traces (each trace is differentiated separately);
* ``index-derivative``: ``d/d wrt expr == claimed`` in index notation at symbolic sizes, decided by
  the normal form of :mod:`.index_normal_form` (delta sums collapsed under the stated ranges);
* ``index-identity``: ``lhs == rhs`` for index expressions, same normal form;
* ``smt-unsat``: an SMT-LIB 2 query whose answer must be ``unsat`` (hypotheses and the negated goal);
* ``smt-sat``: a planted false statement the solver must refute (``sat``, with a model);
* ``differs``: exact values that must differ (counterexamples);
* ``opaque``: a check too large to store in full (hash of both sides only); it is re-run by
  ``verified-lora prove --check`` but not by the standalone re-checker, and is counted as such.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator, Mapping
from typing import Any

__all__ = ["MAX_SREPR", "recording", "active", "note", "encode", "sha"]

MAX_SREPR = 60_000
"""Largest ``srepr`` (characters) stored in full; bigger checks are recorded as ``opaque``."""

MAX_LATEX = 2_000
"""Obligations whose expressions are at most this long (``srepr`` characters) carry a LaTeX statement."""

_STACK: list[list[dict[str, Any]]] = []


@contextlib.contextmanager
def recording() -> Iterator[list[dict[str, Any]]]:
    """Collect the obligations noted while the ``with`` block runs (nested blocks see only their own)."""
    log: list[dict[str, Any]] = []
    _STACK.append(log)
    try:
        yield log
    finally:
        _STACK.pop()


MAX_NODES = 4_000
"""Expressions with more tree nodes than this are recorded as ``opaque`` without being printed."""


def _nodes(expr: Any) -> int:
    import sympy as sp

    items = list(expr) if isinstance(expr, (list, tuple)) else [expr]
    n = 0
    for item in items:
        if not isinstance(item, sp.Basic):
            item = sp.sympify(item)
        for _ in sp.preorder_traversal(item):
            n += 1
            if n > MAX_NODES:
                return n
    return n


def active() -> bool:
    """True inside :func:`recording`."""
    return bool(_STACK)


def sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def encode(expr: Any) -> str:
    """Canonical ``srepr`` (refuses Dummy symbols, whose names are not reproducible)."""
    import sympy as sp

    if isinstance(expr, (list, tuple)):
        expr = sp.Tuple(*expr)
    expr = sp.sympify(expr) if not isinstance(expr, sp.Basic) else expr
    if expr.atoms(sp.Dummy):
        raise ValueError("obligation contains Dummy symbols; rename them first (prooftools.canonical_bound)")
    return sp.srepr(expr)


def note(kind: str, name: str, *, exprs: Mapping[str, Any] | None = None, **fields: Any) -> dict[str, Any] | None:
    """Record one obligation in the active log (no-op outside :func:`recording`).

    ``exprs`` maps field names (``lhs``, ``rhs``, ``expr``, ``wrt``, ``claimed``...) to SymPy
    objects, stored as ``srepr``; when any is larger than :data:`MAX_SREPR` the obligation is
    stored as kind ``opaque`` with hashes only. When every ``srepr`` is at most :data:`MAX_LATEX`
    characters, the LaTeX statement of the check is generated from the expressions
    (:func:`verified_lora.recheck.statement_latex`). Other ``fields`` must be JSON-able.
    """
    if not _STACK:
        return None
    ob: dict[str, Any] = {"kind": kind, "name": name}
    ob.update(fields)
    exprs = dict(exprs or {})
    sizes = {k: _nodes(v) for k, v in exprs.items()}
    if any(n > MAX_NODES for n in sizes.values()):
        _STACK[-1].append({"kind": "opaque", "name": name, "decided_as": kind, "method": fields.get("method", ""),
                           "nodes": {k: sizes[k] if sizes[k] <= MAX_NODES else f">{MAX_NODES}" for k in sorted(sizes)}})
        return _STACK[-1][-1]
    texts = {k: encode(v) for k, v in exprs.items()}
    if any(len(t) > MAX_SREPR for t in texts.values()):
        ob = {"kind": "opaque", "name": name, "decided_as": kind, "method": fields.get("method", ""),
              "sha256": {k: sha(t) for k, t in sorted(texts.items())},
              "chars": {k: len(t) for k, t in sorted(texts.items())}}
    else:
        ob["srepr"] = dict(sorted(texts.items()))
        if texts and all(len(t) <= MAX_LATEX for t in texts.values()):
            from ..recheck import load_expr, statement_latex

            ob["latex"] = statement_latex(kind, {k: load_expr(t) for k, t in texts.items()})
    _STACK[-1].append(ob)
    return ob
