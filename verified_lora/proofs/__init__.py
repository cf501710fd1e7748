"""One proof script per claim of the paper (or refuted printed formula), shipped with the package.

Each ``*.py`` here registers its proofs with
:func:`verified_lora.symbolic.certificates.register_proof`; ``verified-lora prove`` loads every
script in this directory (not ``_*``) and compares with, or writes, ``certificates/*.json``
(package data, so ``prove --check`` and ``verify`` work from a wheel install). Nothing in the
package imports these scripts: they are loaded by file path, so this ``__init__`` stays empty.
Run one script alone with ``python -m verified_lora.proofs.<name>``.
"""
