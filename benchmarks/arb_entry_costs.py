"""Micro-benchmark: per-entry cost of the python-flint operations the blocked enclosure uses.

python-flint 0.9 has no entrywise ``arb_mat`` functions, so the ``b x L_k`` exponentials and the
product ``u * (q - rvec)`` are Python-level loops over balls. This measures, per entry and at 64,
128 and 192 bits: reading a matrix (``entries()``), ``exp`` via ``map`` / a list comprehension /
``numpy.exp`` on an object array, a ball product via ``map(operator.mul)``, building an ``arb_mat``
from a list, and matrix products (ns per multiply-add) with exact 53-bit and with inexact inputs.

Usage: ``python benchmarks/arb_entry_costs.py`` (about 20 s); prints a Markdown table and writes
``benchmarks/results/arb_entry_costs.md``. A benchmark, never a test.
"""

from __future__ import annotations

import operator
import os
import time
from pathlib import Path

import numpy as np


def _ns(fn, count: int) -> float:
    t = time.perf_counter()
    fn()
    return (time.perf_counter() - t) / count * 1e9


def main() -> int:
    import flint
    from flint import arb, arb_mat

    rng = np.random.default_rng(0)
    rows, cols, d = 128, 4096, 64
    n = rows * cols
    lines = ["# python-flint per-entry costs (ns)", "",
             f"python-flint {flint.__version__}; {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f} at start "
             "(a shared machine: absolute figures vary with the other load).", "",
             "| bits | entries() | exp map | exp listcomp | numpy.exp (object) | mul map | arb_mat(list) | "
             "matmul exact 53-bit (ns/madd) | matmul inexact (ns/madd) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for prec in (64, 128, 192):
        with flint.ctx.workprec(prec):
            S = arb_mat((rng.standard_normal((rows, cols)) * 3 - 5).tolist()) * (arb(1) / 3)
            e = S.entries()
            t_entries = _ns(S.entries, n)
            t_map = _ns(lambda: list(map(arb.exp, e)), n)
            t_comp = _ns(lambda: [x.exp() for x in e], n)
            obj = np.array(e, dtype=object)
            t_np = _ns(lambda: np.exp(obj), n)
            u = list(map(arb.exp, e))
            t_mul = _ns(lambda: list(map(operator.mul, u, e)), n)
            t_build = _ns(lambda: arb_mat(rows, cols, u), n)
            A53 = arb_mat(rng.standard_normal((rows, d)).tolist())
            B53 = arb_mat(rng.standard_normal((d, cols)).tolist())
            t_exact = _ns(lambda: A53 * B53, rows * d * cols)
            A, B = A53 * (arb(1) / 3), B53 * (arb(1) / 3)
            t_inexact = _ns(lambda: A * B, rows * d * cols)
        lines.append(f"| {prec} | {t_entries:.0f} | {t_map:.0f} | {t_comp:.0f} | {t_np:.0f} | {t_mul:.0f} | "
                     f"{t_build:.0f} | {t_exact:.1f} | {t_inexact:.1f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    out = Path(__file__).resolve().parent / "results" / "arb_entry_costs.md"
    out.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
