"""``verified-lora grad``: loss and gradients of a stored problem (.npz)."""

from __future__ import annotations

import argparse
import json

from ._common import json_flag

__all__ = ["add", "run"]


def add(sub: argparse._SubParsersAction) -> None:
    """Register the ``grad`` subcommand."""
    p = sub.add_parser("grad", help="loss and gradients of a stored problem (.npz)",
                       description="Compute the loss and adapter gradients of a problem stored as .npz. Keys: "
                                   "x_q, y, w_q, w_k, w_v (required); x_k (optional, default x_q), x_v (optional, default x_k); "
                                   "a_q/b_q, a_k/b_k, a_v/b_v (adapter pairs, optional); alpha, beta "
                                   "(scalars, default 1); scaling ('lora' or 'rslora').",
                       parents=[json_flag("print JSON (loss, gradients as nested lists)")])
    p.add_argument("problem", help="path of the .npz problem")
    p.add_argument("--reference", action="store_true", help="use the mpmath reference instead of exact float64")
    p.add_argument("--dps", type=int, default=50, help="decimal digits of the mpmath reference (default 50)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print the loss and gradients (exact float64, or the mpmath reference with ``--reference``)."""
    import numpy as np

    from ..problem import LoraAttention

    problem = LoraAttention.load_npz(args.problem)
    if args.reference:
        from .. import reference

        result = reference.to_float(reference.loss_and_grads(problem, dps=args.dps))
    else:
        from .. import exact

        result = exact.loss_and_grads(problem)
    if args.json:
        print(json.dumps({"problem": problem.describe(), "method": result.method, "loss": float(result.loss),
                          "grads": {k: np.asarray(v).tolist() for k, v in result.grads.items()},
                          "weight_grads": {k: np.asarray(v).tolist() for k, v in result.weight_grads.items()}}))
        return 0
    print(problem.describe())
    print(f"method: {result.method}")
    print(f"loss = {float(result.loss):.17g}")
    with np.printoptions(precision=17, linewidth=120):
        for key, value in result.grads.items():
            print(f"\ndL/d{key} {tuple(np.shape(value))}:\n{np.asarray(value)}")
    return 0
