"""Where does the fast path's certificate lose against the observed error? A factor breakdown.

For the benchmark problem of ``verified_lora.fast.bench.make_problem(d, L, R)`` and each requested
degree and family, the factored fast path is run at that (family, degree) and certified
(:func:`verified_lora.fast.certificate.run_bounds`, the certificate ``loss_and_grads`` issues); the
result is compared with ``verified_lora.exact`` per gradient:

* ``cert/obs``: certified bound / observed max-entry error (the tightness factor);
* ``approx/max``, ``round/max``, ``obs/max``: the approximation part, the rounding part and the
  observed error, each relative to ``max |G|`` of the exact gradient.

The adapter gradients (``A_Q`` ... ``B_V``) are followed by the weight gradients (``W_Q`` ...),
which isolate the attention part from the adapter chain. With ``--plan`` it also prints the degree
``fast.loss_and_grads(problem, tol, force="fast")`` certifies at ``tol`` (relative) and the least
minimax degree whose *observed* error meets ``tol``.

Run (about 30 s per (degree, family) at L = 4096 on the 2-core box)::

    OPENBLAS_NUM_THREADS=1 PYTHONPATH=. python3 benchmarks/certificate_factors.py --L 4096 --degrees 9 10 --plan
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
from verified_lora.fast import run_with_polynomial  # noqa: E402
from verified_lora.fast.bench import make_problem  # noqa: E402
from verified_lora.fast.certificate import run_bounds  # noqa: E402
from verified_lora.fast.planning import plan_for_degree  # noqa: E402


def _rows(bounds, approx, rounding, got, ref):
    out = []
    for key in got:
        obs = float(np.max(np.abs(np.asarray(got[key], dtype=np.float64) - ref[key])))
        m = float(np.max(np.abs(ref[key])))
        out.append((key, bounds[key] / obs if obs > 0 else float("inf"), approx[key] / m, rounding[key] / m, obs / m))
    return out


def factors(p, ex, degree: int, family: str, tol: float = 1e-6) -> None:
    sb, sens, model = score_bound(p), Sensitivity(p), CostModel()
    pl = plan_for_degree(p, family, degree, "factored", tol, sb, sens, model)
    if pl is None:
        print(f"g={degree} {family}: no certified polynomial")
        return
    c = list(pl.polynomial.coeffs)
    t = time.process_time()
    _loss, grads, wg, info = run_with_polynomial(p, c, "factored")
    rb = run_bounds(p, pl, sens, "factored", c, grads, wg, block=info["block_size"])
    cpu = time.process_time() - t
    rows = _rows(rb.total, rb.approx, rb.rounding, grads, ex.grads)
    wrows = _rows({f"W_{k}": v for k, v in rb.weight_total.items()}, {f"W_{k}": v for k, v in rb.weight_approx.items()},
                  {f"W_{k}": v for k, v in rb.weight_rounding.items()}, {f"W_{k}": v for k, v in wg.items()},
                  {f"W_{k}": v for k, v in ex.weight_grads.items()})
    med = float(np.median([r[1] for r in rows]))
    print(f"g={degree} {family:24s} R {float(pl.R):.4g} eps_A {pl.eps_A:.3g} eps_D {pl.eps_D:.3g}  median cert/obs {med:.3g}"
          f"  max rel approx {max(r[2] for r in rows):.3g} max rel rounding {max(r[3] for r in rows):.3g}"
          f"  max obs rel {max(r[4] for r in rows):.3g} (run + certificate {cpu:.1f} CPU s)", flush=True)
    for r in rows + wrows:
        print("    %-4s cert/obs %9.3g  approx/max %9.3g  round/max %9.3g  obs/max %9.3g" % r, flush=True)


def observed_degree(p, ex, tol: float, family: str = "minimax", start: int = 4, stop: int = 16) -> int | None:
    """The least degree of ``family`` whose observed max relative error (per gradient) meets ``tol``."""
    sb = score_bound(p)
    from verified_lora.bounds import _approx_api as api

    for g in range(start, stop + 1):
        cert = api.certify(family, g, sb.R)
        _l, grads, _w, _i = run_with_polynomial(p, list(cert.polynomial.coeffs), "factored")
        worst = max(float(np.max(np.abs(np.asarray(grads[k]) - ex.grads[k]))) / float(np.max(np.abs(ex.grads[k])))
                    for k in grads)
        if worst <= tol:
            return g
    return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--d", type=int, default=8)
    ap.add_argument("--L", type=int, default=4096)
    ap.add_argument("--R", type=float, default=1.0)
    ap.add_argument("--degrees", type=int, nargs="+", default=[9, 10])
    ap.add_argument("--families", nargs="+", default=["minimax", "minimax-antiderivative"])
    ap.add_argument("--tol", type=float, default=1e-6)
    ap.add_argument("--plan", action="store_true", help="also the certified and observed-sufficient degrees")
    a = ap.parse_args()
    p = make_problem(a.d, a.L, a.R)
    t = time.process_time()
    ex = exact.loss_and_grads(p)
    print(f"d={a.d} L={a.L} R={a.R} (score bound {score_bound(p).R:.6g}); exact {time.process_time() - t:.1f} CPU s",
          flush=True)
    for g in a.degrees:
        for fam in a.families:
            factors(p, ex, g, fam, a.tol)
    if a.plan:
        t = time.process_time()
        r = fast.loss_and_grads(p, a.tol, force="fast")  # at small L the fast path would not pay
        print(f"loss_and_grads(tol={a.tol:g}, force='fast'): path {r.path} {r.family} degree {r.degree} attempts {r.attempts} "
              f"max certified rel {max(r.relative_bounds.values()) if r.relative_bounds else float('nan'):.3g} "
              f"({time.process_time() - t:.1f} CPU s)", flush=True)
        print(f"observed-sufficient minimax degree at tol {a.tol:g}: {observed_degree(p, ex, a.tol)}", flush=True)


if __name__ == "__main__":
    main()
