"""The SymPy derivation of every term of the LoRA attention gradient: the single source of truth.

Everything starts from the loss (Definition 2.5 / (3.3) of the ICLR 2025 paper, in the
orientation of docs/design.md section 2)::

    W_mu = W*_mu + s B_mu A_mu          s = alpha/r ("lora") or alpha/sqrt(r) ("rslora")
    P = X_Q W_Q,  K = X_K W_K,  V = X_V W_V,   S = beta P K^T
    u = exp(S)  (entrywise),  alpha = u 1,  f = diag(alpha)^{-1} u,  c = f V - Y,
    loss = 1/2 ||c||_F^2

and the backward terms (corrected forms, see ERRATA.md)::

    q = c V^T            (Lemma 3.2 corrected: NOT C3 c^T)
    p1 = f * q           (Lemma 3.6, entrywise)
    rvec = p1 1          (Lemma 3.7: r_j = <f_j, q_j>)
    p2 = diag(rvec) f    (Definition 3.6 row-stacked: NOT f diag(r))
    p = p1 - p2 = dL/dS  (Lemma 3.1 / (3.5))
    G_Q = dL/dW_Q = beta X_Q^T p K        (Lemma 3.2)
    G_K = dL/dW_K = beta X_K^T p^T P      (Lemmas D.3/D.4 corrected: the transposed form)
    G_V = dL/dW_V = X_V^T f^T c           (not in the paper, which drops it by (S1))
    dA_mu = s B_mu^T G_mu,   dB_mu = s G_mu A_mu^T

Two kinds of forms are provided:

* **Matrix forms for concrete small shapes** (:func:`symbolic_inputs`, :func:`rational_inputs`,
  :func:`forward`, :func:`backward`, :func:`autodiff`): SymPy matrices whose entries are symbols
  (``x_q_0_1``...) or exact ``Rational`` values. :func:`autodiff` differentiates the loss itself
  with ``sympy.diff``; the proofs show it equals :func:`backward`.
* **Element-level (index) forms with symbolic sizes** (:func:`element_forms`): one scalar formula
  per output entry, written with ``IndexedBase`` arrays, 0-based indices and ``Sum`` over symbolic
  bounds. The kernel generator prints these; the generic proofs differentiate them.

All constants are exact (``Rational``); no ``Float`` ever enters an expression.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import sympy as sp

__all__ = [
    "FormalExp",
    "Shapes",
    "Inputs",
    "Terms",
    "ElementForm",
    "KEYS",
    "matrix_symbols",
    "symbolic_inputs",
    "rational_inputs",
    "inputs_from_problem",
    "scale_expr",
    "forward",
    "backward",
    "weight_gradients",
    "adapter_gradients",
    "derive",
    "autodiff",
    "softmax_rows",
    "rowwise_kron",
    "element_forms",
    "SIZE_SYMBOLS",
]

KEYS: tuple[str, ...] = ("Q", "K", "V")


class FormalExp(sp.Function):
    """A formal exponential: the only fact SymPy knows about it is ``FormalExp' = FormalExp``.

    Deriving with ``exp=FormalExp`` keeps every ``exp(S_ij)`` a separate atom (SymPy merges
    ``exp(a) exp(b)`` into ``exp(a + b)``), so the proofs can replace the atoms by positive
    symbols and decide identities as rational functions. An identity proved for ``FormalExp``
    holds for ``exp``, which has this property.
    """

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        return self


@dataclass(frozen=True)
class Shapes:
    """Concrete sizes: L query rows, L_k key rows, d_model, d_head (Q/K width), d_v, rank r."""

    L: int = 2
    L_k: int = 2
    d_model: int = 2
    d_head: int = 2
    d_v: int = 2
    r: int = 1

    def d_out(self, key: str) -> int:
        return self.d_v if key == "V" else self.d_head


@dataclass(frozen=True)
class Inputs:
    """The leaves of the computation graph (SymPy matrices and scalars).

    ``adapters`` maps "Q"/"K"/"V" to ``(A, B)`` with ``A`` (r x d_out) and ``B`` (d_model x r);
    ``w`` holds the *frozen* weights ``W*_mu``; ``s`` is the adapter scale (an expression in
    ``alpha`` and ``r``), ``beta`` the inverse temperature.
    """

    shapes: Shapes
    x_q: sp.Matrix
    x_k: sp.Matrix
    x_v: sp.Matrix
    y: sp.Matrix
    w: Mapping[str, sp.Matrix]
    adapters: Mapping[str, tuple[sp.Matrix, sp.Matrix]]
    alpha: sp.Expr
    beta: sp.Expr
    scaling: str = "lora"

    @property
    def s(self) -> sp.Expr:
        """The scale for rank ``shapes.r`` (every adapter built here has that rank)."""
        return scale_expr(self.alpha, self.shapes.r, self.scaling)

    def scale(self, key: str) -> sp.Expr:
        """The scale of adapter ``key``, from its own rank (rows of ``A``)."""
        return scale_expr(self.alpha, self.adapters[key][0].rows, self.scaling)

    def params(self) -> dict[str, sp.Matrix]:
        """Trainable leaves keyed like the gradients: "A_Q", "B_Q", ..."""
        out: dict[str, sp.Matrix] = {}
        for key in KEYS:
            if key in self.adapters:
                a, b = self.adapters[key]
                out[f"A_{key}"] = a
                out[f"B_{key}"] = b
        return out


@dataclass(frozen=True)
class Terms:
    """Every derived matrix, named as in the paper (``alpha`` here is the softmax normaliser
    column vector, Definition 3.3; the LoRA hyperparameter lives in :class:`Inputs`)."""

    W: Mapping[str, sp.Matrix]
    P: sp.Matrix
    K: sp.Matrix
    V: sp.Matrix
    S: sp.Matrix
    u: sp.Matrix
    alpha: sp.Matrix
    f: sp.Matrix
    c: sp.Matrix
    loss: sp.Expr
    q: sp.Matrix | None = None
    p1: sp.Matrix | None = None
    rvec: sp.Matrix | None = None
    p2: sp.Matrix | None = None
    p: sp.Matrix | None = None
    G: Mapping[str, sp.Matrix] = field(default_factory=dict)
    grads: Mapping[str, sp.Matrix] = field(default_factory=dict)


def scale_expr(alpha: Any, r: int, scaling: str = "lora") -> sp.Expr:
    """``s = alpha/r`` ("lora") or ``alpha/sqrt(r)`` ("rslora"), exact."""
    alpha = sp.sympify(alpha)
    if scaling == "lora":
        return alpha / sp.Integer(r)
    if scaling == "rslora":
        return alpha / sp.sqrt(sp.Integer(r))
    raise ValueError(f"scaling must be 'lora' or 'rslora', got {scaling!r}")


def matrix_symbols(name: str, rows: int, cols: int, **assumptions: Any) -> sp.Matrix:
    """``rows x cols`` matrix of real symbols ``name_i_j`` (0-based)."""
    assumptions.setdefault("real", True)
    return sp.Matrix(rows, cols, lambda i, j: sp.Symbol(f"{name}_{i}_{j}", **assumptions))


def symbolic_inputs(shapes: Shapes = Shapes(), adapters: Iterable[str] = KEYS, *, scaling: str = "lora",
                    cross: bool = True, alpha: Any = None, beta: Any = None) -> Inputs:
    """Fully symbolic leaves for ``shapes``: every entry is its own real symbol.

    ``cross=False`` gives self-attention (``X_K = X_V = X_Q``, needs ``L == L_k``).
    ``alpha``/``beta`` default to the real symbols ``alpha_lora`` and ``beta``.
    """
    sh = shapes
    x_q = matrix_symbols("x_q", sh.L, sh.d_model)
    if cross:
        x_k = matrix_symbols("x_k", sh.L_k, sh.d_model)
        x_v = matrix_symbols("x_v", sh.L_k, sh.d_model)
    else:
        if sh.L != sh.L_k:
            raise ValueError("self-attention needs L == L_k")
        x_k = x_v = x_q
    w = {k: matrix_symbols(f"w_{k.lower()}", sh.d_model, sh.d_out(k)) for k in KEYS}
    ads = {k: (matrix_symbols(f"a_{k.lower()}", sh.r, sh.d_out(k)), matrix_symbols(f"b_{k.lower()}", sh.d_model, sh.r))
           for k in adapters}
    alpha = sp.Symbol("alpha_lora", positive=True) if alpha is None else sp.sympify(alpha)
    beta = sp.Symbol("beta", positive=True) if beta is None else sp.sympify(beta)
    return Inputs(sh, x_q, x_k, x_v, matrix_symbols("y", sh.L, sh.d_v), w, ads, alpha, beta, scaling)


def _random_rational_matrix(rng, rows: int, cols: int, den: int) -> sp.Matrix:
    return sp.Matrix(rows, cols, lambda i, j: sp.Rational(int(rng.integers(-den, den + 1)), den))


def rational_inputs(shapes: Shapes = Shapes(), adapters: Iterable[str] = KEYS, *, seed: int = 0,
                    den: int = 4, scaling: str = "lora", alpha: Any = sp.Rational(3), beta: Any = sp.Rational(1, 2),
                    cross: bool = True) -> Inputs:
    """Random exact leaves: entries ``k/den`` with ``|k| <= den`` (numpy Generator ``seed``)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    sh = shapes
    m = lambda r_, c_: _random_rational_matrix(rng, r_, c_, den)  # noqa: E731
    x_q = m(sh.L, sh.d_model)
    x_k, x_v = (m(sh.L_k, sh.d_model), m(sh.L_k, sh.d_model)) if cross else (x_q, x_q)
    w = {k: m(sh.d_model, sh.d_out(k)) for k in KEYS}
    ads = {k: (m(sh.r, sh.d_out(k)), m(sh.d_model, sh.r)) for k in adapters}
    return Inputs(sh, x_q, x_k, x_v, m(sh.L, sh.d_v), w, ads, sp.sympify(alpha), sp.sympify(beta), scaling)


