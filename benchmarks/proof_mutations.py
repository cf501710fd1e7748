"""Mutation score of the proofs: planted errors that ``verified-lora prove`` / ``prove --check`` and the
standalone re-checker must reject.

Run from the repository root::

    python3 benchmarks/proof_mutations.py [--out benchmarks/results/proof_mutations.md]

Four families:

1. **wrong derivations**: ``derive`` (the single source of truth) is patched with a wrong formula
   (the errors of the paper and other plausible slips) and the claim's proof is re-run; rejected
   when the proof fails or its certificate differs from the committed one;
2. **false statements**: false variants of the solver-checked inequalities, which z3 must refute;
3. **deleted checks**: every proof re-run with one of its checks removed (the middle one); the
   certificate must differ from the committed one (so ``prove --check`` fails);
4. **edited certificates**: for every certificate (a) its paper statement edited (``prove --check``
   must fail) and (b) consistent forgeries, one per kind of obligation the certificate holds: the
   first obligation of that kind replaced by a false one, with its SMT query, generated LaTeX and
   ``checked_statement`` regenerated to match (the re-checker must fail).

The score is rejected / planted; 100% is the target. Derivation and statement mutations are also
exercised, cheaper, by ``tests/test_proof_mutations.py``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

sys.path.insert(0, os.getcwd())

import sympy as sp  # noqa: E402

from verified_lora import recheck  # noqa: E402
from verified_lora.symbolic import certificates as certs  # noqa: E402
from verified_lora.symbolic import derive, obligations, smt  # noqa: E402


@contextlib.contextmanager
def patched(obj, name: str, value) -> Iterator[None]:
    old = getattr(obj, name)
    setattr(obj, name, value)
    try:
        yield
    finally:
        setattr(obj, name, old)


def run_claim(claim: str) -> str:
    """'proof failed' / 'certificate differs' / 'ACCEPTED' for the (possibly patched) proof of ``claim``."""
    reg = certs.discover()
    out = certs.run_proof(reg[claim], write=False)
    if not out.ok:
        return "proof failed"
    return "certificate differs" if not out.unchanged else "ACCEPTED"


def _wg(key: str, fn: Callable) -> Callable:
    real = derive.weight_gradients

    def mutated(x_q, x_k, x_v, P, K, f, c, p, beta):
        g = dict(real(x_q, x_k, x_v, P, K, f, c, p, beta))
        g[key] = fn(x_q, x_k, x_v, P, K, f, c, p, beta)
        return g

    return mutated


def _form(name: str, build: Callable) -> Callable:
    real = derive.element_forms

    def mutated():
        forms = dict(real())
        fm = forms[name]
        forms[name] = derive.ElementForm(name, fm.out, build(fm), fm.ranges, "mutated")
        return forms

    return mutated


def _p_form(expr: Callable) -> Callable:
    def build(fm):
        i, j = fm.out.indices
        f, q, rvec = (sp.IndexedBase(n) for n in ("f", "q", "rvec"))
        return expr(f, q, rvec, i, j)

    return _form("p", build)


def _q_printed(fm):
    i, j = fm.out.indices
    c, V = sp.IndexedBase("c"), sp.IndexedBase("V")
    (a, lo, hi), = fm.expr.limits
    return sp.Sum(V[i, a] * c[j, a], (a, lo, hi))


def _backward_p2_printed():
    real = derive.backward

    def mutated(inp, fw):
        t = real(inp, fw)
        p_bad = t.p1 - t.f * sp.diag(*t.rvec)
        G = derive.weight_gradients(inp.x_q, inp.x_k, inp.x_v, fw.P, fw.K, t.f, t.c, p_bad, inp.beta)
        grads = {}
        for key, (a, b) in inp.adapters.items():
            grads[f"A_{key}"], grads[f"B_{key}"] = derive.adapter_gradients(G[key], a, b, inp.scale(key))
        return derive.Terms(**{**t.__dict__, "p": p_bad, "G": G, "grads": grads})

    return mutated


def _adapter(fn: Callable) -> Callable:
    return lambda G, a, b, s: fn(G, a, b, s)


def _kron(fn: Callable) -> Callable:
    return fn


DERIVATIONS: list[tuple[str, str, object, str, object]] = [
    # (name, claim, module, attribute, replacement)
    ("printed q = C3 c^T (element form)", "definition-3.6", derive, "element_forms", _form("q", _q_printed)),
    ("printed p2 = f diag(r) (element form)", "definition-3.6", derive, "element_forms",
     _p_form(lambda f, q, r, i, j: f[i, j] * q[i, j] - f[i, j] * r[j])),
    ("p = p1 only (element form)", "definition-3.6", derive, "element_forms",
     _p_form(lambda f, q, r, i, j: f[i, j] * q[i, j])),
    ("p with a sign error", "definition-3.6", derive, "element_forms",
     _p_form(lambda f, q, r, i, j: f[i, j] * (q[i, j] + r[i]))),
    ("backward with printed p2", "lemma-3.2", derive, "backward", _backward_p2_printed()),
    ("G_Q with p^T", "lemma-3.2", derive, "weight_gradients",
     _wg("Q", lambda x_q, x_k, x_v, P, K, f, c, p, beta: beta * (x_q.T * p.T * K))),
    ("G_Q without beta", "lemma-3.2", derive, "weight_gradients",
     _wg("Q", lambda x_q, x_k, x_v, P, K, f, c, p, beta: x_q.T * p * K)),
    ("dB with s^2", "lemma-3.2", derive, "adapter_gradients",
     _adapter(lambda G, a, b, s: (s * (b.T * G), s * s * (G * a.T)))),
    ("dA times 2", "lemma-3.2", derive, "adapter_gradients",
     _adapter(lambda G, a, b, s: (s * (b.T * G) * 2, s * (G * a.T)))),
    ("G_K without p^T (printed)", "lemmas-d.3-d.4", derive, "weight_gradients",
     _wg("K", lambda x_q, x_k, x_v, P, K, f, c, p, beta: beta * (x_k.T * p * P))),
    ("G_K = 2 G_K - G_K^T-style", "lemmas-d.3-d.4", derive, "weight_gradients",
     _wg("K", lambda x_q, x_k, x_v, P, K, f, c, p, beta: beta * (x_k.T * (2 * p.T - p) * P))),
    ("G_K ill-typed X_K^T p P", "lemmas-d.3-d.4", derive, "weight_gradients",
     _wg("K", lambda x_q, x_k, x_v, P, K, f, c, p, beta: beta * (x_k.T * p * P) if isinstance(p, sp.MatrixSymbol)
         else beta * (x_k.T * p.T * P))),
    ("G_K times 2", "lemmas-d.3-d.4", derive, "weight_gradients",
     _wg("K", lambda x_q, x_k, x_v, P, K, f, c, p, beta: 2 * beta * (x_k.T * p.T * P))),
    ("G_V with f instead of f^T", "v-adapter", derive, "weight_gradients",
     _wg("V", lambda x_q, x_k, x_v, P, K, f, c, p, beta: x_v.T * f * c)),
    ("G_V times 2", "v-adapter", derive, "weight_gradients",
     _wg("V", lambda x_q, x_k, x_v, P, K, f, c, p, beta: 2 * x_v.T * f.T * c)),
    ("row-wise Kronecker, swapped order", "rowwise-kronecker", derive, "rowwise_kron",
     _kron(lambda U1, U2: sp.Matrix(U1.rows, U1.cols * U2.cols,
                                    lambda i, t: U1[i, t % U1.cols] * U2[i, t // U1.cols]))),
    ("row-wise Kronecker, mixed rows", "rowwise-kronecker", derive, "rowwise_kron",
     _kron(lambda U1, U2: sp.Matrix(U1.rows, U1.cols * U2.cols,
                                    lambda i, t: U1[i, t // U2.cols] * U2[(i + 1) % U1.rows, t % U2.cols]))),
]


def false_statements() -> list[tuple[str, Callable[[], object]]]:
    e, t, s, eA, eD, eta, zeta = sp.symbols("e t s e_A e_D eta zeta", real=True)
    base = [e > 0, e < 1]
    band = base + [t >= -e, t <= e]
    xi = (1 + eta) / (1 + zeta) - 1
    xh = [eA >= 0, eA < 1, eD >= 0, sp.Abs(eta) <= eD, sp.Abs(zeta) <= eA]
    a, d = sp.symbols("a d", real=True)
    f1 = base + [a >= 1 - e, a <= 1 + e, d >= 1 - e, d <= 1 + e]
    k1, k2, l1, l2 = sp.symbols("k1 k2 l1 l2", integer=True)
    kh = [k1 >= 1, k2 >= 1, l1 >= 0, l1 < k1, l2 >= 0, l2 < k2]
    return [
        ("row-L1 <= e", lambda: smt.prove("m", band, (e**2 - t**2) / (e * (1 + t)) <= e)),
        ("row-L1 <= e/(1 - e^2/8)", lambda: smt.prove("m", band, (e**2 - t**2) / (e * (1 + t)) <= e / (1 - e**2 / 8))),
        ("xi <= (eA + eD)/(1 + eA)", lambda: smt.prove("m", xh, sp.Abs(xi) <= (eA + eD) / (1 + eA))),
        ("xi <= eA + eD", lambda: smt.prove("m", xh, sp.Abs(xi) <= eA + eD)),
        ("F1 <= 2e/(1+e)", lambda: smt.prove("m", f1, sp.Abs(a / d - 1) <= 2 * e / (1 + e))),
        ("F1 ratio >= 1 - e", lambda: smt.prove("m", f1, a / d >= 1 - e)),
        ("s >= 1 - e^2/4", lambda: smt.prove("m", base + [s >= 0, sp.Eq(s**2, 1 - e**2)], s >= 1 - e**2 / 4)),
        ("sqrt(1 + t^2) <= 1 + t^2/4", lambda: smt.prove("m", [s >= 0, sp.Eq(s**2, 1 + t**2)], s <= 1 + t**2 / 4)),
        ("index t = l1 k1 + l2 recovers l1", lambda: smt.prove("m", kh, sp.Eq(sp.floor((l1 * k1 + l2) / k2), l1))),
    ] + _fast_false_statements()


def _fast_false_statements() -> list[tuple[str, Callable[[], object]]]:
    """Altered lemmas of the fast path's certificate (verified_lora/fast/aposteriori.py, adapter_chain.py,
    rounding_bound.py, certificate.py), each of which z3 must refute."""
    e, ab, a, delta, d1, sF, sG, X, mF, mG = sp.symbols("e abar a_l delta delta_1 sd_F sd_G X m_F m_G", real=True)
    band = [e > 0, e < 1, ab >= 1 - e, ab <= 1 + e, a >= 1 - e, a <= 1 + e]
    eb = [e > 0, e < 1, ab >= 0, ab <= 1 + e]
    a2 = [delta >= 0, d1 >= 0, sF >= 0, sG >= 0, sp.Abs(X) <= delta * sF * sG, sp.Abs(mF) <= d1 * sF,
          sp.Abs(mG) <= d1 * sG]
    u, th, f, m, Vm, dD = sp.symbols("u theta f m Vmag delta_D", real=True)
    mo = [u > 0, u <= sp.Rational(1, 8), Vm >= 0, dD >= 0, dD <= sp.Rational(1, 2), sp.Abs(th) <= u, sp.Abs(m) <= Vm,
          sp.Abs(f - m) * (1 - dD) <= 2 * dD * Vm]
    g, h, b = sp.symbols("G Gh b", real=True)
    sg = sp.Symbol("sigma", real=True)
    gm, A, ee, Fm, xd, mu = sp.symbols("gamma A ee Fm xd mu", real=True)
    c1 = [gm >= 0, gm <= sp.Rational(1, 2), ee >= 0, sp.Abs(Fm - xd) <= gm * A, sp.Abs(xd - mu) <= ee, A >= sp.Abs(xd)]
    S, Sa, rw, sw, Kp, Q, C, z = sp.symbols("S Sabs rms_w sd_w rowK rowQ_s C_1 zeta", real=True)
    ak = [rw >= 0, sw >= 0, sw <= rw, Kp >= 0, Q >= 0, C >= 0, z >= 0, sp.Abs(S) <= Sa, Sa <= rw * (Kp + z * C),
          sp.Abs(S) <= Q * sw + z * C * rw]
    dj, cj, et, ep, sX = sp.symbols("Delta c Et Ep sd_X", real=True)
    gv = [d1 >= 0, sX >= 0, sp.Abs(et - ep) <= d1 * sX]
    lo, hi, eta_, st, C3, q1, t1, t2, g1, g2 = sp.symbols("T_lo T_hi eta sd_t C q_1 t_1 t_2 G_1 G_2", real=True)
    pb = [eta_ >= 0, lo > 0, hi >= lo, hi <= (1 + eta_) * lo]
    p1 = [q1 >= 0, q1 <= 1, eta_ >= 0, g1 >= 0, g2 >= 0, t1 >= lo, t2 >= lo, t1 <= hi, t2 <= hi, lo > 0,
          hi <= (1 + eta_) * lo, sp.Eq(q1 * t1 + (1 - q1) * t2, 1)]
    EtG, EhG = q1 * t1 * g1 + (1 - q1) * t2 * g2, q1 * g1 + (1 - q1) * g2
    p3 = [st >= 0, sF >= 0, eta_ >= 0, sp.Abs(C3) <= st * sF, st <= eta_ / 2]
    eh, E1, ta, ua = sp.symbols("eh E_1 theta_a thetah_a", real=True)
    p4 = [e >= 0, e < 1, eh >= 0, eh < 1, E1 >= 0, ta >= -e, ta <= e, ua >= -eh, ua <= eh]
    return [
        ("(A0) delta without its factor 2", lambda: smt.prove("m", band, sp.Abs(ab / a - 1) <= e / (1 - e))),
        ("(A1) Popoviciu's delta1 with 1 + e", lambda: smt.prove("m", eb, e * ab / (1 - e ** 2) <= e / (1 + e))),
        ("(A2) without delta1^2", lambda: smt.prove("m", a2, sp.Abs(X - mF * mG) <= delta * sF * sG)),
        ("(C1) (1 - gamma) |fl(c^ . v1)| (former _sd_quadratic docstring)",
         lambda: smt.prove("m", c1, sp.Max(0, sp.Abs(Fm) * (1 - gm) - ee) <= sp.Abs(mu))),
        ("(AK) absolute sum under the min (former wording)",
         lambda: smt.prove("m", ak, Sa <= rw * (sp.Min(Kp, Q) + z * C))),
        ("(GV) sd~(X_V) in place of |E~X_V|",
         lambda: smt.prove("m", gv, sp.Abs(dj * et + cj * (et - ep)) <= sX * sp.Abs(dj) + d1 * sX * sp.Abs(cj))),
        ("moment e_rel with 2u", lambda: smt.prove("m", mo, sp.Abs(f * (1 + th) - m) <= (2 * dD / (1 - dD) + 2 * u) * Vm)),
        ("relative claim b / max|G^| (float taken as exact)",
         lambda: smt.prove("m", [b >= 0, sp.Abs(h - g) <= b, sp.Abs(h) > 0], sp.Abs(h - g) * sp.Abs(h) <= b * sp.Abs(g))),
        ("eps' with 1 + sigma", lambda: smt.prove("m", [sg >= 0, sg <= sp.Rational(1, 2)], 1 / (1 - sg) <= 1 + sg)),
        ("(P0) T_hi - T_lo <= eta without T_lo <= 1", lambda: smt.prove("m", pb, hi - lo <= eta_)),
        ("(P1) (1 + eta) dropped", lambda: smt.prove("m", p1, EtG <= EhG)),
        ("(P3) eta/4 in place of eta/2", lambda: smt.prove("m", p3, sp.Abs(C3) <= eta_ / 4 * sF)),
        ("(P4) with 1 - e^ in place of 1 + e^",
         lambda: smt.prove("m", p4, E1 * (1 + ta) >= (1 - e) / (1 - eh) * E1 * (1 + ua))),
    ]


def _falsify(ob: dict) -> bool:
    """Replace one obligation by a false one, consistently (query and LaTeX regenerated). False if not possible."""
    kind = ob["kind"]
    if kind == "opaque":
        return False
    objs = {k: recheck.load_expr(v) for k, v in ob["srepr"].items()}
    planted = sp.Symbol("planted")

    def wrong(x):
        if isinstance(x, sp.MatrixBase):
            return x + planted * sp.ones(*x.shape)
        if getattr(x, "is_Matrix", False):
            return 2 * x + x
        return x + planted if not isinstance(x, sp.Tuple) else sp.Tuple(*x, planted)

    if kind in ("identity", "index-identity", "matrix-identity"):
        if ob.get("expect", True) is False:
            ob["expect"] = True
        else:
            objs["rhs"] = wrong(objs["rhs"])
    elif kind == "differs":
        objs["lhs"] = objs["rhs"]
    elif kind in ("derivative", "index-derivative", "matrix-derivative"):
        objs["claimed"] = wrong(objs["claimed"])
    elif kind == "smt-unsat":
        objs["goal"] = sp.Not(objs["goal"]) if objs["goal"] not in (sp.true, sp.false) else sp.false
        ob["smtlib"] = smt.query(list(objs["hypotheses"]), objs["goal"])[0]
    elif kind == "smt-sat":
        objs["goal"] = sp.true
        ob["smtlib"] = smt.query(list(objs["hypotheses"]), objs["goal"])[0]
    else:
        return False
    ob["srepr"] = {k: sp.srepr(v) for k, v in objs.items()}
    if "latex" in ob:
        ob["latex"] = recheck.statement_latex(kind, objs)
    return True


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="benchmarks/results/proof_mutations.md")
    args = ap.parse_args()
    t0 = time.perf_counter()
    rows: list[tuple[str, str, str, bool]] = []       # family, mutation, outcome, rejected
    certs.discover()
    for name, claim, mod, attr, value in DERIVATIONS:
        with patched(mod, attr, value):
            outcome = run_claim(claim)
        rows.append(("wrong derivation", f"{name} ({claim})", outcome, outcome != "ACCEPTED"))
        print(rows[-1], flush=True)
    for name, fn in false_statements():
        try:
            fn()
            outcome = "ACCEPTED"
        except certs.ProofFailure as exc:
            outcome = "refuted: " + str(exc).split(": ", 1)[-1][:60]
        rows.append(("false statement", name, outcome, outcome != "ACCEPTED"))
        print(rows[-1], flush=True)
    reg = certs.registry()
    for claim in sorted(reg):
        real_note = obligations.note
        count = {"n": 0}
        stored = json.loads(certs.certificate_path(claim).read_bytes())
        target = len(stored["obligations"]) // 2

        def dropping(kind, name, **kw):
            k = count["n"]
            count["n"] += 1
            return None if k == target else real_note(kind, name, **kw)

        with patched(obligations, "note", dropping):
            outcome = run_claim(claim)
        rows.append(("deleted check", f"{claim}: check #{target}", outcome, outcome != "ACCEPTED"))
        print(rows[-1], flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        for claim in sorted(reg):
            path = certs.certificate_path(claim)
            doc = json.loads(path.read_bytes())
            edited = dict(doc, statement=doc["statement"] + r"\ ")
            p1 = Path(tmp) / path.name
            p1.write_text(json.dumps(edited, sort_keys=True, indent=2) + "\n")
            out = certs.check_certificate(p1)
            rows.append(("edited statement", claim, "prove --check fails" if not out.ok else "ACCEPTED", not out.ok))
            print(rows[-1], flush=True)
            kinds = sorted({ob["kind"] for ob in doc["obligations"]} - {"opaque"})
            if not kinds:
                rows.append(("forged obligation", claim, "no re-checkable obligation", False))
            for kind in kinds:      # one consistent forgery per kind of obligation the certificate holds
                forged = json.loads(path.read_bytes())
                k = next(k for k, ob in enumerate(forged["obligations"]) if ob["kind"] == kind)
                if not _falsify(forged["obligations"][k]):
                    rows.append(("forged obligation", f"{claim}: {kind}", "could not forge", False))
                    continue
                forged["checks_run"] = [f"{o['kind']}: {o['name']}" for o in forged["obligations"]]
                forged["checked_statement"] = [o["latex"] for o in forged["obligations"]
                                               if "latex" in o and len(o["latex"]) <= certs.STATEMENT_CHARS]
                p2 = Path(tmp) / ("forged_" + path.name)
                p2.write_text(json.dumps(forged, sort_keys=True, indent=2) + "\n")
                res = recheck.recheck_file(p2)
                what = kind + ": " + forged["obligations"][k]["name"]
                rows.append(("forged obligation", f"{claim}: {what}"[:110],
                             "re-check fails" if not res.ok else "ACCEPTED", not res.ok))
                print(rows[-1], flush=True)
    seconds = time.perf_counter() - t0
    rejected = sum(r[3] for r in rows)
    families = sorted({r[0] for r in rows})
    lines = ["# Proof mutation score", "",
             f"Generated by `python3 benchmarks/proof_mutations.py` on {platform.machine()} "
             f"({os.cpu_count()} cores), SymPy {sp.__version__}, z3 {smt.solver_version()}, in {seconds:.0f} s.",
             "", f"**Score: {rejected}/{len(rows)} planted mutations rejected ({100 * rejected / len(rows):.0f}%).**", "",
             "| family | planted | rejected |", "|---|---|---|"]
    for fam in families:
        sel = [r for r in rows if r[0] == fam]
        lines.append(f"| {fam} | {len(sel)} | {sum(r[3] for r in sel)} |")
    lines += ["", "| family | mutation | outcome |", "|---|---|---|"]
    lines += [f"| {r[0]} | {r[1].replace('|', '/')} | {'' if r[3] else '**'}{r[2].replace('|', '/')}{'' if r[3] else '**'} |"
              for r in rows]
    Path(args.out).write_text("\n".join(lines) + "\n")
    print(f"score {rejected}/{len(rows)} in {seconds:.0f}s -> {args.out}")
    return 0 if rejected == len(rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
