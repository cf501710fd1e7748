"""Benchmark: time to an answer for degenerate inputs (issue 10): beta = 0, and score bounds R = 1e5, 1e6.

Each case is a fresh problem (L = 256, d_model = 8, d_head = 4, d_v = 4, adapters on Q, K, V) given to
``fast.loss_and_grads(problem, 1e-6)`` once in a fresh process state for the polynomial caches (the
first call, certification included). Prints the path taken, the reason and the wall time.
Not a test. Usage: ``python benchmarks/degenerate_inputs.py``.
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from verified_lora import fast  # noqa: E402
from verified_lora.bounds import score_bound  # noqa: E402
from verified_lora.examples import random_problem  # noqa: E402
from verified_lora.fast.bench import clear_certificate_caches  # noqa: E402


def main() -> int:
    rows = []
    for name, beta, target in (("beta = 0", 0.0, None), ("R = 1e5", 1.0, 1e5), ("R = 1e6", 1.0, 1e6)):
        p = random_problem(0, L=256, d_model=8, d_head=4, d_v=4, beta=beta)
        if target is not None:
            p = p.replace(x_q=p.x_q * math.sqrt(target / score_bound(p).R))
        clear_certificate_caches()
        t0 = time.perf_counter()
        res = fast.loss_and_grads(p, 1e-6)
        dt = time.perf_counter() - t0
        rows.append((name, score_bound(p).R, res.path, res.fallback, dt, res.reason[:150]))
    for r in rows:
        print(f"{r[0]:9s} R={r[1]:.3g}  path={r[2]} fallback={r[3]}  {r[4]:.3f} s  reason: {r[5]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
