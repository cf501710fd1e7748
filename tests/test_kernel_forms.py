"""The kernel forms (symbolic.elementwise) are proved equal to derive.py; wrong forms are caught."""

from __future__ import annotations

import dataclasses

import pytest
import sympy as sp

from verified_lora.symbolic import elementwise, elementwise_proofs
from verified_lora.symbolic.certificates import ProofFailure


def test_every_kernel_form_is_proved_and_the_certificate_reproduces():
    """Re-runs verified_lora/proofs/kernel_forms.py (every form, whole scope) and compares the certificate bytes."""
    import json

    from verified_lora.symbolic.certificates import certificate_path, check_certificate, discover

    discover()
    path = certificate_path("kernel-forms")
    outcome = check_certificate(path)
    assert outcome.ok, outcome.message
    counts = json.loads(path.read_text())["data"]["shapes_checked"]
    assert set(counts) == set(elementwise.forms()) == set(elementwise_proofs.PROOFS)
    assert all(int(n) >= 12 for n in counts.values())


def test_forms_are_lowered_from_derive_element_forms():
    from verified_lora.symbolic.derive import element_forms

    E = element_forms()
    S = elementwise.SYMBOLS
    f = elementwise.forms()
    # p = (q - rvec) f in derive, with rvec renamed to the reduction r
    assert f["softmax_grad_rows"].entry_outputs[0][1] == elementwise.lower(E["p"].expr, {"f": "f", "q": "q", "rvec": "r"})
    assert f["softmax_rows"].entry_outputs[0][1] == sp.exp(S["beta"] * S["s"] - S["m"]) / S["alpha"]
    assert f["residual"].outputs[0][1] == S["fv"] - S["y"]


@pytest.mark.parametrize("name, wrong", [
    ("softmax_grad_rows", lambda S: S["f"] * (S["q"] + S["r"])),          # sign of p2 flipped
    ("paper_grad_rows", lambda S: S["beta"] * (S["a"] - S["b"])),           # rvec dropped
    ("residual", lambda S: S["y"] - S["fv"]),                               # orientation flipped
])
def test_a_wrong_form_fails_its_proof(monkeypatch, name, wrong):
    table = dict(elementwise.forms())
    form = table[name]
    if isinstance(form, elementwise.RowForm):
        (target, _), = form.entry_outputs
        table[name] = dataclasses.replace(form, entry_outputs=((target, wrong(elementwise.SYMBOLS)),))
    else:
        (target, _), = form.outputs
        table[name] = dataclasses.replace(form, outputs=((target, wrong(elementwise.SYMBOLS)),))
    monkeypatch.setattr(elementwise_proofs, "forms", lambda: table)
    with pytest.raises(ProofFailure):
        elementwise_proofs.PROOFS[name]()
