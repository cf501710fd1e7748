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
                                   "x_q, y, w_q, w_k, w_v (required); x_k (optional, default x_q), x_v (optional, default x_k); "
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


# ---------------------------------------------------------------------------- bench
def _add_bench(sub) -> None:
    p = sub.add_parser("bench", help="small fast-vs-exact benchmark (certified fast path, exact, torch)",
                       description="Time the certified fast path (factored, paper) against exact float64 and "
                                   "PyTorch autograd on a small sweep, with observed vs certified errors. The full "
                                   "sweep is benchmarks/fast_vs_exact.py.")
    p.add_argument("--d", type=int, action="append", help="head dimension(s) (default 4)")
    p.add_argument("--L", type=int, action="append", help="sequence length(s) (default 512 and 1024)")
    p.add_argument("--R", type=float, default=1.0, help="certified score bound of the inputs (default 1)")
    p.add_argument("--tol", type=float, default=1e-6, help="relative tolerance per gradient (default 1e-6)")
    p.add_argument("--repeats", type=int, default=3, help="runs per measurement (median; default 3)")
    p.add_argument("--out", help="directory for fast_vs_exact_bench.md/.json/.png (default: print only)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress messages")
    p.set_defaults(func=_run_bench)


def _run_bench(args: argparse.Namespace) -> int:
    import tempfile
    from pathlib import Path

    from .errors import InputError
    from .fast.bench import METHODS, run_sweep, write_outputs

    if args.tol <= 0 or args.tol >= 1:
        raise InputError("--tol", "a relative tolerance in (0, 1)", repr(args.tol))
    if args.R <= 0:
        raise InputError("--R", "a score bound > 0", repr(args.R))
    if args.repeats < 1:
        raise InputError("--repeats", "a positive int", repr(args.repeats))
    for L in args.L or []:
        if L < 1:
            raise InputError("--L", "positive sequence lengths", repr(L))
    for d in args.d or []:
        if d < 1:
            raise InputError("--d", "positive head dimensions", repr(d))
    progress = _progress(args)
    data = run_sweep(args.d or [4], sorted(args.L or [512, 1024]), R=args.R, tol=args.tol, repeats=args.repeats,
                     long_s=30.0, max_s=60.0, torch_max_L=4096, methods=METHODS, log=progress)
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="verified-lora-bench-"))
    stem = out / "fast_vs_exact_bench"
    write_outputs(data, stem)
    print(stem.with_suffix(".md").read_text())
    if args.out:
        print(f"written: {stem}.md, .json" + (", .png" if stem.with_suffix('.png').exists() else ""))
    return 0


# ---------------------------------------------------------------------------- bounds
def _add_bounds(sub) -> None:
    p = sub.add_parser("bounds", help="certified score bound, error bounds and plan (one problem or one point)",
                       description="With PROBLEM.npz: the certified score bound R, the plan (polynomial family, "
                                   "degree, rank, predicted cost) and the certified max-entry error bound of every "
                                   "gradient. With --L --d --R --eps: the least certified degree per family, the "
                                   "rank and the predicted cost ratio at that point.")
    p.add_argument("problem", nargs="?", help="a problem .npz")
    p.add_argument("--tol", type=float, default=1e-6, help="absolute max-entry tolerance per gradient (default 1e-6)")
    p.add_argument("--method", choices=("factored", "paper", "both"), default="both",
                   help="which fast algorithm to bound (default both)")
    p.add_argument("--family", action="append", help="polynomial family (repeatable; default all)")
    p.add_argument("--max-degree", type=int, default=40, help="largest degree tried (default 40)")
    p.add_argument("--full", action="store_true",
                   help="search degrees past the last one that pays, to report the degree tol needs")
    p.add_argument("--exp-cost", type=float, default=0.0,
                   help="FLOP-equivalents of one exp in the exact cost (default 0; about 227 on a 2-core CPU)")
    p.add_argument("--L", type=int, help="sequence length of a point (instead of a problem)")
    p.add_argument("--d", type=int, help="head dimension of a point")
    p.add_argument("--R", type=float, help="score bound of a point")
    p.add_argument("--eps", type=float, help="relative error of the polynomial at a point")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress messages")
    p.set_defaults(func=_run_bounds)