def inputs_from_problem(problem) -> Inputs:
    """Exact leaves equal to the float64 entries of an unbatched :class:`~verified_lora.LoraAttention`.

    Every binary float converts exactly to a ``Rational`` (``sympy.Rational(float)`` is exact).
    """
    if problem.batched:
        raise ValueError("inputs_from_problem takes an unbatched problem")
    pr = problem.to_numpy()

    def mat(a) -> sp.Matrix:
        return sp.Matrix(a.shape[0], a.shape[1], lambda i, j: sp.Rational(float(a[i, j])))

    r = next(iter(pr.adapters.values())).r if pr.adapters else 1
    sh = Shapes(pr.L, pr.L_k, pr.d_model, pr.d_head, pr.d_v, r)
    ads = {k: (mat(ad.a), mat(ad.b)) for k, ad in pr.adapters.items()}
    return Inputs(sh, mat(pr.x_q), mat(pr.x_k), mat(pr.x_v), mat(pr.y),
                  {k: mat(pr.frozen_weight(k)) for k in KEYS}, ads,
                  sp.Rational(float(pr.alpha)), sp.Rational(float(pr.beta)), pr.scaling)


def softmax_rows(S: sp.Matrix, exp: Callable[[sp.Expr], sp.Expr] = sp.exp) -> tuple[sp.Matrix, sp.Matrix, sp.Matrix]:
    """``(u, alpha, f)``: ``u = exp(S)`` entrywise (Definition 3.2), ``alpha = u 1`` (Definition 3.3),
    ``f = diag(alpha)^{-1} u`` (Definition 3.4). ``exp`` may be replaced (e.g. by a symbol map)."""
    u = S.applyfunc(exp)
    alpha = sp.Matrix(u.rows, 1, lambda i, _: sp.Add(*u.row(i)))
    f = sp.Matrix(u.rows, u.cols, lambda i, j: u[i, j] / alpha[i])
    return u, alpha, f


