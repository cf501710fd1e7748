"""Proof certificates: a deterministic JSON record per machine-checked claim, and the proof registry.

A *proof* is a function ``() -> Certificate`` that checks one claim of the paper (or refutes
one printed error) and describes what it checked. A *certificate* is its JSON record, written
under ``verified_lora/proofs/certificates/`` with deterministic bytes (sorted keys, no timestamps, no
timings), so re-running a proof must reproduce the committed file byte for byte.

Writing a proof (other modules do the same)::

    # verified_lora/proofs/feature_map_identity.py   (any file there not starting with "_")
    from verified_lora.symbolic.certificates import Certificate, register_proof, run_main

    @register_proof("feature-map-identity", title="P(beta<u,v>) = <phi_U(u), phi_V(v)>",
                    paper={"iclr2025": "Lemma 3.3 (construction)"})
    def prove() -> Certificate:
        ...                                   # SymPy work; raise ProofFailure if it does not hold
        return Certificate(claim="feature-map-identity", title="...", statement=r"...",
                           level="generic", method="...", scope="...", result="proved",
                           expressions={"lhs": lhs, "rhs": rhs})

    if __name__ == "__main__":      # python -m verified_lora.proofs.feature_map_identity
        raise SystemExit(run_main(__name__))

``verified-lora prove`` imports every ``verified_lora/proofs/*.py`` script and every module listed in
:data:`PROOF_MODULES` (append yours there if the proof lives inside the package); importing runs
the ``@register_proof`` decorators. Then it runs the selected proofs and writes or re-checks
their certificates.

Fields of a certificate (see :class:`Certificate`):

* ``claim``: stable id, e.g. ``"lemma-3.2"``, ``"erratum/q-orientation"`` (file name = id with
  ``/`` replaced by ``__``);
* ``title``, ``statement`` (LaTeX), ``paper`` (numbering in the ICLR 2025 camera-ready and the
  cross-reference to arXiv v2);
* ``level``: one of :data:`LEVELS`: ``"generic"`` (symbolic sizes: index notation or
  MatrixSymbol calculus), ``"small-scope"`` (exact identity for every shape in ``scope``, fully
  symbolic entries), ``"counterexample"`` (the printed statement is false: exact rational data in
  ``data``), ``"certified-numeric"`` (interval enclosures with outward rounding);
* ``method``, ``scope``: how and for which shapes it was checked, in words;
* ``result``: ``"proved"`` or ``"refuted"`` (``"refuted"`` exactly for level ``counterexample``);
* ``expressions``: ``{name: sha256 of sympy.srepr(expr)}`` and ``expressions_sha256`` (hash of
  the sorted name/hash pairs): a drift in any derived expression changes the bytes;
* ``data``: exact, JSON-able evidence (rationals as ``"p/q"`` strings, see :func:`exact_json`);
* ``tools``: ``{"sympy": version}``.

:func:`check_certificate` re-runs the proof that wrote a certificate and compares bytes; only
the ``tools`` field may differ (reported, not failed) when another SymPy version is installed.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
import os
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "LEVELS",
    "RESULTS",
    "PROOF_MODULES",
    "Certificate",
    "Proof",
    "ProofFailure",
    "ProofOutcome",
    "CheckOutcome",
    "register_proof",
    "registry",
    "discover",
    "select",
    "run_proof",
    "check_certificate",
    "write_certificate",
    "certificate_bytes",
    "certificate_path",
    "proofs_dir",
    "certificates_dir",
    "expression_hash",
    "exact_json",
    "run_main",
]

LEVELS: tuple[str, ...] = ("generic", "small-scope", "counterexample", "certified-numeric")
"""Levels of assurance a certificate can carry (docs/design.md section 5)."""

RESULTS: tuple[str, ...] = ("proved", "refuted")

FORMAT_VERSION = 1

PROOF_MODULES: list[str] = []
"""Package modules that register proofs with :func:`register_proof` (imported by :func:`discover`)."""


class ProofFailure(AssertionError):
    """A proof did not go through: the claimed identity (or the refutation) failed to check."""


# ------------------------------------------------------------------------------------ encoding
def expression_hash(expr: Any) -> str:
    """``sha256`` (hex) of the canonical ``sympy.srepr`` of ``expr`` (lists/tuples hashed elementwise)."""
    import sympy

    if isinstance(expr, (list, tuple)):
        text = "[" + ",".join(expression_hash(e) for e in expr) + "]"
    else:
        expr = sympy.sympify(expr)
        if expr.atoms(sympy.Dummy):
            raise ValueError("expression_hash: expression contains Dummy symbols, whose srepr is not "
                             "reproducible; rename them first (e.g. prooftools.canonical_bound)")
        text = sympy.srepr(expr)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def exact_json(obj: Any) -> Any:
    """JSON-able exact form: Rationals as ``"p/q"`` (integers as ``"p"``), matrices as nested lists.

    Floats are refused (a certificate holds exact data only); str/int/bool/None pass through.
    """
    import sympy

    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, int):
        return obj
    if isinstance(obj, float):
        raise TypeError("certificates hold exact data only: got a float; use sympy.Rational")
    if isinstance(obj, Mapping):
        return {str(k): exact_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [exact_json(v) for v in obj]
    if isinstance(obj, sympy.MatrixBase):
        return [[exact_json(obj[i, j]) for j in range(obj.shape[1])] for i in range(obj.shape[0])]
    if isinstance(obj, sympy.Basic):
        if isinstance(obj, sympy.Rational):
            return str(obj)
        return sympy.sstr(obj, order="lex")
    raise TypeError(f"cannot encode {type(obj).__name__} in a certificate")


# ------------------------------------------------------------------------------------ certificate
@dataclass(frozen=True)
class Certificate:
    """The record of one machine-checked claim. ``expressions`` are hashed, never stored in full.

    ``level`` is one of :data:`LEVELS`; ``result`` is ``"refuted"`` for a counterexample and
    ``"proved"`` otherwise. ``paper`` maps edition to numbering, e.g.
    ``{"iclr2025": "Lemma 3.2", "arxiv_v2": "Lemma 3.2"}``; ``errata`` names ERRATA.md entries.
    """

    claim: str
    title: str
    statement: str
    level: str
    method: str
    scope: str
    result: str
    expressions: Mapping[str, Any] = field(default_factory=dict)
    data: Mapping[str, Any] = field(default_factory=dict)
    paper: Mapping[str, str] = field(default_factory=dict)
    errata: tuple[str, ...] = ()
    obligations: tuple[Mapping[str, Any], ...] = ()
    on_paper: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.level not in LEVELS:
            raise ValueError(f"certificate {self.claim!r}: level must be one of {LEVELS}, got {self.level!r}")
        if self.result not in RESULTS:
            raise ValueError(f"certificate {self.claim!r}: result must be one of {RESULTS}, got {self.result!r}")
        if (self.level == "counterexample") != (self.result == "refuted"):
            raise ValueError(f"certificate {self.claim!r}: level 'counterexample' goes with result 'refuted'")
        if not self.claim or any(ch.isspace() for ch in self.claim):
            raise ValueError(f"certificate claim id must be non-empty without spaces: {self.claim!r}")

    def to_json(self) -> dict[str, Any]:
        """The JSON document (plain dict) of this certificate."""
        import sympy

        hashes = {str(k): expression_hash(v) for k, v in self.expressions.items()}
        overall = hashlib.sha256("".join(f"{k}={hashes[k]};" for k in sorted(hashes)).encode()).hexdigest()
        return {
            "format": FORMAT_VERSION,
            "claim": self.claim,
            "title": self.title,
            "statement": self.statement,
            "level": self.level,
            "method": self.method,
            "scope": self.scope,
            "result": self.result,
            "paper": dict(self.paper),
            "errata": list(self.errata),
            "expressions": hashes,
            "expressions_sha256": overall,
            "data": exact_json(dict(self.data)),
            "obligations": [dict(ob) for ob in self.obligations],
            "checks_run": [f"{ob['kind']}: {ob['name']}" for ob in self.obligations],
            "checked_statement": [ob["latex"] for ob in self.obligations
                                  if "latex" in ob and len(ob["latex"]) <= STATEMENT_CHARS],
            "stated_on_paper": list(self.on_paper),
            "tools": _tools(self.obligations),
        }


STATEMENT_CHARS = 1500
"""Obligations whose generated LaTeX is at most this long are listed in ``checked_statement``."""


def _tools(obligations: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    import sympy

    tools = {"sympy": sympy.__version__}
    if any(ob.get("solver") == "z3" for ob in obligations):
        from .smtlib import solver_version

        tools["z3"] = solver_version()
    return tools


def certificate_bytes(cert: Certificate) -> bytes:
    """Deterministic bytes: sorted keys, 2-space indent, ASCII, trailing newline."""
    return (json.dumps(cert.to_json(), sort_keys=True, indent=2, ensure_ascii=True) + "\n").encode("ascii")


def proofs_dir() -> Path:
    """The proof scripts' directory: ``$VERIFIED_LORA_PROOFS``, else the package's own ``verified_lora/proofs``.

    The scripts and their ``certificates/*.json`` ship inside the package (package data), so an
    installed wheel finds them without the source repository.
    """
    env = os.environ.get("VERIFIED_LORA_PROOFS")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[1] / "proofs"


def certificates_dir() -> Path:
    """The committed certificates: ``certificates/`` under :func:`proofs_dir`."""
    return proofs_dir() / "certificates"


def certificate_path(claim: str, directory: str | Path | None = None) -> Path:
    """Where the certificate of ``claim`` lives (``/`` in the id becomes ``__``)."""
    directory = certificates_dir() if directory is None else Path(directory)
    return directory / (claim.replace("/", "__") + ".json")


def write_certificate(cert: Certificate, directory: str | Path | None = None) -> Path:
    """Write ``cert`` under ``directory`` (default :func:`certificates_dir`); returns the path."""
    path = certificate_path(cert.claim, directory)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = certificate_bytes(cert)
    if not path.exists() or path.read_bytes() != data:
        path.write_bytes(data)
    return path


# ------------------------------------------------------------------------------------ registry
@dataclass(frozen=True)
class Proof:
    """A registered proof: ``run()`` returns the certificate or raises :class:`ProofFailure`."""

    claim: str
    title: str
    run: Callable[[], Certificate]
    source: str
    expect: str = "proved"
    paper: Mapping[str, str] = field(default_factory=dict)


_REGISTRY: dict[str, Proof] = {}


def register_proof(claim: str, *, title: str = "", expect: str = "proved",
                   paper: Mapping[str, str] | None = None) -> Callable[[Callable[[], Certificate]], Callable[[], Certificate]]:
    """Decorator registering ``fn() -> Certificate`` as the proof of ``claim``.

    ``expect`` is ``"proved"`` or ``"refuted"`` (a counterexample to a printed statement).
    Re-registering the same claim from the same source replaces it (re-imports are harmless);
    from another source it is an error.
    """
    if expect not in RESULTS:
        raise ValueError(f"expect must be one of {RESULTS}")

    def deco(fn: Callable[[], Certificate]) -> Callable[[], Certificate]:
        source = getattr(fn, "__module__", "?")
        mod = sys.modules.get(source)
        source = getattr(mod, "__file__", None) or source
        old = _REGISTRY.get(claim)
        if old is not None and Path(str(old.source)).name != Path(str(source)).name:
            raise ValueError(f"claim {claim!r} is registered twice ({old.source} and {source})")
        _REGISTRY[claim] = Proof(claim, title or claim, fn, str(source), expect, dict(paper or {}))
        return fn

    return deco


def registry() -> dict[str, Proof]:
    """Proofs registered so far (call :func:`discover` first to load them all)."""
    return dict(_REGISTRY)


def _load_script(path: Path) -> None:
    name = "verified_lora_proofs." + path.stem
    if name in sys.modules:
        return
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:  # pragma: no cover
        raise ImportError(f"cannot load proof script {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise


def discover(directory: str | Path | None = None, modules: Iterable[str] | None = None) -> dict[str, Proof]:
    """Import every script in :func:`proofs_dir` (``*.py``, not ``_*``) and every module in :data:`PROOF_MODULES`."""
    directory = proofs_dir() if directory is None else Path(directory)
    for mod in list(PROOF_MODULES if modules is None else modules):
        importlib.import_module(mod)
    if directory.is_dir():
        for path in sorted(directory.glob("*.py")):
            if not path.name.startswith("_"):
                _load_script(path)
    return registry()


def select(claims: Iterable[str] | None = None) -> list[Proof]:
    """Registered proofs whose id equals, or starts with, one of ``claims`` (all when empty).

    Raises ``KeyError`` naming the unknown selector when one matches nothing.
    """
    proofs = sorted(_REGISTRY.values(), key=lambda p: p.claim)
    claims = list(claims or [])
    if not claims:
        return proofs
    chosen: dict[str, Proof] = {}
    for sel in claims:
        hits = [p for p in proofs if p.claim == sel or p.claim.startswith(sel)]
        if not hits:
            raise KeyError(sel)
        for p in hits:
            chosen[p.claim] = p
    return sorted(chosen.values(), key=lambda p: p.claim)


# ------------------------------------------------------------------------------------ running
@dataclass(frozen=True)
class ProofOutcome:
    """What running one proof gave. ``ok`` is True when it produced its expected result."""

    proof: Proof
    ok: bool
    seconds: float
    certificate: Certificate | None = None
    path: Path | None = None
    message: str = ""
    unchanged: bool | None = None  # bytes identical to the certificate already on disk


def run_proof(proof: Proof, *, write: bool = True, directory: str | Path | None = None) -> ProofOutcome:
    """Run ``proof``; on success write its certificate (unless ``write=False``).

    ``unchanged`` tells whether the regenerated bytes equal those on disk (None if absent).
    A proof that raises, or returns a certificate for another claim or with the wrong result,
    fails; nothing is written then.
    """
    from dataclasses import replace

    from . import obligations as obl

    t0 = time.perf_counter()
    try:
        with obl.recording() as log:
            cert = proof.run()
        if isinstance(cert, Certificate) and not cert.obligations:
            cert = replace(cert, obligations=tuple(log))
    except ProofFailure as exc:
        return ProofOutcome(proof, False, time.perf_counter() - t0, message=f"proof failed: {exc}")
    except Exception as exc:  # a crash is a failure too, reported with its type
        return ProofOutcome(proof, False, time.perf_counter() - t0, message=f"{type(exc).__name__}: {exc}")
    seconds = time.perf_counter() - t0
    if not isinstance(cert, Certificate) or cert.claim != proof.claim:
        return ProofOutcome(proof, False, seconds, message="proof returned no certificate for its claim")
    if cert.result != proof.expect:
        return ProofOutcome(proof, False, seconds, cert, message=f"expected {proof.expect}, got {cert.result}")
    path = certificate_path(cert.claim, directory)
    data = certificate_bytes(cert)
    unchanged = path.read_bytes() == data if path.exists() else None
    if write:
        write_certificate(cert, directory)
    return ProofOutcome(proof, True, seconds, cert, path, "", unchanged)


@dataclass(frozen=True)
class CheckOutcome:
    """Result of re-checking a stored certificate."""

    path: Path
    claim: str
    ok: bool
    seconds: float
    message: str = ""


def _without_tools(doc: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if k != "tools"}


def check_certificate(path: str | Path) -> CheckOutcome:
    """Re-run the proof that wrote ``path`` and compare the regenerated certificate with it.

    Passes when the bytes are identical, or when only ``tools`` differs (another SymPy version;
    said in the message). Fails on unknown claim, malformed JSON, a failing proof or any other
    difference (the message names the differing fields).
    """
    path = Path(path)
    t0 = time.perf_counter()
    try:
        stored_bytes = path.read_bytes()
        stored = json.loads(stored_bytes)
        claim = stored["claim"]
    except Exception as exc:
        return CheckOutcome(path, path.stem, False, time.perf_counter() - t0, f"unreadable certificate: {exc}")
    if claim not in _REGISTRY:
        discover()
    proof = _REGISTRY.get(claim)
    if proof is None:
        return CheckOutcome(path, claim, False, time.perf_counter() - t0, "no registered proof for this claim")
    outcome = run_proof(proof, write=False)
    seconds = time.perf_counter() - t0
    if not outcome.ok or outcome.certificate is None:
        return CheckOutcome(path, claim, False, seconds, outcome.message)
    fresh_bytes = certificate_bytes(outcome.certificate)
    if fresh_bytes == stored_bytes:
        return CheckOutcome(path, claim, True, seconds, "identical bytes")
    fresh = json.loads(fresh_bytes)
    if _without_tools(fresh) == _without_tools(stored):
        return CheckOutcome(path, claim, True, seconds, f"identical except tools: stored {stored.get('tools')}, "
                                                          f"installed {fresh['tools']}")
    diff = sorted(k for k in set(fresh) | set(stored) if fresh.get(k) != stored.get(k))
    return CheckOutcome(path, claim, False, seconds, f"regenerated certificate differs in {diff}")


def run_main(module_name: str, argv: list[str] | None = None) -> int:
    """``if __name__ == "__main__"`` helper of a proof script: run its proofs, write certificates."""
    module = sys.modules[module_name]
    here = getattr(module, "__file__", "")
    proofs = [p for p in _REGISTRY.values() if Path(p.source).name == Path(here).name]
    code = 0
    for proof in sorted(proofs, key=lambda p: p.claim):
        out = run_proof(proof)
        status = "ok" if out.ok else "FAILED"
        cert = out.certificate
        extra = f"{cert.level}, {cert.result}" if cert else out.message
        print(f"{proof.claim}: {status} ({extra}; {out.seconds:.2f}s)" + (f" -> {out.path}" if out.path else ""))
        code |= 0 if out.ok else 1
    return code
