"""Every output is finite or refused, valid JSON, readable: overflow checks, strict JSON, verify on
degenerate problems (N/A, never a crash), 120-column tables, progress lines, bench's verdict."""

from __future__ import annotations

import io
import json
import math
import os
import re
import tempfile

import numpy as np
import pytest

from verified_lora import exact, fast, reference
from verified_lora._table import fmt_num, format_table
from verified_lora.cli import main
from verified_lora.errors import OverflowInputError
from verified_lora.examples import random_problem
from verified_lora.overflow import check_problem, magnitudes


def _strict(text: str):
    def refuse(name):
        raise ValueError(f"non-standard JSON constant {name}")

    return json.loads(text, parse_constant=refuse)


# ---------------------------------------------------------------------------- overflow
@pytest.mark.parametrize("kwargs,field", [({"alpha": 1e300}, "alpha"), ({"scale": 1e200}, None),
                                         ({"scale": 1e20, "dtype": "float32"}, None)])
def test_every_engine_refuses_overflow(kwargs, field):
    p = random_problem(2, L=4, d_model=3, d_head=2, d_v=2, **kwargs)
    for engine in (lambda: exact.loss_and_grads(p), lambda: fast.loss_and_grads(p)):
        with pytest.raises(OverflowInputError) as info:
            engine()
        assert field is None or info.value.field == field
        assert "rescale" in str(info.value)
    if p.dtype == np.float32:
        return  # the reference is exact; its float64 rounding holds these float32-overflowing values
    with pytest.raises(OverflowInputError):
        reference.to_float(reference.loss_and_grads(p, dps=20))
    with pytest.raises(OverflowInputError):
        reference.enclose(p, dps=20, backend="arb") if "arb" in reference.available_backends() else \
            reference.to_float(reference.loss_and_grads(p, dps=20))


def test_overflow_check_is_an_upper_bound_and_quiet_on_normal_problems():
    """The log2 bounds dominate the float64 values actually formed; normal problems pass."""
    p = random_problem(5, L=20, L_k=9, d_model=5, d_head=3, d_v=2, scale=3.0)
    m = check_problem(p)
    S = p.beta * (p.x_q @ p.weight("Q")) @ (p.x_k @ p.weight("K")).T
    assert math.log2(np.max(np.abs(S))) <= m.bounds["S"]
    assert math.log2(float(exact.loss_and_grads(p).loss)) <= m.bounds["loss"]
    for key in ("Q", "K", "V"):
        assert math.log2(np.max(np.abs(p.weight(key)))) <= m.bounds[f"W_{key}"]
    # a sensible float32 problem is far from the limit
    assert magnitudes(random_problem(0, L=64, dtype="float32", scale=10.0)).bounds["S"] < 64


def test_exact_result_check_catches_non_finite(monkeypatch):
    from verified_lora.overflow import check_result
    from verified_lora.result import GradientResult

    p = random_problem(0)
    r = exact.loss_and_grads(p)
    bad = GradientResult(loss=math.inf, grads=r.grads, weight_grads=r.weight_grads, method="exact")
    with pytest.raises(OverflowInputError, match="non-finite loss"):
        check_result(bad, p, "exact")


# ---------------------------------------------------------------------------- JSON
def test_json_dumps_is_strict_with_a_flag():
    from verified_lora.cli._common import json_dumps

    data = _strict(json_dumps({"a": [1.0, float("nan")], "b": {"c": float("inf")}, "k": np.int64(7)}))
    assert data["a"] == [1.0, "nan"] and data["b"]["c"] == "inf" and data["k"] == 7
    assert sorted(data["nonfinite"]) == ["a", "b.c"]


def test_grad_json_valid_and_finite(tmp_path, capsys):
    path = str(tmp_path / "p.npz")
    random_problem(3, L=4).save_npz(path)
    assert main(["grad", path, "--json"]) == 0
    data = _strict(capsys.readouterr().out)
    assert data["nonfinite"] == [] and math.isfinite(data["loss"])
    assert main(["grad", path, "--json", "--reference", "--dps", "25"]) == 0
    data = _strict(capsys.readouterr().out)
    assert data["dps"] == 25 and len(data["decimal"]["loss"].replace(".", "").lstrip("0")) >= 24


def test_grad_reference_prints_dps_digits(tmp_path, capsys):
    path = str(tmp_path / "p.npz")
    random_problem(3, L=4).save_npz(path)
    assert main(["grad", path, "--reference", "--dps", "40"]) == 0
    out = capsys.readouterr().out
    loss = re.search(r"^loss = (\S+)$", out, re.M).group(1)
    assert len(loss.replace(".", "").replace("-", "").lstrip("0")) == 40


# ---------------------------------------------------------------------------- verify on any valid problem
@pytest.mark.parametrize("kind", ["L=L_k=1", "L_k=1", "zero gradients", "huge", "float32"])
def test_verify_gives_pass_or_na(kind, tmp_path, capsys):
    from verified_lora import Adapter

    if kind == "L=L_k=1":
        p = random_problem(1, L=1, d_model=3, d_head=2, d_v=2)
    elif kind == "L_k=1":
        p = random_problem(1, L=3, L_k=1, d_model=3, d_head=2, d_v=2)
    elif kind == "zero gradients":
        p = random_problem(3, L=4, L_k=1, d_model=3, d_head=2, d_v=2)
        p = p.replace(adapters={k: Adapter(a=0 * a.a, b=0 * a.b) for k, a in p.adapters.items()})
    elif kind == "huge":
        p = random_problem(2, L=4, d_model=3, d_head=2, d_v=2, scale=1e200)
    else:
        p = random_problem(2, L=6, d_model=3, d_head=2, d_v=2, dtype="float32")
    path = str(tmp_path / "p.npz")
    p.save_npz(path)
    code = main(["verify", path, "-q", "--json", "--only", "exact", "--only", "bounds", "--only", "fast"])
    data = _strict(capsys.readouterr().out)
    verdicts = {c["verdict"] for s in data["sections"] for c in s["checks"]}
    assert code == 0 and verdicts <= {"PASS", "N/A"}, [
        (c["name"], c["verdict"], c["detail"]) for s in data["sections"] for c in s["checks"] if c["verdict"] != "PASS"]
    assert len(data["sections"]) == 3
    if kind == "huge":
        assert verdicts == {"N/A"}
    if kind == "float32":
        names = [c["name"] for s in data["sections"] for c in s["checks"]]
        assert "loss: float32 vs mpmath" in names and not any("float64 vs mpmath" in n for n in names)


