"""``verified-lora grad``: loss and gradients of a stored problem (.npz)."""

from __future__ import annotations

import argparse

from ._common import json_dumps, json_flag

__all__ = ["add", "run"]


def add(sub: argparse._SubParsersAction) -> None:
    """Register the ``grad`` subcommand."""
    p = sub.add_parser("grad", help="loss and gradients of a stored problem (.npz)",
                       description="Compute the loss and adapter gradients of a problem stored as .npz. Keys: "
                                   "x_q, y, w_q, w_k, w_v (required); x_k (optional, default x_q), x_v (optional, default x_k); "
                                   "a_q/b_q, a_k/b_k, a_v/b_v (adapter pairs, optional); alpha, beta "
                                   "(scalars, default 1); scaling ('lora' or 'rslora').",
                       parents=[json_flag("print JSON (loss, gradients as nested lists of floats; with "
                                          "--reference also 'decimal': strings of --dps digits)")])
    p.add_argument("problem", help="path of the .npz problem")
    p.add_argument("--reference", action="store_true", help="use the mpmath reference instead of exact float64")
    p.add_argument("--dps", type=int, default=None,
                   help="decimal digits of the mpmath reference, printed in full (default 50; needs --reference)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print the loss and gradients (exact float64, or the mpmath reference with ``--reference``)."""
    import numpy as np

    from ..errors import InputError
    from ..problem import LoraAttention

    if args.dps is not None and not args.reference:
        raise InputError("--dps", "--reference as well (--dps sets the reference's precision)", "--dps alone",
                         "add --reference")
    if args.reference:
        from ..reference.mp import check_dps

        dps = check_dps(50 if args.dps is None else args.dps, "--dps")
    problem = LoraAttention.load_npz(args.problem)
    from .. import reference

    if args.reference:
        import mpmath

        result = reference.loss_and_grads(problem, dps=dps)

        def show(x):  # every digit of the reference, not a float64 rounding of it
            return mpmath.nstr(x, dps, min_fixed=-4, max_fixed=6)
    else:
        from .. import exact

        result = exact.loss_and_grads(problem)
        digits = 17 if problem.dtype == np.float64 else 9  # enough to round-trip the dtype

        def show(x):
            return f"{float(x):.{digits}g}"
    if args.json:
        floats = reference.to_float(result) if args.reference else result
        data = {"problem": problem.describe(), "method": result.method, "loss": float(floats.loss),
                "grads": {k: np.asarray(v) for k, v in floats.grads.items()},
                "weight_grads": {k: np.asarray(v) for k, v in floats.weight_grads.items()}}
        if args.reference:  # every digit of the reference, as decimal strings
            data["dps"] = dps
            data["decimal"] = {"loss": show(result.loss),
                               "grads": {k: [[show(v) for v in row] for row in np.asarray(a)]
                                         for k, a in result.grads.items()}}
        print(json_dumps(data))
        return 0
    print(problem.describe())
    print(f"method: {result.method}" + (f" ({dps} digits)" if args.reference else
                                        f" ({problem.dtype}, {digits} significant digits)"))
    print(f"loss = {show(result.loss)}")
    for key, value in result.grads.items():
        cells = [[show(v) for v in row] for row in np.asarray(value)]
        width = max(len(c) for row in cells for c in row)
        print(f"\ndL/d{key} {tuple(np.shape(value))}:")
        for row in cells:
            print("  " + "  ".join(c.rjust(width) for c in row))
    return 0
