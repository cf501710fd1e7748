"""Min-degree table of the certified polynomial approximations of exp (issue 4 acceptance).

For R in {0.5, 1, 2, 4, 8}, eps in {1e-3, 1e-6, 1e-9, 1e-12} and every family, computes
``min_degree(R, eps, family)`` (cold: each cell in a fresh cache), its certified error (interval
branch-and-bound), an independent dense 60-digit mpmath sample of the same error (uniform and
Chebyshev-clustered grid of ``--samples`` points plus golden-section refinement around the best
samples) and the ratio certified/sampled; for the Taylor families also the SymPy-derived Lagrange
bound. Then fits the Aggarwal-Alman constants to the measured minimal degrees of each family.

    python3 benchmarks/min_degree_table.py             # writes benchmarks/results/min_degree_table.md
    python3 benchmarks/min_degree_table.py --quick     # R in {0.5, 2}, eps in {1e-3, 1e-9}; prints only
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from fractions import Fraction
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

RADII = [0.5, 1, 2, 4, 8]
EPSILONS = [1e-3, 1e-6, 1e-9, 1e-12]


def sampled_max(poly, R, n: int, dps: int = 60):
    """Dense-sampling estimate of max |P(x) e^{-x} - 1| (a lower estimate; shares no code with
    the certificate)."""
    import mpmath

    with mpmath.workdps(dps):
        Rq = Fraction(R)
        Rm = mpmath.mpf(Rq.numerator) / Rq.denominator
        cs = [mpmath.mpf(c.numerator) / c.denominator for c in reversed(poly.coeffs)]

        def err(x):
            return abs(mpmath.polyval(cs, x) * mpmath.exp(-x) - 1)

        xs = sorted({Rm * (2 * mpmath.mpf(i) / (n - 1) - 1) for i in range(n)}
                    | {-Rm * mpmath.cos(mpmath.pi * i / (n - 1)) for i in range(n)})
        vals = [err(x) for x in xs]
        best = max(vals)
        phi = (mpmath.sqrt(5) - 1) / 2
        for i in sorted(range(len(xs)), key=lambda j: vals[j], reverse=True)[:6]:
            a, b = xs[max(i - 1, 0)], xs[min(i + 1, len(xs) - 1)]
            for _ in range(40):
                c, d = b - phi * (b - a), a + phi * (b - a)
                if err(c) >= err(d):
                    b = d
                else:
                    a = c
            best = max(best, err((a + b) / 2))
        return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "min_degree_table.md"))
    args = parser.parse_args(argv)

    import flint
    import mpmath
    import sympy

    from verified_lora.approx import degree as degree_mod
    from verified_lora.approx import polynomials as poly_mod
    from verified_lora.approx.aggarwal_alman import fit_aggarwal_alman
    from verified_lora.approx.certify import certify_relative_error
    from verified_lora.approx.degree import min_degree
    from verified_lora.approx.polynomials import FAMILIES, make_polynomial
    from verified_lora.approx.remainder import taylor_remainder_bound

    radii = [0.5, 2] if args.quick else RADII
    epss = [1e-3, 1e-9] if args.quick else EPSILONS

    def clear_caches():
        degree_mod._choose.cache_clear()
        degree_mod.degree_table.cache_clear()
        poly_mod._chebyshev_cached.cache_clear()
        poly_mod._minimax_cached.cache_clear()

    rows = []
    for family in FAMILIES:
        for R in radii:
            for eps in epss:
                clear_caches()
                t0 = time.perf_counter()
                g = min_degree(R, eps, family)
                cold = time.perf_counter() - t0
                t0 = time.perf_counter()
                min_degree(R, eps, family)
                warm = time.perf_counter() - t0
                p = make_polynomial(family, g, R)
                cert = certify_relative_error(p, R)
                step = 2 if family == "taylor_even" else 1
                below = certify_relative_error(make_polynomial(family, g - step, R), R) if g >= step else None
                s = sampled_max(p, R, args.samples)
                ratio = float(cert.value / s)
                taylor_b = taylor_remainder_bound(R, g) if family.startswith("taylor") else None
                rows.append(dict(family=family, R=R, eps=eps, g=g, cert=cert.value, sampled=float(s), ratio=ratio,
                                 below=None if below is None else below.lower_value, taylor=taylor_b,
                                 cold=cold, warm=warm))
                print(f"{family:12s} R={R:<4} eps={eps:.0e} g={g:3d} cert={cert.value:.4e} sampled={float(s):.4e} "
                      f"ratio={ratio:.5f} cold={cold:.3f}s warm={warm * 1e6:.0f}us", file=sys.stderr, flush=True)

    fits = {}
    for family in FAMILIES:
        samples = [(r["R"], r["eps"], r["g"]) for r in rows if r["family"] == family]
        fits[family] = (fit_aggarwal_alman(samples, family=family),
                        fit_aggarwal_alman(samples, family=family, intercept=False))

    ratios = [r["ratio"] for r in rows]
    lines = ["# Certified minimal degrees of polynomial approximations of exp", "",
             f"Generated by `python3 benchmarks/min_degree_table.py` on {platform.node()} "
             f"({platform.machine()}, Python {platform.python_version()}, python-flint {flint.__version__}, "
             f"mpmath {mpmath.__version__}, SymPy {sympy.__version__}).", "",
             "Cell: least degree g with certified max_{|x|<=R} |P(x)e^{-x} - 1| <= eps, and in brackets the ratio "
             "certified / sampled (60-digit mpmath, dense grid + golden-section refinement).", ""]
    for family in FAMILIES:
        lines += [f"## {family}", "", "| R \\ eps | " + " | ".join(f"{e:.0e}" for e in epss) + " |",
                  "|---|" + "---|" * len(epss)]
        for R in radii:
            cells = [r for r in rows if r["family"] == family and r["R"] == R]
            lines.append(f"| {R} | " + " | ".join(f"{c['g']} ({c['ratio']:.4f})" for c in cells) + " |")
        lines.append("")
    lines += [f"**Ratio certified/sampled over all {len(rows)} cells: min {min(ratios):.5f}, max {max(ratios):.5f}.**",
              "", "## Details", "",
              "| family | R | eps | g | certified | sampled | ratio | certified(g-1 or g-2) lower | "
              "Taylor Lagrange bound | cold s | warm us |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        tb = "" if r["taylor"] is None else f"{r['taylor']:.3e}"
        bl = "" if r["below"] is None else f"{r['below']:.3e}"
        lines.append(f"| {r['family']} | {r['R']} | {r['eps']:.0e} | {r['g']} | {r['cert']:.4e} | {r['sampled']:.4e} | "
                     f"{r['ratio']:.5f} | {bl} | {tb} | {r['cold']:.3f} | {r['warm'] * 1e6:.0f} |")
    lines += ["", "## Aggarwal-Alman fit", "",
              "Model g ~= c0 + max(c_B * B, c_L * L / max(1, ln(L/B))) with B = 2R (interval length after the "
              "shift e^x = e^{-R} e^{x+R}) and L = ln(1/eps); least squares over the cells above.", "",
              "| family | c_B | c_L | c0 | RMSE | max abs residual | R^2 | (c_B, c_L) without intercept | RMSE |",
              "|---|---|---|---|---|---|---|---|---|"]
    for family, (f, f0) in fits.items():
        lines.append(f"| {family} | {f.c_B:.4f} | {f.c_L:.4f} | {f.c0:.3f} | {f.rmse:.3f} | {f.max_abs_residual:.3f} | "
                     f"{f.r2:.4f} | ({f0.c_B:.4f}, {f0.c_L:.4f}) | {f0.rmse:.3f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if not args.quick:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
        print(f"wrote {out}", file=sys.stderr)
    bad = [r for r in rows if not (1 <= r["ratio"] <= 1.01)]
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
