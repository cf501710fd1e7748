"""How tight are the certified gradient bounds? observed / certified on a few problems.

For each problem and method: the plan's polynomial (``plan(..., full_search=True)``) is applied
densely (verified_lora/testing/dense.py, the independent O(L L_k) implementation) and the max-entry error
against ``verified_lora.exact`` is divided by the certified bound, per gradient. A second table
uses adversarial relative perturbations ``exp(S) (1 + eps sigma)`` (random signs and sign(S)).

Run: ``python3 benchmarks/bounds_tightness.py`` (about a minute on the 2-core box).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from verified_lora.testing.dense import dense_grads, item_matrices, poly_of  # noqa: E402
from verified_lora import exact  # noqa: E402
from verified_lora._table import format_markdown  # noqa: E402
from verified_lora.bounds import gradient_bounds, plan  # noqa: E402
from verified_lora.examples import random_problem  # noqa: E402

PROBLEMS = {
    "L=48,Lk=40,d=2,scale 0.3": dict(seed=3, L=48, L_k=40, d_model=3, d_head=2, d_v=2, scale=0.3, beta=0.5),
    "L=64,d=4,scale 0.25,batch 2": dict(seed=5, L=64, d_model=6, d_head=4, d_v=3, scale=0.25, beta=0.5, n_batch=2),
    "L=200,Lk=150,d=2,scale 0.3": dict(seed=1, L=200, L_k=150, d_model=4, d_head=2, d_v=2, scale=0.3, beta=0.5),
    "default-like L=10,Lk=7,scale 0.2": dict(seed=2025, L=10, L_k=7, d_model=6, d_head=4, d_v=3, scale=0.2, beta=0.5),
}


def main() -> None:
    rows = []
    for name, spec in PROBLEMS.items():
        kw = dict(spec)
        prob = random_problem(kw.pop("seed"), **kw)
        ex = exact.loss_and_grads(prob)
        for method in ("factored", "paper"):
            for tol in (1e-4, 1e-8):
                pl = plan(prob, tol, method, full_search=True)
                if pl.degree is None:
                    rows.append((name, method, tol, "-", "-", "-", "-", pl.reason[:60]))
                    continue
                P = poly_of(pl.polynomial.coeffs, "float")
                dP = poly_of(pl.polynomial.derivative().coeffs, "float")
                _, g, _ = dense_grads(prob, method, lambda S, n: P(S), lambda S, n: dP(S))
                ratios = {k: float(np.max(np.abs(g[k] - ex.grads[k]))) / pl.bounds[k] for k in pl.bounds}
                worst = max(ratios, key=ratios.get)
                rows.append((name, method, tol, f"{pl.family} {pl.degree}", pl.max_bound,
                             f"{min(ratios.values()):.2e} .. {max(ratios.values()):.2e}", worst,
                             "efficient" if pl.efficient else "not efficient"))
    print("## Plan polynomial: observed / certified (max-entry, per adapter gradient)\n")
    print(format_markdown(("problem", "method", "tol", "polynomial", "max certified bound",
                           "observed/certified range", "tightest key", "verdict"), rows))
    rows = []
    eps = 1e-6
    for name, spec in PROBLEMS.items():
        kw = dict(spec)
        prob = random_problem(kw.pop("seed"), **kw)
        ex = exact.loss_and_grads(prob)
        for method in ("factored", "paper"):
            b = gradient_bounds(prob, eps, eps, method)
            for pattern in ("random signs", "sign(S)"):
                sig = []
                for n, (*_, S) in enumerate(item_matrices(prob)):
                    rng = np.random.default_rng(n)
                    sig.append(rng.choice([-1.0, 1.0], size=S.shape) if pattern == "random signs"
                               else np.where(S >= 0, 1.0, -1.0))
                w, g, _ = dense_grads(prob, method, lambda S, n: np.exp(S) * (1 + eps * sig[n]),
                                      lambda S, n: np.exp(S) * (1 - eps * sig[n]))
                r = {k: float(np.max(np.abs(g[k] - ex.grads[k]))) / b.grads[k] for k in b.grads}
                rw = {k: float(np.max(np.abs(w[k] - ex.weight_grads[k]))) / b.weights_max[k] for k in "QKV"}
                rows.append((name, method, pattern, max(r.values()), rw["Q"], rw["K"], rw["V"]))
    print("\n## Adversarial relative perturbations, eps_A = eps_D = 1e-6: observed / certified\n")
    print(format_markdown(("problem", "method", "perturbation", "max over adapters", "dW_Q", "dW_K", "dW_V"), rows))


if __name__ == "__main__":
    main()
