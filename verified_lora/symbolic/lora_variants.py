"""SymPy derivations of the LoRA layer variants the audit checks (the formulas its mpmath references use).

Each ``derive_*`` function builds the variant's forward pass on small concrete shapes with symbolic
entries, differentiates the scalar loss ``L = sum(Y * G)`` with SymPy, and returns the derived
gradients next to the closed forms the audit's references evaluate
(``verified_lora.audit.layer_reference``, ``verified_lora.audit.variants.dora``); :func:`verify_all`
checks that every pair is identical (``simplify(derived - closed) == 0``) and every structural
identity holds (embedding = one-hot linear layer; convolution = linear layer on patches; fused
slices of arbitrary widths = per-slice placement). Torch orientation throughout (docs/design.md
section 2.2): ``Y = X W^T + b + s X A^T B^T`` with ``A`` (r x d_in), ``B`` (d_out x r).

* LoRA: ``dA = s B^T G^T X``, ``dB = s G^T X A^T``, ``dX = G W + s G B A``.
* DoRA (Liu et al. 2024, eq. (5); norm detached as in its section 4.3 and PEFT): with
  ``V = W + s B A``, ``n`` the per-output norm held constant and ``k = m / n``:
  ``Y = (X V^T) diag(k) + b``; ``dA = s B^T (G diag k)^T X``; ``dB = s (G diag k)^T X A^T``;
  ``dm_j = sum_t G_tj (X V^T)_tj / n_j``; ``dX = (G diag k) V``. At ``m = n`` (DoRA's init) ``Y`` is
  plain LoRA's.
* Embedding: ``c (E[ids] + s A^T[ids] B^T) = c (X E + s X A^T B^T)`` with ``X`` the one-hot rows.
* Conv (1-D, stride, padding 0, dilation 1): the conv of ``W + s reshape(B A_flat)`` equals the linear
  LoRA on patches, and the input gradient is the fold of the patch gradient.
* Fused slices: a block ``g`` of width ``m_g`` at output offset ``o_g`` contributes
  ``X A_g^T B_g^T`` to columns ``o_g .. o_g + m_g - 1`` only, whatever the widths.
"""

from __future__ import annotations

import sympy as sp

__all__ = ["derive_lora", "derive_dora", "derive_embedding", "derive_conv1d", "derive_fused", "verify_all"]


def _m(name: str, rows: int, cols: int) -> sp.Matrix:
    return sp.Matrix(rows, cols, lambda i, j: sp.Symbol(f"{name}_{i}_{j}", real=True))


def _v(name: str, n: int, **kw) -> sp.Matrix:
    return sp.Matrix(n, 1, lambda i, _: sp.Symbol(f"{name}_{i}", real=True, **kw))


def _grad(L: sp.Expr, M: sp.Matrix) -> sp.Matrix:
    return M.applyfunc(lambda e: sp.diff(L, e))


def _zero(M: sp.Matrix) -> bool:
    return all(sp.simplify(e) == 0 for e in M)


def derive_lora(N: int = 2, d_in: int = 3, d_out: int = 2, r: int = 2) -> dict[str, tuple[sp.Matrix, sp.Matrix]]:
    """``{name: (derived, closed form)}`` for plain LoRA's ``dA``, ``dB``, ``dX``."""
    X, W, A, B, G = _m("x", N, d_in), _m("w", d_out, d_in), _m("a", r, d_in), _m("b", d_out, r), _m("g", N, d_out)
    b, s = _v("c", d_out), sp.Symbol("s", real=True)
    Y = X * W.T + sp.ones(N, 1) * b.T + s * X * A.T * B.T
    L = sum(Y.multiply_elementwise(G))
    return {"dA": (_grad(L, A), s * B.T * G.T * X), "dB": (_grad(L, B), s * G.T * X * A.T),
            "dX": (_grad(L, X), G * W + s * G * B * A)}


def derive_dora(N: int = 2, d_in: int = 3, d_out: int = 2, r: int = 2) -> dict[str, tuple[sp.Matrix, sp.Matrix]]:
    """``{name: (derived, closed form)}`` for DoRA's ``Y``, ``dA``, ``dB``, ``dm``, ``dX`` (norm held constant)."""
    X, W, A, B, G = _m("x", N, d_in), _m("w", d_out, d_in), _m("a", r, d_in), _m("b", d_out, r), _m("g", N, d_out)
    bias, m, n = _v("c", d_out), _v("m", d_out), _v("n", d_out, positive=True)
    s = sp.Symbol("s", real=True)
    V = W + s * B * A
    K = sp.diag(*[m[j] / n[j] for j in range(d_out)])
    Y = X * V.T * K + sp.ones(N, 1) * bias.T
    L = sum(Y.multiply_elementwise(G))
    XV = X * V.T
    dm = sp.Matrix(d_out, 1, lambda j, _: sum(G[t, j] * XV[t, j] for t in range(N)) / n[j])
    out = {"dA": (_grad(L, A), s * B.T * (G * K).T * X), "dB": (_grad(L, B), s * (G * K).T * X * A.T),
           "dm": (_grad(L, m), dm), "dX": (_grad(L, X), G * K * V)}
    # at m = n (DoRA's initial magnitude) the layer is plain LoRA
    at_init = Y.subs({m[j]: n[j] for j in range(d_out)})
    out["Y at m = n"] = (at_init, X * W.T + sp.ones(N, 1) * bias.T + s * X * A.T * B.T)
    return out


