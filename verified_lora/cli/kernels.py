"""``verified-lora kernels``: the generated CUDA kernels (list, drift check, update, nvcc, accuracy)."""

from __future__ import annotations

import argparse
import os

from ._common import markdown_flag, progress, quiet_flag

__all__ = ["add", "run"]


def add(sub: argparse._SubParsersAction) -> None:
    """Register the ``kernels`` subcommand."""
    p = sub.add_parser("kernels", help="generated CUDA kernels: list, drift check, update, nvcc, accuracy",
                       description="Regenerate the CUDA kernels from the SymPy specs and compare them with the "
                                   "committed verified_lora/kernels/cuda/*.cu files. --check exits 1 on drift; --update rewrites them; "
                                   "--nvcc compiles each with nvcc -ptx -arch=sm_90; --accuracy runs every kernel "
                                   "on the CPU (g++ + CUDA shim) against mpmath and prints max ulp / relative errors.",
                       parents=[markdown_flag("print the tables as Markdown"), quiet_flag()])
    p.add_argument("--check", action="store_true", help="exit 1 if a committed kernel differs from its regeneration")
    p.add_argument("--update", action="store_true", help="rewrite verified_lora/kernels/cuda/*.cu (and manifest.json) from the specs")
    p.add_argument("--dir", metavar="DIR", help="kernel directory (default: verified_lora/kernels/cuda/)")
    p.add_argument("--nvcc", action="store_true", help="compile every kernel with nvcc -ptx -arch=sm_90")
    p.add_argument("--accuracy", action="store_true", help="CPU-executed kernels vs mpmath: error table")
    p.add_argument("--samples", type=int, default=4, help="random inputs per kernel and dtype for --accuracy")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Delegate to :func:`verified_lora.codegen.report.kernels_command`."""
    from ..errors import InputError

    if args.samples < 1:  # flags first, before the codegen stack is imported
        raise InputError("--samples", "a positive int", repr(args.samples))
    if args.dir is not None and not os.path.isdir(args.dir) and not args.update:
        raise InputError("--dir", "an existing directory", repr(args.dir))
    from ..codegen.report import kernels_command

    return kernels_command(check=args.check, update=args.update, directory=args.dir, accuracy=args.accuracy,
                           samples=args.samples, nvcc=args.nvcc, progress=progress(args))
