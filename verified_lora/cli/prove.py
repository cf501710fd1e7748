"""``verified-lora prove``: run the machine-checked proofs and write or re-check their certificates."""

from __future__ import annotations

import argparse
import json
import time

from ._common import json_or_markdown, progress, quiet_flag

__all__ = ["add", "run"]


def add(sub: argparse._SubParsersAction) -> None:
    """Register the ``prove`` subcommand."""
    p = sub.add_parser("prove", help="run the machine-checked proofs and write/re-check their certificates",
                       description="Run the SymPy proofs of the paper's claims (and the counterexamples to its printed "
                                   "errors; see ERRATA.md), print claim / level / scope / result / time, and write the "
                                   "certificates (shipped in verified_lora/proofs/certificates/). CLAIM selects by id or id prefix.",
                       parents=[json_or_markdown("print the rows as JSON", "print the tables as Markdown"), quiet_flag()])
    p.add_argument("claims", nargs="*", metavar="CLAIM", help="claim ids or prefixes (default: all)")
    p.add_argument("--list", action="store_true", help="list the registered claims and exit")
    p.add_argument("--check", action="store_true",
                   help="re-run and compare with the stored certificates byte for byte; write nothing")
    p.add_argument("--no-write", action="store_true", help="run the proofs but do not write certificates")
    p.add_argument("--recheck", action="store_true",
                   help="re-decide every obligation stored in the certificates with SymPy or z3 alone, without "
                        "running the proofs or importing the derivation code; write nothing")
    p.set_defaults(func=run)


def _short(text: str, n: int = 58) -> str:
    return text if len(text) <= n else text[: n - 3] + "..."


def _recheck(args: argparse.Namespace) -> int:
    """``prove --recheck``: the standalone re-checker over the selected certificates."""
    from .. import recheck
    from .._table import format_table
    from ..errors import InputError

    t0 = time.perf_counter()
    try:
        paths = recheck.select_paths(args.claims)
    except KeyError as exc:
        raise InputError("CLAIM", "a claim id or prefix of a shipped certificate", str(exc)) from None
    report = progress(args)
    results = []
    for k, path in enumerate(paths, start=1):
        report(f"[{k}/{len(paths)}] {path.stem.replace('__', '/')}")
        results.append(recheck.recheck_file(path))
    ok = bool(results) and all(r.ok for r in results)
    seconds = time.perf_counter() - t0
    if args.json:
        print(json.dumps({"passed": ok, "seconds": round(seconds, 2),
                          "rows": [{"claim": r.claim, "ok": r.ok, "decided": r.decided, "opaque": r.opaque,
                                    "seconds": round(r.seconds, 3), "failures": r.failures} for r in results]},
                         indent=2))
        return 0 if ok else 1
    rows = [(r.claim, "ok" if r.ok else "FAIL", r.decided, r.opaque, f"{r.seconds:.2f}",
             _short("; ".join(r.failures), 70)) for r in results]
    print(format_table(("claim", "re-check", "decided", "opaque", "time s", "failures"), rows))
    print(f"\n{'PASS' if ok else 'FAIL'}: {sum(r.ok for r in results)}/{len(results)} certificates re-checked, "
          f"{sum(r.decided for r in results)} obligations re-decided, {sum(r.opaque for r in results)} opaque "
          f"(re-run only by --check), in {seconds:.1f}s")
    return 0 if ok else 1


def run(args: argparse.Namespace) -> int:
    """List the claims, or run the proofs and print one row per claim; exit code 1 when one failed."""
    from .._table import format_table
    from ..errors import InputError
    from ..symbolic import certificates, prove

    if args.recheck:
        if args.check or args.no_write or args.list:
            raise InputError("--recheck", "alone (it neither runs the proofs nor writes)",
                             "combined with --check, --no-write or --list")
        return _recheck(args)
    if args.list:
        certificates.discover()
        rows = [(p.claim, p.expect, p.title) for p in certificates.select()]
        print(format_table(("claim", "expected", "title"), rows))
        return 0
    t0 = time.perf_counter()
    try:
        rows = prove.run(args.claims, check=args.check, write=not args.no_write, progress=progress(args))
    except KeyError as exc:
        raise InputError("CLAIM", "a registered claim id or prefix (see `verified-lora prove --list`)",
                         str(exc)) from None
    orphans = prove.orphan_certificates() if args.check and not args.claims else []
    ok = all(r.ok for r in rows) and not orphans
    if args.json:
        print(json.dumps({"passed": ok, "seconds": round(time.perf_counter() - t0, 2),
                          "orphans": [p.name for p in orphans],
                          "rows": [{"claim": r.claim, "level": r.level, "scope": r.scope, "result": r.result,
                                    "seconds": round(r.seconds, 3), "certificate": r.certificate, "ok": r.ok,
                                    "message": r.message} for r in rows]}, indent=2))
        return 0 if ok else 1

    table = [(r.claim, r.level, _short(r.scope), r.result if r.ok else f"FAIL: {_short(r.message, 70)}",
              f"{r.seconds:.2f}", r.certificate) for r in rows]
    print(format_table(("claim", "level", "scope", "result", "time s", "certificate"), table))
    for p in orphans:
        print(f"stale certificate (no registered proof): {p}")
    levels: dict[str, int] = {}
    for r in rows:
        levels[r.level] = levels.get(r.level, 0) + 1
    summary = ", ".join(f"{n} {lvl}" for lvl, n in sorted(levels.items()))
    print(f"\n{'PASS' if ok else 'FAIL'}: {sum(r.ok for r in rows)}/{len(rows)} claims ({summary}) in "
          f"{time.perf_counter() - t0:.1f}s")
    return 0 if ok else 1
