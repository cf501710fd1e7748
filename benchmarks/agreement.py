"""The agreement figure of issue 2: exact float64 vs the mpmath reference over hypothesis examples.

Draws ``--examples`` problems (default 200) from ``verified_lora.testing.strategies.problems`` (the strategy the
test-suite uses: L, L_k <= 12, dims <= 6, r <= 3, every adapter subset, self/cross-attention,
batches, rsLoRA, several beta), computes ``exact.loss_and_grads`` and the reference at ``--dps``
digits, and reports the largest max-entry error relative to max |reference| per quantity (loss,
adapter gradients, weight gradients), with the worst problem.

    python3 benchmarks/agreement.py                 # 200 examples, reference at 40 digits
    python3 benchmarks/agreement.py --examples 1000 --seed 1
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root: verified_lora without installing


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=200)
    parser.add_argument("--dps", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0, help="hypothesis seed (runs are reproducible)")
    parser.add_argument("--dtype", default="float64", choices=("float64", "float32"))
    parser.add_argument("--save-worst", metavar="NPZ", help="store the worst problem (for verified-lora grad/verify)")
    args = parser.parse_args(argv)

    from hypothesis import HealthCheck, given, seed, settings

    from verified_lora.testing.strategies import problems
    from verified_lora import exact, reference
    import numpy as np

    from verified_lora.tolerances import EXACT_VS_REFERENCE, max_relative_error, underflow_floor

    worst: dict[str, tuple[float, str]] = {}
    worst_problem: list = [None, -1.0]
    underflowed = [0]
    count = [0]

    @seed(args.seed)
    @settings(max_examples=args.examples, database=None, deadline=None, phases=["generate"],
              suppress_health_check=list(HealthCheck))
    @given(problem=problems(dtype=args.dtype))
    def measure(problem):
        count[0] += 1
        ex = exact.loss_and_grads(problem)
        ref = reference.to_float(reference.loss_and_grads(problem, dps=args.dps))
        pairs = {"loss": (ex.loss, ref.loss), **{k: (ex.grads[k], ref.grads[k]) for k in ex.grads},
                 **{f"W_{k}": (ex.weight_grads[k], ref.weight_grads[k]) for k in ex.weight_grads}}
        floor = underflow_floor(problem.dtype)
        for name, (e, r) in pairs.items():
            absolute = float(np.max(np.abs(np.asarray(e, dtype=float) - np.asarray(r, dtype=float))))
            if absolute <= floor:
                underflowed[0] += name != "loss" and max_relative_error(e, r) > EXACT_VS_REFERENCE[args.dtype]
                err = 0.0     # the whole quantity is below the dtype's range (tolerances.underflow_floor)
            else:
                err = max_relative_error(e, r)
            if err >= worst.get(name, (-1.0, ""))[0]:
                worst[name] = (err, problem.describe())
            if err > worst_problem[1]:
                worst_problem[:] = [problem, err]

    t0 = time.perf_counter()
    measure()
    seconds = time.perf_counter() - t0
    tol = EXACT_VS_REFERENCE[args.dtype]
    overall = max(worst.items(), key=lambda kv: kv[1][0])
    print(f"exact {args.dtype} vs mpmath reference ({args.dps} digits) over {count[0]} hypothesis examples "
          f"(seed {args.seed}, {seconds:.1f}s)")
    print("max-entry error relative to max |reference|, worst example per quantity:")
    for name in sorted(worst, key=lambda n: (n != "loss", n.startswith("W_"), n)):
        print(f"  {name:6s} {worst[name][0]:.3e}")
    print(f"overall max relative error: {overall[1][0]:.3e} ({overall[0]}; tolerance {tol:g}) on "
          f"{overall[1][1]}")
    if underflowed[0]:
        print(f"({underflowed[0]} gradient(s) lay entirely below the {args.dtype} range: absolute error under "
              f"the underflow floor {underflow_floor(args.dtype):.1e}, counted as 0)")
    if args.save_worst:
        worst_problem[0].save_npz(args.save_worst)
        print(f"worst problem written to {args.save_worst}")
    return 0 if overall[1][0] <= tol and count[0] >= args.examples else 1


if __name__ == "__main__":
    sys.exit(main())
