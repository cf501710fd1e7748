"""SMT-LIB 2 printing of SymPy relations and z3 decisions (pure: records nothing).

:func:`to_smtlib` covers what the bounds lemmas use: rationals, symbols (``Real``, or ``Int`` for
integer symbols), ``+ * /``, integer powers, ``Abs``, ``Max``, ``Min``, ``Piecewise``, ``floor`` /
``Mod`` of integers (``div`` / ``mod``), relations, ``And``, ``Or``, ``Not``, ``Implies``.
Anything else raises, so nothing is silently mistranslated. :func:`query` writes the query
``hypotheses AND NOT goal`` and lists its denominators; :func:`decide` runs z3 on a query text.
Used by :mod:`.smt` (the proofs) and by :mod:`verified_lora.recheck` (the re-checker).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sympy as sp

__all__ = ["solver_version", "to_smtlib", "query", "decide", "TIMEOUT_MS"]

TIMEOUT_MS = 20_000


def solver_version() -> str:
    """The installed z3 version (``"z3-solver"`` missing raises a clear ImportError)."""
    try:
        import z3
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("the solver-checked proofs need z3: pip install 'verified-lora[proofs]' "
                          "(package z3-solver)") from exc
    return z3.get_version_string()


def _num(x: sp.Rational) -> str:
    if x.q == 1:
        return str(x.p) if x.p >= 0 else f"(- {-x.p})"
    return f"(/ {_num(sp.Integer(x.p))} {x.q})"


def to_smtlib(e: Any, dens: list[sp.Expr] | None = None) -> str:
    """SMT-LIB 2 term of a SymPy expression or relation; denominators are appended to ``dens``."""
    e = sp.sympify(e)
    rec = lambda x: to_smtlib(x, dens)  # noqa: E731
    if e is sp.true:
        return "true"
    if e is sp.false:
        return "false"
    if isinstance(e, sp.Rational):
        return _num(e)
    if isinstance(e, sp.Symbol):
        return e.name
    if isinstance(e, sp.Add):
        return "(+ " + " ".join(rec(a) for a in e.args) + ")"
    if isinstance(e, sp.Mul):
        num, den = sp.fraction(e, exact=True)
        if den != 1:
            if dens is not None:
                dens.append(den)
            return f"(/ {rec(num)} {rec(den)})"
        return "(* " + " ".join(rec(a) for a in e.args) + ")"
    if isinstance(e, sp.Pow):
        if not (e.exp.is_Integer):
            raise ValueError(f"to_smtlib: only integer powers are supported, got {e}")
        n = int(e.exp)
        if n < 0:
            if dens is not None:
                dens.append(e.base ** (-n))
            return f"(/ 1 {rec(e.base ** (-n))})"
        return "(* " + " ".join([rec(e.base)] * n) + ")"
    if isinstance(e, sp.Abs):
        a = rec(e.args[0])
        return f"(ite (>= {a} 0) {a} (- {a}))"
    if isinstance(e, (sp.Max, sp.Min)):
        op = ">=" if isinstance(e, sp.Max) else "<="
        args = [rec(a) for a in e.args]
        out = args[0]
        for a in args[1:]:
            out = f"(ite ({op} {out} {a}) {out} {a})"
        return out
    if isinstance(e, sp.Piecewise):
        *pairs, (last, cond) = e.args
        if cond is not sp.true:
            raise ValueError("to_smtlib: a Piecewise needs a final (value, True) branch")
        out = rec(last)
        for val, c in reversed(pairs):
            out = f"(ite {rec(c)} {rec(val)} {out})"
        return out
    if isinstance(e, sp.floor):
        num, den = sp.fraction(e.args[0])
        if dens is not None:
            dens.append(den)
        return f"(div {rec(num)} {rec(den)})"
    if isinstance(e, sp.Mod):
        if dens is not None:
            dens.append(e.args[1])
        return f"(mod {rec(e.args[0])} {rec(e.args[1])})"
    ops = {sp.StrictLessThan: "<", sp.LessThan: "<=", sp.StrictGreaterThan: ">", sp.GreaterThan: ">=",
           sp.Equality: "="}
    for cls, op in ops.items():
        if isinstance(e, cls):
            return f"({op} {rec(e.lhs)} {rec(e.rhs)})"
    if isinstance(e, sp.Unequality):
        return f"(not (= {rec(e.lhs)} {rec(e.rhs)}))"
    if isinstance(e, sp.And):
        return "(and " + " ".join(rec(a) for a in e.args) + ")"
    if isinstance(e, sp.Or):
        return "(or " + " ".join(rec(a) for a in e.args) + ")"
    if isinstance(e, sp.Not):
        return f"(not {rec(e.args[0])})"
    if isinstance(e, sp.Implies):
        return f"(=> {rec(e.args[0])} {rec(e.args[1])})"
    raise ValueError(f"to_smtlib: unsupported expression {type(e).__name__}: {e}")


def query(hyps: Sequence[Any], goal: Any) -> tuple[str, list[sp.Expr]]:
    """The SMT-LIB text asserting ``hyps`` and ``not goal``, and the denominators it divides by."""
    hyps = [sp.sympify(h) for h in hyps]
    goal = sp.sympify(goal)
    dens: list[sp.Expr] = []
    lines = [f"(assert {to_smtlib(h, dens)})" for h in hyps] + [f"(assert (not {to_smtlib(goal, dens)}))"]
    syms = sorted(set().union(goal.free_symbols, *[h.free_symbols for h in hyps]), key=lambda s: s.name)
    ints = all(s.is_integer for s in syms)
    if any(s.is_integer for s in syms) and not ints:
        raise ValueError("to_smtlib: mixed integer and real symbols are not supported")
    logic = "QF_NIA" if ints else "QF_NRA"
    decl = [f"(declare-const {s.name} {'Int' if s.is_integer else 'Real'})" for s in syms]
    text = "\n".join([f"(set-logic {logic})", *decl, *lines, "(check-sat)", ""])
    uniq: list[sp.Expr] = []
    for d in dens:
        if d not in uniq and not (d.is_Number and d != 0):
            uniq.append(d)
    return text, uniq


def decide(text: str, timeout_ms: int = TIMEOUT_MS) -> tuple[str, str]:
    """Run z3 on an SMT-LIB text: ``(answer, model)`` with answer ``sat``/``unsat``/``unknown``."""
    solver_version()
    import z3

    s = z3.Solver()
    s.set("timeout", timeout_ms)
    s.from_string(text)
    ans = str(s.check())
    model = ""
    if ans == "sat":
        m = s.model()
        model = ", ".join(f"{d.name()} = {m[d]}" for d in sorted(m.decls(), key=lambda d: d.name()))
    return ans, model
