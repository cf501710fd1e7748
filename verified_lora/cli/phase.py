"""``verified-lora phase``: sweep L, Gamma and eps to find where the certified fast path stops paying."""

from __future__ import annotations

import argparse

from ._common import json_dumps, json_or_markdown, progress, quiet_flag, runner_flags, writable_path

__all__ = ["add", "run", "FIELD_FLAGS"]

FIELD_FLAGS = {"L_exponents": "--L-exp", "gamma_multiples": "--gamma", "eps_exponents": "--eps-exp",
               "sweep": "--L-exp/--gamma/--eps-exp", "cost_model": "--exp-cost", "exp_cost": "--exp-cost",
               "families": "--family", "family": "--family"}
"""API parameter names of :func:`verified_lora.bounds.phase.phase_sweep` and the flags that set them."""


def add(sub: argparse._SubParsersAction) -> None:
    """Register the ``phase`` subcommand."""
    p = sub.add_parser("phase", help="sweep L, Gamma and eps: where the certified fast path stops paying",
                       description="For L = 2^e, Gamma = m sqrt(ln L) (entry bound of Q and K) and eps = L^-c: the "
                                   "least certified degree, the rank k = C(d+g, g) and the predicted cost ratio "
                                   "fast/exact; prints a table, the boundary and the Aggarwal-Alman fit, and writes "
                                   "a PNG plot. Score interval: R = Gamma^2 (beta = 1/d, Alman-Song) unless --beta.",
                       parents=[json_or_markdown("print JSON", "print every table as Markdown"), quiet_flag(),
                                runner_flags()])
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
    p.set_defaults(func=run)


def _parse_list(text: str, field: str, kind: type = float) -> list:
    """``text`` as a comma list of ``kind`` values (ints also as ``'a:b'``); InputError naming ``field``."""
    from ..errors import InputError

    try:
        if kind is int and ":" in text:
            a, b = (int(x) for x in text.split(":"))
            return list(range(a, b + 1))
        return [kind(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise InputError(field, f"a comma list of {kind.__name__} values" + (" or 'a:b'" if kind is int else ""),
                         repr(text)) from None


def run(args: argparse.Namespace) -> int:
    """Parse the sweep flags, run the sweep, print the report and write the plot."""
    from ..bounds.cost import CostModel
    from ..bounds.phase import DEFAULT_GAMMA_MULTIPLES, phase_sweep, plot_phase
    from ..bounds.report import phase_report
    from ..errors import InputError

    if not args.no_plot:  # before the sweep, not after it
        import importlib.util
        import os

        writable_path(args.plot, "--plot")
        ext = os.path.splitext(args.plot)[1].lower()
        if ext not in (".png", ".pdf", ".svg", ".jpg", ".jpeg"):
            raise InputError("--plot", "a .png, .pdf, .svg or .jpg path", repr(args.plot))
        if importlib.util.find_spec("matplotlib") is None:
            raise InputError("--plot", "matplotlib installed (pip install 'verified-lora[plot]')", "not installed",
                             "install the plot extra, or pass --no-plot")
    L_exps = _parse_list(args.L_exp, "--L-exp", int)
    gammas = _parse_list(args.gamma, "--gamma") if args.gamma else list(DEFAULT_GAMMA_MULTIPLES)
    eps_exps = _parse_list(args.eps_exp, "--eps-exp")
    d = args.d if args.d == "log" else _parse_list(args.d, "--d", int)
    if d != "log":
        if len(d) != 1:
            raise InputError("--d", "one head dimension or 'log'", repr(args.d))
        d = d[0]
    beta = args.beta if args.beta == "1/d" else _parse_list(args.beta, "--beta")[0]
    if d != "log" and d < 1:
        raise InputError("--d", "a positive head dimension or 'log'", repr(args.d))
    if not 0 <= args.exp_cost < float("inf"):
        raise InputError("--exp-cost", "a finite number >= 0", repr(args.exp_cost))
    from ..progress import task

    sweep_progress = progress(args)
    with task(len(L_exps), "phase sweep (one step per L; larger L cost more)") as bar:
        started: list[str] = []

        def report(message: str) -> None:
            if message.startswith("L = 2^"):
                if started:
                    bar.update()  # the previous L is done
                started.append(message)
            sweep_progress(message)

        points = phase_sweep(L_exponents=L_exps, gamma_multiples=gammas, eps_exponents=eps_exps, d=d, beta=beta,
                             families=args.family or ("minimax",), cost_model=CostModel(exp_cost=args.exp_cost),
                             progress=report, workers=args.workers, scheduler=args.scheduler)
        bar.update()
    text, data = phase_report(points, markdown=args.markdown)
    if not args.no_plot:
        data["plot"] = plot_phase(points, args.plot)
        text += f"\nplot written: {data['plot']}"
    print(json_dumps(data) if args.json else text)
    return 0
