"""Scalar inequalities decided by an SMT solver (z3, the optional extra ``z3-solver``).

:func:`prove` writes an SMT-LIB 2 query ``hypotheses AND NOT goal`` from SymPy relations
(:mod:`.smtlib`), asks z3 for ``unsat`` (so the goal holds for every real (or integer) assignment
satisfying the hypotheses), and records the query text, the answer and the generated LaTeX of the
implication as an obligation of the running proof (:mod:`.obligations`); the solver version goes
into the certificate's ``tools``. Every division in the query is guarded: a side query proves
that the hypotheses force each denominator to be non-zero (SMT-LIB's ``/`` is total, so ``x/0``
would otherwise be an unconstrained value). :func:`refute` is the converse, for planted false
statements: with every denominator assumed non-zero, the answer must be ``sat``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import sympy as sp

from . import obligations as obl
from .certificates import ProofFailure
from .smtlib import TIMEOUT_MS, decide, query, solver_version, to_smtlib

__all__ = ["solver_version", "to_smtlib", "query", "decide", "prove", "refute", "TIMEOUT_MS"]


def prove(name: str, hyps: Iterable[Any], goal: Any, *, timeout_ms: int = TIMEOUT_MS) -> int:
    """Prove ``hyps => goal`` with z3 (``unsat`` of hyps and not goal); record it. Returns #queries.

    Raises :class:`ProofFailure` when z3 answers ``sat`` (with the counterexample) or ``unknown``.
    Each denominator of the query gets its own side query ``hyps => den != 0``.
    """
    hyps = list(hyps)
    text, dens = query(hyps, goal)
    queries = [(name, text, goal)]
    for k, den in enumerate(dens):
        side, more = query(hyps, sp.Ne(den, 0))
        if more:
            raise ProofFailure(f"{name}: denominator {den} itself divides")
        queries.append((f"{name} [denominator {k}: {den} != 0]", side, sp.Ne(den, 0)))
    for qname, qtext, qgoal in queries:
        ans, model = decide(qtext, timeout_ms)
        if ans != "unsat":
            raise ProofFailure(f"{qname}: z3 answered {ans}" + (f" (counterexample {model})" if model else ""))
        obl.note("smt-unsat", qname, smtlib=qtext, answer=ans, solver="z3",
                 exprs={"hypotheses": sp.Tuple(*hyps), "goal": qgoal})
    return len(queries)


def refute(name: str, hyps: Iterable[Any], goal: Any, *, timeout_ms: int = TIMEOUT_MS) -> str:
    """A planted false statement: z3 must answer ``sat`` for ``hyps and not goal``; returns the model."""
    hyps = list(hyps)
    _, dens = query(hyps, goal)
    hyps += [sp.Ne(d, 0) for d in dens]      # a model must not live on a division by zero
    text, _ = query(hyps, goal)
    ans, model = decide(text, timeout_ms)
    if ans != "sat":
        raise ProofFailure(f"{name}: the planted false statement was not refuted (z3 answered {ans})")
    obl.note("smt-sat", name, smtlib=text, answer=ans, solver="z3",
             exprs={"hypotheses": sp.Tuple(*hyps[:len(hyps) - len(dens)]), "goal": goal})
    return model
