"""verify section: the quick symbolic proofs re-run and byte-compared; every stored certificate checked.

The full re-run is ``verified-lora prove --check``.
"""

from __future__ import annotations

import json
import time

from ..problem import LoraAttention
from .core import Check, Progress, Section

__all__ = ["proofs_section", "VERIFY_CLAIMS"]

VERIFY_CLAIMS: tuple[str, ...] = (
    "bounds-f-", "rowwise-kronecker", "theorem-f.1", "lemma-d.2", "erratum/",
)
"""Claims (id or prefix) re-run by ``verified-lora verify``: the quick ones (a few seconds in all; the
generic gradient proofs, which differentiate the whole loss in index notation, take several seconds
each and are left to ``verified-lora prove --check`` / ``--recheck``)."""


def proofs_section(problem: LoraAttention | None, progress: Progress) -> Section:
    """Quick proofs re-run and byte-compared; every certificate parses and is claimed (``problem`` unused)."""
    from ..symbolic import certificates as certs
    from ..symbolic.prove import orphan_certificates, run

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
                                "run `verified-lora prove --check` (or the standalone `prove --recheck`) for: "
                                + ", ".join(skipped)))
    section.seconds = time.perf_counter() - t0
    return section
