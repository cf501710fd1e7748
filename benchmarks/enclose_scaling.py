"""Benchmark: the blocked interval enclosure (python-flint balls) at L = 1k, 4k, 16k; 1 and 2 workers.

For each (d, L, workers) a fresh child process runs
:func:`verified_lora.reference.enclose_blocked` on the fast-path benchmark problem
(self-attention, d_model = d_head = d_v = d, rank-4 LoRA on Q, K, V, certified score bound R = 1;
``verified_lora.fast.bench.make_problem``) and reports wall time, the largest relative width over
the loss and every gradient, and the peak resident memory of the child and all its descendants
(dask workers included), sampled every 0.2 s. ``workers = 1`` is the serial in-process runner;
``workers >= 2`` a dask LocalCluster (cluster start-up included in the time).

``--check-fast`` additionally runs the certified fast path (``verified_lora.fast.loss_and_grads``,
factored, ``tol`` relative, forced fast) on the same problem in the child and checks its certificate
against the enclosure: for every adapter-gradient and weight-gradient entry, ``bound >= |fast - midpoint| + radius``
(= ``max(fast - lo, hi - fast)``, computed exactly), reporting the margin ``bound / that``.

Cells: ``--cell D,L,WORKERS`` (repeatable; a fourth field ``fast`` adds the fast-path check to that
cell), or the grid ``--d`` x ``--L`` x ``--workers``. Before each cell the serial time is estimated
by timing one block of query rows in this process (:func:`verified_lora.reference.calibrate_plan`);
a cell whose estimate, divided by its workers, exceeds ``--max-seconds`` is skipped and listed as
such; nothing is extrapolated into the table. ``--estimate-only`` prints those estimates and runs
nothing.

Usage::

    nice -n 19 python benchmarks/enclose_scaling.py --cell 8,1024,1 --cell 8,1024,2 --cell 64,4096,1
    nice -n 19 python benchmarks/enclose_scaling.py --cell 8,16384,2,fast
    python benchmarks/enclose_scaling.py --estimate-only --cell 64,16384,1

Appends one JSON line per run to ``--jsonl`` (default ``benchmarks/results/enclose_scaling.jsonl``)
and rewrites ``--md`` (default ``benchmarks/results/enclose_scaling.md``) from the lines of the
current formulation (:data:`FORMULATION`; the latest line per configuration; earlier lines stay in
the jsonl). A benchmark, never a test.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
RESULTS = HERE / "results"

FORMULATION = 2
"""Version of the chunk arithmetic the records measure: 1 = six L_k-long products per block (before
2026-11-30), 2 = four, each with an exact float64 factor. The table shows the current one only."""


def _child(args: argparse.Namespace) -> dict:
    """One configuration, in this (child) process; returns the record."""
    import flint

    from verified_lora.fast.bench import make_problem
    from verified_lora.reference import enclose_blocked, plan_blocks

    p = make_problem(args.one_d, args.one_L, args.R)
    plan = plan_blocks(p, args.digits)
    workers = None if args.one_workers == 1 else args.one_workers
    t0 = time.perf_counter()
    enc = enclose_blocked(p, args.digits, workers=workers)
    seconds = time.perf_counter() - t0
    widths = enc.relative_widths()
    rec = {"d": args.one_d, "L": args.one_L, "workers": args.one_workers, "digits": args.digits,
           "seconds": seconds, "startup_s": enc.info.get("startup_s", 0.0),
           "chunk_cpu_s": enc.info.get("chunk_cpu_s"), "max_relative_width": max(widths.values()), "widths": widths,
           "prec_bits": enc.info["prec_bits"], "attempts": len(enc.info["attempts"]),
           "chunks": plan.chunks, "block_rows": plan.block, "model_estimate_s": plan.estimate_s,
           "target_met": enc.info["target_met"], "flint": flint.__version__, "formulation": FORMULATION,
           "chunk_cpu_us_per_entry": enc.info.get("chunk_cpu_s", 0.0) / (p.n_batch * p.L * p.L_k) * 1e6,
           "estimate_calibrated_s": args.estimate}
    if args.check_fast:
        from verified_lora import fast

        t1 = time.perf_counter()
        res = fast.loss_and_grads(p, tol=args.tol, force="fast")
        rec["fast_seconds"] = time.perf_counter() - t1
        observed = enc.error_bounds(res)  # max over entries of max(v - lo, hi - v), rounded up
        check = {}
        named = {**res.bounds, **{f"W_{k}": v for k, v in res.weight_bounds.items()}}
        for name, bound in named.items():
            check[name] = {"bound": bound, "max_abs_dev_plus_radius": observed[name],
                           "margin": bound / observed[name] if observed[name] else float("inf"),
                           "holds": observed[name] <= bound}
        rec["fast_check"] = {"path": res.path, "degree": res.degree, "tol": args.tol, "per_gradient": check,
                             "all_hold": all(c["holds"] for c in check.values())}
    return rec


def _tree_sample(pid: int, cpu: dict[int, float]) -> int:
    """RSS of ``pid`` and its descendants (bytes); records each process's CPU seconds in ``cpu``."""
    import psutil

    try:
        proc = psutil.Process(pid)
        procs = [proc] + proc.children(recursive=True)
    except psutil.Error:
        return 0
    total = 0
    for p in procs:
        try:
            with p.oneshot():
                total += p.memory_info().rss
                t = p.cpu_times()
                cpu[p.pid] = max(cpu.get(p.pid, 0.0), t.user + t.system)
        except psutil.Error:
            pass
    return total


