"""Kernel steps: the steps of :class:`verified_lora.steps.ArraySteps`, run by the generated kernels.

Same methods, same meaning; each body launches one shipped kernel through
:func:`verified_lora.kernels.backend.launch`, which runs it on the GPU for CuPy arrays and through
the CPU shim for NumPy arrays (how this class is tested without a GPU). GEMMs stay with the caller.
The feature steps read their index tables off the caller's
:class:`~verified_lora.features.layout.FeatureLayout`, so this package imports nothing of ``features``.
"""

from __future__ import annotations

from typing import Any

from . import backend

__all__ = ["KernelSteps"]


class KernelSteps:
    """The non-GEMM steps as launches of the generated kernels (namespace ``xp``: CuPy, or NumPy via the shim)."""

    uses_kernels = True

    def __init__(self, xp: Any):
        self.xp = xp

    # ------------------------------------------------------------------------ exact path
    def softmax_rows(self, f: Any, beta: float) -> tuple[Any, Any]:
        """``(softmax_rows(beta f), top)`` (kernel ``softmax_rows``); ``top`` is each row's arg max."""
        f = backend.launch("softmax_rows", {"s": f, "beta": float(beta)})["f"]
        return f, self.xp.argmax(f, axis=1)[:, None]

    def residual(self, fv: Any, y: Any) -> Any:
        """``c = fv - y`` (kernel ``residual``)."""
        return backend.launch("residual", {"fv": fv, "y": y})["c"]

    def softmax_grad_rows(self, f: Any, q: Any) -> Any:
        """``p = f * (q - rvec)`` with ``rvec = (f * q) 1`` (kernel ``softmax_grad_rows``)."""
        return backend.launch("softmax_grad_rows", {"f": f, "q": q})["p"]

    # ------------------------------------------------------------------------ fast path
    def normalised_residual(self, fv_unnormalised: Any, D: Any, y: Any) -> tuple[Any, Any]:
        """``(c~, [c~, -rvec~] / D~)`` (kernel ``normalised_residual_rows``)."""
        xp = self.xp
        out = backend.launch("normalised_residual_rows", {"t": xp.ascontiguousarray(fv_unnormalised),
                                                  "d": xp.ascontiguousarray(D[:, 0]), "y": y})
        return out["c"], xp.concatenate([out["yp"], out["rneg"][:, None]], axis=1)

    def face_split_t(self, AT: Any, BT: Any) -> Any:
        """``(A (x) B)^T`` from ``A^T`` (k1 x n) and ``B^T`` (k2 x n) (kernel ``kron_rows_t``)."""
        xp = self.xp
        return backend.launch("kron_rows_t", {"a": xp.ascontiguousarray(AT), "b": xp.ascontiguousarray(BT)})["o"]

    def scaled_divide(self, MT: Any, PhiUT: Any, w: Any, D: Any) -> Any:
        """``U1^T[m, i] = w_m M^T[m, i] / D~_i`` (kernel ``scaled_divide``; ``PhiUT`` is not needed)."""
        xp = self.xp
        return backend.launch("scaled_divide", {"a": xp.ascontiguousarray(MT), "w": xp.ascontiguousarray(w[:, 0]),
                                        "d": xp.ascontiguousarray(D[:, 0])})["o"]

    def row_dot(self, a: Any, b: Any) -> Any:
        """``rvec_i = sum_l a_il b_il`` as an ``(n x 1)`` column (kernel ``row_dot``)."""
        return backend.launch("row_dot", {"a": a, "b": b})["rvec"][:, None]

    def paper_grad_rows(self, a: Any, b: Any, r: Any, beta: float) -> Any:
        """``beta (a - r b)`` row-broadcast (kernel ``paper_grad_rows``)."""
        return backend.launch("paper_grad_rows", {"a": a, "b": b, "r": self.xp.ascontiguousarray(r[:, 0]),
                                          "beta": float(beta)})["o"]

    # ------------------------------------------------------------------------ feature maps
    def monomials_t(self, xT: Any, lay: Any, out: Any) -> Any:
        """Monomials ``(k x n)`` of ``xT`` (d x n) into ``out`` (kernel ``monomials_t``)."""
        parent, var = lay.monomial_tables()
        xp = self.xp
        strided = out is not None and not out.flags.c_contiguous  # e.g. a column block of a work buffer
        mono = backend.launch("monomials_t", {"x": xp.ascontiguousarray(xT), "parent": xp.asarray(parent),
                                      "var": xp.asarray(var)}, None if out is None or strided else {"mono": out})["mono"]
        if strided:
            out[...] = mono
            return out
        return mono

    def monomials_vjp(self, x: Any, mono: Any, grad: Any, lay: Any) -> Any:
        """``dL/dx`` (n x d) from ``grad = dL/d(monomials)`` and the monomials (kernel ``monomials_backward``)."""
        xp = self.xp
        grad, mono = xp.ascontiguousarray(grad), xp.ascontiguousarray(mono)
        succ, mult = lay.derivative_tables(str(mono.dtype))
        if succ.shape[0] == 0:
            return xp.zeros((mono.shape[0], lay.d), dtype=mono.dtype)
        return backend.launch("monomials_backward", {"g": grad, "mono": mono, "succ": xp.asarray(succ),
                                             "mult": xp.asarray(mult)})["dx"]

    def contract_rows(self, Z: Any, Y: Any) -> Any:
        """``out[i, j] = sum_a Z[i, j*A + a] Y[i, a]`` (kernel ``contract_rows``)."""
        xp = self.xp
        return backend.launch("contract_rows", {"z": xp.ascontiguousarray(Z), "y": xp.ascontiguousarray(Y)})["out"]
