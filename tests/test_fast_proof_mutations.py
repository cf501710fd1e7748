"""Mutations of the fast path's certificate lemmas (verified_lora/proofs/fast_*.py) must be rejected.

* every inequality a ``fast-*`` certificate proves is sensitive: with its bound halved (or an ``And``
  goal's first conjunct weakened) z3 must find a counterexample, so no obligation is vacuous;
* the named alterations of the lemmas (the factor 2 of delta dropped, pi and pi~ swapped, the
  delta1^2 of (A2) dropped, Popoviciu's delta1 with 1 + e, sd in place of the RMS in (GQ, factored),
  the former (1 - gamma) |fl| of (C1), the absolute sum under (AK)'s min, sd~(X) in place of |E~X| in
  (GV), ...) are refuted by z3 or not shown by the index normal form;
* a proof that skips one check changes its certificate (``prove --check`` fails), and a consistent
  forgery of a stored obligation fails the standalone re-checker.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sympy as sp

pytest.importorskip("z3")

from verified_lora import recheck  # noqa: E402
from verified_lora.symbolic import certificates as certs  # noqa: E402
from verified_lora.symbolic import obligations, smt  # noqa: E402
from verified_lora.symbolic import prooftools as pt  # noqa: E402
from verified_lora.symbolic.certificates import ProofFailure  # noqa: E402

FAST = sorted(certs.certificates_dir().glob("fast-*.json"))
NEW_CLAIMS = ("fast-a0-density-ratio", "fast-a1-means", "fast-a2-covariances", "fast-moment-rounding", "fast-gq-paper",
              "fast-c1-spread", "fast-gq-factored", "fast-gk", "fast-gv", "fast-rounding-gamma", "fast-rounding-core",
              "fast-rounding-inputs", "fast-balancing", "fast-relative-claims", "fast-adapter-chain", "fast-chain-q",
              "fast-chain-k", "fast-chain-v", "fast-row-radius", "fast-proxy-p0-ratio", "fast-proxy-p1-p2",
              "fast-proxy-p3-means", "fast-rounding-once", "fast-antiderivative-gradient", "fast-antiderivative-magnitude")


def _r(names: str):
    return sp.symbols(names, real=True)


def test_the_fast_certificates_are_all_there():
    assert sorted(p.stem for p in FAST) == sorted(NEW_CLAIMS)
    reg = certs.discover()
    assert all(c in reg for c in NEW_CLAIMS)


def _weakened(goal):
    """A strictly stronger (so, for a tight bound, false) variant of ``goal``; None when not applicable."""
    if isinstance(goal, sp.And):
        first = _weakened(goal.args[0])
        return None if first is None else sp.And(first, *goal.args[1:])
    if isinstance(goal, (sp.LessThan, sp.StrictLessThan)):
        return goal.func(goal.lhs, goal.rhs / 2 if goal.rhs != 0 else goal.rhs - 1)
    if isinstance(goal, (sp.GreaterThan, sp.StrictGreaterThan)):
        return goal.func(goal.lhs, 2 * goal.rhs if goal.rhs != 0 else goal.rhs + 1)
    return None


@pytest.mark.parametrize("path", FAST, ids=[p.stem for p in FAST])
def test_every_fast_inequality_is_tight_enough_to_fail_when_halved(path):
    doc = json.loads(path.read_bytes())
    tried = 0
    for ob in doc["obligations"]:
        if ob["kind"] != "smt-unsat" or "[denominator" in ob["name"]:
            continue
        objs = {k: recheck.load_expr(v) for k, v in ob["srepr"].items()}
        goal = _weakened(objs["goal"])
        if goal is None:                      # an equation (bound 0 certifies error 0): exact, nothing to halve
            assert isinstance(objs["goal"], sp.Equality), ob["name"]
            continue
        smt.refute(f"halved: {ob['name']}", list(objs["hypotheses"]), goal)   # raises when not refuted
        tried += 1
    assert tried >= 1 or doc["claim"] == "fast-balancing"


# ------------------------------------------------------------------------------------ named lemma alterations
def _false(hyps, goal):
    with pytest.raises(ProofFailure, match="sat"):
        smt.prove("altered lemma", hyps, goal)


def test_a0_altered():
    e, ab, a = _r("e abar a_l")
    band = [e > 0, e < 1, ab >= 1 - e, ab <= 1 + e, a >= 1 - e, a <= 1 + e]
    assert smt.prove("true (A0)", band, sp.Abs(ab / a - 1) <= 2 * e / (1 - e)) >= 1
    _false(band, sp.Abs(ab / a - 1) <= e / (1 - e))             # the factor 2 of delta dropped
    _false(band, sp.Abs(ab / a - 1) <= 2 * e / (1 + e))         # 1 + e in the denominator


def test_a1_popoviciu_altered():
    e, ab = _r("e abar")
    eb = [e > 0, e < 1, ab >= 0, ab <= 1 + e]
    assert smt.prove("true (A1)", eb, e * ab / (1 - e ** 2) <= e / (1 - e)) >= 1
    _false(eb, e * ab / (1 - e ** 2) <= e / (1 + e))                # delta1 with 1 + e
    _false(eb, e * ab / (1 - e ** 2) <= e)                          # delta1 = e


def test_a2_and_gq_altered():
    delta, d1, sF, sG, X, mF, mG = _r("delta delta_1 sd_F sd_G X m_F m_G")
    hyps = [delta >= 0, d1 >= 0, sF >= 0, sG >= 0, sp.Abs(X) <= delta * sF * sG, sp.Abs(mF) <= d1 * sF,
            sp.Abs(mG) <= d1 * sG]
    assert smt.prove("true (A2)", hyps, sp.Abs(X - mF * mG) <= (delta + d1 ** 2) * sF * sG) >= 1
    _false(hyps, sp.Abs(X - mF * mG) <= delta * sF * sG)            # delta1^2 dropped
    _false(hyps + [sp.Eq(delta, 2 * d1)], sp.Abs(X - mF * mG) <= (d1 + d1 ** 2) * sF * sG)   # delta1 on E_pi[F'G']
    T1, T2, A, B, sk, S2, C1 = _r("T_1 T_2 A B sk_b S_2 C_1")
    fin = [delta >= 0, d1 >= 0, sk >= 0, S2 >= 0, C1 >= 0, A >= 0, B >= 0, sp.Abs(T1) <= sk * A, A <= d1 * S2,
           sp.Abs(T2) <= (delta + d1 ** 2) * B * sk, B <= C1 + A]
    _false(fin, sp.Abs(T1 + T2) <= sk * (d1 * S2 + (delta + d1 ** 2) * C1))      # sd~(<c,V>) <= C1 used
    eA, eD, eta, zeta = _r("e_A e_D eta zeta")
    zh = [eA >= 0, eA < 1, eD >= 0, sp.Abs(zeta) <= eD, sp.Abs(eta) <= eA]
    _false(zh, sp.Abs((1 + zeta) / (1 + eta) - 1) <= (eA + eD) / (1 + eA))
    _false(zh, sp.Abs((1 + eta) / (1 + zeta) - 1) <= (eA + eD) / (1 - eA))   # P and P' swapped (e_D may be > e_A)


def test_c1_gk_gv_and_chain_altered():
    g, A, ee, Fm, xd, mu = _r("gamma A ee Fm xd mu")
    mean = [g >= 0, g <= sp.Rational(1, 2), ee >= 0, sp.Abs(Fm - xd) <= g * A, sp.Abs(xd - mu) <= ee, A >= sp.Abs(xd)]
    assert smt.prove("true (C1)", mean, sp.Max(0, sp.Abs(Fm) - g * A - ee) <= sp.Abs(mu)) >= 1
    _false(mean, sp.Max(0, sp.Abs(Fm) * (1 - g) - ee) <= sp.Abs(mu))          # _sd_quadratic's former docstring
    S, Sabs, rw, sw, Kp, Q, C, z = _r("S Sabs rms_w sd_w rowK rowQ_s C_1 zeta")
    hy = [rw >= 0, sw >= 0, sw <= rw, Kp >= 0, Q >= 0, C >= 0, z >= 0, sp.Abs(S) <= Sabs, Sabs <= rw * (Kp + z * C),
          sp.Abs(S) <= Q * sw + z * C * rw]
    assert smt.prove("true (AK)", hy, sp.Abs(S) <= rw * (sp.Min(Kp, Q) + z * C)) >= 1
    _false(hy, Sabs <= rw * (sp.Min(Kp, Q) + z * C))                           # the absolute sum under the min
    _false(hy, sp.Abs(S) <= rw * sp.Min(Kp + z * C, Q))                         # zeta C1 dropped from the (GQ) side
    d1, dj, cj, et, ep, sX = _r("delta_1 Delta c Et Ep sd_X")
    row = [d1 >= 0, sX >= 0, sp.Abs(et - ep) <= d1 * sX]
    _false(row, sp.Abs(dj * et + cj * (et - ep)) <= sX * sp.Abs(dj) + d1 * sX * sp.Abs(cj))   # sd~ for |E~X| (GV)
    u, er, c, X2, F, mh = _r("u e_rel c X_2 F mh")
    sq = [u > 0, u <= sp.Rational(1, 8), X2 >= 0, er >= 0, F >= (1 - u) * X2, F <= (1 + u) * X2,
          sp.Abs(mh - F) <= er * (1 + u) * c ** 2]
    assert smt.prove("true (squares)", sq, sp.Abs(mh - X2) <= (1 + 4 * u) * er * c ** 2 + 4 * u * sp.Abs(mh)) >= 1
    _false(sq, sp.Abs(mh - X2) <= er * c ** 2 + 4 * u * sp.Abs(mh))            # the rounding of the squares omitted


def test_moment_and_rounding_altered():
    u, th, f, mm, Vm, dD = _r("u theta f m Vmag delta_D")
    mo = [u > 0, u <= sp.Rational(1, 8), Vm >= 0, dD >= 0, dD <= sp.Rational(1, 2), sp.Abs(th) <= u, sp.Abs(mm) <= Vm,
          sp.Abs(f - mm) * (1 - dD) <= 2 * dD * Vm]
    _false(mo, sp.Abs(f * (1 + th) - mm) <= (2 * dD / (1 - dD) + 2 * u) * Vm)     # the aposteriori docstring's former 2u
    assert smt.prove("true e_rel", mo + [dD <= sp.Rational(1, 3)],
                     sp.Abs(f * (1 + th) - mm) <= (2 * dD / (1 - dD) + 2 * u) * Vm) >= 1   # 2u suffices for delta_D <= 1/3
    g1, h1, b = _r("G Gh b")
    _false([b >= 0, sp.Abs(h1 - g1) <= b, sp.Abs(h1) > 0], sp.Abs(h1 - g1) * sp.Abs(h1) <= b * sp.Abs(g1))   # b/max|G^|


def test_proxy_transfer_altered():
    lo, hi, et, st, sF, C = _r("T_lo T_hi eta sd_t sd_F C")
    band = [et >= 0, lo > 0, hi >= lo, hi <= (1 + et) * lo]
    assert smt.prove("true (P0)", band + [lo <= 1], hi - lo <= et) >= 1
    _false(band, hi - lo <= et)                                       # T_lo <= 1 (from E^ t = 1) not used
    comb = [st >= 0, sF >= 0, et >= 0, sp.Abs(C) <= st * sF, st <= et / 2]
    assert smt.prove("true (P3)", comb, sp.Abs(C) <= et / 2 * sF) >= 1
    _false(comb, sp.Abs(C) <= et / 4 * sF)                            # eta/4 in (P3)
    q1, t1, t2, g1, g2 = _r("q_1 t_1 t_2 G_1 G_2")
    two = [q1 >= 0, q1 <= 1, et >= 0, g1 >= 0, g2 >= 0, t1 >= lo, t2 >= lo, t1 <= hi, t2 <= hi, lo > 0,
           hi <= (1 + et) * lo, sp.Eq(q1 * t1 + (1 - q1) * t2, 1)]
    EtG, EhG = q1 * t1 * g1 + (1 - q1) * t2 * g2, q1 * g1 + (1 - q1) * g2
    assert smt.prove("true (P1)", two, EtG <= (1 + et) * EhG) >= 1
    _false(two, EtG <= EhG)                                           # (1 + eta) dropped in (P1)
    e, eh, E1, ta, ua = _r("e eh E_1 theta_a thetah_a")
    p4 = [e >= 0, e < 1, eh >= 0, eh < 1, E1 >= 0, ta >= -e, ta <= e, ua >= -eh, ua <= eh]
    assert smt.prove("true (P4)", p4, E1 * (1 + ta) >= (1 - e) / (1 + eh) * E1 * (1 + ua)) >= 1
    _false(p4, E1 * (1 + ta) >= (1 - e) / (1 - eh) * E1 * (1 + ua))   # (P4) with 1 - e^


def test_identities_with_pi_and_pi_tilde_swapped_are_not_shown():
    n = sp.Symbol("n", integer=True, positive=True)
    l, m = sp.symbols("l m", integer=True, nonnegative=True)
    pit, r, F = sp.IndexedBase("pit"), sp.IndexedBase("r"), sp.IndexedBase("F")
    S = lambda e, v: sp.Sum(e, (v, 0, n - 1))      # noqa: E731
    Et, Er, Sp = S(pit[m] * F[m], m), S(pit[m] * r[m], m), S(pit[m], m)
    lhs = S(pit[l] * r[l] * F[l], l) - S(pit[l] * F[l], l)
    corr = Et * (Er - 1) + Et * Er * (1 - Sp)
    with obligations.recording():
        assert pt.sums_equal(lhs, S(pit[l] * (r[l] - Er) * (F[l] - Et), l) + corr, "(A1) true")
        # (A1) with pi and pi~ swapped in the weight of the covariance
        assert not pt.sums_equal(lhs, S(pit[l] * r[l] * (r[l] - Er) * (F[l] - Et), l) + corr, "(A1) swapped")
        # (A1) with the sign of the covariance flipped
        assert not pt.sums_equal(lhs, S(pit[l] * (Er - r[l]) * (F[l] - Et), l) + corr, "(A1) sign")
        # (GV) f^T c~ - f~^T c (pi and pi~ swapped)
        c, D = sp.IndexedBase("c"), sp.IndexedBase("Delta")
        i = sp.Symbol("i", integer=True, nonnegative=True)
        assert not pt.sums_equal(S(pit[i] * r[i] * (c[i] + D[i]) - pit[i] * c[i], i),
                                 S(pit[i] * (D[i] + (1 - r[i]) * c[i]), i), "(GV) swapped")


# ------------------------------------------------------------------------------------ deleted checks, forgeries
@pytest.mark.parametrize("claim", NEW_CLAIMS)
def test_deleting_a_check_changes_the_fast_certificate(claim, monkeypatch):
    reg = certs.discover()
    stored = json.loads(certs.certificate_path(claim).read_bytes())
    target = len(stored["obligations"]) // 2
    real = obligations.note
    count = {"n": 0}

    def dropping(kind, name, **kw):
        k = count["n"]
        count["n"] += 1
        return None if k == target else real(kind, name, **kw)

    monkeypatch.setattr(obligations, "note", dropping)
    out = certs.run_proof(reg[claim], write=False)
    assert not (out.ok and out.unchanged), claim


def _forge(ob: dict) -> None:
    objs = {k: recheck.load_expr(v) for k, v in ob["srepr"].items()}
    if ob["kind"] == "smt-unsat":
        objs["goal"] = sp.Not(objs["goal"])
        ob["smtlib"] = smt.query(list(objs["hypotheses"]), objs["goal"])[0]
    elif ob["kind"] == "smt-sat":
        objs["goal"] = sp.true
        ob["smtlib"] = smt.query(list(objs["hypotheses"]), objs["goal"])[0]
    else:            # identities (derivatives: the claimed derivative): a planted extra term on the right
        side = "rhs" if "rhs" in objs else "claimed"
        objs[side] = objs[side] + sp.Symbol("planted") if not isinstance(objs[side], sp.MatrixBase) \
            else objs[side] + sp.Symbol("planted") * sp.ones(*objs[side].shape)
    ob["srepr"] = {k: sp.srepr(v) for k, v in objs.items()}
    if "latex" in ob:
        ob["latex"] = recheck.statement_latex(ob["kind"], objs)


@pytest.mark.parametrize("path", FAST, ids=[p.stem for p in FAST])
def test_consistent_forgeries_fail_the_recheck(path, tmp_path):
    assert recheck.recheck_file(path).ok
    doc = json.loads(path.read_bytes())
    for kind in sorted({ob["kind"] for ob in doc["obligations"]}):
        forged = json.loads(path.read_bytes())
        k = next(k for k, ob in enumerate(forged["obligations"]) if ob["kind"] == kind)
        _forge(forged["obligations"][k])
        forged["checks_run"] = [f"{o['kind']}: {o['name']}" for o in forged["obligations"]]
        forged["checked_statement"] = [o["latex"] for o in forged["obligations"]
                                       if "latex" in o and len(o["latex"]) <= certs.STATEMENT_CHARS]
        p2 = Path(tmp_path) / f"{kind}_{path.name}"
        p2.write_text(json.dumps(forged, sort_keys=True, indent=2) + "\n")
        assert not recheck.recheck_file(p2).ok, (path.stem, kind)
