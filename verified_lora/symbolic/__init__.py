"""The symbolic layer: SymPy derivations (the single source of truth for every gradient formula),
machine-checked claims of the paper, and their certificates.

* :mod:`verified_lora.symbolic.derive`: the loss and every derived term (u, alpha, f, c, q, p1,
  rvec, p2, p, G_W, dA, dB) as SymPy matrices for small concrete shapes, plus element-level
  (index) forms for the kernel generator.
* :mod:`verified_lora.symbolic.certificates`: the certificate format and proof registry used by
  ``verified-lora prove`` and by every proof script under ``verified_lora/proofs/``.
* :mod:`verified_lora.symbolic.prooftools`: exact decision procedures for the proofs (polynomial
  identities with formal exponentials, index-form inlining, KroneckerDelta sums).
* :mod:`verified_lora.symbolic.chainrule`: MatrixSymbol chain-rule steps and end-to-end checks.
* :mod:`verified_lora.symbolic.prove`: ``verified-lora prove`` and the ``verify`` section.

Nothing here is imported by ``import verified_lora``; SymPy loads only when these modules do.
"""