def derive_embedding(V: int = 4, d: int = 2, r: int = 2, ids: tuple[int, ...] = (2, 0, 2)) -> dict:
    """Embedding lookup vs one-hot linear layer: output and ``dA``, ``dB`` (``c`` the base output scale)."""
    E, A, B, G = _m("e", V, d), _m("a", r, V), _m("b", d, r), _m("g", len(ids), d)
    s, c = sp.Symbol("s", real=True), sp.Symbol("c", real=True)
    X = sp.Matrix(len(ids), V, lambda t, v: 1 if ids[t] == v else 0)
    lookup = sp.Matrix.vstack(*[c * (E.row(i) + s * A.T.row(i) * B.T) for i in ids])
    Y = c * (X * E + s * X * A.T * B.T)
    L = sum(lookup.multiply_elementwise(G))
    return {"Y": (lookup, Y), "dA": (_grad(L, A), (c * s) * B.T * G.T * X),
            "dB": (_grad(L, B), (c * s) * G.T * X * A.T)}


def derive_conv1d(c_in: int = 2, c_out: int = 2, k: int = 2, r: int = 1, length: int = 4, stride: int = 1) -> dict:
    """A 1-D conv LoRA (A: conv with the base kernel, B: 1x1) vs the linear LoRA on patches; input gradient fold."""
    x = _m("x", c_in, length)
    Wk = [_m(f"w{o}", c_in, k) for o in range(c_out)]
    Ak = [_m(f"a{q}", c_in, k) for q in range(r)]
    B = _m("b", c_out, r)
    s = sp.Symbol("s", real=True)
    T = (length - k) // stride + 1
    G = _m("g", T, c_out)
    conv = sp.Matrix(T, c_out, lambda t, o: sum(Wk[o][i, j] * x[i, t * stride + j] for i in range(c_in) for j in range(k))
                     + s * sum(B[o, q] * sum(Ak[q][i, j] * x[i, t * stride + j] for i in range(c_in) for j in range(k))
                               for q in range(r)))
    flat = lambda M: [M[i, j] for i in range(c_in) for j in range(k)]  # noqa: E731  (channel major, as weight.view)
    P = sp.Matrix(T, c_in * k, lambda t, col: x[col // k, t * stride + col % k])
    Wf = sp.Matrix([flat(w) for w in Wk])
    Af = sp.Matrix([flat(a) for a in Ak])
    lin = P * Wf.T + s * P * Af.T * B.T
    L = sum(conv.multiply_elementwise(G))
    dP = G * Wf + s * G * B * Af  # patch gradient (canonical dX), folded back onto x
    fold = sp.zeros(c_in, length)
    for t in range(T):
        for col in range(c_in * k):
            fold[col // k, t * stride + col % k] += dP[t, col]
    return {"Y": (conv, lin), "dX": (_grad(L, x), fold)}


def derive_fused(widths: tuple[int, ...] = (3, 1, 1), enable: tuple[bool, ...] = (True, False, True),
                 d_in: int = 2, r: int = 1) -> dict:
    """Fused q/k/v: blocks at their slice offsets (unequal widths) vs the block-diagonal update."""
    d_out = sum(widths)
    X = _m("x", 2, d_in)
    starts = [sum(widths[:j]) for j in range(len(widths))]
    delta = sp.zeros(d_out, d_in)
    placed = sp.zeros(2, d_out)
    for j, (w, on) in enumerate(zip(widths, enable)):
        if not on:
            continue
        A, B = _m(f"a{j}", r, d_in), _m(f"b{j}", w, r)
        delta[starts[j]:starts[j] + w, :] = B * A
        Z = X * A.T * B.T
        for t in range(2):
            for i in range(w):
                placed[t, starts[j] + i] = Z[t, i]
    return {"Y": (X * delta.T, placed)}


def verify_all() -> dict[str, bool]:
    """Every derived-vs-closed pair of every variant: ``{"<variant>.<name>": identical}``."""
    out = {}
    for variant, forms in (("lora", derive_lora()), ("dora", derive_dora()), ("embedding", derive_embedding()),
                           ("conv1d", derive_conv1d()), ("conv1d_stride2", derive_conv1d(length=5, stride=2)),
                           ("fused", derive_fused())):
        for name, (derived, closed) in forms.items():
            out[f"{variant}.{name}"] = _zero(derived - closed)
    return out