def _run_bounds(args: argparse.Namespace) -> int:
    from .bounds.cost import CostModel
    from .bounds.report import point_report, problem_report
    from .errors import InputError

    model = CostModel(exp_cost=args.exp_cost)
    point = [args.L, args.d, args.R, args.eps]
    if args.problem is not None:
        if any(v is not None for v in point):
            raise InputError("bounds", "either PROBLEM.npz or --L --d --R --eps", "both")
        from .problem import LoraAttention

        problem = LoraAttention.load_npz(args.problem)
        methods = ("factored", "paper") if args.method == "both" else (args.method,)
        text, data = problem_report(problem, args.tol, methods, families=args.family, max_degree=args.max_degree,
                                    cost_model=model, full_search=args.full, progress=_progress(args))
    else:
        if any(v is None for v in point):
            raise InputError("bounds", "PROBLEM.npz, or all of --L --d --R --eps", "neither",
                             "e.g. verified-lora bounds --L 4096 --d 8 --R 1 --eps 1e-6")
        from .approx.polynomials import FAMILIES

        text, data = point_report(args.L, args.d, args.R, args.eps, families=args.family or FAMILIES,
                                  cost_model=model)
    print(json.dumps(data, indent=2, default=_jsonable) if args.json else text)
    return 0


# ---------------------------------------------------------------------------- phase
def _add_phase(sub) -> None:
    p = sub.add_parser("phase", help="sweep L, Gamma and eps: where the certified fast path stops paying",
                       description="For L = 2^e, Gamma = m sqrt(ln L) (entry bound of Q and K) and eps = L^-c: the "
                                   "least certified degree, the rank k = C(d+g, g) and the predicted cost ratio "
                                   "fast/exact; prints a table, the boundary and the Aggarwal-Alman fit, and writes "
                                   "a PNG plot. Score interval: R = Gamma^2 (beta = 1/d, Alman-Song) unless --beta.")
    p.add_argument("--L-exp", default="8:20", help="exponents e of L = 2^e: 'a:b' or a comma list (default 8:20)")
    p.add_argument("--gamma", default=None, help="Gamma multiples of sqrt(ln L), comma list "
                                                 "(default 0.125,0.25,0.375,0.5,0.625,0.75,1,1.25,1.5)")
    p.add_argument("--eps-exp", default="0.5,1", help="exponents c of eps = L^-c, comma list (default 0.5,1)")
    p.add_argument("--d", default="log", help="head dimension, or 'log' for ceil(log2(L)/2), i.e. d = Theta(log L) "
                                             "(default log)")
    p.add_argument("--beta", default="1/d", help="score scale: '1/d' (default, R = Gamma^2) or a number (R = beta d Gamma^2)")
    p.add_argument("--family", action="append", help="polynomial families (repeatable; default minimax)")
    p.add_argument("--exp-cost", type=float, default=0.0, help="FLOP-equivalents of one exp (default 0)")
    p.add_argument("--plot", default="phase.png", help="PNG path (default phase.png); needs the 'plot' extra")
    p.add_argument("--no-plot", action="store_true", help="do not write the plot")
    p.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress messages")
    p.set_defaults(func=_run_phase)


