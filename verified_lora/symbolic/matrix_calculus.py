"""MatrixSymbol calculus with two guards SymPy lacks (pure: records nothing).

* **Dimension checks at symbolic sizes.** SymPy accepts a product ``X_K^T p`` of a
  ``d_model x L_k`` and an ``L x L_k`` matrix because it cannot rule out ``L_k == L``.
  :func:`check_dims` requires every inner pair of sizes of a product, every pair of summands and
  every trace to agree *identically* (the sizes are independent symbols), and raises
  :class:`DimensionError` otherwise.
* **Sums of traces.** ``sympy.diff(Trace(A X) + Trace(B X), X)`` returns ``0`` (a SymPy bug):
  :func:`derivative` differentiates each summand separately and refuses a zero derivative of a
  term that contains the variable.

Used by the generic adapter-gradient proofs (:mod:`.chainrule`) and by the re-checker.
"""

from __future__ import annotations

from typing import Any

import sympy as sp

__all__ = ["DimensionError", "check_dims", "derivative", "identity"]


class DimensionError(ValueError):
    """A product, sum or trace whose sizes do not agree identically."""


def _same(a: Any, b: Any) -> bool:
    return sp.simplify(sp.sympify(a) - sp.sympify(b)) == 0


def check_dims(expr: Any) -> None:
    """Raise :class:`DimensionError` at the first ill-typed product, sum or trace in ``expr``."""
    if not isinstance(expr, sp.Basic):
        return
    for arg in expr.args:
        check_dims(arg)
    if isinstance(expr, sp.MatMul):
        mats = [a for a in expr.args if getattr(a, "is_Matrix", False)]
        for left, right in zip(mats, mats[1:]):
            if not _same(left.shape[1], right.shape[0]):
                raise DimensionError(f"{left} ({left.shape[0]} x {left.shape[1]}) times {right} "
                                     f"({right.shape[0]} x {right.shape[1]}): {left.shape[1]} is not {right.shape[0]}")
    elif isinstance(expr, (sp.MatAdd, sp.HadamardProduct)):
        mats = [a for a in expr.args if getattr(a, "is_Matrix", False)]
        for other in mats[1:]:
            if not (_same(other.shape[0], mats[0].shape[0]) and _same(other.shape[1], mats[0].shape[1])):
                raise DimensionError(f"{mats[0]} ({mats[0].shape}) and {other} ({other.shape}) have different shapes")
    elif isinstance(expr, sp.Trace):
        m = expr.arg
        if not _same(m.shape[0], m.shape[1]):
            raise DimensionError(f"trace of the non-square {m} ({m.shape[0]} x {m.shape[1]})")


def derivative(expr: Any, wrt: sp.MatrixSymbol) -> Any:
    """``d expr / d wrt`` for a scalar ``expr`` built from traces; each summand separately."""
    check_dims(expr)
    expr = sp.expand(expr)
    terms = sp.Add.make_args(expr)
    parts = []
    for term in terms:
        d = sp.diff(term, wrt)
        if term.has(wrt) and (d == 0 or isinstance(d, sp.ZeroMatrix)):
            raise DimensionError(f"SymPy returned 0 for the derivative of {term}, which depends on {wrt}")
        if not (d == 0 or isinstance(d, sp.ZeroMatrix)):
            parts.append(d)
    if not parts:
        return sp.ZeroMatrix(*wrt.shape)
    out = parts[0]
    for d in parts[1:]:
        out = out + d
    return out


def identity(lhs: Any, rhs: Any) -> bool:
    """True when ``lhs - rhs`` reduces to zero; both sides dimension checked, shapes identical."""
    check_dims(lhs)
    check_dims(rhs)
    ls, rs = getattr(lhs, "shape", (1, 1)), getattr(rhs, "shape", (1, 1))
    if not (_same(ls[0], rs[0]) and _same(ls[1], rs[1])):
        raise DimensionError(f"shapes differ: {ls} vs {rs}")
    diff = sp.expand((lhs - rhs).doit())
    zero = sp.ZeroMatrix(*ls) if getattr(lhs, "is_Matrix", False) else sp.Integer(0)
    if diff == zero or diff == 0:
        return True
    return sp.simplify(diff) in (0, zero)