def forward(inp: Inputs, exp: Callable[[sp.Expr], sp.Expr] = sp.exp) -> Terms:
    """Forward terms from the leaves: effective weights, P, K, V, S, u, alpha, f, c and the loss."""
    W = {}
    for key in KEYS:
        if key in inp.adapters:
            a, b = inp.adapters[key]
            W[key] = inp.w[key] + inp.scale(key) * (b * a)
        else:
            W[key] = inp.w[key]
    P = inp.x_q * W["Q"]
    K = inp.x_k * W["K"]
    V = inp.x_v * W["V"]
    S = inp.beta * (P * K.T)
    u, alpha, f = softmax_rows(S, exp)
    c = f * V - inp.y
    loss = sp.Rational(1, 2) * sum((ci**2 for ci in c), sp.Integer(0))
    return Terms(W=W, P=P, K=K, V=V, S=S, u=u, alpha=alpha, f=f, c=c, loss=loss)


def weight_gradients(x_q: Any, x_k: Any, x_v: Any, P: Any, K: Any, f: Any, c: Any, p: Any,
                     beta: Any) -> dict[str, Any]:
    """``dL/dW_mu`` from ``p = dL/dS`` (works for ``Matrix`` and ``MatrixSymbol`` alike).

    ``G_Q = beta X_Q^T p K`` (Lemma 3.2), ``G_K = beta X_K^T p^T P`` (Lemmas D.3/D.4 corrected),
    ``G_V = X_V^T f^T c`` (not in the paper).
    """
    return {"Q": beta * (x_q.T * p * K), "K": beta * (x_k.T * p.T * P), "V": x_v.T * f.T * c}


