"""``verified-lora prove``: run the registered proofs, write or re-check their certificates.

Proofs are discovered with :func:`verified_lora.symbolic.certificates.discover` (every
``proofs/*.py`` script and every module in ``PROOF_MODULES``). Each run yields one row:
claim / level / scope / result / seconds / certificate status ("unchanged", "updated", "new",
or with ``check=True`` "identical" / "DIFFERS" / "missing").

:func:`verify_section` is the ``verified-lora verify`` provider: it re-runs the quick proofs listed
in :data:`VERIFY_CLAIMS` (byte-compared with the committed certificates) and checks that every
committed certificate parses and belongs to a registered proof; the full re-run is
``verified-lora prove --check``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from . import certificates as certs

__all__ = ["ProveRow", "run", "orphan_certificates", "verify_section", "VERIFY_CLAIMS"]

Progress = Callable[[str], None]

VERIFY_CLAIMS: tuple[str, ...] = (
    "lemma-3.2", "lemmas-d.3-d.4", "v-adapter", "rowwise-kronecker", "theorem-f.1", "lemma-d.2", "erratum/",
)
"""Claims (id or prefix) re-run by ``verified-lora verify``: the quick ones (a few seconds in all)."""


@dataclass(frozen=True)
class ProveRow:
    claim: str
    level: str
    scope: str
    result: str
    seconds: float
    certificate: str
    ok: bool
    message: str = ""


def run(claims: Iterable[str] | None = None, *, check: bool = False, write: bool = True,
        directory: str | Path | None = None, progress: Progress | None = None) -> list[ProveRow]:
    """Run the selected proofs (all by default).

    ``check=True`` writes nothing and fails any proof whose regenerated certificate differs from
    the stored one (only the ``tools`` field may differ) or is missing. Otherwise certificates are
    written (``write=True``) and their status reported. Raises ``KeyError`` for an unknown claim.
    """
    progress = progress or (lambda msg: None)
    certs.discover()
    selected = certs.select(list(claims or []))
    rows = []
    for k, proof in enumerate(selected, start=1):
        progress(f"[{k}/{len(selected)}] {proof.claim}")
        out = certs.run_proof(proof, write=write and not check, directory=directory)
        cert = out.certificate
        status, ok, msg = "-", out.ok, out.message
        if out.ok and cert is not None:
            path = certs.certificate_path(cert.claim, directory)
            if check:
                if not path.exists():
                    status, ok, msg = "missing", False, f"no stored certificate {path.name}"
                else:
                    fresh = json.loads(certs.certificate_bytes(cert))
                    stored = json.loads(path.read_bytes())
                    if out.unchanged:
                        status = "identical"
                    elif {k2: v for k2, v in fresh.items() if k2 != "tools"} == \
                            {k2: v for k2, v in stored.items() if k2 != "tools"}:
                        status, msg = "identical (tools differ)", f"stored tools {stored.get('tools')}"
                    else:
                        diff = sorted(k2 for k2 in set(fresh) | set(stored) if fresh.get(k2) != stored.get(k2))
                        status, ok, msg = "DIFFERS", False, f"regenerated certificate differs in {diff}"
            else:
                status = {None: "new", True: "unchanged", False: "updated"}[out.unchanged] if write else "not written"
        rows.append(ProveRow(proof.claim, cert.level if cert else "-", cert.scope if cert else "-",
                             cert.result if cert else "FAILED", out.seconds, status, ok, msg))
    return rows


def orphan_certificates(directory: str | Path | None = None) -> list[Path]:
    """Stored certificates whose claim has no registered proof (stale files)."""
    certs.discover()
    directory = certs.certificates_dir() if directory is None else Path(directory)
    known = {certs.certificate_path(c, directory).name for c in certs.registry()}
    return sorted(p for p in directory.glob("*.json") if p.name not in known)


def verify_section(problem, progress: Progress):
    """verify provider: quick proofs re-run and byte-compared; every certificate parses and is claimed."""
    from ..verify import Check, Section

    section = Section("symbolic proofs and certificates")
    t0 = time.perf_counter()
    try:
        rows = run(VERIFY_CLAIMS, check=True, progress=progress)
    except KeyError as exc:
        section.checks.append(Check("quick proofs", False, detail=f"unknown claim {exc}"))
        return section
    for row in rows:
        section.checks.append(Check(f"{row.claim} ({row.level})", row.ok, f"{row.seconds:.2f}s", None,
                                    f"{row.result}; certificate {row.certificate}" + (f"; {row.message}" if row.message else "")))
    stored = sorted(certs.certificates_dir().glob("*.json"))
    bad = []
    for path in stored:
        try:
            doc = json.loads(path.read_bytes())
            if doc.get("level") not in certs.LEVELS or doc.get("result") not in certs.RESULTS:
                bad.append(path.name)
        except Exception:
            bad.append(path.name)
    orphans = orphan_certificates()
    section.checks.append(Check("stored certificates well-formed", not bad, len(stored), None,
                                "malformed: " + ", ".join(bad) if bad else "level/result fields valid in every file"))
    section.checks.append(Check("every certificate has a registered proof", not orphans, len(orphans), 0,
                                ", ".join(p.name for p in orphans) or "no stale certificates"))
    rerun = {r.claim for r in rows}
    skipped = sorted(set(certs.registry()) - rerun)
    section.checks.append(Check("slower proofs (not re-run here)", None, len(skipped), None,
                                "run `verified-lora prove --check` for: " + ", ".join(skipped)))
    section.seconds = time.perf_counter() - t0
    return section
