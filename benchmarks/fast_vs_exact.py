"""Benchmark: certified fast LoRA gradients ("factored", "paper") against exact float64 baselines.

One run on one machine compares, for every (d, L):

* ``factored``  -- :func:`verified_lora.fast.loss_and_grads` (method "factored", forced fast, so the
  certified degree runs even where the planner would fall back), tol relative to each gradient's
  max entry (default 1e-6), certified a posteriori;
* ``paper``     -- the same with method "paper" (the Lemma 3.3-3.7 chain, O(L k d^2));
* ``exact``     -- :func:`verified_lora.exact.loss_and_grads` (blocked float64, O(L^2 d));
* ``torch``     -- PyTorch float64 autograd on the CPU (dense L x L), up to the L where it fits;
* ``factored@obs`` -- *uncertified* reference point: the factored algorithm at the least minimax
  degree whose **observed** error (against exact, at the smallest L) meets tol. It shows what the
  algorithm costs when the certificate is not the bottleneck; it carries no guarantee.

Inputs: self-attention, d_model = d_head = d_v = d, LoRA rank 4 on Q, K and V, entries N(0, 0.2^2),
then X scaled so the *certified* score bound is R (default 1). Reported per (method, d, L): median
wall time over ``--repeats`` runs (fewer when one run exceeds ``--long``), peak extra RSS during the
call, counted GEMM FLOPs and GFLOP/s against a DGEMM peak measured in the same run, observed max
relative error against exact and the certified relative bound. Per method: the crossover L against
the best exact baseline and the log-log slope of time vs L over L in [8192, 65536].

A method is skipped at an L where its time predicted from the previous L (slope 2 for exact/torch,
1 for the fast paths, plus the rank growth) exceeds ``--max-seconds``; the table says so.

Usage::

    python benchmarks/fast_vs_exact.py --d 8                 # the d = 8 sweep (~10 minutes quiet)
    python benchmarks/fast_vs_exact.py --quick               # small smoke run (seconds)
    python benchmarks/fast_vs_exact.py --d 4 --d 16          # other pieces; results merge by d

Writes ``benchmarks/results/fast_vs_exact[_d{d}].md`` / ``.json`` / ``.png`` (plot needs matplotlib).
This is a benchmark, never a test.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from verified_lora.fast.bench import METHODS, run_sweep, write_outputs  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--d", type=int, action="append", help="head dimension(s) (default 4, 8, 16)")
    ap.add_argument("--L", type=int, action="append", help="sequence length(s) (default 1024..65536)")
    ap.add_argument("--quick", action="store_true", help="small run: d=4, L in {256, 512}, 3 repeats")
    ap.add_argument("--R", type=float, default=1.0, help="certified score bound the inputs are scaled to")
    ap.add_argument("--tol", type=float, default=1e-6, help="relative tolerance per gradient")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--long", type=float, default=60.0, help="stop repeating once one run exceeds this (s)")
    ap.add_argument("--max-seconds", type=float, default=120.0, help="skip a method predicted slower than this")
    ap.add_argument("--torch-max-L", type=int, default=16384)
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--obs-degree", type=int, help="degree of the uncertified factored@obs point (default: searched "
                                                    "at the smallest L against exact)")
    ap.add_argument("--tag", default="", help="suffix of the output files (to keep pieces apart)")
    ap.add_argument("--out", default=str(HERE / "results"))
    args = ap.parse_args(argv)
    if args.quick:
        ds, Ls = args.d or [4], args.L or [256, 512]
    else:
        ds, Ls = args.d or [4, 8, 16], args.L or [1024, 2048, 4096, 8192, 16384, 32768, 65536]
    methods = tuple(m.strip() for m in args.methods.split(","))

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    data = run_sweep(ds, sorted(Ls), R=args.R, tol=args.tol, repeats=args.repeats, long_s=args.long,
                     max_s=args.max_seconds, torch_max_L=args.torch_max_L, methods=methods, log=log,
                     obs_degree=args.obs_degree)
    suffix = "_quick" if args.quick else ("_d" + "_".join(map(str, ds)) if args.d else "")
    suffix += f"_{args.tag}" if args.tag else ""
    stem = Path(args.out) / f"fast_vs_exact{suffix}"
    write_outputs(data, stem)
    print(stem.with_suffix(".md").read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
