"""A normal form for index-notation expressions: decides identities between nested finite sums.

An expression built from ``Indexed`` leaves, ``Sum`` over symbolic ranges, ``KroneckerDelta``,
``+``, ``*`` and positive integer powers is expanded into a sum of *terms*
``coeff * sum_{b1..bn} f1 f2 ... fk``: every ``Sum`` is pulled outward with fresh names for its
bound indices, products of sums become one multi-index sum. Anything else (a formal exponential,
the reciprocal of a row sum, ...) is an *atom*: a factor kept whole, whose own bound indices are
renamed by depth so that equal atoms print equally; negative and positive integer powers of an
atom are split into repeated factors.

Per term:

* ``KroneckerDelta(b, x)`` with ``b`` bound over ``[lo, hi]`` is summed out (``b := x``) when
  SymPy's assumptions prove ``lo <= x <= hi`` (the proofs choose sizes like ``d = k0 + 1 + d'``
  with ``d' >= 0`` so the entry ``k0`` is in range); between two bound indices with the same range
  it identifies them. Otherwise the delta stays a factor (never a wrong collapse).
* a bound index that no factor uses is summed out: ``coeff * (hi - lo + 1)``.
* the bound indices are renamed canonically: each gets a signature (the factors it occurs in, with
  itself marked and the other bound indices blanked, and its range); names follow the sorted
  signatures, and only indices with equal signatures are permuted, keeping the least key.

Two expressions are equal when the coefficient sums of every canonical term agree (``expand`` to
0). Equal normal forms prove equality (every step is an identity of finite sums); different ones
mean "not proved". Pure SymPy: used by the proofs and by :mod:`verified_lora.recheck`.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from typing import Any

import sympy as sp

__all__ = ["Term", "terms", "normal_form", "equal", "derivative", "canonical_inner"]


@dataclass
class Term:
    coeff: Any
    factors: list[Any]
    bound: list[tuple[sp.Symbol, Any, Any]]


class _Fresh:
    def __init__(self) -> None:
        self.n = 0

    def __call__(self) -> sp.Symbol:
        self.n += 1
        return sp.Symbol(f"_b{self.n}", integer=True, nonnegative=True)


def terms(e: Any, fresh: _Fresh | None = None) -> list[Term]:
    """Expand ``e`` into terms (see the module docstring)."""
    fresh = fresh or _Fresh()
    e = sp.sympify(e)
    if isinstance(e, sp.Add):
        return [t for a in e.args for t in terms(a, fresh)]
    if isinstance(e, sp.Mul):
        out = [Term(sp.Integer(1), [], [])]
        for a in e.args:
            new = []
            part = terms(a, fresh)
            for x in out:
                for y in part:
                    new.append(Term(x.coeff * y.coeff, x.factors + y.factors, x.bound + y.bound))
            out = new
        return out
    if isinstance(e, sp.Pow) and e.exp.is_Integer:
        n = int(e.exp)
        if n > 0 and not _atom_like(e.base):
            return terms(sp.Mul(*[e.base] * n, evaluate=False), fresh) if n > 1 else terms(e.base, fresh)
        if n > 0 or n < -1:
            unit = e.base if n > 0 else sp.Pow(e.base, -1)
            return [Term(sp.Integer(1), [unit] * abs(n), [])]
        return [Term(sp.Integer(1), [e], [])]
    if isinstance(e, sp.Sum):
        body = e.function
        limits: list[tuple[Any, Any, Any]] = []
        for var, lo, hi in e.limits:      # inner limits first; a later one may bound an earlier range
            new = fresh()
            body = body.xreplace({var: new})
            limits = [(v, a.xreplace({var: new}), b.xreplace({var: new})) for v, a, b in limits]
            limits.append((new, lo, hi))
        return [Term(t.coeff, t.factors, limits + t.bound) for t in terms(body, fresh)]
    if isinstance(e, (sp.Number, sp.Symbol)) or (not e.free_symbols and not e.atoms(sp.Indexed)):
        return [Term(e, [], [])]
    return [Term(sp.Integer(1), [e], [])]


def _atom_like(b: Any) -> bool:
    return not isinstance(b, (sp.Add, sp.Mul, sp.Sum, sp.Indexed, sp.KroneckerDelta, sp.Number, sp.Symbol, sp.Pow))


def canonical_inner(e: Any) -> Any:
    """Rename the bound indices of every ``Sum`` inside ``e`` by depth and position (``_s<depth>_<k>``)."""

    def walk(x: Any, depth: int) -> Any:
        if isinstance(x, sp.Sum):
            body = x.function
            limits = []
            for k, (var, lo, hi) in enumerate(x.limits):
                new = sp.Symbol(f"_s{depth}_{k}", integer=True, nonnegative=True)
                body = body.xreplace({var: new})
                limits = [(v, a.xreplace({var: new}), b.xreplace({var: new})) for v, a, b in limits]
                limits.append((new, lo, hi))
            return sp.Sum(walk(body, depth + 1), *limits)
        if not x.args:
            return x
        return x.func(*[walk(a, depth) for a in x.args])

    return walk(sp.sympify(e), 0)


def _in_range(x: Any, lo: Any, hi: Any) -> bool:
    return bool(sp.simplify(x - lo).is_nonnegative) and bool(sp.simplify(hi - x).is_nonnegative)


def _collapse(t: Term) -> Term | None:
    """Sum out deltas and unused bound indices; ``None`` when the term vanishes."""
    coeff, factors, bound = t.coeff, list(t.factors), list(t.bound)
    changed = True
    while changed:
        changed = False
        names = {b[0]: b for b in bound}
        for k, f in enumerate(factors):
            if not isinstance(f, sp.KroneckerDelta):
                continue
            a, b = f.args
            pick = None
            for v, other in ((b, a), (a, b)):
                if v in names:
                    _, lo, hi = names[v]
                    if other in names:
                        if sp.simplify(names[other][1] - lo) == 0 and sp.simplify(names[other][2] - hi) == 0:
                            pick = (v, other)
                            break
                    elif not (other.free_symbols & set(names)) and _in_range(other, lo, hi):
                        pick = (v, other)
                        break
            if pick is None:
                continue
            v, other = pick
            factors = [g.xreplace({v: other}) for j, g in enumerate(factors) if j != k]
            coeff = coeff.xreplace({v: other})
            bound = [x for x in bound if x[0] != v]
            changed = True
            break
    names = {b[0] for b in bound}
    scalars = []
    for c in sp.Mul.make_args(coeff):
        (factors if c.free_symbols & names else scalars).append(c)
    coeff = sp.Mul(*scalars)
    factors = [f for f in factors if f != 1]
    if any(f == 0 for f in factors) or coeff == 0:
        return None
    used = set().union(*[f.free_symbols for f in factors], coeff.free_symbols) if factors else coeff.free_symbols
    kept = []
    for var, lo, hi in bound:
        if var in used:
            kept.append((var, lo, hi))
        else:
            coeff = coeff * (hi - lo + 1)
    return Term(coeff, factors, kept)


_BOUND = re.compile(r"'(_b\d+)'")


def _key(t: Term, cache: dict[Any, str]) -> tuple:
    """Canonical (factors, ranges) of a term: bound names replaced in the printed factors."""
    names = [b[0].name for b in t.bound]
    texts = []
    for f in t.factors:
        if f not in cache:
            cache[f] = sp.srepr(canonical_inner(f))
        texts.append(cache[f])
    ranges = {b[0].name: (sp.srepr(b[1]), sp.srepr(b[2])) for b in t.bound}

    def rename(text: str, mapping: dict[str, str]) -> str:
        return _BOUND.sub(lambda m: "'" + mapping.get(m.group(1), m.group(1)) + "'", text)

    def sig(v: str) -> tuple:
        mapping = {w: "_blank" for w in names}
        mapping[v] = "_me"
        occ = sorted(rename(x, mapping) for x in texts if f"'{v}'" in x)
        return (tuple(occ), ranges[v])

    sigs = {v: sig(v) for v in names}
    groups: dict[tuple, list[str]] = {}
    for v in sorted(names, key=lambda v: sigs[v]):
        groups.setdefault(sigs[v], []).append(v)
    ordered = [groups[k] for k in sorted(groups)]
    best = None
    for perm in itertools.product(*[itertools.permutations(g) for g in ordered]):
        order = [v for g in perm for v in g]
        ren = {v: f"_c{k}" for k, v in enumerate(order)}
        cand = (tuple(sorted(rename(x, ren) for x in texts)),
                tuple(sorted((ren[v], *ranges[v]) for v in names)))
        if best is None or cand < best:
            best = cand
    return best if best is not None else ((), ())


def normal_form(e: Any) -> dict[tuple, Any]:
    """``{canonical term: coefficient}`` with zero coefficients dropped."""
    out: dict[tuple, Any] = {}
    cache: dict[Any, str] = {}
    for t in terms(e):
        names = {b[0] for b in t.bound}
        if any((sp.sympify(lo).free_symbols | sp.sympify(hi).free_symbols) & names for _, lo, hi in t.bound):
            raise ValueError("index normal form: a summation range depends on another summation index")
        c = _collapse(t)
        if c is None:
            continue
        k = _key(c, cache)
        out[k] = out.get(k, sp.Integer(0)) + c.coeff
    return {k: v for k, v in out.items() if sp.expand(v) != 0}


def equal(lhs: Any, rhs: Any, method: str = "normal-form") -> bool:
    """True when ``lhs - rhs`` is shown to vanish (a proof); False means "not proved".

    ``method`` ``"normal-form"``: the empty normal form. ``"simplify"``: canonical renaming of
    bound indices, sums distributed over their terms (``factor_sum``), then ``expand`` and
    ``simplify`` to 0 (used where exponentials must be split, e.g. the softmax shift).
    """
    if method == "normal-form":
        return not normal_form(sp.sympify(lhs) - sp.sympify(rhs))
    if method == "simplify":
        return _simplify_equal(sp.sympify(lhs), sp.sympify(rhs))
    raise ValueError(f"unknown method {method!r}")


def _simplify_equal(lhs: Any, rhs: Any) -> bool:
    from sympy.simplify.simplify import factor_sum

    def norm(e: Any) -> Any:
        for _ in range(3):
            e = canonical_inner(sp.expand(e))
            e = e.replace(lambda x: isinstance(x, sp.Sum),
                          lambda x: factor_sum(sp.Sum(sp.expand(x.function), *x.limits)))
        return canonical_inner(sp.expand(e))

    diff = sp.expand(norm(lhs) - norm(rhs))
    return diff == 0 or sp.simplify(diff) == 0


def derivative(expr: Any, wrt: Any) -> Any:
    """``sympy.diff`` of an index expression with respect to one ``Indexed`` entry (no chain rule by hand)."""
    return sp.diff(expr, wrt)
