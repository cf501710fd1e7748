"""Planted mutations of the proofs and certificates, each of which must be rejected.

Cheap ones run here; the full set (every mutation, including the slower end-to-end ones) is
``benchmarks/proof_mutations.py``, whose score is committed under ``benchmarks/results/``.
Kinds: wrong derivations (index route, matrix route, small-scope end to end), false statements
(planted inequalities for z3), deleted checks (a proof that skips one check must change its
certificate), edited certificates (statement, generated statement, SMT query, obligations) that
``prove --check`` and the standalone re-checker must both refuse.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import sympy as sp

pytest.importorskip("z3")

from verified_lora import recheck  # noqa: E402
from verified_lora.symbolic import certificates as certs  # noqa: E402
from verified_lora.symbolic import derive, smt  # noqa: E402
from verified_lora.symbolic import index_calculus as ic  # noqa: E402
from verified_lora.symbolic import index_normal_form as nf  # noqa: E402
from verified_lora.symbolic import matrix_calculus as mc  # noqa: E402
from verified_lora.symbolic.certificates import ProofFailure  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def _cert(claim: str) -> Path:
    return certs.certificate_path(claim)


def _write(tmp_path: Path, doc: dict, name: str = "c.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(doc, sort_keys=True, indent=2) + "\n")
    return path


# ------------------------------------------------------------------------------------ false statements
def test_planted_false_inequalities_are_refuted_by_z3():
    e, t, eA, eD, eta, zeta = sp.symbols("e t e_A e_D eta zeta", real=True)
    band = [e > 0, e < 1, t >= -e, t <= e]
    with pytest.raises(ProofFailure, match="sat"):          # row-L1 bound without its second-order term
        smt.prove("false row-L1", band, (e**2 - t**2) / (e * (1 + t)) <= e)
    hyps = [eA >= 0, eA < 1, eD >= 0, sp.Abs(eta) <= eD, sp.Abs(zeta) <= eA]
    xi = (1 + eta) / (1 + zeta) - 1
    with pytest.raises(ProofFailure, match="sat"):          # xi bound with 1 + e_A in the denominator
        smt.prove("false xi", hyps, sp.Abs(xi) <= (eA + eD) / (1 + eA))
    assert smt.prove("true xi", hyps, sp.Abs(xi) <= (eA + eD) / (1 - eA)) >= 1
    assert smt.prove("true row-L1", band, (e**2 - t**2) / (e * (1 + t)) <= e / (1 - e**2 / 2)) >= 1


def test_division_by_zero_is_not_a_loophole():
    x, y = sp.symbols("x y")          # no assumptions, so SymPy does not decide the relation itself
    goal = sp.Ge((y / x) ** 2, 0)      # true whatever value y/0 takes, but it divides by x, which may be 0
    assert goal not in (sp.true, sp.false)
    with pytest.raises(ProofFailure, match="sat|denominator"):
        smt.prove("(y/x)^2 >= 0", [x >= 0], goal)
    assert smt.prove("(y/x)^2 >= 0", [x > 0], goal) == 2


# ------------------------------------------------------------------------------------ wrong derivations
def _with_weight_gradients(monkeypatch, key, fn):
    real = derive.weight_gradients

    def mutated(x_q, x_k, x_v, P, K, f, c, p, beta):
        g = dict(real(x_q, x_k, x_v, P, K, f, c, p, beta))
        g[key] = fn(x_q, x_k, x_v, P, K, f, c, p, beta)
        return g

    monkeypatch.setattr(derive, "weight_gradients", mutated)


@pytest.mark.parametrize("param,key,fn", [
    ("W_K", "K", lambda x_q, x_k, x_v, P, K, f, c, p, beta: beta * (x_k.T * p * P)),              # no p^T
    ("W_K", "K", lambda x_q, x_k, x_v, P, K, f, c, p, beta: beta * (x_k.T * (2 * p.T - p) * P)),  # 2G - G^T
    ("W_Q", "Q", lambda x_q, x_k, x_v, P, K, f, c, p, beta: x_q.T * p * K),                        # dropped beta
    ("A_Q", "Q", lambda x_q, x_k, x_v, P, K, f, c, p, beta: beta * (x_q.T * p.T * K)),             # p^T in Q
], ids=["k-no-transpose", "k-2G-minus-GT", "q-dropped-beta", "q-transposed-p"])
def test_index_route_rejects_wrong_gradients(monkeypatch, param, key, fn):
    _with_weight_gradients(monkeypatch, key, fn)
    loss, theta, claim = ic.loss_and_claim(param)
    assert not nf.equal(nf.derivative(loss, theta), claim)


def test_index_route_rejects_wrong_p(monkeypatch):
    real = derive.element_forms

    def mutated():
        forms = dict(real())
        p = forms["p"]
        i, j = p.out.indices
        f, q, rvec = (sp.IndexedBase(n) for n in ("f", "q", "rvec"))
        forms["p"] = derive.ElementForm("p", p.out, f[i, j] * (q[i, j] - rvec[j]), p.ranges, "printed p2")
        return forms

    monkeypatch.setattr(derive, "element_forms", mutated)
    loss, theta, claim = ic.loss_and_claim("S")
    assert not nf.equal(nf.derivative(loss, theta), claim)


def test_index_route_proves_the_true_gradient():
    loss, theta, claim = ic.loss_and_claim("W_Q")
    assert nf.equal(nf.derivative(loss, theta), claim)


def test_matrix_route_rejects_ill_typed_products():
    L, Lk, d = sp.symbols("L L_k d", integer=True, positive=True)
    X_K, p = sp.MatrixSymbol("X_K", Lk, d), sp.MatrixSymbol("p", L, Lk)
    P = sp.MatrixSymbol("P", L, d)
    with pytest.raises(mc.DimensionError):
        mc.check_dims(X_K.T * p * P)                       # (d x L_k)(L x L_k): SymPy itself accepts it
    mc.check_dims(X_K.T * p.T * P)                         # the corrected form is well typed


def test_matrix_route_guards_the_sum_of_traces_zero():
    n = sp.Symbol("n", integer=True, positive=True)
    X, A, B = (sp.MatrixSymbol(s, n, n) for s in "XAB")
    expr = sp.Trace(A * X) + sp.Trace(B * X)
    # SymPy 1.14 returns the zero matrix for sp.diff(expr, X): the behaviour guarded against
    assert mc.identity(mc.derivative(expr, X), A.T + B.T)
    assert not mc.identity(mc.derivative(expr, X), sp.ZeroMatrix(n, n))


# ------------------------------------------------------------------------------------ deleted checks
def test_deleting_a_check_changes_the_certificate(monkeypatch):
    import importlib

    certs.discover()
    mod = sys.modules[certs.registry()["bounds-f-entrywise"].run.__module__]
    real = smt.prove

    def skipping(name, hyps, goal, **kw):
        return 0 if name.startswith("F1: |f~/f - 1|") else real(name, hyps, goal, **kw)

    monkeypatch.setattr(mod.smt, "prove", skipping)
    from verified_lora.symbolic import prove

    rows = prove.run(["bounds-f-entrywise"], check=True)
    assert len(rows) == 1 and not rows[0].ok and rows[0].certificate == "DIFFERS"
    importlib.invalidate_caches()


def test_every_certificate_lists_its_checks():
    for path in sorted(certs.certificates_dir().glob("*.json")):
        doc = json.loads(path.read_bytes())
        assert doc["obligations"], path.name
        assert doc["checks_run"] == [f"{o['kind']}: {o['name']}" for o in doc["obligations"]], path.name
        assert any(o["kind"] != "opaque" for o in doc["obligations"]), path.name


# ------------------------------------------------------------------------------------ edited certificates
def _edited(claim: str, edit) -> dict:
    doc = json.loads(_cert(claim).read_bytes())
    edit(doc)
    return doc


def _smt_index(doc: dict, name_start: str) -> int:
    return next(k for k, o in enumerate(doc["obligations"]) if o["name"].startswith(name_start))


def _edit_goal_to_false_xi(doc: dict) -> None:
    k = _smt_index(doc, "xi bound")
    eA, eD, eta, zeta = sp.symbols("e_A e_D eta zeta", real=True)
    false = sp.Abs((1 + eta) / (1 + zeta) - 1) <= (eA + eD) / (1 + eA)
    doc["obligations"][k]["srepr"]["goal"] = sp.srepr(false)


def _edit_goal_and_query_to_false_xi(doc: dict) -> None:
    """A consistent forgery: goal, query, generated statement and checked_statement all edited."""
    _edit_goal_to_false_xi(doc)
    ob = doc["obligations"][_smt_index(doc, "xi bound")]
    objs = {k: recheck.load_expr(v) for k, v in ob["srepr"].items()}
    ob["smtlib"] = smt.query(list(objs["hypotheses"]), objs["goal"])[0]
    ob["latex"] = recheck.statement_latex(ob["kind"], objs)
    doc["checked_statement"] = [o["latex"] for o in doc["obligations"] if "latex" in o and len(o["latex"]) <= 1500]


def _first(doc: dict, kind: str) -> dict:
    return next(o for o in doc["obligations"] if o["kind"] == kind)


EDITS = {
    "statement-latex": ("bounds-f-entrywise", lambda d: _first(d, "smt-unsat").__setitem__(
        "latex", _first(d, "smt-unsat")["latex"].replace(r"\leq", "<", 1))),
    "checked-statement": ("bounds-f-row-l1", lambda d: d["checked_statement"].__setitem__(0, r"x \leq 1")),
    "deleted-obligation": ("bounds-f-row-l1", lambda d: d["obligations"].pop(5)),
    "goal-not-the-query": ("bounds-factored-gradient", _edit_goal_to_false_xi),
    "false-goal-and-query": ("bounds-factored-gradient", _edit_goal_and_query_to_false_xi),
    "answer-sat": ("bounds-f-entrywise", lambda d: _first(d, "smt-unsat").__setitem__("answer", "sat")),
    "wrong-identity": ("rowwise-kronecker", lambda d: _first(d, "index-identity")["srepr"].__setitem__(
        "rhs", _first(d, "index-identity")["srepr"]["rhs"].replace("'V1'", "'V2'"))),
    "wrong-matrix-derivative": ("v-adapter", lambda d: _first(d, "matrix-derivative")["srepr"].__setitem__(
        "claimed", _first(d, "matrix-derivative")["srepr"]["claimed"].replace("'f'", "'p'", 1))),
    "counterexample-equal": ("erratum/q-orientation", lambda d: d["obligations"][0]["srepr"].__setitem__(
        "lhs", d["obligations"][0]["srepr"]["rhs"])),
}


@pytest.mark.parametrize("what", sorted(EDITS))
def test_recheck_and_prove_check_refuse_edited_certificates(tmp_path, what):
    claim, edit = EDITS[what]
    doc = _edited(claim, edit)
    path = _write(tmp_path, doc, _cert(claim).name)
    assert path.read_bytes() != _cert(claim).read_bytes()
    res = recheck.recheck_file(path)
    assert not res.ok, (what, res.failures)
    certs.discover()
    out = certs.check_certificate(path)
    assert not out.ok


def test_prove_check_refuses_an_edited_paper_statement(tmp_path):
    doc = _edited("lemma-3.2", lambda d: d.__setitem__("statement", d["statement"].replace(r"p K", r"p^\top K")))
    path = _write(tmp_path, doc, _cert("lemma-3.2").name)
    certs.discover()
    out = certs.check_certificate(path)
    assert not out.ok and "statement" in out.message


# ------------------------------------------------------------------------------------ the re-checker
def test_recheck_does_not_import_the_derivation_code():
    sample = [str(_cert(c)) for c in ("bounds-f-row-l1", "rowwise-kronecker", "erratum/k-transposition",
                                      "theorem-f.1", "lemma-d.2")]
    code = ("import sys, verified_lora.recheck as r\n"
            f"res = r.recheck_all({sample!r})\n"
            "assert all(x.ok for x in res), [(x.claim, x.failures) for x in res]\n"
            "bad = [m for m in sys.modules if m in ('verified_lora.symbolic.derive', 'verified_lora.symbolic.prooftools',"
            " 'verified_lora.symbolic.chainrule', 'verified_lora.symbolic.index_calculus',"
            " 'verified_lora.symbolic.certificates') or m.startswith('verified_lora_proofs')]\n"
            "assert not bad, bad\n"
            "print('ok', sum(x.decided for x in res))\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env={**__import__("os").environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.startswith("ok")


def test_recheck_exit_status(tmp_path, capsys):
    assert recheck.main([str(_cert("erratum/t-d2-d2"))]) == 0
    doc = _edited("erratum/t-d2-d2", lambda d: d["obligations"][0].__setitem__("answer", "sat"))
    assert recheck.main([str(_write(tmp_path, doc))]) == 1
    assert "FAIL" in capsys.readouterr().out


def test_cli_prove_recheck(tmp_path, capsys, monkeypatch):
    from verified_lora.cli import main

    assert main(["prove", "--recheck", "erratum/", "-q"]) == 0
    out = capsys.readouterr().out
    assert "PASS: 9/9 certificates re-checked" in out
    assert main(["prove", "--recheck", "no-such-claim"]) == 2
    capsys.readouterr()
    directory = tmp_path / "certificates"
    directory.mkdir()
    doc = _edited("erratum/t-d2-d2", lambda d: d["obligations"][0].__setitem__("answer", "sat"))
    _write(directory, doc, _cert("erratum/t-d2-d2").name)
    monkeypatch.setenv("VERIFIED_LORA_PROOFS", str(tmp_path))
    assert main(["prove", "--recheck", "-q"]) == 1
    assert "FAIL: 0/1" in capsys.readouterr().out


def test_index_normal_form_refuses_dependent_ranges_and_keeps_them_apart():
    i, j = sp.symbols("i j", integer=True, nonnegative=True)
    n = sp.Symbol("n", integer=True, positive=True)
    x = sp.IndexedBase("x")
    with pytest.raises(ValueError, match="depends on another summation index"):
        nf.equal(sp.Sum(sp.Sum(x[j], (j, 0, i)), (i, 0, n - 1)), 0)
    # inside an atom, a range bound by an inner index must not print like one bound by a free symbol
    k = sp.Symbol("k", integer=True, nonnegative=True)
    bound = nf.canonical_inner(sp.exp(sp.Sum(x[j], (j, 0, i), (i, 0, n))))    # i summed
    free = nf.canonical_inner(sp.exp(sp.Sum(x[j], (j, 0, i), (k, 0, n))))     # i free
    assert sp.srepr(bound) != sp.srepr(free)
