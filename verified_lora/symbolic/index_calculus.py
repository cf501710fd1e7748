"""End-to-end derivatives of the loss in index notation at symbolic sizes: no chain rule by hand.

The loss is assembled from the element forms of :func:`derive.element_forms` (the forms the code
and the kernels use), with every intermediate array inlined down to the leaves
``X_Q, X_K, X_V, Y`` and the weights (``W_mu`` a leaf, or ``W*_mu + s B_mu A_mu``)::

    P[i,l] = sum_m X_Q[i,m] W_Q[m,l],  Kmat[j,l] = sum_m X_K[j,m] W_K[m,l],  V[j,a] = sum_m X_V[j,m] W_V[m,a]
    S, u = FormalExp(S) (row shift m = 0: certificate definition-3.6), alpha, f, c, loss = 1/2 sum c^2

and differentiated with ``sympy.diff`` with respect to one entry ``theta[k0, l0]`` at symbolic sizes
chosen so that the entry is in range (``d = k0 + 1 + d'``, ``d' >= 0``). The claimed gradient is the
entry ``[k0, l0]`` of :func:`derive.weight_gradients` / :func:`derive.adapter_gradients` applied to
MatrixSymbols, with ``p``, ``f``, ``c`` replaced by their element forms. Equality is decided by
:mod:`.index_normal_form` (formal exponentials and reciprocal row sums are atoms). Each check is
recorded as an ``index-derivative`` obligation, which the re-checker differentiates again.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import sympy as sp

from . import derive
from . import index_normal_form as nf
from . import obligations as obl
from .certificates import ProofFailure

__all__ = ["PARAMS", "loss_and_claim", "check_gradient", "sizes_for"]

Z = derive.SIZE_SYMBOLS
PARAMS: dict[str, tuple[str, str]] = {
    # parameter -> (key, role); W_mu is the full weight, A/B the adapter factors
    "W_Q": ("Q", "W"), "A_Q": ("Q", "A"), "B_Q": ("Q", "B"),
    "W_K": ("K", "W"), "A_K": ("K", "A"), "B_K": ("K", "B"),
    "W_V": ("V", "W"), "A_V": ("V", "A"), "B_V": ("V", "B"),
}


def _nn(name: str) -> sp.Symbol:
    return sp.Symbol(name, integer=True, nonnegative=True)


def sizes_for(param: str) -> tuple[dict[sp.Symbol, Any], sp.Symbol, sp.Symbol]:
    """Sizes that put the entry ``(k0, l0)`` of ``param`` in range, and the indices ``k0, l0``."""
    k0, l0 = _nn("k0"), _nn("l0")
    if param == "S":
        return {Z["L"]: k0 + 1 + _nn("L_x"), Z["L_k"]: l0 + 1 + _nn("L_k_x")}, k0, l0
    key, role = PARAMS[param]
    out = Z["d_v"] if key == "V" else Z["d_head"]
    rows, cols = {"W": (Z["d_model"], out), "A": (Z["r"], out), "B": (Z["d_model"], Z["r"])}[role]
    sub = {rows: k0 + 1 + _nn(f"{rows.name}_x")}
    sub[cols] = (l0 + 1 + _nn(f"{cols.name}_x")) if cols not in sub else sub[cols]
    return sub, k0, l0


class _Names:
    def __init__(self) -> None:
        self.n = itertools.count()

    def __call__(self) -> sp.Symbol:
        return _nn(f"_m{next(self.n)}")


def _weight(key: str, role: str, fresh: _Names) -> Callable[[Any, Any], sp.Expr]:
    """``W_key[m, l]``: a leaf, or ``W*[m,l] + s sum_k B[m,k] A[k,l]`` when the adapter is the variable."""
    W = sp.IndexedBase(f"W_{key}")
    if role == "W":
        return lambda m, l: W[m, l]
    Ws, A, B = (sp.IndexedBase(f"{n}_{key}") for n in ("Wstar", "A", "B"))
    s = sp.Symbol("s", positive=True)

    def entry(m: Any, l: Any) -> sp.Expr:
        k = fresh()
        return Ws[m, l] + s * sp.Sum(B[m, k] * A[k, l], (k, 0, Z["r"] - 1))

    return entry


def _projections(param: str, fresh: _Names) -> dict[str, Callable[..., sp.Expr]]:
    key, role = PARAMS[param]
    out: dict[str, Callable[..., sp.Expr]] = {}
    for name, k, X in (("P", "Q", "X_Q"), ("Kmat", "K", "X_K"), ("V", "V", "X_V")):
        w = _weight(k, role if k == key else "W", fresh)
        Xb = sp.IndexedBase(X)

        def proj(i: Any, l: Any, w=w, Xb=Xb) -> sp.Expr:
            m = fresh()
            return sp.Sum(Xb[i, m] * w(m, l), (m, 0, Z["d_model"] - 1))

        out[name] = proj
    return out


def _inline_all(expr: sp.Expr, param: str, fresh: _Names) -> sp.Expr:
    """Inline element forms (``m = 0``, ``exp`` -> ``FormalExp``) and the projections down to the leaves."""
    forms = derive.element_forms()
    order = ["p", "rvec", "q", "c", "f", "alpha", "u"] + ([] if param == "S" else ["score"])
    outs = {forms[k].out.base.name if isinstance(forms[k].out, sp.Indexed) else k: forms[k] for k in order}
    for _ in range(12):
        hits = [x for x in expr.atoms(sp.Indexed) if x.base.name in outs]
        if not hits:
            break
        mapping = {}
        for x in hits:
            form = outs[x.base.name]
            body = _fresh_sums(form.expr, fresh)
            mapping[x] = body.xreplace(dict(zip(form.out.indices, x.indices)))
        expr = expr.xreplace(mapping)
    else:
        raise ProofFailure("index_calculus: element forms do not terminate")
    expr = expr.replace(lambda e: isinstance(e, sp.Indexed) and e.base.name == "m", lambda e: sp.Integer(0))
    expr = expr.replace(sp.exp, derive.FormalExp)
    if param == "S":
        return expr
    proj = _projections(param, fresh)
    expr = expr.replace(lambda e: isinstance(e, sp.Indexed) and e.base.name in proj,
                        lambda e: proj[e.base.name](*e.indices))
    return expr


def _fresh_sums(expr: sp.Expr, fresh: _Names) -> sp.Expr:
    def rename(s: sp.Sum) -> sp.Sum:
        body, limits = s.function, []
        for var, lo, hi in s.limits:
            new = fresh()
            body = body.xreplace({var: new})
            limits = [(v, a.xreplace({var: new}), b.xreplace({var: new})) for v, a, b in limits]
            limits.append((new, lo, hi))
        return sp.Sum(_fresh_sums(body, fresh), *limits)

    return expr.replace(lambda e: isinstance(e, sp.Sum), rename)


def _matrix_entry_to_index(expr: sp.Expr) -> sp.Expr:
    """MatrixElement(M, a, b) -> IndexedBase(M.name)[a, b]."""
    return expr.replace(lambda e: isinstance(e, sp.matrices.expressions.matexpr.MatrixElement),
                        lambda e: sp.IndexedBase(str(e.parent))[e.i, e.j])


def loss_and_claim(param: str) -> tuple[sp.Expr, sp.Indexed, sp.Expr]:
    """``(loss, theta[k0, l0], claimed dL/dtheta[k0, l0])``, all in index notation at symbolic sizes.

    ``param`` is one of :data:`PARAMS`, or ``"S"`` (the scores as leaves; claim: the element form
    of ``p``, Definition 3.6).
    """
    sub, k0, l0 = sizes_for(param)
    fresh = _Names()
    forms = derive.element_forms()
    loss = _inline_all(forms["loss"].expr, param, fresh)
    if param == "S":
        claim = _inline_all(sp.IndexedBase("p")[k0, l0], param, fresh)
        theta = sp.IndexedBase("S")[k0, l0]
        return _canon(loss.xreplace(sub)), theta, _canon(claim.xreplace(sub))
    key, role = PARAMS[param]
    M = sp.MatrixSymbol
    L, Lk, dm, dh, dv, r = (Z[n] for n in ("L", "L_k", "d_model", "d_head", "d_v", "r"))
    beta, s = sp.Symbol("beta", positive=True), sp.Symbol("s", positive=True)
    G = derive.weight_gradients(M("X_Q", L, dm), M("X_K", Lk, dm), M("X_V", Lk, dm), M("P", L, dh),
                                M("Kmat", Lk, dh), M("f", L, Lk), M("c", L, dv), M("p", L, Lk), beta)[key]
    out = dv if key == "V" else dh
    if role == "W":
        grad = G
    else:
        dA, dB = derive.adapter_gradients(G, M(f"A_{key}", r, out), M(f"B_{key}", dm, r), s)
        grad = dA if role == "A" else dB
    entry = _matrix_entry_to_index(grad[k0, l0])
    entry = _fresh_sums(entry, fresh)
    if role != "W":     # inside the claim W_key is the full weight W* + s B A
        w = _weight(key, role, fresh)
        entry = entry.replace(lambda e: isinstance(e, sp.Indexed) and e.base.name == f"W_{key}",
                              lambda e: w(*e.indices))
    claim = _inline_all(entry, param, fresh)
    theta = sp.IndexedBase(param)[k0, l0]
    loss, claim = (e.xreplace(sub) for e in (loss, claim))
    return _canon(loss), theta, _canon(claim)


def _canon(e: sp.Expr) -> sp.Expr:
    return nf.canonical_inner(e)


def check_gradient(param: str) -> None:
    """``sympy.diff(loss, theta[k0, l0]) == claimed`` by the index normal form; recorded. Raises on failure."""
    if param not in PARAMS and param != "S":
        raise ValueError(f"param must be 'S' or one of {sorted(PARAMS)}, got {param!r}")
    loss, theta, claim = loss_and_claim(param)
    ok = nf.equal(nf.derivative(loss, theta), claim)
    obl.note("index-derivative", f"dL/d{param}[k0, l0] (index notation, symbolic sizes)", method="normal-form",
             expect=True, exprs={"expr": loss, "wrt": theta, "claimed": claim})
    if not ok:
        raise ProofFailure(f"dL/d{param}[k0, l0]: sympy.diff of the loss does not reduce to the claimed gradient")
