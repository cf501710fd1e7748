"""``verified-lora enclose``: JSON bounds contain float64 exact, text verdict, progress, argument errors."""

from __future__ import annotations

import json
import re

import mpmath
import numpy as np
import pytest

from verified_lora import exact, reference
from verified_lora.cli import main
from verified_lora.examples import random_problem

pytest.importorskip("flint")


@pytest.fixture()
def problem_path(tmp_path):
    p = random_problem(21, L=9, L_k=6, n_batch=2, adapters=("Q", "V"))
    path = tmp_path / "p.npz"
    p.save_npz(path)
    return p, str(path)


def test_json_bounds_contain_exact_float64(problem_path, capsys):
    p, path = problem_path
    assert main(["enclose", path, "--json", "-q", "--digits", "20"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["target_met"] and out["backend"] == "flint.arb (blocked)"
    ex = exact.loss_and_grads(p)
    for name in ("A_Q", "B_Q", "A_V", "B_V"):
        q = out["quantities"][name]
        lo, hi, v = np.array(q["lower"]), np.array(q["upper"]), ex.grads[name]
        tol = 1e-12 * np.abs(v).max()  # float64 exact is within its rounding of the true value
        assert np.all(lo - tol <= v) and np.all(v <= hi + tol), name
        assert np.all(lo <= hi) and np.all(lo < hi)  # outward rounding to float64 keeps a gap
    assert set(out["quantities"]) == {"loss", "A_Q", "B_Q", "A_V", "B_V", "W_Q", "W_K", "W_V"}
    ref = reference.loss_and_grads(p, dps=80)  # the float64 bounds are rounded outward: they hold it
    for name in ("A_Q", "B_V"):
        q = out["quantities"][name]
        for (i, j), v in np.ndenumerate(ref.grads[name]):
            assert mpmath.mpf(q["lower"][i][j]) <= v <= mpmath.mpf(q["upper"][i][j]), (name, i, j)


def test_text_output_estimate_and_progress(problem_path, capsys):
    _, path = problem_path
    assert main(["enclose", path, "--block-size", "2"]) == 0
    captured = capsys.readouterr()
    assert "requested relative width 1e-20: met" in captured.out
    assert "estimated" in captured.err and "chunks 0/" in captured.err and "128 bits" in captured.err
    assert main(["enclose", path, "--method", "jacobian", "-q"]) == 0


def test_long_run_prints_a_measured_estimate(problem_path, capsys, monkeypatch):
    from verified_lora.reference import blocked

    monkeypatch.setattr(blocked, "CALIBRATE_ABOVE_S", 0.0)  # calibrate even this small problem
    _, path = problem_path
    assert main(["enclose", path, "--block-size", "3"]) == 0
    err = capsys.readouterr().err
    assert "measured on one block of 3 rows here" in err
    assert err.index("measured on one block") < err.index("chunks 0/")  # printed before the run


@pytest.mark.parametrize("argv, needle", [(["--workers", "0"], "workers"), (["--digits", "0"], "digits")])
def test_bad_flags_exit_2(problem_path, capsys, argv, needle):
    _, path = problem_path
    assert main(["enclose", path, "-q", *argv]) == 2
    assert needle in capsys.readouterr().err


def test_workers_and_scheduler_are_exclusive(problem_path):
    _, path = problem_path
    with pytest.raises(SystemExit) as exc:
        main(["enclose", path, "--workers", "2", "--scheduler", "tcp://127.0.0.1:1"])
    assert exc.value.code == 2


@pytest.mark.parametrize("runner", [[], ["--workers", "2"]], ids=["serial", "local-cluster"])
def test_verify_uses_the_blocked_enclosure_beyond_the_jacobian_reference(tmp_path, capsys, runner):
    from verified_lora.reference import JACOBIAN_MAX_COST
    from verified_lora.reference.choose import jacobian_cost

    p = random_problem(5, L=160, L_k=140, d_model=4, d_head=4, d_v=3)
    assert jacobian_cost(p) > JACOBIAN_MAX_COST
    path = str(tmp_path / "big.npz")
    p.save_npz(path)
    if runner:
        pytest.importorskip("distributed")
    assert main(["verify", path, "--only", "exact", *runner]) == 0
    captured = capsys.readouterr()
    runner_text = "dask LocalCluster (2 workers)" if runner else "serial"
    assert runner_text in captured.out and runner_text in captured.err
    assert "blocked interval enclosures" in captured.out and "verdict: PASS" in captured.out
    assert re.search(r"^enclosure relative width\s+PASS", captured.out, re.M)
    assert re.search(r"^float64 error certified by enclosures\s+PASS", captured.out, re.M)
    assert "enclosure chunks 16/16" in captured.err and "mpmath reference at 50 digits" not in captured.err
