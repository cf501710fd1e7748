"""``verified-lora grad`` and ``verified-lora verify --only exact`` through ``cli.main``."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from verified_lora import GradientResult, exact, reference
from verified_lora.cli import main
from verified_lora.examples import random_problem
from verified_lora.tolerances import EXACT_VS_REFERENCE, max_relative_error


@pytest.fixture
def stored(tmp_path):
    problem = random_problem(5, L=6, L_k=4, adapters=("Q", "V"), scaling="rslora", beta=0.75)
    path = str(tmp_path / "problem.npz")
    problem.save_npz(path)
    return problem, path


# ---------------------------------------------------------------------------- grad
def test_grad_text(stored, capsys):
    problem, path = stored
    assert main(["grad", path]) == 0
    out = capsys.readouterr().out
    ex = exact.loss_and_grads(problem)
    assert problem.describe() in out and "method: exact" in out
    loss = float(re.search(r"^loss = (\S+)$", out, re.M).group(1))
    assert loss == ex.loss                                # printed with 17 significant digits
    for key in ("A_Q", "B_Q", "A_V", "B_V"):
        assert f"dL/d{key} {ex.grads[key].shape}:" in out
    assert "dL/dA_K" not in out


def test_grad_json(stored, capsys):
    problem, path = stored
    assert main(["grad", path, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    ex = exact.loss_and_grads(problem)
    assert data["method"] == "exact" and data["problem"] == problem.describe()
    assert data["loss"] == ex.loss
    assert sorted(data["grads"]) == sorted(ex.grads) and sorted(data["weight_grads"]) == ["K", "Q", "V"]
    for key, value in ex.grads.items():
        np.testing.assert_array_equal(np.array(data["grads"][key]), value)   # JSON floats round-trip exactly
    for key, value in ex.weight_grads.items():
        np.testing.assert_array_equal(np.array(data["weight_grads"][key]), value)


def test_grad_reference_json(stored, capsys):
    problem, path = stored
    assert main(["grad", path, "--reference", "--dps", "30", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["method"] == "reference"
    ref = reference.to_float(reference.loss_and_grads(problem, dps=30))
    ex = exact.loss_and_grads(problem)
    assert data["loss"] == ref.loss
    for key in ex.grads:
        np.testing.assert_array_equal(np.array(data["grads"][key]), ref.grads[key])
        assert max_relative_error(ex.grads[key], data["grads"][key]) <= EXACT_VS_REFERENCE["float64"]


def test_grad_reference_text(stored, capsys):
    problem, path = stored
    assert main(["grad", path, "--reference"]) == 0
    out = capsys.readouterr().out
    assert "method: reference" in out
    loss = float(re.search(r"^loss = (\S+)$", out, re.M).group(1))
    assert loss == reference.to_float(reference.loss_and_grads(problem, dps=50)).loss


def test_grad_bad_inputs(tmp_path, stored, capsys):
    missing = str(tmp_path / "nowhere.npz")
    assert main(["grad", missing]) == 2
    err = capsys.readouterr().err
    assert "verified-lora grad: error:" in err and "nowhere.npz" in err
    _, path = stored
    assert main(["grad", path, "--reference", "--dps", "8"]) == 2
    assert "dps" in capsys.readouterr().err
    bad = tmp_path / "bad.npz"
    np.savez(bad, x_q=np.ones((2, 3)), y=np.ones((2, 2)), w_q=np.ones((3, 2)), w_k=np.ones((3, 2)),
             w_v=np.ones((3, 2)), a_q=np.ones((1, 2)))
    assert main(["grad", str(bad)]) == 2
    assert "b_q" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        main(["grad"])
    assert info.value.code == 2


# ---------------------------------------------------------------------------- verify --only exact
SECTION = "exact (problem dtype) vs mpmath reference and enclosures"


def test_verify_only_exact(capsys):
    assert main(["verify", "--only", "exact"]) == 0
    captured = capsys.readouterr()
    out = captured.out
    assert f"== {SECTION}" in out and "verdict: PASS" in out and "FAIL" not in out
    for name in ("loss: float64 vs mpmath", "A_Q: float64 vs mpmath", "B_V: float64 vs mpmath",
                 "mpmath reference inside enclosures", "enclosure relative width",
                 "float64 error certified by enclosures"):
        assert re.search(rf"^{re.escape(name)}\s+PASS", out, re.M), name
    assert "mpmath reference at 50 digits" in captured.err     # progress goes to stderr


def test_verify_json_on_a_stored_problem(stored, capsys):
    problem, path = stored
    assert main(["verify", path, "--only", "exact", "--json", "-q"]) == 0
    captured = capsys.readouterr()
    data = json.loads(captured.out)
    assert captured.err == ""
    assert data["passed"] is True and data["problem"] == problem.describe()
    (section,) = [s for s in data["sections"] if s["title"] == SECTION]
    assert section["title"] == SECTION and section["passed"] is True
    names = [c["name"] for c in section["checks"]]
    assert names[:5] == ["loss: float64 vs mpmath", "A_Q: float64 vs mpmath", "B_Q: float64 vs mpmath",
                         "A_V: float64 vs mpmath", "B_V: float64 vs mpmath"]
    for check in section["checks"]:
        assert check["verdict"] == "PASS"
        assert check["observed"] <= check["bound"], check


def test_verify_float32_problem(tmp_path, capsys):
    path = str(tmp_path / "f32.npz")
    random_problem(6, dtype="float32", L=5).save_npz(path)
    assert main(["verify", path, "--only", "exact", "-q"]) == 0
    out = capsys.readouterr().out
    assert "dtype=float32" in out and f"{EXACT_VS_REFERENCE['float32']:.2e}" in out


def test_verify_fails_on_wrong_gradients(monkeypatch, capsys):
    """The section can fail: a gradient off by 1e-9 relative is caught (exit code 1)."""
    real = exact.loss_and_grads

    def wrong(problem, **kwargs):
        r = real(problem, **kwargs)
        grads = dict(r.grads, B_K=r.grads["B_K"] * (1 + 1e-9))
        return GradientResult(loss=r.loss, grads=grads, weight_grads=r.weight_grads, method=r.method, info=r.info)

    monkeypatch.setattr(exact, "loss_and_grads", wrong)
    assert main(["verify", "--only", "exact", "-q"]) == 1
    out = capsys.readouterr().out
    assert re.search(r"^B_K: float64 vs mpmath\s+FAIL", out, re.M)
    assert re.search(r"^A_K: float64 vs mpmath\s+PASS", out, re.M)
    assert "verdict: FAIL" in out
