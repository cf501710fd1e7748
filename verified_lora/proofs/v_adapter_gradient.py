"""The V-adapter gradient (not in the paper, which drops it by simplification (S1)).

dL/dW_V = X_V^T f^T c, dL/dA_V = s B_V^T dL/dW_V, dL/dB_V = s dL/dW_V A_V^T. f does not depend on
W_V, so the loss 1/2 ||f X_V W_V - Y||_F^2 is quadratic in W_V and MatrixSymbol calculus differentiates
it directly (generic); end-to-end small-scope check against sympy.diff of the full loss.
"""

from __future__ import annotations

import sympy as sp

from verified_lora.symbolic import chainrule as cr
from verified_lora.symbolic import derive
from verified_lora.symbolic import index_calculus as ic
from verified_lora.symbolic.certificates import Certificate, ProofFailure, register_proof, run_main

PAPER = {"iclr2025": "not stated (Section 3, simplification (S1) fixes W_V); cf. Problem 1 which asks for it",
         "arxiv_v2": "not stated"}

E2E_SHAPES = [derive.Shapes(2, 2, 1, 1, 1, 1), derive.Shapes(2, 1, 1, 1, 2, 1), derive.Shapes(2, 2, 1, 1, 2, 2),
              derive.Shapes(2, 2, 2, 2, 2, 1), derive.Shapes(2, 2, 2, 2, 1, 1)]


@register_proof("v-adapter", title="dL/dA_V = s B_V^T X_V^T f^T c, dL/dB_V = s X_V^T f^T c A_V^T", paper=PAPER)
def prove_v_adapter() -> Certificate:
    g = cr.generic_symbols()
    W_V = g["w_v"] + g["s"] * g["b_v"] * g["a_v"]
    resid = g["f"] * g["x_v"] * W_V - g["y"]
    loss = sp.Trace(resid.T * resid) / 2
    G = derive.weight_gradients(g["x_q"], g["x_k"], g["x_v"], g["x_q"], g["x_k"], g["f"], resid, g["p"], g["beta"])["V"]
    dA, dB = derive.adapter_gradients(G, g["a_v"], g["b_v"], g["s"])
    for what, theta, rhs in (("dA_V", g["a_v"], dA), ("dB_V", g["b_v"], dB)):
        cr.check_derivative(loss, theta, rhs, f"{what}: d loss/d{theta}")
    loss_w = sp.Trace((g["f"] * g["x_v"] * g["w_v"] - g["y"]).T * (g["f"] * g["x_v"] * g["w_v"] - g["y"])) / 2
    G_w = derive.weight_gradients(g["x_q"], g["x_k"], g["x_v"], g["x_q"], g["x_k"], g["f"],
                                  g["f"] * g["x_v"] * g["w_v"] - g["y"], g["p"], g["beta"])["V"]
    cr.check_derivative(loss_w, g["w_v"], G_w, "G_V: d loss/dW_V")
    for param in ("W_V", "A_V", "B_V"):
        ic.check_gradient(param)      # end to end in index notation: no chain rule by hand
    n = sum(cr.end_to_end(sh, ("V",)) for sh in E2E_SHAPES)
    shapes = [f"({s.L},{s.L_k},{s.d_model},{s.d_head},{s.d_v},{s.r})" for s in E2E_SHAPES]
    return Certificate(
        claim="v-adapter", title="V-adapter gradient (omitted by the paper)",
        statement=(r"G_V = \frac{\partial\mathcal L}{\partial W_V} = X_V^\top f^\top c,\quad "
                   r"\frac{\partial\mathcal L}{\partial A_V} = s B_V^\top G_V,\quad "
                   r"\frac{\partial\mathcal L}{\partial B_V} = s G_V A_V^\top,\quad c = f X_V W_V - Y"),
        level="generic",
        method=("Route 1 (no chain rule by hand): the whole loss in index notation at symbolic sizes "
                "(element forms of "
                "derive.element_forms inlined to the leaves, formal exp), sympy.diff with respect to "
                "theta[k0, l0] for "
                "theta in {W_V, A_V, B_V}, equal to the entry of derive.weight_gradients / "
                "adapter_gradients by the index normal "
                "form. Route 2: MatrixSymbol calculus (products dimension checked, traces differentiated "
                "one by one) with symbolic sizes: sympy.diff of tr(R^T R)/2, R = f X_V (W* + s B A) - Y, "
                "with respect to A_V, B_V and W_V (f does not depend on W_V); compared with "
                "derive.weight_gradients / "
                f"adapter_gradients. End-to-end cross-check ({n} identities, symbolic entries) at "
                "(L,L_k,d_model,d_head,d_v,r) in " + ", ".join(shapes)),
        scope="all sizes, any s (end-to-end cross-check: the listed shapes)",
        result="proved", expressions={"dA_V": dA, "dB_V": dB, "G_V": G_w},
        data={"end_to_end_shapes": shapes, "end_to_end_identities": n}, paper=PAPER)


if __name__ == "__main__":
    raise SystemExit(run_main(__name__))
