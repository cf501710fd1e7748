"""``method="antiderivative"`` against ``"factored"``: certified bounds, observed errors and CPU time.

For the benchmark problem ``verified_lora.fast.bench.make_problem(d, L, R)`` and each degree of one family
(both methods at the same polynomial), every method runs once (``run_with_polynomial``, CPU seconds of the
core) and is certified (``run_bounds`` with one shared proxy, as ``loss_and_grads`` does); per gradient it
prints the certified bound, the observed max-entry error and their ratio. The reference is the exact float64
gradient (``--exact``, only for ``L`` up to about 16k on a small box) or, otherwise, the antiderivative run at
degree ``g + --ref-offset`` (an estimate of the error, not a certified one: said in the output). With
``--plan`` it also prints the degree ``loss_and_grads(tol, method=m, force="fast")`` certifies per method, with its
cold CPU time.

Run (one thread)::

    OPENBLAS_NUM_THREADS=1 PYTHONPATH=. python3 benchmarks/antiderivative_vs_factored.py --d 8 --L 16384 --degrees 8 9 10 --exact --plan
    OPENBLAS_NUM_THREADS=1 PYTHONPATH=. python3 benchmarks/antiderivative_vs_factored.py --d 4 --L 65536 --degrees 9 10 11 --plan
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from verified_lora import exact, fast  # noqa: E402
from verified_lora.bounds import CostModel, Sensitivity, score_bound  # noqa: E402
from verified_lora.bounds import _approx_api as api  # noqa: E402
from verified_lora.fast import run_with_polynomial  # noqa: E402
from verified_lora.fast.bench import make_problem  # noqa: E402
from verified_lora.fast.certificate import run_bounds  # noqa: E402
from verified_lora.fast.planning import plan_for_degree  # noqa: E402
from verified_lora.fast.proxy_moments import build_proxy  # noqa: E402

METHODS = ("factored", "antiderivative")


def _max_abs(x) -> float:
    return float(np.max(np.abs(np.asarray(x, dtype=np.float64))))


def compare(p, ref: dict, ref_name: str, family: str, degree: int, tol: float, proxy) -> None:
    sb, sens = score_bound(p), Sensitivity(p)
    for method in METHODS:
        pl = plan_for_degree(p, family, degree, method, tol, sb, sens, CostModel())
        if pl is None:
            print(f"  {method}: no certified {family} polynomial at degree {degree}")
            continue
        c = list(pl.polynomial.coeffs)
        t = time.process_time()
        _l, grads, wg, info = run_with_polynomial(p, c, method)
        run_s = time.process_time() - t
        t = time.process_time()
        rb = run_bounds(p, pl, sens, method, c, grads, wg, moments=proxy, block=info["block_size"])
        cert_s = time.process_time() - t
        eps_d = f"{pl.eps_D:.3g}" if pl.eps_D is not None else "-"
        print(f"  {method:14s} g={degree} {family} eps_A {pl.eps_A:.3g} eps_D {eps_d} run {run_s:.2f} CPU s, "
              f"certificate {cert_s:.2f} CPU s, backward rank {info.get('backward_rank', info['rank'])}", flush=True)
        ratios = []
        for key in grads:
            obs = float(np.max(np.abs(np.asarray(grads[key], dtype=np.float64) - ref[key])))
            m = _max_abs(ref[key])
            ratios.append(rb.total[key] / obs if obs > 0 else float("inf"))
            print(f"      {key:4s} bound/max {rb.total[key] / m:9.3g}  obs/max ({ref_name}) {obs / m:9.3g}  "
                  f"bound/obs {ratios[-1]:9.3g}  rounding/max {rb.rounding[key] / m:9.3g}", flush=True)
        print(f"      max certified bound/max {max(rb.total[k] / _max_abs(ref[k]) for k in grads):.3g}, "
              f"median bound/obs {float(np.median(ratios)):.3g}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--d", type=int, default=8)
    ap.add_argument("--L", type=int, default=16384)
    ap.add_argument("--R", type=float, default=1.0)
    ap.add_argument("--degrees", type=int, nargs="+", default=[9, 10])
    ap.add_argument("--family", default="minimax")
    ap.add_argument("--tol", type=float, default=1e-6)
    ap.add_argument("--exact", action="store_true", help="reference: the exact float64 gradients")
    ap.add_argument("--ref-offset", type=int, default=5, help="without --exact: reference degree offset")
    ap.add_argument("--plan", action="store_true", help="also the degree loss_and_grads certifies per method")
    a = ap.parse_args()
    p = make_problem(a.d, a.L, a.R)
    sb = score_bound(p)
    t = time.process_time()
    proxy = build_proxy(p, float(sb.R), max(a.degrees))
    print(f"d={a.d} L={a.L} R={a.R} (score bound {float(sb.R):.6g}); proxy {time.process_time() - t:.1f} CPU s", flush=True)
    fixed_ref = None
    if a.exact:
        t = time.process_time()
        fixed_ref = exact.loss_and_grads(p).grads
        print(f"exact: {time.process_time() - t:.1f} CPU s", flush=True)
    for g in a.degrees:
        if fixed_ref is not None:
            ref, name = fixed_ref, "exact"
        else:
            gr = g + a.ref_offset
            c = list(api.certify(a.family, gr, sb.R).polynomial.coeffs)
            _l, ref, _w, _i = run_with_polynomial(p, c, "antiderivative")
            ref, name = {k: np.asarray(v, dtype=np.float64) for k, v in ref.items()}, f"vs g={gr}"
        compare(p, ref, name, a.family, g, a.tol, proxy)
    if a.plan:
        for method in METHODS:
            t = time.process_time()
            r = fast.loss_and_grads(p, a.tol, method=method, force="fast")
            print(f"loss_and_grads(tol={a.tol:g}, method={method!r}, force='fast'): path {r.path} {r.family} degree "
                  f"{r.degree} attempts {r.attempts}, max certified rel "
                  f"{max(r.relative_bounds.values()) if r.relative_bounds else float('nan'):.3g} "
                  f"({time.process_time() - t:.1f} CPU s cold)", flush=True)


if __name__ == "__main__":
    main()
