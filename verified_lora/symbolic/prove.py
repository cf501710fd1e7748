"""``verified-lora prove``: run the registered proofs, write or re-check their certificates.

Proofs are discovered with :func:`verified_lora.symbolic.certificates.discover` (every
``verified_lora/proofs/*.py`` script and every module in ``PROOF_MODULES``). Each run yields one row:
claim / level / scope / result / seconds / certificate status ("unchanged", "updated", "new",
or with ``check=True`` "identical" / "DIFFERS" / "missing").

The ``verified-lora verify`` section that re-runs the quick proofs is
:func:`verified_lora.verify.proofs.proofs_section`; the full re-run is ``verified-lora prove --check``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from . import certificates as certs

__all__ = ["ProveRow", "run", "orphan_certificates"]

Progress = Callable[[str], None]


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
