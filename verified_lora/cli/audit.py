"""``verified-lora audit``: audit a LoRA implementation (peft, loralib, module.path:factory)."""

from __future__ import annotations

import argparse
import math
import re
import sys
import time
from collections.abc import Callable

from ._common import json_or_markdown, progress, quiet_flag

__all__ = ["add", "run"]

_PATH = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)*$")


def _path(text: str) -> str:
    if not _PATH.match(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a dotted attribute path (e.g. 'base_layer.weight', "
                                         "'lora_A.default', 'lora_down')")
    return text


def _alpha(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number (e.g. --alpha 16)") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not finite; give the declared lora_alpha (e.g. --alpha 16)")
    return value


def _rank(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer (e.g. --rank 8)") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} is negative; the rank r is >= 0 (0 declares a disabled adapter)")
    return value


def _merge(text: str) -> str:
    if text in ("none", "train_eval"):
        return text
    parts = [p.strip() for p in text.split(",")]
    if len(parts) != 2 or not all(_PATH.match(p) for p in parts):
        raise argparse.ArgumentTypeError(f"{text!r}: expected MERGE,UNMERGE method names (e.g. 'merge,unmerge' or "
                                         "'_fuse_lora,_unfuse_lora'), 'train_eval' or 'none'")
    return ",".join(parts)


def add(sub: argparse._SubParsersAction) -> None:
    """Register the ``audit`` subcommand."""
    p = sub.add_parser("audit", help="audit a LoRA implementation (peft, loralib, module.path:factory)",
                       description="Audit a LoRA implementation against the mpmath reference with derived per-entry "
                                   "error bounds: layout, fused-qkv slices, scaling convention, forward, gradients, "
                                   "merge, dropout, input mutation, low-precision gradients. TARGET is 'peft', "
                                   "'loralib' or 'module.path:factory' (a factory returning a LoRA layer, an "
                                   "attention module or a whole model: then every LoRA-carrying module is audited "
                                   "with its own weights and with fresh draws; modules the audit cannot map are "
                                   "listed and the verdict is PARTIAL). Keras 3 layers with enable_lora are audited on Keras' torch "
                                   "backend: KERAS_BACKEND is set to 'torch' when unset, another backend is "
                                   "refused. Exit codes: 0 PASS or WARN, 1 a check "
                                   "failed, 2 PARTIAL, bad input or an error of the tool itself.",
                       parents=[json_or_markdown("print the report as JSON", "print the report as Markdown"),
                                quiet_flag()])
    p.add_argument("target", metavar="TARGET", help="peft | loralib | module.path:factory")
    p.add_argument("--seed", type=int, default=0, help="seed of the drawn problems (default 0)")
    p.add_argument("--examples", type=int, default=3, help="drawn problems per case (default 3)")
    p.add_argument("--check", action="append", metavar="NAME", help="run only this check (repeatable)")
    m = p.add_argument_group("explicit mapping of one layer (for what detection cannot settle; paths are "
                             "dotted attribute paths relative to the layer the factory returns)")
    m.add_argument("--base", type=_path, metavar="PATH", help="the frozen base weight or the module holding it "
                                                               "(e.g. base_layer, linear.weight)")
    m.add_argument("--lora-a", type=_path, metavar="PATH", help="the down-projection factor A (r rows) or its module")
    m.add_argument("--lora-b", type=_path, metavar="PATH", help="the up-projection factor B (r columns) or its module")
    m.add_argument("--alpha", type=_alpha, metavar="ALPHA", help="the declared lora_alpha")
    m.add_argument("--rank", type=_rank, metavar="R", help="the declared rank r (0: a disabled adapter)")
    m.add_argument("--merge", type=_merge, metavar="MERGE,UNMERGE",
                   help="the merge and unmerge method names, 'train_eval' (merge on eval()) or 'none'")
    p.set_defaults(func=run)


MAPPING_FLAGS = (("base", "--base"), ("lora_a", "--lora-a"), ("lora_b", "--lora-b"), ("alpha", "--alpha"),
                 ("rank", "--rank"), ("merge", "--merge"))


def _spec(args: argparse.Namespace):
    """The :class:`~verified_lora.audit.spec.LoraSpec` of the mapping flags, or None when none is given."""
    given = {name: getattr(args, name, None) for name, _ in MAPPING_FLAGS}
    if all(v is None for v in given.values()):
        return None
    from ..audit.spec import LoraSpec
    from ..errors import AuditError

    try:
        return LoraSpec.from_flags(**given)
    except AuditError as exc:
        flags = ", ".join(flag for name, flag in MAPPING_FLAGS if given[name] is not None)
        raise AuditError(f"explicit mapping ({flags}): {exc}") from None


def _case_progress(args: argparse.Namespace) -> tuple[Callable[[int, int, str], None] | None, Callable[[], None]]:
    """A tqdm bar over the cases on a terminal, plain ``[elapsed] case k/n: name`` lines otherwise."""
    if getattr(args, "quiet", False):
        return None, lambda: None
    if sys.stderr.isatty():
        try:
            from tqdm import tqdm
        except ImportError:  # pragma: no cover - tqdm ships with the audit extra's dependencies
            tqdm = None
        if tqdm is not None:
            bar: list = []

            def update(k: int, n: int, name: str) -> None:
                if not bar:
                    bar.append(tqdm(total=n, unit="case", file=sys.stderr, dynamic_ncols=True))
                else:
                    bar[0].update(1)
                bar[0].set_description_str(name[-60:])

            def close() -> None:
                if bar:
                    bar[0].update(1)
                    bar[0].close()

            return update, close
    t0 = time.perf_counter()

    def line(k: int, n: int, name: str) -> None:
        print(f"  [{time.perf_counter() - t0:7.1f}s] case {k + 1}/{n}: {name}", file=sys.stderr, flush=True)

    return line, lambda: None


def run(args: argparse.Namespace) -> int:
    """Audit the target and print the report; exit 0 (PASS/WARN), 1 (FAIL) or 2 (PARTIAL)."""
    from ..errors import InputError

    if args.examples < 1:  # checked before torch and the target are imported
        raise InputError("--examples", "a positive int (drawn problems per case)", repr(args.examples))
    if ":" in args.target:  # module.path:factory -- a missing module is named before torch is imported
        import importlib.util

        module = args.target.split(":", 1)[0]
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            raise InputError("TARGET", "peft, loralib or an importable module.path:factory",
                             f"{args.target!r}: module {module!r} is not importable",
                             "run from the directory that contains it, or install it")
    import os

    # Keras layers are torch modules only on Keras' torch backend, which Keras reads once, on import
    os.environ.setdefault("KERAS_BACKEND", "torch")
    from ..audit import audit

    spec = _spec(args)
    case_progress, close = _case_progress(args)
    plain = case_progress is not None and not sys.stderr.isatty()
    try:
        report = audit(args.target, seed=args.seed, examples=args.examples, checks=args.check, spec=spec,
                       progress=progress(args) if plain and args.examples > 1 else None, case_progress=case_progress)
    finally:
        close()
    print(report.to_json() if args.json else report.to_markdown() if args.markdown else report.to_text())
    if getattr(args, "debug", False):
        for case, tb in report.tracebacks.items():
            print(f"--- traceback of {case}:\n{tb}", file=sys.stderr)
    if report.verdict == "FAIL":
        return 1
    if report.verdict == "PARTIAL":
        first = report.unaudited[0]
        print(f"verified-lora audit: PARTIAL: {len(report.unaudited)} module(s) not audited, first: {first[0]}: "
              f"{first[1]}" + ("" if getattr(args, "debug", False) or not report.tracebacks
                               else " (rerun with --debug for the traceback)"), file=sys.stderr)
        return 2
    return 0
