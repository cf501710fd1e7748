"""Command-line interface: argparse subcommands only; every computation lives in the library.

Subcommands: verify, grad (and the ones later layers register in :func:`build_parser`).
Each handler returns the process exit code: 0 on success, 1 when a check failed, 2 on bad input.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence

from .errors import VerifiedLoraError

__all__ = ["main", "build_parser"]


def _progress(args: argparse.Namespace):
    quiet = getattr(args, "quiet", False)
    t0 = time.perf_counter()

    def report(message: str) -> None:
        if not quiet:
            print(f"  [{time.perf_counter() - t0:7.1f}s] {message}", file=sys.stderr, flush=True)

    return report


# ---------------------------------------------------------------------------- verify
def _add_verify(sub) -> None:
    p = sub.add_parser("verify", help="run every verification layer on the built-in default problem",
                       description="Run every verification layer (exact vs mpmath reference and enclosures, "
                                   "proofs, bounds, fast path, kernels, audit) and print a verdict table.")
    p.add_argument("problem", nargs="?", help="a problem .npz (default: the built-in default problem)")
    p.add_argument("--only", action="append", metavar="SECTION",
                   help="run only sections whose title contains this text (repeatable)")
    p.add_argument("--json", action="store_true", help="print the verdicts as JSON")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress messages")
    p.set_defaults(func=_run_verify)


def _run_verify(args: argparse.Namespace) -> int:
    from . import verify
    from ._table import format_table
    from .examples import default_problem
    from .problem import LoraAttention

    problem = LoraAttention.load_npz(args.problem) if args.problem else default_problem()
    progress = _progress(args)
    if not args.json:
        print(f"verified-lora verify: {problem.describe()}")
    sections = verify.run(problem, progress=progress, only=args.only)
    ok = all(s.passed for s in sections)
    if args.json:
        print(json.dumps({"problem": problem.describe(), "passed": ok, "sections": [
            {"title": s.title, "passed": s.passed, "seconds": round(s.seconds, 3), "checks": [
                {"name": c.name, "verdict": c.verdict, "observed": _jsonable(c.observed),
                 "bound": _jsonable(c.bound), "detail": c.detail} for c in s.checks]} for s in sections]},
            indent=2))
        return 0 if ok else 1
    for s in sections:
        print()
        rows = [(c.name, c.verdict, c.observed, c.bound, c.detail) for c in s.checks]
        print(format_table(("check", "verdict", "observed", "bound", "detail"), rows,
                           title=f"== {s.title} ({s.seconds:.1f}s): {'PASS' if s.passed else 'FAIL'}"))
    n_fail = sum(c.passed is False for s in sections for c in s.checks)
    n_skip = sum(c.passed is None for s in sections for c in s.checks)
    n_pass = sum(c.passed is True for s in sections for c in s.checks)
    print(f"\nverdict: {'PASS' if ok else 'FAIL'} ({n_pass} passed, {n_fail} failed, {n_skip} skipped)")
    return 0 if ok else 1


def _jsonable(x):
    if x is None or isinstance(x, (bool, int, str)):
        return x
    try:
        return float(x)
    except (TypeError, ValueError):
        return str(x)


# ---------------------------------------------------------------------------- grad
def _add_grad(sub) -> None:
    p = sub.add_parser("grad", help="loss and gradients of a stored problem (.npz)",
                       description="Compute the loss and adapter gradients of a problem stored as .npz. Keys: "
                                   "x_q, y, w_q, w_k, w_v (required); x_k, x_v (optional, default x_q); "
                                   "a_q/b_q, a_k/b_k, a_v/b_v (adapter pairs, optional); alpha, beta "
                                   "(scalars, default 1); scaling ('lora' or 'rslora').")
    p.add_argument("problem", help="path of the .npz problem")
    p.add_argument("--reference", action="store_true", help="use the mpmath reference instead of exact float64")
    p.add_argument("--dps", type=int, default=50, help="decimal digits of the mpmath reference (default 50)")
    p.add_argument("--json", action="store_true", help="print JSON (loss, gradients as nested lists)")
    p.set_defaults(func=_run_grad)


def _run_grad(args: argparse.Namespace) -> int:
    import numpy as np

    from .problem import LoraAttention

    problem = LoraAttention.load_npz(args.problem)
    if args.reference:
        from . import reference

        result = reference.to_float(reference.loss_and_grads(problem, dps=args.dps))
    else:
        from . import exact

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


# ---------------------------------------------------------------------------- audit
def _add_audit(sub) -> None:
    p = sub.add_parser("audit", help="audit a LoRA implementation (peft, loralib, module.path:factory)",
                       description="Audit a LoRA implementation against the mpmath reference with derived per-entry "
                                   "error bounds: layout, fused-qkv slices, scaling convention, forward, gradients, "
                                   "merge, dropout, input mutation, low-precision gradients. TARGET is 'peft', "
                                   "'loralib' or 'module.path:factory' (a factory returning a torch module).")
    p.add_argument("target", metavar="TARGET", help="peft | loralib | module.path:factory")
    p.add_argument("--seed", type=int, default=0, help="seed of the drawn problems (default 0)")
    p.add_argument("--examples", type=int, default=3, help="drawn problems per case (default 3)")
    p.add_argument("--check", action="append", metavar="NAME", help="run only this check (repeatable)")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="print the report as JSON")
    fmt.add_argument("--markdown", action="store_true", help="print the report as Markdown")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress messages")
    p.set_defaults(func=_run_audit)


def _run_audit(args: argparse.Namespace) -> int:
    from .audit import audit

    report = audit(args.target, seed=args.seed, examples=args.examples, checks=args.check,
                   progress=_progress(args))
    print(report.to_json() if args.json else report.to_markdown() if args.markdown else report.to_text())
    return 0 if report.passed else 1


# ---------------------------------------------------------------------------- kernels
def _add_kernels(sub) -> None:
    p = sub.add_parser("kernels", help="generated CUDA kernels: list, drift check, update, nvcc, accuracy",
                       description="Regenerate the CUDA kernels from the SymPy specs and compare them with the "
                                   "committed gpu/*.cu files. --check exits 1 on drift; --update rewrites them; "
                                   "--nvcc compiles each with nvcc -ptx -arch=sm_90; --accuracy runs every kernel "
                                   "on the CPU (g++ + CUDA shim) against mpmath and prints max ulp / relative errors.")
    p.add_argument("--check", action="store_true", help="exit 1 if a committed kernel differs from its regeneration")
    p.add_argument("--update", action="store_true", help="rewrite gpu/*.cu from the specs")
    p.add_argument("--dir", metavar="DIR", help="kernel directory (default: gpu/ of the source checkout)")
    p.add_argument("--nvcc", action="store_true", help="compile every kernel with nvcc -ptx -arch=sm_90")
    p.add_argument("--accuracy", action="store_true", help="CPU-executed kernels vs mpmath: error table")
    p.add_argument("--samples", type=int, default=4, help="random inputs per kernel and dtype for --accuracy")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress messages")
    p.set_defaults(func=_run_kernels)


def _run_kernels(args: argparse.Namespace) -> int:
    from .codegen.report import kernels_command

    return kernels_command(check=args.check, update=args.update, directory=args.dir, accuracy=args.accuracy,
                           samples=args.samples, nvcc=args.nvcc, progress=_progress(args))


# ---------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="verified-lora",
        description="Verification-backed LoRA attention gradients (Hu et al., ICLR 2025).")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    # One registration per subcommand; later layers append theirs here.
    for add in (_add_verify, _add_grad, _add_audit, _add_kernels):
        add(sub)
    return parser


def _version() -> str:
    from . import __version__

    return __version__


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except VerifiedLoraError as exc:
        print(f"verified-lora {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
