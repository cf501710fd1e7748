"""Keras 3's built-in LoRA (``Dense.enable_lora``) audited as written, on Keras' torch backend.

Keras is optional (``pip install 'verified-lora[keras]'``): the module skips when it does not import
on the torch backend (``KERAS_BACKEND`` is set to ``torch`` here when unset, as the CLI does).
"""

from __future__ import annotations

import os

import pytest

torch = pytest.importorskip("torch")
os.environ.setdefault("KERAS_BACKEND", "torch")
try:
    import keras
except Exception as exc:  # noqa: BLE001 - Keras without a usable backend is skipped with its error
    pytest.skip(f"keras is not importable ({type(exc).__name__}: {str(exc)[:100]}); "
                "pip install 'verified-lora[keras]'", allow_module_level=True)
if keras.backend.backend() != "torch":
    pytest.skip(f"Keras runs on {keras.backend.backend()!r}; these tests need KERAS_BACKEND=torch",
                allow_module_level=True)

from verified_lora.audit import audit  # noqa: E402
from verified_lora.audit.adapters import detect_layer  # noqa: E402
from verified_lora.audit.keras_layers import dtype_scope  # noqa: E402
from verified_lora.errors import AuditError  # noqa: E402
from verified_lora.testing import keras_layers as kl  # noqa: E402


def _by_check(report):
    return {r.check: r for r in report.results}


def test_keras_dense_enable_lora_as_written():
    report = audit(kl.keras_dense, examples=2)
    assert not report.failures, [(r.check, r.detail) for r in report.failures]
    res = _by_check(report)
    for name in ("layout", "scaling", "forward", "grad_A", "grad_B", "grad_input", "merge_forward", "double_merge",
                 "precision_float32", "precision_bfloat16", "precision_float16"):
        assert res[name].verdict == "PASS", (name, res[name].detail)
    # the float32 factors Keras declares are reported, and bound with the float32 unit roundoff
    assert "LoRA factors float32" in res["forward"].detail
    assert res["merge_roundtrip"].verdict == "N/A" and "no unmerge" in res["merge_roundtrip"].detail
    assert res["dropout"].verdict == "N/A"
    # float32 factors on a bfloat16 layer: gradients in the declared compute dtype, a named deviation
    assert res["precision_mixed"].verdict == "WARN" and "compute dtype bfloat16" in res["precision_mixed"].detail
    assert report.verdict == "WARN"


def test_keras_measured_scale_is_lora_alpha_over_rank():
    with dtype_scope("float64"):
        layer = kl.keras_dense(5, 4, 3, 5.0, True)
    view = detect_layer(layer)
    assert view.convention == "keras-dense" and (view.d_in, view.d_out, view.r) == (5, 4, 3)
    assert view.adapter_dtype == "float32" and view.layer_dtype == "float64"
    # Keras multiplies the float32 product A B by the Python float 5/3 in float32: each entry s k is rounded
    # to float32 (relative error <= 2^-24), so their least-squares scale is 5/3 to that accuracy, and not exact
    s = 5.0 / 3.0
    assert abs(view.declared_scale - s) <= 2.0**-24 * s + 8 * 2.0**-53 * s
    assert view.declared_scale != s


def test_keras_wrong_scale_fails_scaling_only():
    report = audit(kl.keras_dense_sqrt_scale, examples=2)
    assert {r.check for r in report.failures} == {kl.EXPECTED_FAILURE["keras_dense_sqrt_scale"]}
    assert "alpha/sqrt(r)" in _by_check(report)["scaling"].detail


def test_keras_factory_with_a_fixed_dtype_is_refused():
    def fixed(d_in, d_out, r, alpha, bias):
        layer = keras.layers.Dense(d_out, use_bias=bias, dtype="float32")
        layer.build((None, d_in))
        layer.enable_lora(r, lora_alpha=alpha)
        return layer

    with pytest.raises(AuditError, match="global dtype policy"):
        audit(fixed, examples=1, checks=["forward"])


def test_keras_dense_without_lora_is_not_a_lora_layer():
    layer = keras.layers.Dense(3)
    layer.build((None, 4))
    assert detect_layer(layer) is None


def test_keras_einsum_dense_dense_like_equation_as_written():
    report = audit(kl.keras_einsum_dense, examples=2)  # a 2-D and a 3-D input
    assert not report.failures, [(r.check, r.detail) for r in report.failures]
    res = _by_check(report)
    assert res["forward"].verdict == "PASS" and res["scaling"].verdict == "PASS"
    assert res["precision_mixed"].verdict == "WARN"


def test_keras_einsum_dense_other_factorization_is_refused_in_one_line():
    layer = keras.layers.EinsumDense("abc,cde->abde", output_shape=(None, 4, 5), bias_axes="e")
    layer.build((None, 7, 3))
    layer.enable_lora(2)
    with pytest.raises(AuditError, match="not a rank-r update between input and output") as exc:
        detect_layer(layer)
    assert "\n" not in str(exc.value)


@pytest.mark.parametrize("equation, ok", [("ab,bc->ac", True), ("abc,cd->abd", True), ("...b,bc->...c", True),
                                          ("abc,cde->abde", False), ("ab,cb->ac", False), ("ab,bc->ca", False)])
def test_dense_like_equation(equation, ok):
    from verified_lora.audit.keras_layers import dense_like_equation

    assert dense_like_equation(equation) is ok


def test_another_keras_backend_is_refused_with_the_fix(monkeypatch):
    import verified_lora.audit.keras_layers as kmod

    layer = kl.keras_dense(5, 4, 2, 3.0, True)
    monkeypatch.setattr(kmod, "_backend", lambda: "jax")
    with pytest.raises(AuditError, match="set KERAS_BACKEND=torch before Python starts"):
        detect_layer(layer)


def test_a_keras_model_is_refused_naming_its_lora_layers():
    def model():
        m = keras.Sequential([keras.Input((5,)), keras.layers.Dense(4, name="proj"), keras.layers.Dense(3)])
        m.get_layer("proj").enable_lora(2, lora_alpha=3.0)
        return m

    with pytest.raises(AuditError, match=r"found LoRA layers \['proj'\].*audit a factory returning one such layer"):
        audit(model, examples=1)


def test_a_keras_layer_inside_a_torch_model_is_listed_not_audited():
    class Holder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.keras_proj = kl.keras_dense(5, 4, 2, 3.0, True)
            self.head = torch.nn.Linear(4, 2)

        def forward(self, x):
            return self.head(self.keras_proj(x))

    report = audit(Holder, examples=1, checks=["forward"])
    assert report.verdict == "PARTIAL"
    assert [n for n, _ in report.unaudited][0] == "keras_proj"
    assert "not audited in place" in report.unaudited[0][1]
