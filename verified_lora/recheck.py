"""Standalone re-checker of proof certificates: re-decide every stored obligation with SymPy or z3.

``verified-lora prove --recheck`` (or ``python -m verified_lora.recheck [CERT.json ...]``) reloads
the obligations a certificate stores (see :mod:`verified_lora.symbolic.obligations`) and decides
each again, without importing the derivation code (``verified_lora.symbolic.derive``,
``prooftools``, ``chainrule``) or the proof scripts: only SymPy, z3 for the SMT queries, the
SMT-LIB printer (to confirm that the stored query is the translation of the stored hypotheses and
goal) and the index-notation normal form. It also regenerates each obligation's LaTeX statement
from the reloaded expressions, and the ``checks_run`` / ``checked_statement`` lists, and compares.

Expressions are stored as ``sympy.srepr`` text and reloaded with a restricted evaluator (SymPy
constructors only, no attribute access, no builtins). ``FormalExp`` is re-created here: a function
whose derivative is itself, the only property the proofs use.

Exit status 1 when any obligation fails, any generated text differs, or a certificate has no
obligation that can be re-decided; ``opaque`` obligations (too large to store) are counted and
listed, not re-decided (``verified-lora prove --check`` re-runs them).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sympy as sp

__all__ = ["FormalExp", "load_expr", "statement_latex", "decide", "recheck_file", "recheck_all", "select_paths",
           "default_directory", "main", "RecheckResult"]


class FormalExp(sp.Function):
    """A formal exponential: ``FormalExp' = FormalExp`` (re-created, not imported)."""

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        return self


_SAFE = re.compile(r"^[A-Za-z0-9_\s(),=\[\]'\-+.]*$")
_DOT = re.compile(r"(?<![0-9])\.|\.(?![0-9])")     # a dot only inside a decimal literal
_NAMESPACE: dict[str, Any] = {k: getattr(sp, k) for k in dir(sp) if not k.startswith("_")}
_NAMESPACE.update({"FormalExp": FormalExp, "ExprCondPair": sp.functions.elementary.piecewise.ExprCondPair,
                   "Str": sp.core.symbol.Str,
                   "__builtins__": {}})


def load_expr(text: str) -> Any:
    """Rebuild a SymPy object from its ``srepr`` (restricted: constructors and literals only)."""
    if not _SAFE.match(text) or "__" in text or "lambda" in text or _DOT.search(text):
        raise ValueError("stored expression contains characters outside srepr's alphabet")
    return eval(text, dict(_NAMESPACE))  # noqa: S307 - restricted namespace, checked alphabet


# ------------------------------------------------------------------------------------ statements
def _latex(x: Any) -> str:
    return sp.latex(x, order="lex")


def statement_latex(kind: str, objs: Mapping[str, Any]) -> str:
    """The LaTeX statement of an obligation, generated from its expressions (one source of truth)."""
    if kind in ("identity", "index-identity", "matrix-identity"):
        return f"{_latex(objs['lhs'])} = {_latex(objs['rhs'])}"
    if kind == "differs":
        return f"{_latex(objs['lhs'])} \\neq {_latex(objs['rhs'])}"
    if kind in ("derivative", "index-derivative", "matrix-derivative"):
        return f"\\frac{{\\partial}}{{\\partial {_latex(objs['wrt'])}}}\\left({_latex(objs['expr'])}\\right) = " \
               f"{_latex(objs['claimed'])}"
    if kind in ("smt-unsat", "smt-sat"):
        hyps = list(objs["hypotheses"])
        imp = sp.Implies(sp.And(*hyps, evaluate=False), objs["goal"], evaluate=False) if hyps else objs["goal"]
        return _latex(imp) if kind == "smt-unsat" else f"\\neg\\left({_latex(imp)}\\right)"
    raise ValueError(f"no statement for kind {kind!r}")


# ------------------------------------------------------------------------------------ deciders
def _polys(exprs: Sequence[Any]) -> list[Any]:
    """Formal exponentials and reciprocals of sums of them become independent symbols; polynomials over QQ."""
    exprs = [sp.sympify(e) for e in exprs]
    atoms = sorted(set().union(*[e.atoms(FormalExp) for e in exprs]), key=sp.default_sort_key)
    emap = {a: sp.Symbol(f"_E{k}") for k, a in enumerate(atoms)}
    exprs = [e.xreplace(emap) for e in exprs]
    eset = set(emap.values())
    zmap: dict[Any, sp.Symbol] = {}

    def is_recip(x: Any) -> bool:
        return bool(x.is_Pow and x.exp.is_Integer and x.exp < 0 and x.base.is_Add and x.base.free_symbols
                    and x.base.free_symbols <= eset)

    def to_z(x: Any) -> Any:
        return zmap.setdefault(x.base, sp.Symbol(f"_Z{len(zmap)}")) ** (-x.exp)

    exprs = [e.replace(is_recip, to_z) for e in exprs]
    gens = sorted(set().union(*[e.free_symbols for e in exprs]), key=sp.default_sort_key) or [sp.Symbol("_one")]
    ring = sp.polys.rings.PolyRing(gens, sp.QQ)
    ring = ring[0] if isinstance(ring, tuple) else ring
    return [ring.from_expr(e) for e in exprs]


