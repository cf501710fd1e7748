"""How close do correct implementations come to the audit's derived bounds? (worst error / bound per check)

Run from the repository root::

    python3 benchmarks/audit_bound_margin.py [--seeds 11 12 13] [--examples 6]
        [--out benchmarks/results/audit_bound_margin.md]

Audits PEFT, loralib and the correct controls of verified_lora/testing/broken_lora.py for several seeds and
reports, per check, the largest observed ``max error / allowed bound`` (a ratio above 1 would be a
failed check, i.e. a bug in the implementation or in the bound). A ratio far below 1 measures how
conservative the derivation is. ``grad_nonzero`` is omitted (its pair is rounding level / |grad|).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.getcwd())

TARGETS = ("peft", "loralib", "verified_lora.testing.broken_lora:good", "verified_lora.testing.broken_lora:good_merged",
           "verified_lora.testing.broken_lora:custom_backward", "verified_lora.testing.broken_lora:torchtune_style",
           "verified_lora.testing.broken_lora:attention_good")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[11, 12, 13])
    parser.add_argument("--examples", type=int, default=6)
    parser.add_argument("--out", default="benchmarks/results/audit_bound_margin.md")
    args = parser.parse_args()

    from verified_lora.audit import audit
    from verified_lora.audit import check_names

    worst: dict[str, tuple[float, str]] = {}
    failures = []
    n_results = 0
    t_all = time.perf_counter()
    for seed in args.seeds:
        for target in TARGETS:
            print(f"seed {seed}: {target}", file=sys.stderr, flush=True)
            report = audit(target, seed=seed, examples=args.examples)
            failures += [(seed, r.case, r.check, r.detail) for r in report.failures]
            for r in report.results:
                if r.check == "grad_nonzero" or r.max_error is None or not r.bound:
                    continue
                n_results += 1
                ratio = float(r.max_error) / float(r.bound)
                if ratio >= worst.get(r.check, (-1.0, ""))[0]:
                    worst[r.check] = (ratio, f"{r.case} (seed {seed})")
    lines = ["# Audit bound margins on correct implementations", "",
             f"`python3 benchmarks/audit_bound_margin.py --seeds {' '.join(map(str, args.seeds))} "
             f"--examples {args.examples}`: {len(TARGETS)} targets x {len(args.seeds)} seeds x "
             f"{args.examples} examples per case ({n_results} check results, {time.perf_counter() - t_all:.0f} s "
             f"on {os.cpu_count()} cores). Failures: {len(failures)}.", "",
             "| check | worst error / bound | where |", "|---|---|---|"]
    for check in check_names():
        if check in worst:
            ratio, where = worst[check]
            lines.append(f"| `{check}` | {ratio:.3g} | {where} |")
    for f in failures:
        lines.append(f"\nFAILURE: {f}")
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as fh:
        fh.write("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
