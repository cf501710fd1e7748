"""The non-GEMM steps of ``exact``, ``fast`` and the feature maps, one body per array namespace.

A *steps object* is chosen once per call by :func:`steps_for` from the array namespace:

* NumPy (and any namespace other than CuPy): :class:`ArraySteps`, the bodies below, written with
  operations NumPy and CuPy share;
* CuPy: :class:`verified_lora.kernels.steps.KernelSteps`, which runs the generated kernels
  (the committed ``.cu`` text) for the same steps; GEMMs stay in cuBLAS through ``@``.

Both classes have the same methods with the same meaning; the callers hold no branches. The one
exception is :meth:`ArraySteps.monomial_steps` (part of a monomial construction program, for building a
block chunk by chunk); with the kernels, which build a whole block at once,
:func:`verified_lora.features.maps.monomials_t_chunks` builds the block first.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ArraySteps", "steps_for"]


def steps_for(xp: Any) -> Any:
    """The steps object for namespace ``xp``: kernel steps for CuPy, :class:`ArraySteps` otherwise."""
    if getattr(xp, "__name__", "") == "cupy":
        from .kernels.steps import KernelSteps

        return KernelSteps(xp)
    return ArraySteps(xp)


class ArraySteps:
    """The steps written as array expressions in namespace ``xp`` (NumPy)."""

    uses_kernels = False

    def __init__(self, xp: Any):
        self.xp = xp

    # ------------------------------------------------------------------------ exact path
    def softmax_rows(self, f: Any, beta: float) -> tuple[Any, Any]:
        """In place: ``f <- softmax_rows(beta f)`` (max-stabilised); returns ``(f, top)`` with
        ``top`` the ``(rows x 1)`` column of each row's largest score."""
        xp = self.xp
        f *= beta
        top = xp.argmax(f, axis=1)[:, None]      # column of each row's largest score
        f -= xp.take_along_axis(f, top, axis=1)  # stabilised softmax
        xp.exp(f, out=f)
        f /= f.sum(axis=1, keepdims=True)
        return f, top

    def residual(self, fv: Any, y: Any) -> Any:
        """``c = fv - y``."""
        return fv - y

    def softmax_grad_rows(self, f: Any, q: Any) -> Any:
        """In place on ``q``: ``p = f * (q - rvec)`` with ``rvec = (f * q) 1`` (= dL/dS)."""
        q -= self.xp.einsum("ij,ij->i", f, q)[:, None]  # q - rvec (no (block x L_k) temporary)
        q *= f                                           # p = f*q - diag(rvec) f
        return q

    # ------------------------------------------------------------------------ fast path
    def normalised_residual(self, fv_unnormalised: Any, D: Any, y: Any) -> tuple[Any, Any]:
        """``(c~, Yp)`` from ``t = A~ V`` (``n x d_v``) and ``D~`` (``n x 1``): ``c~ = t / D~ - y`` and
        ``Yp = [c~, -rvec~] / D~`` with ``rvec~_i = <c~_i, (t / D~)_i>``."""
        xp = self.xp
        fV = fv_unnormalised / D
        c = fV - y
        r = (c * fV).sum(axis=1, keepdims=True)  # rvec~_i = <f~_i, q~_i> = <c~_i, (f~ Vmat)_i>
        return c, xp.concatenate([c, -r], axis=1) / D

    def face_split_t(self, AT: Any, BT: Any) -> Any:
        """Transposed row-wise Kronecker product ``(A (x) B)^T`` (``k e x n``) of ``AT`` (``k x n``)
        and ``BT`` (``e x n``): rows ``(l, m)`` are ``AT[l] * BT[m]`` (Lemma 3.6's face-splitting product)."""
        k, n = AT.shape
        e = BT.shape[0]
        return (AT[:, None, :] * BT[None, :, :]).reshape(k * e, n)

    def scaled_divide(self, MT: Any, PhiUT: Any, w: Any, D: Any) -> Any:
        """``U1^T = Phi_U^T / D~^T`` with ``Phi_U^T = w * M^T`` (``w`` is ``k x 1``, ``D~`` is ``n x 1``)."""
        return PhiUT / D.T

    def row_dot(self, a: Any, b: Any) -> Any:
        """``rvec_i = sum_l a_il b_il`` as an ``(n x 1)`` column."""
        return (a * b).sum(axis=1, keepdims=True)

    def paper_grad_rows(self, a: Any, b: Any, r: Any, beta: float) -> Any:
        """``beta (a - r b)`` with ``r`` an ``(n x 1)`` column."""
        return beta * (a - r * b)

    # ------------------------------------------------------------------------ feature maps
    def monomials_t(self, xT: Any, lay: Any, out: Any) -> Any:
        """Fill ``out`` (``k x n``) with the monomials of ``xT`` (``d x n``) following ``lay.steps``."""
        out[0, :] = 1
        return self.monomial_steps(xT, [(i, dst0, dst1, src0) for (_t, i, dst0, dst1, src0, _s1) in lay.steps], out)

    def monomial_steps(self, xT: Any, program: Any, out: Any) -> Any:
        """Run construction steps ``(i, dst0, dst1, src0)``: ``out[dst0:dst1] = xT[i] * out[src0:src0 + dst1 - dst0]``
        (a part of ``lay.steps``, possibly split by rows, :func:`verified_lora.features.maps.monomials_t_chunks`)."""
        xp = self.xp
        for (i, dst0, dst1, src0) in program:
            xp.multiply(xT[i:i + 1, :], out[src0:src0 + dst1 - dst0, :], out=out[dst0:dst1, :])
        return out

    def monomials_vjp(self, x: Any, mono: Any, grad: Any, lay: Any) -> Any:
        """``dL/dx`` (``n x d``) from ``grad = dL/d(monomials(x))``, in reverse through ``lay.steps``."""
        xp = self.xp
        n, d = x.shape
        G = xp.ascontiguousarray(grad.T).copy()      # (k x n) work copy
        M = xp.ascontiguousarray(mono.T)
        xT = xp.ascontiguousarray(x.T)
        dxT = xp.zeros((d, n), dtype=x.dtype)
        for (_t, i, dst0, dst1, src0, src1) in reversed(lay.steps):
            gd = G[dst0:dst1, :]
            dxT[i, :] += (gd * M[src0:src1, :]).sum(axis=0)
            G[src0:src1, :] += xT[i:i + 1, :] * gd
        return dxT.T.copy()

    def contract_rows(self, Z: Any, Y: Any) -> Any:
        """``out[i, j] = sum_a Z[i, (j, a)] Y[i, a]`` (``Z`` is ``n x d*a``, ``Y`` is ``n x a``)."""
        n, a = Y.shape
        d = Z.shape[1] // a
        return self.xp.einsum("nja,na->nj", Z.reshape(n, d, a), Y)