def adapter_gradients(G: Any, a: Any, b: Any, s: Any) -> tuple[Any, Any]:
    """``(dL/dA, dL/dB) = (s B^T G, s G A^T)`` for ``W = W* + s B A`` (Lemma 3.2, corrected)."""
    return s * (b.T * G), s * (G * a.T)


def backward(inp: Inputs, fw: Terms) -> Terms:
    """Closed-form backward terms (corrected forms; see the module docstring)."""
    f, c, V = fw.f, fw.c, fw.V
    q = c * V.T
    p1 = f.multiply_elementwise(q)
    rvec = sp.Matrix(p1.rows, 1, lambda i, _: sp.Add(*p1.row(i)))
    p2 = sp.diag(*rvec) * f
    p = p1 - p2
    G = weight_gradients(inp.x_q, inp.x_k, inp.x_v, fw.P, fw.K, f, c, p, inp.beta)
    grads: dict[str, sp.Matrix] = {}
    for key in KEYS:
        if key in inp.adapters:
            a, b = inp.adapters[key]
            grads[f"A_{key}"], grads[f"B_{key}"] = adapter_gradients(G[key], a, b, inp.scale(key))
    return Terms(W=fw.W, P=fw.P, K=fw.K, V=fw.V, S=fw.S, u=fw.u, alpha=fw.alpha, f=f, c=c, loss=fw.loss,
                 q=q, p1=p1, rvec=rvec, p2=p2, p=p, G=G, grads=grads)


def derive(inp: Inputs, exp: Callable[[sp.Expr], sp.Expr] = sp.exp) -> Terms:
    """Forward and closed-form backward terms: ``backward(inp, forward(inp, exp))``."""
    return backward(inp, forward(inp, exp))


def autodiff(inp: Inputs, loss: sp.Expr | None = None) -> dict[str, sp.Matrix]:
    """``dL/dA_mu`` and ``dL/dB_mu`` by ``sympy.diff`` of the loss itself, entry by entry.

    Only meaningful for symbolic leaves (for exact leaves there is nothing to differentiate).
    """
    loss = forward(inp).loss if loss is None else loss
    return {name: m.applyfunc(lambda x: sp.diff(loss, x)) for name, m in inp.params().items()}