def _run_one(args: argparse.Namespace, d: int, L: int, workers: int, check_fast: bool, estimate: float) -> dict:
    cmd = [sys.executable, __file__, "--one", str(d), str(L), str(workers), "--digits", str(args.digits),
           "--R", str(args.R), "--tol", str(args.tol), "--estimate", repr(estimate)] + (
        ["--check-fast"] if check_fast else [])
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    load0 = os.getloadavg()[0]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, env=env, text=True)
    peak = [0]
    cpu: dict[int, float] = {}
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], _tree_sample(proc.pid, cpu))
            time.sleep(0.2)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    out, _ = proc.communicate()
    stop.set()
    thread.join()
    if proc.returncode != 0:
        raise SystemExit(f"child failed for d={d} L={L} workers={workers} (exit {proc.returncode})")
    rec = json.loads(out.strip().splitlines()[-1])
    rec["peak_rss_mb"] = peak[0] / 2**20
    rec["load_at_start"] = load0
    rec["cpu_s_tree"] = sum(cpu.values())  # CPU seconds of the whole tree (child, nanny, workers; 0.2 s sampling)
    rec["machine"] = f"{platform.node()} ({os.cpu_count()} cores), load {os.getloadavg()[0]:.1f} at end"
    return rec


def _table(records: list[dict]) -> str:
    latest: dict[tuple, dict] = {}
    records = [r for r in records if r.get("formulation", 1) == FORMULATION]
    for r in records:  # a re-run of a configuration replaces the earlier line
        latest[(r["d"], r["L"], r["workers"], r["digits"])] = r
    records = list(latest.values())
    lines = ["# Blocked interval enclosure: scaling", "",
             "Problem: `verified_lora.fast.bench.make_problem(d, L, R=1)` (self-attention, rank-4 LoRA on Q, K, V). "
             "Time = wall time of `enclose_blocked` (dask cluster start-up included for 2 workers); width = largest "
             "`max width / max |midpoint|` over the loss and every gradient; memory = peak RSS of the process tree "
             "(sampled every 0.2 s); '-' = not recorded by that run; chunk CPU = CPU seconds spent inside the row "
             "chunks (summed over workers), also per score entry (N L L_k of them); tree CPU = user + system seconds of that tree (adds set-up, dask and, with --check-fast, the fast "
             "path). Machines: " + "; ".join(sorted({r["machine"].split(", load")[0] for r in records}))
             + ". The last column is the 1-minute load average at the start and end of each run: wall times "
             "depend on other jobs; chunk CPU is the stable measure of the work.",
             "",
             "| d | L | workers | time (s) | cluster start-up (s) | chunk CPU (s) | chunk CPU per entry (us) | "
             "tree CPU (s) | rel. width | prec (bits) | peak RSS (MB) | load at start / end |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in sorted(records, key=lambda r: (r["d"], r["L"], r["workers"])):
        cpu = f"{r['cpu_s_tree']:.0f}" if "cpu_s_tree" in r else "-"
        start = f"{r['startup_s']:.1f}" if "startup_s" in r else "-"
        ccpu = f"{r['chunk_cpu_s']:.1f}" if r.get("chunk_cpu_s") is not None else "-"
        load = r["machine"].rsplit("load ", 1)[-1].split(" ")[0]
        per = f"{r['chunk_cpu_us_per_entry']:.2f}" if r.get("chunk_cpu_us_per_entry") else "-"
        load0 = f"{r['load_at_start']:.1f}" if "load_at_start" in r else "-"
        lines.append(f"| {r['d']} | {r['L']} | {r['workers']} | {r['seconds']:.1f} | {start} | {ccpu} | {per} | {cpu} | "
                     f"{r['max_relative_width']:.1e} | {r['prec_bits']} | {r['peak_rss_mb']:.0f} | {load0} / {load} |")
    speed = []
    by = {(r["d"], r["L"], r["workers"]): r for r in records}
    for (d, L, w), r in sorted(by.items()):
        if w == 2 and (d, L, 1) in by:
            one = by[(d, L, 1)]
            work = (f"{r['chunk_cpu_s'] / one['chunk_cpu_s']:.2f}"
                    if r.get("chunk_cpu_s") and one.get("chunk_cpu_s") else "-")
            speed.append(f"| {d} | {L} | {one['seconds'] / r['seconds']:.2f} | "
                         f"{(one['seconds']) / (r['seconds'] - r.get('startup_s', 0.0)):.2f} | {work} |")
    if speed:
        lines += ["", "Speedup 1 -> 2 workers: wall time (1 worker) / wall time (2 workers), also "
                      "without the cluster start-up; and the chunk CPU of the 2-worker run over the 1-worker run (1.00 = "
                      "the split adds no work).", "",
                  "| d | L | wall speedup | wall speedup without start-up | chunk CPU ratio |", "|---|---|---|---|---|"] + speed
    checks = [r for r in records if "fast_check" in r]
    for r in checks:
        c = r["fast_check"]
        lines += ["", f"Fast-path certificate vs enclosure, d = {r['d']}, L = {r['L']}, {r['workers']} worker(s) "
                      f"(path {c['path']}, degree "
                      f"{c['degree']}, tol {c['tol']}): all hold = {c['all_hold']}", "",
                  "| gradient | certified bound | max(abs(fast - mid) + rad) | margin |", "|---|---|---|---|"]
        for name, v in c["per_gradient"].items():
            lines.append(f"| {name} | {v['bound']:.3e} | {v['max_abs_dev_plus_radius']:.3e} | {v['margin']:.2f} |")
    return "\n".join(lines) + "\n"


def _cell(text: str) -> tuple[int, int, int, bool]:
    """``D,L,WORKERS[,fast]`` -> ``(d, L, workers, check_fast)``."""
    parts = [p.strip() for p in text.split(",")]
    try:
        if len(parts) not in (3, 4) or (len(parts) == 4 and parts[3] != "fast"):
            raise ValueError
        d, L, w = (int(p) for p in parts[:3])
        if min(d, L, w) < 1:
            raise ValueError
    except ValueError:
        raise argparse.ArgumentTypeError(f"--cell: expected D,L,WORKERS[,fast] with positive ints, got {text!r} "
                                         "(e.g. --cell 64,4096,1 or --cell 8,16384,2,fast)") from None
    return d, L, w, len(parts) == 4


def _estimate(d: int, L: int, args: argparse.Namespace) -> tuple[float, object]:
    """Serial seconds of the cell, timed on one block here (``calibrate_plan``), and the plan."""
    from verified_lora.fast.bench import make_problem
    from verified_lora.reference import calibrate_plan, plan_blocks

    p = make_problem(d, L, args.R)
    plan = calibrate_plan(p, plan_blocks(p, args.digits))
    return plan.estimate_s, plan


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cell", type=_cell, action="append", metavar="D,L,WORKERS[,fast]",
                    help="one configuration (repeatable); 'fast' adds the fast-path certificate check")
    ap.add_argument("--d", type=int, action="append", help="grid: head dims (with --L, --workers)")
    ap.add_argument("--L", type=int, action="append", help="grid: sequence lengths")
    ap.add_argument("--workers", type=int, action="append", help="grid: worker counts (1 = serial)")
    ap.add_argument("--digits", type=int, default=20)
    ap.add_argument("--R", type=float, default=1.0)
    ap.add_argument("--tol", type=float, default=1e-6)
    ap.add_argument("--check-fast", action="store_true", help="the fast-path check on every cell")
    ap.add_argument("--max-seconds", type=float, default=1800.0,
                    help="skip a cell whose calibrated estimate / workers exceeds this (default 1800)")
    ap.add_argument("--estimate-only", action="store_true", help="print the calibrated estimates, run nothing")
    ap.add_argument("--jsonl", type=Path, default=RESULTS / "enclose_scaling.jsonl")
    ap.add_argument("--md", type=Path, default=RESULTS / "enclose_scaling.md")
    ap.add_argument("--one", nargs=3, type=int, metavar=("D", "L", "WORKERS"), help=argparse.SUPPRESS)
    ap.add_argument("--estimate", type=float, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.one:
        args.one_d, args.one_L, args.one_workers = args.one
        print(json.dumps(_child(args)))
        return 0
    cells = list(args.cell or [])
    if not cells or args.d or args.L or args.workers:
        cells += [(d, L, w, args.check_fast) for d in args.d or [8, 64] for L in args.L or [1024, 4096, 16384]
                  for w in args.workers or [1, 2]]
    cells = [(d, L, w, fast or args.check_fast) for d, L, w, fast in cells]
    args.jsonl.parent.mkdir(parents=True, exist_ok=True)
    estimates: dict[tuple[int, int], tuple[float, object]] = {}
    for d, L, w, fast in cells:
        t0 = time.process_time()
        if (d, L) not in estimates:
            estimates[d, L] = _estimate(d, L, args)
        serial, plan = estimates[d, L]
        note = (f"d={d} L={L} workers={w}: estimated {serial:.1f} CPU-s of chunks, about {serial / w:.1f} s on {w} "
                f"worker(s) (one block of {plan.block} rows timed here in {time.process_time() - t0:.1f} s; "
                f"{plan.prec} bits, load {os.getloadavg()[0]:.1f})")
        if args.estimate_only:
            print(note, flush=True)
            continue
        if serial / w > args.max_seconds:
            print(f"skip {note} > --max-seconds {args.max_seconds:.0f}", flush=True)
            continue
        print(f"run {note}", flush=True)
        rec = _run_one(args, d, L, w, fast, serial)
        print(json.dumps({k: v for k, v in rec.items() if k != "widths"}), flush=True)
        with args.jsonl.open("a") as fh:
            fh.write(json.dumps(rec) + "\n")
    if args.estimate_only:
        return 0
    records = ([json.loads(line) for line in args.jsonl.read_text().splitlines() if line.strip()]
               if args.jsonl.exists() else [])
    args.md.write_text(_table(records))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