def _entries(x: Any) -> list[Any]:
    return list(x) if isinstance(x, (sp.MatrixBase, sp.Tuple)) else [x]


def _identity(lhs: Any, rhs: Any, method: str) -> bool:
    a, b = _entries(lhs), _entries(rhs)
    if (getattr(lhs, "shape", None)) != (getattr(rhs, "shape", None)) or len(a) != len(b):
        return False
    if method == "polynomial":
        polys = _polys(a + b)
        return polys[: len(a)] == polys[len(a):]
    if method == "expand":
        return all(sp.expand(x - y) == 0 for x, y in zip(a, b))
    if method == "cancel":
        return all(sp.cancel(sp.together(x - y)) == 0 or sp.simplify(sp.together(x - y)) == 0 for x, y in zip(a, b))
    if method == "exp-cancel":
        return all(_exp_cancel(x - y) for x, y in zip(a, b))
    raise ValueError(f"unknown identity method {method!r}")


def _exp_cancel(d: Any) -> bool:
    d = sp.expand(d, power_exp=True, mul=False, multinomial=False, power_base=False, log=False, basic=False)
    atoms = sorted(d.atoms(sp.exp), key=sp.default_sort_key)
    d = d.xreplace({e: sp.Symbol(f"_E{n}", positive=True) for n, e in enumerate(atoms)})
    return sp.cancel(sp.together(d)) == 0


def _differs(lhs: Any, rhs: Any) -> bool:
    if getattr(lhs, "shape", None) != getattr(rhs, "shape", None) or len(_entries(lhs)) != len(_entries(rhs)):
        return True
    return any(sp.simplify(x - y) != 0 for x, y in zip(_entries(lhs), _entries(rhs)))


def _smt(ob: Mapping[str, Any], objs: Mapping[str, Any]) -> tuple[bool, str]:
    from .symbolic.smtlib import decide as z3_decide
    from .symbolic.smtlib import query

    hyps, goal = list(objs["hypotheses"]), objs["goal"]
    text, dens = query(hyps, goal)
    if ob["kind"] == "smt-sat":
        text, _ = query(hyps + [sp.Ne(d, 0) for d in dens], goal)
    if text != ob["smtlib"]:
        return False, "the stored SMT-LIB query is not the translation of the stored hypotheses and goal"
    ans, _ = z3_decide(ob["smtlib"])
    want = "unsat" if ob["kind"] == "smt-unsat" else "sat"
    if ob.get("answer") != want:
        return False, f"stored answer {ob.get('answer')!r}, expected {want!r}"
    return ans == want, f"z3 answered {ans}"


def decide(ob: Mapping[str, Any]) -> tuple[bool | None, str]:
    """Re-decide one obligation: ``(True, note)`` holds, ``(False, why)`` fails, ``(None, why)`` not re-decidable."""
    kind = ob.get("kind")
    if kind == "opaque":
        return None, f"opaque ({ob.get('decided_as')}): stored as hashes only"
    objs = {k: load_expr(v) for k, v in ob.get("srepr", {}).items()}
    if "latex" in ob and ob["latex"] != statement_latex(kind, objs):
        return False, "stored LaTeX statement differs from the one generated from the expressions"
    expect = ob.get("expect", True)
    if kind == "identity":
        return _identity(objs["lhs"], objs["rhs"], ob["method"]) == expect, ob["method"]
    if kind == "differs":
        return _differs(objs["lhs"], objs["rhs"]), "exact values differ"
    if kind == "derivative":
        d = sp.diff(objs["expr"], objs["wrt"], int(ob.get("order", 1)))
        return (sp.expand(d - objs["claimed"]) == 0) == expect, "sympy.diff, expand"
    if kind in ("smt-unsat", "smt-sat"):
        return _smt(ob, objs)
    if kind in ("index-identity", "index-derivative"):
        from .symbolic import index_normal_form as nf

        if kind == "index-identity":
            got = nf.equal(objs["lhs"], objs["rhs"], ob.get("method", "normal-form"))
        else:
            got = nf.equal(nf.derivative(objs["expr"], objs["wrt"]), objs["claimed"], ob.get("method", "normal-form"))
        return got == expect, ob.get("method", "normal-form")
    if kind in ("matrix-identity", "matrix-derivative"):
        from .symbolic import matrix_calculus as mc

        try:
            if kind == "matrix-identity":
                return mc.identity(objs["lhs"], objs["rhs"]) == expect, "MatrixSymbol calculus, dimension checked"
            return mc.identity(mc.derivative(objs["expr"], objs["wrt"]), objs["claimed"]) == expect, \
                "MatrixSymbol calculus, dimension checked, traces differentiated one by one"
        except mc.DimensionError as exc:
            return False, f"ill-typed: {exc}"
    return False, f"unknown obligation kind {kind!r}"