def test_verify_table_width_and_no_trailing_spaces(capsys):
    assert main(["verify", "-q", "--only", "bounds"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert max(len(ln) for ln in lines) <= 120
    assert all(ln == ln.rstrip() for ln in lines)


# ---------------------------------------------------------------------------- tables
def test_format_table_wraps_at_word_boundaries():
    detail = "a long detail " * 20
    text = format_table(("check", "verdict", "detail"), [("name", "PASS", detail.strip())], width=60)
    lines = text.splitlines()
    assert max(len(ln) for ln in lines) <= 60 and all(ln == ln.rstrip() for ln in lines)
    assert " ".join(" ".join(ln.split()[2:] if i == 0 else ln.split()) for i, ln in
                    enumerate(lines[2:])) == detail.strip()


@pytest.mark.parametrize("value,text", [(43760, "43760"), (np.int64(43760), "43760"), (43760.0, "43760"),
                                        (2.5e-27, "2.50e-27"), (0.5, "0.5"), (float("inf"), "inf"), (None, "-")])
def test_fmt_num(value, text):
    assert fmt_num(value) == text


# ---------------------------------------------------------------------------- progress
def test_progress_plain_lines_and_prediction():
    from verified_lora import progress

    stream = io.StringIO()
    with progress.reporting(stream=stream, tty=False):
        with progress.task(100, "rows", advice="use a smaller problem", warn_s=0.0, interval=0.0) as bar:
            for _ in range(100):
                bar.update()
    out = stream.getvalue()
    assert "rows: predicted" in out and "faster: use a smaller problem" in out
    assert re.search(r"rows: \d+/100 \(\d+%\)", out)
    silent = io.StringIO()
    with progress.task(3, "quiet") as bar:  # no reporting block: nothing printed anywhere
        bar.update(3)
    assert silent.getvalue() == ""


def test_reference_says_up_front_when_it_will_be_long(monkeypatch):
    from verified_lora import progress
    from verified_lora.reference import mp

    monkeypatch.setattr(mp, "SECONDS_PER_ROW_UNIT", 1.0)  # pretend each row is slow
    stream = io.StringIO()
    with progress.reporting(stream=stream, tty=False):
        reference.loss_and_grads(random_problem(0, L=3), dps=20)
    out = stream.getvalue()
    assert "reference rows (mpmath): estimated" in out and "backend='arb'" in out
    quiet = io.StringIO()
    monkeypatch.setattr(mp, "SECONDS_PER_ROW_UNIT", 1e-9)
    with progress.reporting(stream=quiet, tty=False):
        reference.loss_and_grads(random_problem(0, L=3), dps=20)
    assert "estimated" not in quiet.getvalue()


# ---------------------------------------------------------------------------- bench
def _bench_data():
    rows = []
    for L, (te, tf, tp) in {512: ((0.5, 0.1, 0.1), (0.9, 0.2, 0.2), (1.5, 0.5, 0.5)),
                            1024: ((1.8, 0.4, 0.4), (0.8, 0.2, 0.2), (2.0, 0.9, 0.9))}.items():
        rows += [dict(d=4, L=L, method=m, time=t[1], times=list(t), mem=0, flops=1e9, err=1e-13)
                 for m, t in (("exact", te), ("factored", tf), ("paper", tp))]
    return dict(dgemm_gflops=10.0, R=1.0, tol=1e-6, repeats=3, rows=rows, cpu_count=2,
                load_average=(1.0, 1.0, 1.0), blas_threads="1")


def test_bench_verdict_sentence():
    from verified_lora.cli.bench import verdict

    text = verdict(_bench_data())
    assert "certified factored is 2x faster than exact (0.2 s vs 0.4 s warm; cold first runs 0.8 s vs 1.8 s)" in text
    assert "crossover at L = 1024" in text and "paper is 2.2x slower" in text


def test_bench_leaves_no_temp_files(monkeypatch, capsys):
    import verified_lora.fast.bench as fb

    monkeypatch.setattr(fb, "run_sweep", lambda *a, **k: _bench_data())
    before = set(os.listdir(tempfile.gettempdir()))
    assert main(["bench", "-q"]) == 0
    after = {n for n in set(os.listdir(tempfile.gettempdir())) - before if n.startswith("verified-lora-bench")}
    assert after == set()
    assert "Verdict:" in capsys.readouterr().out


def test_interval_reprs_show_distinct_endpoints():
    p = random_problem(0, L=3)
    enc = reference.enclose(p, dps=30)
    a, b = re.fullmatch(r"mpi\('(\S+)', '(\S+)'\)", repr(enc.loss)).groups()
    assert a != b and float(a) <= float(enc.midpoint().loss) <= float(b)
    lo, hi = str(enc.grads["A_Q"][0, 0])[1:-1].split(", ")
    assert lo != hi
