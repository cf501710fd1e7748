"""Generic (MatrixSymbol) chain-rule steps and small-scope end-to-end checks shared by the proofs.

* :func:`linear_chain` differentiates the first-order pairing ``tr(p^T S(theta))`` with
  respect to a MatrixSymbol parameter: with ``p = dL/dS`` (proved generically in the certificate
  ``definition-3.6``) this is ``dL/dtheta`` whenever ``S`` is linear in ``theta`` (the chain
  rule; ``S`` is linear in each of ``A_mu``, ``B_mu``, ``W_mu`` separately).
* :func:`matrix_identity` decides an identity between MatrixSymbol expressions.
* :func:`end_to_end` checks ``derive.backward`` against ``sympy.diff`` of the loss itself, with
  fully symbolic entries, for one concrete shape.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import sympy as sp

from . import derive
from . import matrix_calculus as mc
from . import obligations as obl
from . import prooftools as pt
from .certificates import ProofFailure

__all__ = ["generic_symbols", "linear_chain", "matrix_identity", "check_derivative", "end_to_end"]


def generic_symbols() -> dict[str, Any]:
    """MatrixSymbols with symbolic sizes for one attention problem (paper orientation)."""
    L, L_k, d_model, d_head, d_v, r = (derive.SIZE_SYMBOLS[n] for n in ("L", "L_k", "d_model", "d_head", "d_v", "r"))
    M = sp.MatrixSymbol
    return {
        "x_q": M("X_Q", L, d_model), "x_k": M("X_K", L_k, d_model), "x_v": M("X_V", L_k, d_model),
        "y": M("Y", L, d_v), "f": M("f", L, L_k), "p": M("p", L, L_k), "c": M("c", L, d_v),
        "w_q": M("Wstar_Q", d_model, d_head), "w_k": M("Wstar_K", d_model, d_head), "w_v": M("Wstar_V", d_model, d_v),
        "a_q": M("A_Q", r, d_head), "b_q": M("B_Q", d_model, r), "a_k": M("A_K", r, d_head),
        "b_k": M("B_K", d_model, r), "a_v": M("A_V", r, d_v), "b_v": M("B_V", d_model, r),
        "s": sp.Symbol("s", positive=True), "beta": sp.Symbol("beta", positive=True),
    }


def linear_chain(p: sp.MatrixExpr, S: sp.MatrixExpr, theta: sp.MatrixSymbol) -> sp.MatrixExpr:
    """``d/dtheta tr(p^T S)`` with ``p`` held fixed (MatrixSymbol calculus, dimension checked)."""
    try:
        return mc.derivative(sp.Trace(p.T * S), theta)
    except mc.DimensionError as exc:
        raise ProofFailure(str(exc)) from exc


def matrix_identity(lhs: sp.MatrixExpr, rhs: sp.MatrixExpr, what: str = "matrix identity") -> bool:
    """True when ``lhs - rhs`` reduces to the zero matrix; recorded. Ill-typed sides fail the proof."""
    try:
        ok = mc.identity(lhs, rhs)
    except mc.DimensionError as exc:
        raise ProofFailure(f"{what}: {exc}") from exc
    obl.note("matrix-identity", what, expect=bool(ok), exprs={"lhs": lhs, "rhs": rhs})
    return ok


def check_derivative(expr: Any, wrt: sp.MatrixSymbol, claimed: Any, what: str) -> None:
    """``d expr/d wrt == claimed`` by guarded MatrixSymbol calculus (:mod:`.matrix_calculus`); recorded."""
    try:
        ok = mc.identity(mc.derivative(expr, wrt), claimed)
    except mc.DimensionError as exc:
        raise ProofFailure(f"{what}: {exc}") from exc
    obl.note("matrix-derivative", what, expect=True, exprs={"expr": expr, "wrt": wrt, "claimed": claimed})
    if not ok:
        raise ProofFailure(f"{what}: d/d{wrt} gives {mc.derivative(expr, wrt)}, claimed {claimed}")


def end_to_end(shapes: derive.Shapes, adapters: Iterable[str]) -> int:
    """``derive.backward`` == ``sympy.diff(loss)`` for every adapter entry; returns #identities."""
    inp = derive.symbolic_inputs(shapes, tuple(adapters))
    fw = derive.forward(inp, derive.FormalExp)
    closed = derive.backward(inp, fw).grads
    n = 0
    for name, leaf in inp.params().items():
        auto = leaf.applyfunc(lambda x: sp.diff(fw.loss, x))
        n += pt.assert_identity(auto, closed[name], f"dL/d{name} at {shapes}")
    if n == 0:
        raise ProofFailure("end_to_end: nothing was checked")
    return n
