"""Implementations x checks matrix of ``verified-lora audit``: real libraries as written, other conventions,
whole models, every broken variant, with times.

Run from the repository root (with the ``audit`` extra, ``audit-libs`` for torchtune and diffusers, ``keras``
for the Keras rows: ``KERAS_BACKEND`` is set to ``torch`` here when unset)::

    python3 benchmarks/audit_matrix.py [--examples 3] [--seed 0] [--only SUBSTRING] [--out benchmarks/results/audit_matrix.md]
        [--workers N | --scheduler ADDRESS]

Targets are independent: ``--workers N`` audits them on a dask LocalCluster of N processes and
``--scheduler ADDRESS`` on an existing dask cluster (:func:`verified_lora.parallel.map_tasks`; the
workers need the same libraries); the table is the same, in the same order, whatever the runner.

One row per target (a ``module:factory``, or the built-in ``peft``/``loralib``); one column per check.
A cell is the verdict of the worst case and example, with the worst ratio ``max error / allowed bound``
(``PASS .03`` = the error is 3% of its derived bound); ``N/A`` when the check does not apply; blank
when the target has no such check (attention checks of a layer). A target the audit refuses (exit 2)
gets one row with the reason, as does a library that is not installed. ``expected`` is what the row
must show: ``pass`` for correct code, the check a broken variant must fail (or WARN on), or a
third-party finding (``benchmarks/results/third_party_findings.md``). The script exits 1 when a row
differs from its expectation.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from dataclasses import dataclass

sys.path.insert(0, os.getcwd())
os.environ.setdefault("KERAS_BACKEND", "torch")  # Keras layers are torch modules on its torch backend only

LL = "verified_lora.testing.library_layers"
BV = "verified_lora.testing.broken_variants"
BL = "verified_lora.testing.broken_lora"
TM = "verified_lora.testing.tiny_models"
KL = "verified_lora.testing.keras_layers"
LC = "tests.lora_conventions"


#: every check that runs the layer's forward fails when PEFT's dilated conv LoRA raises in it
CONV_DILATION_FAILS = ("scaling", "forward", "grad_A", "grad_B", "grad_input", "grad_nonzero", "grad_magnitude",
                       "merge_forward", "merge_roundtrip", "dropout", "input_unchanged", "precision_float32",
                       "precision_bfloat16", "precision_float16")


@dataclass
class Row:
    group: str
    label: str
    target: str
    expected: str = "pass"  # "pass", "fail:<check>[,<check>]", "warn:<check>", "refused", "finding:<check>"
    needs: str = ""


def targets() -> list[Row]:
    from verified_lora.testing import broken_lora as bl
    from verified_lora.testing import broken_variants as bv

    rows = [
        Row("PEFT", "peft (built-in: Linear, Conv1D, attention q,v and q,k,v)", "peft", needs="peft"),
        Row("PEFT", "Linear (rsLoRA on alternate draws)", f"{LL}:peft_linear", needs="peft"),
        Row("PEFT", "Linear, lora_bias=True", f"{LL}:peft_lora_bias", needs="peft"),
        Row("PEFT", "transformers Conv1D (fan_in_fan_out)", f"{LL}:peft_conv1d_hf", needs="transformers"),
        Row("PEFT", "Embedding", f"{LL}:peft_embedding", needs="peft"),
        Row("PEFT", "Conv1d", f"{BV}:peft_conv1d", needs="peft"),
        Row("PEFT", "Conv2d", f"{BV}:peft_conv2d", needs="peft"),
        Row("PEFT", "Conv2d, padding='same'", f"{BV}:peft_conv2d_same", needs="peft"),
        Row("PEFT", "Conv1d, padding='valid', stride 2", f"{BV}:peft_conv1d_valid", needs="peft"),
        Row("PEFT", "Conv1d, dilation 2 (lora_A built without it: forward raises, huggingface/peft#3697)",
            f"{BV}:peft_conv1d_dilated", expected="finding:" + ",".join(sorted(CONV_DILATION_FAILS)), needs="peft"),
        Row("PEFT", "DoRA (Linear)", f"{LL}:peft_dora", needs="peft"),
        Row("loralib", "loralib (built-in: Linear, Linear fan_in_fan_out, MergedLinear)", "loralib", needs="loralib"),
        Row("loralib", "Linear", f"{LL}:loralib_linear", needs="loralib"),
        Row("loralib", "MergedLinear (enable_lora masks)", f"{LL}:loralib_merged", needs="loralib"),
        Row("loralib", "Embedding", f"{LL}:loralib_embedding", needs="loralib"),
        Row("loralib", "Conv2d (ConvLoRA)", f"{LL}:loralib_conv2d", needs="loralib"),
        Row("loralib", "Conv1d (ConvLoRA)", f"{LL}:loralib_conv1d", expected="refused", needs="loralib"),
        Row("torchtune", "LoRALinear", f"{LL}:torchtune_lora", needs="torchtune.modules.peft"),
        Row("torchtune", "DoRALinear", f"{LL}:torchtune_dora", expected="finding:dora_bias",
            needs="torchtune.modules.peft"),
        Row("diffusers", "LoRACompatibleLinear + LoRALinearLayer (_fuse_lora/_unfuse_lora)", f"{LL}:diffusers_linear",
            expected="finding:merge_forward,merge_roundtrip", needs="diffusers"),
        Row("diffusers", "UNet2DConditionModel.add_adapter (whole model: attention + Conv2d)",
            f"{TM}:diffusers_unet_conv", needs="diffusers"),
        Row("Keras", "Dense.enable_lora (torch backend; float32 factors as declared)", f"{KL}:keras_dense",
            expected="warn:precision_mixed", needs="keras"),
        Row("Keras", "EinsumDense('ab,bc->ac').enable_lora", f"{KL}:keras_einsum_dense",
            expected="warn:precision_mixed", needs="keras"),
        Row("Keras", "EinsumDense('abc,cde->abde') per-head projection", f"{KL}:keras_einsum_heads",
            expected="refused", needs="keras"),
        Row("Keras", "Dense subclass applying lora_alpha / sqrt(rank) (broken on purpose)",
            f"{KL}:keras_dense_sqrt_scale", expected="fail:scaling", needs="keras"),
        Row("whole model", "PEFT 1-layer Llama (GQA attention, MLP, embed_tokens)", f"{TM}:peft_llama",
            needs="transformers"),
        Row("whole model", "PEFT 1-layer GPT-2 (Conv1D, wte)", f"{TM}:peft_gpt2", needs="transformers"),
    ]
    for name in bv.GOOD_VARIANTS:
        rows.append(Row("convention", name, f"{BV}:{name}"))
    for name in ("transposed_ab", "parametrized", "down_up_params"):
        rows.append(Row("convention", f"{name} (tests)", f"{LC}:{name}"))
    for name in bl.GOOD:
        rows.append(Row("control", name, f"{BL}:{name}"))
    for name, check in bl.BROKEN.items():
        rows.append(Row("broken", name, f"{BL}:{name}", expected=f"fail:{check}"))
    for name, checks in bl.BROKEN_ATTENTION.items():
        rows.append(Row("broken", name, f"{BL}:{name}", expected="fail:" + ",".join(sorted(checks))))
    for name, check in bv.EXPECTED_FAILURE.items():
        rows.append(Row("broken", name, f"{BV}:{name}", expected=f"fail:{check}"))
    for name, check in bv.EXPECTED_WARN.items():
        rows.append(Row("broken", name, f"{BV}:{name}", expected=f"warn:{check}"))
    return rows


def _importable(name: str) -> str:
    if not name:
        return ""
    import importlib
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            importlib.import_module(name)
    except Exception as exc:
        return f"{name} not importable ({type(exc).__name__})"
    return ""


def _cell(results) -> str:
    from verified_lora._table import fmt_num

    if not results:
        return ""
    real = [r for r in results if r.passed is not None]
    if not real:
        return "N/A"
    worst = max(real, key=lambda r: (r.passed is False, (r.max_error or 0) / r.bound if r.bound else 0))
    verdict = "**FAIL**" if any(r.passed is False for r in real) else (
        "WARN" if any(r.verdict == "WARN" for r in real) else "PASS")
    if worst.max_error is None or not worst.bound:
        return verdict
    return f"{verdict} {fmt_num(worst.max_error / worst.bound, 1)}"


def _outcome(report) -> tuple[str, set[str], set[str]]:
    failed = {r.check for r in report.failures}
    warned = {r.check for r in report.results if r.verdict == "WARN"}
    return report.verdict, failed, warned


def _meets(row: Row, verdict: str, failed: set[str], warned: set[str]) -> bool:
    kind, _, what = row.expected.partition(":")
    if kind == "pass":
        return verdict == "PASS"
    if kind in ("fail", "finding"):
        return failed == set(what.split(","))
    if kind == "warn":
        return not failed and warned == {what}
    if kind == "refused":
        return verdict == "refused"
    return False


def _audit_row(shared: dict, index: int) -> tuple[object, str, float, str]:
    """Audit target ``index`` of ``shared["rows"]`` (a map_tasks task): ``(report or None, verdict, seconds, reason)``."""
    import warnings

    from verified_lora.audit import audit
    from verified_lora.errors import AuditError

    warnings.simplefilter("ignore")
    row = shared["rows"][index]
    missing = _importable(row.needs)
    if missing:
        return None, "not installed", 0.0, missing
    t0 = time.perf_counter()
    try:
        report = audit(row.target, seed=shared["seed"], examples=shared["examples"])
    except AuditError as exc:
        return None, "refused", time.perf_counter() - t0, str(exc)
    except Exception as exc:  # an error of the audit itself: recorded, the matrix goes on
        return None, "audit error", time.perf_counter() - t0, f"{type(exc).__name__}: {exc}"
    return report, report.verdict, time.perf_counter() - t0, ""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", default=None, help="run only the targets whose label or path contains this")
    parser.add_argument("--out", default="benchmarks/results/audit_matrix.md")
    runner = parser.add_mutually_exclusive_group()
    runner.add_argument("--workers", type=int, default=None, help="audit the targets on a dask LocalCluster of N processes")
    runner.add_argument("--scheduler", default=None, help="audit them on an existing dask cluster (its address)")
    args = parser.parse_args()

    import warnings

    import torch

    from verified_lora.audit import check_names
    from verified_lora.parallel import check_runner, describe_runner, map_tasks

    warnings.simplefilter("ignore")
    check_runner(args.workers, args.scheduler)
    rows = [r for r in targets() if args.only is None or args.only in r.label or args.only in r.target]
    checks = check_names()
    shared = {"rows": rows, "seed": args.seed, "examples": args.examples}

    def progress(done: int, total: int) -> None:
        print(f"audited {done}/{total} targets", file=sys.stderr, flush=True)

    t0 = time.perf_counter()
    outcomes = map_tasks(_audit_row, [(k,) for k in range(len(rows))], shared, workers=args.workers,
                         scheduler=args.scheduler, progress=progress)
    wall = time.perf_counter() - t0
    results: list[tuple[Row, object, str, float, str]] = []  # row, report or None, verdict, seconds, reason
    environment: dict[str, str] = {}
    for row, (report, verdict, seconds, reason) in zip(rows, outcomes):
        if report is not None:
            environment.update(report.environment)
        results.append((row, report, verdict, seconds, reason))

    headers = ["group", "implementation", "verdict", "expected", "time (s)"] + [f"`{c}`" for c in checks]
    lines = [
        "# Audit matrix: implementations x checks",
        "",
        f"Generated by `python3 benchmarks/audit_matrix.py --examples {args.examples} --seed {args.seed}` on "
        f"{platform.machine()} ({os.cpu_count()} cores, shared), torch {torch.__version__}, "
        + ", ".join(f"{k} {v}" for k, v in environment.items() if k != "torch")
        + f"; {describe_runner(args.workers, args.scheduler)}, {wall:.0f} s wall in all.",
        "",
        "Cells: the verdict of the worst case and example, then the worst ratio max error / allowed bound "
        "(`PASS .03`: the error is 3% of the bound derived from the dtype's unit roundoff; for `grad_nonzero` "
        "the ratio is rounding level / largest |grad|). `N/A`: the check does not apply (its reason is in the "
        "audit's report); blank: the target has no such check. Whole models: every LoRA module with its own "
        "weights and with fresh draws, the worst of them. Time: the whole audit of the row, including "
        "building the modules and, on first use, importing the library (PEFT imports transformers).",
        "",
        "| " + " | ".join(headers) + " |",
        "|" + "---|" * len(headers),
    ]
    bad = []
    for row, report, verdict, seconds, reason in results:
        if report is None:
            ok = (verdict == "refused" and row.expected == "refused")
            cells = [row.group, row.label, verdict, row.expected, f"{seconds:.1f}"] + [""] * len(checks)
        else:
            v, failed, warned = _outcome(report)
            ok = _meets(row, v, failed, warned)
            cells = [row.group, row.label, v, row.expected, f"{seconds:.1f}"]
            cells += [_cell([r for r in report.results if r.check == c]) for c in checks]
        if verdict != "not installed" and not ok:
            bad.append(row.label)
            cells[2] = f"**{cells[2]} (unexpected)**"
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")

    lines += ["", "## Refused, not installed, not audited", ""]
    for row, report, verdict, seconds, reason in results:
        if report is None:
            lines.append(f"- **{row.label}** (`{row.target}`): {verdict}: {reason}")
        elif report.unaudited:
            for name, why in report.unaudited:
                lines.append(f"- **{row.label}**, module `{name}`: not audited: {why}")
    lines += ["", "## Failures of correct-code rows and third-party findings", ""]
    for row, report, verdict, seconds, reason in results:
        if report is not None and report.failures and not row.expected.startswith("fail"):
            for r in report.failures:
                lines.append(f"- **{row.label}** `{r.check}` ({r.case}): {r.detail}")
    lines += ["", "## Cases and times", "", "| implementation | case | seconds | verdict |", "|---|---|---|---|"]
    for row, report, verdict, seconds, reason in results:
        if report is None:
            continue
        for case in report.cases():
            lines.append(f"| {row.label} | {case} | {report.case_seconds.get(case, 0):.2f} | "
                         f"{report.case_verdict(case)} |")
    if bad:
        lines += ["", "Rows that differ from their expectation: " + ", ".join(bad)]
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out, "w") as fh:
        fh.write("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
