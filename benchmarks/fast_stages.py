"""Stage-by-stage CPU seconds of a warm certified ``fast.loss_and_grads`` call (the fast_vs_exact problem).

Builds the problem of ``benchmarks/fast_vs_exact.py`` (self-attention, ``d_model = d_head = d_v = d``, rank 4
on Q, K, V, scaled so the certified score bound is ``R``), makes one cold call (certifying the polynomial cells),
then ``--repeats`` warm calls with ``force="fast"`` and the relative tolerance ``--tol``, and reports per stage
the least CPU seconds (``time.process_time``, user + system) and minor page faults over the warm calls:

* ``proxy_moments``: the cheap proxy polynomial's per-row moments (fast/proxy_moments.py);
* ``gradient_scale``: the planner's scale run at the proxy polynomial (fast/planning.py);
* ``planner``: :func:`verified_lora.fast.planning.choose_plan`, of which ``prediction`` is the exact prediction
  (the run's certificate, reused by the run) and ``estimates`` the subsample estimates;
* ``core``: the fast run at the chosen degree (:func:`verified_lora.fast.run_with_polynomial`, the scale run
  excluded);
* ``other``: the rest (input checks, score bound, sensitivity, output term, relative claims).

Stages are timed by wrapping those functions in this process; nested stages are subtracted. Run with
``OPENBLAS_NUM_THREADS=1`` so CPU seconds are one core's. Not a test::

    OPENBLAS_NUM_THREADS=1 PYTHONPATH=. python benchmarks/fast_stages.py --d 4 --L 16384 65536
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

STAGES = ("proxy_moments", "gradient_scale", "prediction", "estimates", "planner", "core", "other", "total")


def _faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def _wrap(owner, name: str, label: str, acc: dict) -> None:
    fn = getattr(owner, name)

    def timed(*args, **kwargs):
        t0, f0 = time.process_time(), _faults()
        try:
            return fn(*args, **kwargs)
        finally:
            acc[label][0] += time.process_time() - t0
            acc[label][1] += _faults() - f0

    setattr(owner, name, timed)


def measure(d: int, L: int, R: float, tol: float, repeats: int) -> dict[str, tuple[float, int]]:
    """``{stage: (least CPU seconds, page faults of that call)}`` over ``repeats`` warm calls."""
    import verified_lora.fast as fast
    from verified_lora.fast import bench, planning, proxy_moments

    acc: dict = defaultdict(lambda: [0.0, 0])
    _wrap(proxy_moments, "build_proxy", "proxy_moments", acc)
    _wrap(planning, "gradient_scale", "gradient_scale_all", acc)
    _wrap(planning, "choose_plan", "planner_all", acc)
    _wrap(planning._Predictor, "predict", "prediction", acc)
    _wrap(planning._Predictor, "estimate", "estimates", acc)
    _wrap(fast, "run_with_polynomial", "runs_all", acc)
    problem = bench.make_problem(d, L, R)
    fast.loss_and_grads(problem, tol, force="fast")      # cold: certifies the polynomial cells
    best: dict[str, tuple[float, int]] = {}
    for _ in range(repeats):
        acc.clear()
        t0, f0 = time.process_time(), _faults()
        res = fast.loss_and_grads(problem, tol, force="fast")
        total = (time.process_time() - t0, _faults() - f0)
        got = {k: tuple(v) for k, v in acc.items()}
        zero = (0.0, 0)

        def minus(a, *bs):
            return (a[0] - sum(b[0] for b in bs), a[1] - sum(b[1] for b in bs))

        row = {"proxy_moments": got.get("proxy_moments", zero), "gradient_scale": got.get("gradient_scale_all", zero),
               "prediction": got.get("prediction", zero), "estimates": got.get("estimates", zero),
               "core": minus(got.get("runs_all", zero), got.get("gradient_scale_all", zero))}
        row["planner"] = minus(got.get("planner_all", zero), row["prediction"], row["estimates"])
        row["other"] = minus(total, *(row[k] for k in ("proxy_moments", "gradient_scale", "prediction",
                                                       "estimates", "planner", "core")))
        row["total"] = total
        if not best or total[0] < best["total"][0]:
            best = row
    best["_info"] = (res.degree, res.rank, max(res.relative_bounds.values()), res.info.get("block_size"))
    return best


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--d", type=int, default=4)
    ap.add_argument("--L", type=int, nargs="+", default=[16384, 65536])
    ap.add_argument("--R", type=float, default=1.0)
    ap.add_argument("--tol", type=float, default=1e-6)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args(argv)
    print("| d | L | degree | k | block | certified rel | " + " | ".join(STAGES) + " |")
    print("|---" * (6 + len(STAGES)) + "|")
    for L in args.L:
        row = measure(args.d, L, args.R, args.tol, args.repeats)
        g, k, rel, block = row.pop("_info")
        cells = " | ".join(f"{row[s][0]:.3f} ({row[s][1] // 1000}k)" for s in STAGES)
        print(f"| {args.d} | {L} | {g} | {k} | {block} | {rel:.2e} | {cells} |", flush=True)
    print("\nCPU seconds of the fastest warm call (minor page faults in thousands); OPENBLAS_NUM_THREADS="
          "the caller's.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
