"""Decision procedures and helpers shared by the proof scripts under ``verified_lora/proofs/``.

* :func:`polynomial_identity` decides ``lhs == rhs`` for expressions built from the leaves, the
  formal exponential :class:`~verified_lora.symbolic.derive.FormalExp` and reciprocals of
  softmax normalisers. Every ``FormalExp(S_ij)`` becomes an independent positive symbol
  ``e_k`` and every ``(sum of e's)^(-n)`` becomes ``z^n`` with an independent symbol ``z``; the
  two sides are then compared as polynomials over QQ (SymPy's sparse ``PolyRing``). An identity
  between the two polynomials in independent variables implies the identity after substituting
  ``e = exp(S)`` and ``z = 1/alpha`` back, so a "yes" is a proof; a "no" is only "not proved"
  (never used to claim falsity: counterexamples are exact evaluations).
* :func:`inline` expands element-level forms (``derive.element_forms``) into their definitions,
  renaming bound summation indices so nothing is captured.
* :func:`shapes_up_to` enumerates every shape of a declared small scope.
* :func:`stochastic_rows` builds exact rational row-stochastic matrices: any positive
  row-stochastic ``f`` is ``softmax(S)`` for ``S = log f``, so counterexamples at the level of
  ``f`` are counterexamples for real scores.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import sympy as sp

from . import obligations as obl
from .certificates import ProofFailure
from .derive import ElementForm, FormalExp

__all__ = [
    "polynomial_identity",
    "assert_identity",
    "inline",
    "shapes_up_to",
    "stochastic_rows",
    "rational_matrix",
    "matrix_product_shape",
    "fresh_bound",
    "check_equal",
    "check_zero",
    "check_differs",
    "check_derivative",
]


def _to_polynomials(exprs: Sequence[sp.Expr]) -> list[Any]:
    exprs = [sp.sympify(e) for e in exprs]
    atoms = sorted(set().union(*[e.atoms(FormalExp) for e in exprs]), key=sp.default_sort_key)
    e_syms = {a: sp.Symbol(f"_e{k}", positive=True) for k, a in enumerate(atoms)}
    exprs = [e.xreplace(e_syms) for e in exprs]
    e_set = set(e_syms.values())
    recips: dict[sp.Expr, sp.Symbol] = {}

    def is_recip(x: sp.Basic) -> bool:
        return (x.is_Pow and x.exp.is_Integer and x.exp < 0 and x.base.is_Add
                and bool(x.base.free_symbols) and x.base.free_symbols <= e_set)

    def to_z(x: sp.Pow) -> sp.Expr:
        z = recips.setdefault(x.base, sp.Symbol(f"_z{len(recips)}"))
        return z ** (-x.exp)

    exprs = [e.replace(is_recip, to_z) for e in exprs]
    gens = sorted(set().union(*[e.free_symbols for e in exprs]), key=sp.default_sort_key) or [sp.Symbol("_one")]
    ring = sp.polys.rings.PolyRing(gens, sp.QQ)
    ring = ring[0] if isinstance(ring, tuple) else ring
    try:
        return [ring.from_expr(e) for e in exprs]
    except Exception as exc:  # a non-polynomial remainder (e.g. an unmatched division)
        raise ProofFailure(f"expression is not polynomial after the exp/reciprocal substitution: {exc}") from exc


def polynomial_identity(lhs: sp.Expr, rhs: sp.Expr, what: str = "polynomial identity") -> bool:
    """True when ``lhs - rhs`` vanishes as a polynomial in the leaves, ``e = exp(.)`` and ``z = 1/alpha``.

    A True answer proves ``lhs == rhs`` for all real leaves; False means "not proved". The check
    is recorded as an obligation of the running proof.
    """
    a, b = _to_polynomials([lhs, rhs])
    obl.note("identity", what, method="polynomial", expect=bool(a == b), exprs={"lhs": lhs, "rhs": rhs})
    return a == b


def _as_matrix(x: Any) -> sp.Matrix:
    if isinstance(x, (sp.Tuple, tuple, list)):
        return sp.Matrix([sp.sympify(v) for v in x])
    return x if isinstance(x, sp.MatrixBase) else sp.Matrix([[sp.sympify(x)]])


def check_equal(lhs: Any, rhs: Any, what: str, method: str = "expand") -> None:
    """Exact equality of (matrices of) expressions, recorded; raises :class:`ProofFailure` otherwise.

    ``method`` ``"expand"``: ``expand(lhs - rhs) == 0`` entrywise (polynomials); ``"cancel"``:
    ``cancel(together(.))`` then ``simplify`` (rational functions, radicals); ``"exp-cancel"``:
    ``exp(a + b)`` split into ``exp(a) exp(b)``, each ``exp`` an independent positive symbol, then
    ``cancel`` (softmax shift invariance).
    """
    lm, rm = _as_matrix(lhs), _as_matrix(rhs)
    if lm.shape != rm.shape:
        raise ProofFailure(f"{what}: shapes differ, {lm.shape} vs {rm.shape}")
    ok = all(_zero(d, method) for d in (lm - rm))
    obl.note("identity", what, method=method, expect=True, exprs={"lhs": lhs, "rhs": rhs})
    if not ok:
        raise ProofFailure(f"{what}: not identically equal")


def _zero(d: sp.Expr, method: str) -> bool:
    if method == "expand":
        return sp.expand(d) == 0
    if method == "cancel":
        return sp.cancel(sp.together(d)) == 0 or sp.simplify(sp.together(d)) == 0
    if method == "exp-cancel":
        d = sp.expand(d, power_exp=True, mul=False, multinomial=False, power_base=False, log=False, basic=False)
        atoms = sorted(d.atoms(sp.exp), key=sp.default_sort_key)
        d = d.xreplace({e: sp.Symbol(f"_E{n}", positive=True) for n, e in enumerate(atoms)})
        return sp.cancel(sp.together(d)) == 0
    raise ValueError(f"unknown method {method!r}")


def check_derivative(expr: Any, wrt: Any, claimed: Any, what: str, order: int = 1) -> None:
    """``d^order expr / d wrt^order == claimed`` (``sympy.diff``, then ``expand``), recorded; raises otherwise."""
    ok = sp.expand(sp.diff(expr, wrt, order) - claimed) == 0
    obl.note("derivative", what, method="expand", order=order, expect=True,
             exprs={"expr": expr, "wrt": wrt, "claimed": claimed})
    if not ok:
        raise ProofFailure(f"{what}: the derivative differs from the claimed one")


def check_zero(expr: Any, what: str, method: str = "cancel") -> None:
    """``expr == 0`` identically (see :func:`check_equal`)."""
    check_equal(expr, sp.Integer(0) if not isinstance(expr, sp.MatrixBase) else sp.zeros(*expr.shape), what, method)


def check_differs(lhs: Any, rhs: Any, what: str) -> None:
    """Exact values that must differ (a counterexample), recorded; raises when they are equal."""
    lm, rm = _as_matrix(lhs), _as_matrix(rhs)
    same = lm.shape == rm.shape and all(sp.simplify(d) == 0 for d in (lm - rm))
    obl.note("differs", what, exprs={"lhs": lhs, "rhs": rhs})
    if same:
        raise ProofFailure(f"{what}: the values agree")


def assert_identity(lhs: Any, rhs: Any, what: str) -> int:
    """Check entrywise ``lhs == rhs`` (matrices or scalars) with :func:`polynomial_identity`.

    Returns the number of scalar identities checked; raises :class:`ProofFailure` naming the
    first entry that does not reduce to zero, or a shape mismatch.
    """
    lhs_m = lhs if isinstance(lhs, sp.MatrixBase) else sp.Matrix([[lhs]])
    rhs_m = rhs if isinstance(rhs, sp.MatrixBase) else sp.Matrix([[rhs]])
    if lhs_m.shape != rhs_m.shape:
        raise ProofFailure(f"{what}: shapes differ, {lhs_m.shape} vs {rhs_m.shape}")
    polys = _to_polynomials(list(lhs_m) + list(rhs_m))
    n = lhs_m.rows * lhs_m.cols
    bad = next((k for k in range(n) if polys[k] != polys[n + k]), None)
    obl.note("identity", what, method="polynomial", expect=bad is None, exprs={"lhs": lhs_m, "rhs": rhs_m})
    if bad is not None:
        i, j = divmod(bad, lhs_m.cols)
        raise ProofFailure(f"{what}: entry ({i}, {j}) does not reduce to an identity")
    return n


def fresh_bound(expr: sp.Expr) -> sp.Expr:
    """Rename every summation index of ``expr`` to a fresh ``Dummy`` (no capture on substitution)."""

    def rename(s: sp.Sum) -> sp.Sum:
        body = s.function
        limits = []
        for lim in s.limits:
            var = lim[0]
            new = sp.Dummy(str(var), integer=True, nonnegative=True)
            body = body.xreplace({var: new})
            limits = [(v, *(x.xreplace({var: new}) for x in rest)) for v, *rest in limits]
            limits.append((new, *lim[1:]))
        return sp.Sum(fresh_bound(body), *limits)

    return expr.replace(lambda e: isinstance(e, sp.Sum), rename)


def inline(expr: sp.Expr, forms: Mapping[str, ElementForm], names: Iterable[str], *, rounds: int = 10) -> sp.Expr:
    """Replace every ``X[idx]`` with ``X`` in ``names`` by its element form, repeatedly."""
    names = set(names)
    for _ in range(rounds):
        hits = [x for x in expr.atoms(sp.Indexed) if str(x.base) in names]
        if not hits:
            return expr
        mapping = {}
        for x in hits:
            form = forms[str(x.base)]
            body = fresh_bound(form.expr)
            sub = dict(zip(form.out.indices, x.indices))
            mapping[x] = body.xreplace(sub)
        expr = expr.xreplace(mapping)
    raise ProofFailure("inline: definitions do not terminate")


def shapes_up_to(**bounds: int | Sequence[int]) -> Iterator[dict[str, int]]:
    """Every combination of sizes: ``shapes_up_to(L=3, d=2)`` gives L in 1..3 and d in 1..2."""
    names = list(bounds)
    ranges = [range(1, b + 1) if isinstance(b, int) else b for b in bounds.values()]
    for combo in itertools.product(*ranges):
        yield dict(zip(names, combo))


def rational_matrix(rows: Sequence[Sequence[Any]]) -> sp.Matrix:
    """Exact matrix from nested lists of ints/strings/Rationals (``"3/4"`` is 3/4)."""
    return sp.Matrix([[sp.Rational(x) for x in row] for row in rows])


def stochastic_rows(rows: Sequence[Sequence[int]]) -> sp.Matrix:
    """Exact positive row-stochastic matrix: each row of positive integers divided by its sum."""
    if any(x <= 0 for row in rows for x in row):
        raise ValueError("entries must be positive")
    return sp.Matrix([[sp.Rational(x, sum(row)) for x in row] for row in rows])


def matrix_product_shape(*shapes: tuple[int, int]) -> tuple[int, int] | str:
    """Shape of a product chain, or a message naming the first inner-dimension mismatch."""
    rows, cols = shapes[0]
    for k, (r2, c2) in enumerate(shapes[1:], start=1):
        if cols != r2:
            return f"factor {k} ({rows}x{cols}) times factor {k + 1} ({r2}x{c2}): inner sizes {cols} != {r2}"
        cols = c2
    return (rows, cols)


def collapse_deltas(expr: sp.Expr) -> sp.Expr:
    """Evaluate sums over an index that occurs in a ``KroneckerDelta`` of the summand.

    A multi-index ``Sum`` is split so that the delta's index is summed first (finite sums with
    bounds independent of the other indices commute); SymPy's ``doit`` then collapses the delta.
    The caller chooses symbolic sizes so that the delta's other index lies in range.
    """

    def one(s: sp.Sum) -> sp.Expr:
        body, limits = s.function, list(s.limits)
        progress = True
        while progress and limits:
            progress = False
            for k, lim in enumerate(limits):
                var = lim[0]
                if any(var in d.free_symbols for d in body.atoms(sp.KroneckerDelta)):
                    new = sp.Sum(sp.expand(body), lim).doit()
                    if not new.has(sp.Sum) or not any(var in x.free_symbols for x in new.atoms(sp.KroneckerDelta)):
                        body = new
                        limits.pop(k)
                        progress = True
                        break
        return sp.Sum(body, *limits) if limits else body

    return expr.replace(lambda e: isinstance(e, sp.Sum), one)


def canonical_bound(expr: sp.Expr) -> sp.Expr:
    """Rename summation indices by nesting depth and position (``_s0_0``, ...), so that equal sums
    written with different dummy names become structurally equal. Separate sums at the same depth
    share names, which is harmless: each binds its own index."""

    def walk(e: sp.Expr, depth: int) -> sp.Expr:
        if isinstance(e, sp.Sum):
            body = e.function
            limits = []
            for k, lim in enumerate(e.limits):
                new = sp.Symbol(f"_s{depth}_{k}", integer=True, nonnegative=True)
                body = body.xreplace({lim[0]: new})
                limits = [(v, *(x.xreplace({lim[0]: new}) for x in rest)) for v, *rest in limits]
                limits.append((new, *lim[1:]))
            return sp.Sum(walk(body, depth + 1), *limits)
        if not e.args:
            return e
        return e.func(*[walk(a, depth) for a in e.args])

    return walk(sp.sympify(expr), 0)


def sums_equal(lhs: sp.Expr, rhs: sp.Expr, what: str = "index identity", method: str = "normal-form") -> bool:
    """True when ``lhs - rhs`` has the empty index normal form (:mod:`.index_normal_form`); recorded.

    Bound indices are renamed canonically first (no Dummy symbols reach the certificate). False
    means "not shown", not "different".
    """
    from . import index_normal_form as nf

    lhs, rhs = canonical_bound(lhs), canonical_bound(rhs)
    ok = nf.equal(lhs, rhs, method)
    obl.note("index-identity", what, method=method, expect=bool(ok), exprs={"lhs": lhs, "rhs": rhs})
    return ok


def real_symbols(names: str) -> Any:
    """``sympy.symbols(names, real=True)``: the unknowns of a lemma's scalar inequalities."""
    return sp.symbols(names, real=True)


def require_sums_equal(lhs: sp.Expr, rhs: sp.Expr, what: str) -> None:
    """:func:`sums_equal` at symbolic sizes, or :class:`ProofFailure` naming ``what``."""
    if not sums_equal(lhs, rhs, what):
        raise ProofFailure(f"{what}: not shown at symbolic size")


A_POSTERIORI_PAPER = {"iclr2025": "no lemma of the paper: the library's a-posteriori certificate of the almost-linear "
                                  "gradient of Section 3 (Theorem 3.1's algorithm); docs/math.md section 4",
                      "arxiv_v2": "same (not a paper claim)"}
"""The paper reference of every claim about the fast path's a-posteriori certificate (none is a paper lemma)."""


def a_posteriori_paper(where: str) -> dict:
    """:data:`A_POSTERIORI_PAPER` with ``module`` set to ``where`` (a module path and, optionally, a label)."""
    return dict(A_POSTERIORI_PAPER, module=where)


def finite_sum(expr: sp.Expr, var: sp.Symbol, size: sp.Expr) -> sp.Sum:
    """``sum_{var = 0}^{size - 1} expr``."""
    return sp.Sum(expr, (var, 0, size - 1))