# ------------------------------------------------------------------------------------ files
@dataclass
class RecheckResult:
    path: Path
    claim: str
    decided: int = 0
    opaque: int = 0
    failures: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failures and self.decided > 0


def recheck_file(path: str | Path) -> RecheckResult:
    """Re-decide every obligation of one certificate and re-generate its derived lists."""
    path = Path(path)
    t0 = time.perf_counter()
    try:
        doc = json.loads(path.read_bytes())
    except Exception as exc:
        return RecheckResult(path, path.stem, failures=[f"unreadable: {exc}"])
    res = RecheckResult(path, str(doc.get("claim", path.stem)))
    obs = doc.get("obligations") or []
    if doc.get("checks_run") != [f"{ob.get('kind')}: {ob.get('name')}" for ob in obs]:
        res.failures.append("checks_run does not list the stored obligations")
    limit = 1500
    if doc.get("checked_statement") != [ob["latex"] for ob in obs if "latex" in ob and len(ob["latex"]) <= limit]:
        res.failures.append("checked_statement is not the list of the obligations' generated statements")
    for ob in obs:
        try:
            ok, note = decide(ob)
        except Exception as exc:  # a malformed obligation fails, with its type
            ok, note = False, f"{type(exc).__name__}: {exc}"
        if ok is None:
            res.opaque += 1
        elif ok:
            res.decided += 1
        else:
            res.failures.append(f"{ob.get('kind')}: {ob.get('name')}: {note}")
    if not obs or res.decided == 0:
        res.failures.append("no obligation that the re-checker can decide")
    res.seconds = time.perf_counter() - t0
    return res


def default_directory() -> Path:
    """Where the shipped certificates live: ``$VERIFIED_LORA_PROOFS/certificates``, else the package's own."""
    import os

    env = os.environ.get("VERIFIED_LORA_PROOFS")
    base = Path(env) if env else Path(__file__).resolve().parent / "proofs"
    return base / "certificates"


def select_paths(claims: Iterable[str] = (), directory: str | Path | None = None) -> list[Path]:
    """Certificate files whose claim id equals or starts with one of ``claims`` (all when empty).

    Raises ``KeyError`` naming a selector that matches nothing.
    """
    directory = default_directory() if directory is None else Path(directory)
    files = sorted(directory.glob("*.json"))
    claims = list(claims)
    if not claims:
        return files
    chosen: dict[Path, None] = {}
    for sel in claims:
        hits = [p for p in files if p.stem.replace("__", "/") == sel or p.stem.replace("__", "/").startswith(sel)]
        if not hits:
            raise KeyError(sel)
        chosen.update(dict.fromkeys(hits))
    return sorted(chosen)


def recheck_all(paths: Iterable[str | Path] | None = None) -> list[RecheckResult]:
    """Re-check the given certificate files (default: every shipped certificate)."""
    paths = select_paths() if not paths else [Path(p) for p in paths]
    return [recheck_file(p) for p in paths]


def main(argv: list[str] | None = None) -> int:
    """``python -m verified_lora.recheck [CERT.json ...]``: print one line per certificate; exit 1 on failure."""
    ap = argparse.ArgumentParser(prog="python -m verified_lora.recheck", description=__doc__.split("\n")[0])
    ap.add_argument("paths", nargs="*", help="certificate files (default: all committed certificates)")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    results = recheck_all(args.paths)
    for r in results:
        status = "ok" if r.ok else "FAILED"
        print(f"{r.claim:30s} {status:6s} decided {r.decided:3d}  opaque {r.opaque:3d}  {r.seconds:6.2f}s")
        for f in r.failures:
            print(f"    {f}")
    bad = [r for r in results if not r.ok]
    total = sum(r.decided for r in results)
    opaque = sum(r.opaque for r in results)
    print(f"{'PASS' if not bad else 'FAIL'}: {len(results) - len(bad)}/{len(results)} certificates re-checked, "
          f"{total} obligations re-decided, {opaque} opaque, in {time.perf_counter() - t0:.1f}s")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
