"""Independent dense O(L L_k) implementations of the two approximate gradient algorithms.

Written from the definitions in ``verified_lora.bounds.propagation`` (NOT through feature maps),
so the certified bounds can be tested before, and independently of, ``verified_lora.fast``:

* ``A~ = P(S)`` entrywise (or any positive matrix the caller gives), ``D~ = A~ 1``, ``f~ = A~ / D~``;
* "paper": ``c~ = f~ V - Y``, ``q~ = c~ V^T``, ``p~ = f~ * q~ - diag((f~ * q~) 1) f~``;
* "factored": ``p = A'(S) * (q~ - r~ 1^T) / D~`` with ``A' = P'(S)``, ``r~ = (f~ * q~) 1``;
* ``G_Q = beta X_Q^T p K``, ``G_K = beta X_K^T p^T Q``, ``G_V = X_V^T f~^T c~``;
  ``dA = s B^T G``, ``dB = s G A^T``; batches average.

Arithmetic is generic: float64 NumPy arrays, or NumPy object arrays of mpmath ``mpf`` (pass
``ctx="mp"``), so the same body gives a high-precision reference.
"""

from __future__ import annotations

from typing import Callable

import mpmath
import numpy as np

from verified_lora import LoraAttention


def _arr(x, ctx):
    x = np.asarray(x, dtype=np.float64)
    if ctx == "mp":
        return np.vectorize(mpmath.mpf, otypes=[object])(x)
    return x


def _weight(problem: LoraAttention, key: str, ctx):
    w = _arr(problem.frozen_weight(key), ctx)
    if key in problem.adapters:
        ad = problem.adapters[key]
        r = ad.r
        if ctx == "mp":
            s = mpmath.mpf(problem.alpha) / (r if problem.scaling == "lora" else mpmath.sqrt(r))
        else:
            s = problem.scale(key)
        w = w + s * (_arr(ad.b, ctx) @ _arr(ad.a, ctx))
    return w


def _scale(problem, key, ctx):
    r = problem.adapters[key].r
    if ctx == "mp":
        return mpmath.mpf(problem.alpha) / (r if problem.scaling == "lora" else mpmath.sqrt(r))
    return problem.scale(key)


def item_matrices(problem: LoraAttention, ctx="float"):
    """Yield ``(X_Q, X_K, X_V, Y, Q, K, V, S)`` per batch item."""
    W = {k: _weight(problem, k, ctx) for k in "QKV"}
    beta = mpmath.mpf(problem.beta) if ctx == "mp" else problem.beta
    for x_q, x_k, x_v, y in problem.items():
        xq, xk, xv, yy = (_arr(a, ctx) for a in (x_q, x_k, x_v, y))
        Q, K, V = xq @ W["Q"], xk @ W["K"], xv @ W["V"]
        yield xq, xk, xv, yy, Q, K, V, beta * (Q @ K.T)


def exp_of(ctx) -> Callable:
    return np.vectorize(mpmath.exp, otypes=[object]) if ctx == "mp" else np.exp


def poly_of(coeffs, ctx) -> Callable:
    """Horner evaluation of ``sum_t coeffs[t] x^t`` (exact rationals -> mpf or float)."""
    if ctx == "mp":
        cs = [mpmath.mpf(c.numerator) / c.denominator for c in coeffs]
    else:
        cs = [float(c) for c in coeffs]

    def P(x):
        acc = np.zeros_like(x) + cs[-1]
        for c in cs[-2::-1]:
            acc = acc * x + c
        return acc

    return P


def dense_grads(problem: LoraAttention, method: str, A_fn: Callable, dA_fn: Callable | None = None,
                ctx: str = "float"):
    """Weight and adapter gradients of the approximate algorithm ``method``.

    ``A_fn(S, item)`` returns ``A~`` (e.g. ``P(S)``), ``dA_fn(S, item)`` returns ``A'`` (factored).
    Returns ``(weight_grads, grads, internals)`` where ``internals`` lists per item
    ``dict(f=, c=, q=, p1=, r=, p2=, p=)`` for step-by-step checks.
    """
    totals = None
    internals = []
    beta = mpmath.mpf(problem.beta) if ctx == "mp" else problem.beta
    for n, (xq, xk, xv, y, Q, K, V, S) in enumerate(item_matrices(problem, ctx)):
        A = A_fn(S, n)
        D = A.sum(axis=1)
        f = A / D[:, None]
        c = f @ V - y
        q = c @ V.T
        p1 = f * q
        r = p1.sum(axis=1)
        p2 = r[:, None] * f
        if method == "paper":
            p = p1 - p2
        elif method == "factored":
            p = dA_fn(S, n) * (q - r[:, None]) / D[:, None]
        elif method == "exact":
            p = p1 - p2
        else:
            raise ValueError(method)
        g = [beta * (xq.T @ (p @ K)), beta * (xk.T @ (p.T @ Q)), xv.T @ (f.T @ c)]
        internals.append(dict(f=f, c=c, q=q, p1=p1, r=r, p2=p2, p=p))
        totals = g if totals is None else [t + u for t, u in zip(totals, g)]
    N = problem.n_batch
    if N > 1:
        totals = [t / N for t in totals]
    weight = dict(zip("QKV", totals))
    grads = {}
    for key in problem.adapted:
        ad = problem.adapters[key]
        s = _scale(problem, key, ctx)
        grads[f"A_{key}"] = s * (_arr(ad.b, ctx).T @ weight[key])
        grads[f"B_{key}"] = s * (weight[key] @ _arr(ad.a, ctx).T)
    return weight, grads, internals


def to_float(d):
    return {k: np.asarray(v, dtype=np.float64) if not isinstance(v, list) else v for k, v in d.items()}
