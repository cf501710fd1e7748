"""Small-scope proof that every kernel form printed into verified_lora/kernels/cuda/ reproduces the derive.py matrices.

Claim ``kernel-forms``: for every form of ``verified_lora.symbolic.elementwise.forms()`` (the
expressions the CUDA kernels print), assembling the form entry by entry - row reductions as
explicit sums in the kernel's order - equals the ``derive.py`` term it stands for (f, c, p,
rvec, the fast path's f~, c~, dL~/dA~, U1, face-splitting rows, beta p K) or the
``features`` layout (monomial recurrence, derivative tables, VJP contraction), by exact
SymPy algebra with fully symbolic entries. See verified_lora/symbolic/elementwise_proofs.py for
each statement and the scope.

Run: ``python -m verified_lora.proofs.kernel_forms`` (or ``verified-lora prove kernel-forms``).
"""

from __future__ import annotations

from verified_lora.symbolic.certificates import Certificate, register_proof, run_main


@register_proof("kernel-forms", title="kernel entry/row forms equal the derive.py matrices",
                paper={"iclr2025": "Definitions 3.2-3.6, Lemmas 3.3-3.7 (entry/row forms used by the kernels)"})
def prove_kernel_forms() -> Certificate:
    from verified_lora.symbolic.elementwise import forms
    from verified_lora.symbolic.elementwise_proofs import FEATURE_SCOPE, SCOPE, prove_all

    counts = prove_all()
    exprs = {}
    for name, form in forms().items():
        parts = [e for _, _, e in getattr(form, "reductions", ())] + [e for _, e in getattr(form, "outputs", ())]
        parts += [e for _, e in getattr(form, "entry_outputs", ())] + [e for _, e in getattr(form, "row_outputs", ())]
        exprs[name] = parts
    return Certificate(
        claim="kernel-forms",
        title="kernel entry/row forms equal the derive.py matrices",
        statement=r"\forall\,\text{form } F:\ \mathrm{assemble}(F)(X) = \mathrm{derive}(X)\ \text{entrywise}",
        level="small-scope",
        method="forms assembled entry by entry on fully symbolic matrices; differences reduced to 0 by "
               "expand/cancel with each exp treated as a positive atom (row-max shift left free)",
        scope=f"(rows, cols, inner) in {SCOPE[0]}..{SCOPE[-1]} ({len(SCOPE)} shapes); features (d, g) in "
              f"{FEATURE_SCOPE[0]}..{FEATURE_SCOPE[-1]} ({len(FEATURE_SCOPE)} pairs)",
        result="proved",
        expressions=exprs,
        data={"shapes_checked": counts},
    )


if __name__ == "__main__":
    raise SystemExit(run_main(__name__))