def rowwise_kron(U1: sp.Matrix, U2: sp.Matrix) -> sp.Matrix:
    """Row-wise Kronecker (face-splitting) product: ``(U1 ⊘ U2)[i, l1*k2 + l2] = U1[i,l1] U2[i,l2]``
    (0-based; the paper's ``(U1 ⊘ U2)_{i, l1 + (l2-1) k1}`` orders the pair the other way; any fixed
    order works as long as both factors use it)."""
    if U1.rows != U2.rows:
        raise ValueError("row-wise Kronecker product needs equal row counts")
    k1, k2 = U1.cols, U2.cols
    return sp.Matrix(U1.rows, k1 * k2, lambda i, t: U1[i, t // k2] * U2[i, t % k2])


# ------------------------------------------------------------------------------------ element level
SIZE_SYMBOLS: dict[str, sp.Symbol] = {
    name: sp.Symbol(name, integer=True, positive=True)
    for name in ("L", "L_k", "d_model", "d_head", "d_v", "r", "k1", "k2")
}
"""Symbolic sizes used by :func:`element_forms` (positive integers)."""


@dataclass(frozen=True)
class ElementForm:
    """One scalar formula: ``out[indices] = expr``; arrays are ``IndexedBase``, indices 0-based.

    ``ranges`` maps each free index to its (symbolic) extent; ``reads`` names the arrays read.
    """

    name: str
    out: sp.Expr
    expr: sp.Expr
    ranges: Mapping[str, sp.Expr]
    doc: str

    @property
    def reads(self) -> tuple[str, ...]:
        return tuple(sorted({str(x.base) for x in self.expr.atoms(sp.Indexed)}))


def element_forms() -> dict[str, ElementForm]:
    """Element-level forms of the forward/backward terms, with symbolic sizes.

    Arrays (``IndexedBase``): ``P`` (L x d_head), ``Kmat`` (L_k x d_head), ``V`` (L_k x d_v),
    ``Y`` (L x d_v), ``S``, ``u``, ``f``, ``q``, ``p`` (L x L_k), ``m``, ``alpha``, ``rvec`` (L),
    ``c`` (L x d_v), ``U1`` (L x k1), ``U2`` (L x k2), ``U12`` (L x k1 k2). Scalar ``beta``.

    Keys: ``score``, ``u`` (stabilised: ``exp(S - m)`` with ``m`` the row max, which leaves ``f``
    unchanged), ``alpha``, ``f``, ``c``, ``q``, ``p1``, ``rvec``, ``p2``, ``p`` (the factored form
    ``f (q - rvec)``), ``kron_row``, and ``loss`` (``1/2 sum_i sum_a c[i, a]^2``, a scalar).
    """
    L, L_k, d_head, d_v, k1, k2 = (SIZE_SYMBOLS[n] for n in ("L", "L_k", "d_head", "d_v", "k1", "k2"))
    i, j, a, t, l = sp.symbols("i j a t l", integer=True, nonnegative=True)
    P, Km, V, Y = (sp.IndexedBase(n) for n in ("P", "Kmat", "V", "Y"))
    S, u, f, q, p, c = (sp.IndexedBase(n) for n in ("S", "u", "f", "q", "p", "c"))
    m, alpha, rvec = (sp.IndexedBase(n) for n in ("m", "alpha", "rvec"))
    U1, U2, U12 = (sp.IndexedBase(n) for n in ("U1", "U2", "U12"))
    beta = sp.Symbol("beta", positive=True)
    ij = {"i": L, "j": L_k}
    forms = [
        ElementForm("score", S[i, j], beta * sp.Sum(P[i, l] * Km[j, l], (l, 0, d_head - 1)), ij,
                    "S = beta P K^T"),
        ElementForm("u", u[i, j], sp.exp(S[i, j] - m[i]), ij,
                    "u = exp(S - m), m_i = max_j S_ij (shift-invariant: f is unchanged)"),
        ElementForm("alpha", alpha[i], sp.Sum(u[i, j], (j, 0, L_k - 1)), {"i": L},
                    "alpha = u 1 (Definition 3.3)"),
        ElementForm("f", f[i, j], u[i, j] / alpha[i], ij, "f = diag(alpha)^{-1} u (Definition 3.4)"),
        ElementForm("c", c[i, a], sp.Sum(f[i, j] * V[j, a], (j, 0, L_k - 1)) - Y[i, a], {"i": L, "a": d_v},
                    "c = f V - Y (Definition 3.5)"),
        ElementForm("q", q[i, j], sp.Sum(c[i, a] * V[j, a], (a, 0, d_v - 1)), ij,
                    "q = c V^T (Lemma 3.2 corrected; row i of q pairs with row i of f)"),
        ElementForm("p1", sp.IndexedBase("p1")[i, j], f[i, j] * q[i, j], ij, "p1 = f * q (Lemma 3.6)"),
        ElementForm("rvec", rvec[i], sp.Sum(f[i, j] * q[i, j], (j, 0, L_k - 1)), {"i": L},
                    "rvec = p1 1, rvec_i = <f_i, q_i> (Lemma 3.7)"),
        ElementForm("p2", sp.IndexedBase("p2")[i, j], rvec[i] * f[i, j], ij,
                    "p2 = diag(rvec) f (Definition 3.6, row-stacked)"),
        ElementForm("p", p[i, j], f[i, j] * (q[i, j] - rvec[i]), ij,
                    "p = p1 - p2 = f * (q - rvec 1^T) = dL/dS (factored)"),
        ElementForm("loss", sp.Symbol("loss"),
                    sp.Sum(sp.Sum(c[i, a] ** 2, (a, 0, d_v - 1)), (i, 0, L - 1)) / 2, {},
                    "loss = 1/2 ||c||_F^2 = 1/2 sum_i sum_a c_ia^2 (3.4)"),
        ElementForm("kron_row", U12[i, t], U1[i, sp.floor(t / k2)] * U2[i, sp.Mod(t, k2)], {"i": L, "t": k1 * k2},
                    "row-wise Kronecker: (U1 ⊘ U2)[i, l1 k2 + l2] = U1[i, l1] U2[i, l2]"),
    ]
    return {fm.name: fm for fm in forms}