def _parse_list(text: str, field: str, kind=float) -> list:
    from .errors import InputError

    try:
        if kind is int and ":" in text:
            a, b = (int(x) for x in text.split(":"))
            return list(range(a, b + 1))
        return [kind(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise InputError(field, f"a comma list of {kind.__name__} values" + (" or 'a:b'" if kind is int else ""),
                         repr(text)) from None


def _run_phase(args: argparse.Namespace) -> int:
    from .bounds.cost import CostModel
    from .bounds.phase import DEFAULT_GAMMA_MULTIPLES, phase_sweep, plot_phase
    from .bounds.report import phase_report
    from .errors import InputError

    L_exps = _parse_list(args.L_exp, "--L-exp", int)
    gammas = _parse_list(args.gamma, "--gamma") if args.gamma else list(DEFAULT_GAMMA_MULTIPLES)
    eps_exps = _parse_list(args.eps_exp, "--eps-exp")
    d = args.d if args.d == "log" else _parse_list(args.d, "--d", int)
    if d != "log":
        if len(d) != 1:
            raise InputError("--d", "one head dimension or 'log'", repr(args.d))
        d = d[0]
    beta = args.beta if args.beta == "1/d" else _parse_list(args.beta, "--beta")[0]
    points = phase_sweep(L_exponents=L_exps, gamma_multiples=gammas, eps_exponents=eps_exps, d=d, beta=beta,
                         families=args.family or ("minimax",), cost_model=CostModel(exp_cost=args.exp_cost),
                         progress=_progress(args))
    text, data = phase_report(points, markdown=args.markdown)
    if not args.no_plot:
        data["plot"] = plot_phase(points, args.plot)
        text += f"\nplot written: {data['plot']}"
    print(json.dumps(data, indent=2, default=_jsonable) if args.json else text)
    return 0


# ---------------------------------------------------------------------------- prove
def _add_prove(sub) -> None:
    p = sub.add_parser("prove", help="run the machine-checked proofs and write/re-check their certificates",
                       description="Run the SymPy proofs of the paper's claims (and the counterexamples to its printed "
                                   "errors; see ERRATA.md), print claim / level / scope / result / time, and write the "
                                   "certificates under proofs/certificates/. CLAIM selects by id or id prefix.")
    p.add_argument("claims", nargs="*", metavar="CLAIM", help="claim ids or prefixes (default: all)")
    p.add_argument("--list", action="store_true", help="list the registered claims and exit")
    p.add_argument("--check", action="store_true",
                   help="re-run and compare with the stored certificates byte for byte; write nothing")
    p.add_argument("--no-write", action="store_true", help="run the proofs but do not write certificates")
    p.add_argument("--json", action="store_true", help="print the rows as JSON")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress messages")
    p.set_defaults(func=_run_prove)


def _run_prove(args: argparse.Namespace) -> int:
    from ._table import format_table
    from .errors import InputError
    from .symbolic import certificates, prove

    if args.list:
        certificates.discover()
        rows = [(p.claim, p.expect, p.title) for p in certificates.select()]
        print(format_table(("claim", "expected", "title"), rows))
        return 0
    t0 = time.perf_counter()
    try:
        rows = prove.run(args.claims, check=args.check, write=not args.no_write, progress=_progress(args))
    except KeyError as exc:
        raise InputError("CLAIM", "a registered claim id or prefix (see `verified-lora prove --list`)",
                         str(exc)) from None
    orphans = prove.orphan_certificates() if args.check and not args.claims else []
    ok = all(r.ok for r in rows) and not orphans
    if args.json:
        print(json.dumps({"passed": ok, "seconds": round(time.perf_counter() - t0, 2),
                          "orphans": [p.name for p in orphans],
                          "rows": [{"claim": r.claim, "level": r.level, "scope": r.scope, "result": r.result,
                                    "seconds": round(r.seconds, 3), "certificate": r.certificate, "ok": r.ok,
                                    "message": r.message} for r in rows]}, indent=2))
        return 0 if ok else 1

    def short(text: str, n: int = 58) -> str:
        return text if len(text) <= n else text[: n - 3] + "..."

    table = [(r.claim, r.level, short(r.scope), r.result if r.ok else f"FAIL: {short(r.message, 70)}",
              f"{r.seconds:.2f}", r.certificate) for r in rows]
    print(format_table(("claim", "level", "scope", "result", "time s", "certificate"), table))
    for p in orphans:
        print(f"stale certificate (no registered proof): {p}")
    levels = {}
    for r in rows:
        levels[r.level] = levels.get(r.level, 0) + 1
    summary = ", ".join(f"{n} {lvl}" for lvl, n in sorted(levels.items()))
    print(f"\n{'PASS' if ok else 'FAIL'}: {sum(r.ok for r in rows)}/{len(rows)} claims ({summary}) in "
          f"{time.perf_counter() - t0:.1f}s")
    return 0 if ok else 1


# ---------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="verified-lora",
        description="Verification-backed LoRA attention gradients (Hu et al., ICLR 2025).")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    # One registration per subcommand; later layers append theirs here.
    for add in (_add_verify, _add_grad, _add_audit, _add_kernels, _add_bench, _add_bounds, _add_phase, _add_prove):
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
