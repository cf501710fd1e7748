"""Blocked ``O(L L_k d)`` enclosures of the loss and every gradient, for realistic sizes.

:func:`enclose_blocked` evaluates the factored forms (``p = f * (q - rvec)`` and the contractions
``G_Q = beta X_Q^T p K``, ``G_K = beta X_K^T p^T P``, ``G_V = X_V^T f^T c``, then
``dA = s B^T G``, ``dB = s G A^T``) in python-flint ball arithmetic, a block of query rows at a
time (:mod:`verified_lora.reference.arb_blocks`), so memory is ``O(block x L_k)`` and time
``O(L L_k d)``. It shares the problem model with the Jacobian-form oracle
(:func:`verified_lora.reference.enclose`) and nothing else, and the tests check the two against
each other.

Query rows are grouped into *chunks* whose number depends on the problem only, never on the
runner; chunks run through :func:`verified_lora.parallel.map_tasks` (serial, a dask LocalCluster
or an existing dask scheduler) and their balls are added in chunk order, so every runner returns
bit-identical enclosures.

The working precision comes from the requested tightness: ``digits`` decimal digits of relative
width, plus guard bits for the sums of length ``L_k`` and ``L`` and for cancellation, rounded up
to whole 64-bit limbs. The achieved width is measured and reported (``info["target_met"]``).
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from ..errors import InputError
from ..numerics.intervals import available_backends, scoped_precision
from ..parallel import check_runner, describe_runner, map_tasks
from ..problem import ADAPTER_KEYS, LoraAttention
from . import arb_blocks
from .enclose import Enclosure, _arb_to_iv, _wrap

__all__ = ["BlockPlan", "plan_blocks", "enclose_blocked", "DEFAULT_DIGITS", "BLOCK_ENTRIES", "GUARD_BITS",
           "calibrate_plan", "CALIBRATE_ABOVE_S"]

DEFAULT_DIGITS = 20
"""Default requested relative width: ``1e-20``."""

BLOCK_ENTRIES = 2**19
"""Preferred ball entries per ``block x L_k`` work matrix (about 25 MB at 128 bits; a block holds a
few of them plus Python lists of balls: about 200 MB in all)."""

MIN_BLOCK_ROWS = 64
"""Rows per block even when that exceeds :data:`BLOCK_ENTRIES` (up to :data:`MAX_BLOCK_ENTRIES`):
flint multiplies ball matrices with more than 60 rows (at 128 bits) by its blocked integer
algorithm, about 2.5 times faster here than the classical dot products it uses for fewer rows."""

MAX_BLOCK_ENTRIES = 2**21
"""Hard cap on ``block x L_k`` (about 0.8 GB of work space per process at 128 bits)."""

GUARD_BITS = 24
"""Bits beyond ``digits`` and the ``log2`` of the sum lengths, for cancellation in the gradients
(measured at 128 bits on the benchmark problems: width 2e-34 at d = 8, L = 4096 and 1e-32 at
d = 64, L = 1024, against 1e-20 asked; a miss triggers a re-run with 64 more bits). Up to L = L_k = 2^16, 20 digits stay within two 64-bit limbs."""

CALIBRATE_ABOVE_S = 10.0
"""Callers (``enclose``, ``verify``) time one block (:func:`calibrate_plan`) before a run whose
a-priori estimate reaches this many seconds, and print that estimate."""

CHUNKS_PER_ITEM = 16
"""Target number of chunks per batch item (fixed by the problem, so results are runner-independent)."""

# A-priori cost model (python-flint 0.9, 128 bits, one process on the project's shared 2-core machine
# at load ~2, L = 1024): time per score entry = entrywise work (the exp, u * (q - rvec), conversions)
# + 4 (d_model + 1) multiply-adds of the L_k-long products. Only a guide: calibrate_plan
# measures one block on the machine at hand.
_NS_PER_ENTRY = 2600.0
_NS_PER_MADD = 28.0


@dataclass(frozen=True)
class BlockPlan:
    """How :func:`enclose_blocked` splits a problem: precision, block and chunk sizes, cost."""

    digits: int
    prec: int
    block: int
    chunk_rows: int
    chunks: int
    estimate_s: float
    """Serial seconds (one process): from the a-priori cost model, or measured (``calibrated``)."""
    calibrated: bool = False

    def as_dict(self) -> dict[str, Any]:
        """The plan as JSON-ready values (``prec_bits``, ``block_rows``, ...)."""
        return {"digits": self.digits, "prec_bits": self.prec, "block_rows": self.block,
                "chunk_rows": self.chunk_rows, "chunks": self.chunks, "estimate_s": self.estimate_s,
                "estimate_calibrated": self.calibrated}


def _check_digits(digits: Any) -> int:
    if isinstance(digits, bool) or not isinstance(digits, (int, np.integer)) or not 1 <= int(digits) <= 1000:
        raise InputError("digits", "an int in [1, 1000] (decimal digits of relative width)", repr(digits))
    return int(digits)


def plan_blocks(problem: LoraAttention, digits: int = DEFAULT_DIGITS, *, block_size: int | None = None) -> BlockPlan:
    """Working precision, row blocks, chunks and a serial time estimate for ``problem``."""
    digits = _check_digits(digits)
    L, L_k = problem.L, problem.L_k
    bits = (math.ceil(digits * math.log2(10)) + GUARD_BITS + math.ceil(math.log2(L_k + 1))
            + math.ceil(math.log2(L + 1)))
    prec = 64 * math.ceil(bits / 64)
    if block_size is None:  # at least CHUNKS_PER_ITEM blocks, so the chunks can balance workers
        rows = min(max(MIN_BLOCK_ROWS, BLOCK_ENTRIES // L_k), MAX_BLOCK_ENTRIES // L_k)
        block = max(1, min(math.ceil(L / CHUNKS_PER_ITEM), rows))
    elif isinstance(block_size, bool) or not isinstance(block_size, int) or block_size < 1:
        raise InputError("block_size", "a positive int (query rows per block)", repr(block_size))
    else:
        block = min(block_size, L)
    blocks = math.ceil(L / block)
    chunk_rows = block * math.ceil(blocks / CHUNKS_PER_ITEM)
    chunks = math.ceil(L / chunk_rows)
    madds = 4 * (problem.d_model + 1)
    limbs = prec / 128
    estimate = problem.n_batch * L * L_k * (_NS_PER_ENTRY + madds * _NS_PER_MADD) * limbs * 1e-9
    return BlockPlan(digits, prec, block, chunk_rows, chunks, estimate)


def calibrate_plan(problem: LoraAttention, plan: BlockPlan) -> BlockPlan:
    """``plan`` with ``estimate_s`` measured here: one block of query rows is enclosed in this process.

    The CPU seconds of that block (``min(block, L)`` rows of batch item 0, per-item set-up excluded)
    are scaled by the number of score entries, ``N L L_k``: the work per entry is the same in every
    block. The sample costs one block's work (at most ``1/16`` of the run). Divide by the number of
    workers for a dask run's wall time.
    """
    if "arb" not in available_backends():
        raise InputError("method", "python-flint to calibrate the blocked enclosure", "python-flint is not installed",
                         "pip install 'verified-lora[rigorous]'")
    payload = _payload(problem)
    rows = min(plan.block, problem.L)
    with scoped_precision(prec=plan.prec, backend="arb"):
        arb_blocks._item_state(payload, 0, plan.prec)  # once per process and item in a real run
    cpu0 = time.process_time()
    arb_blocks.chunk(payload, 0, 0, rows, plan.block, plan.prec)
    per_row = (time.process_time() - cpu0) / rows
    return replace(plan, estimate_s=per_row * problem.n_batch * problem.L, calibrated=True)


def _payload(problem: LoraAttention) -> dict[str, Any]:
    """The float64 inputs every chunk needs (exact copies), with a content token for caching."""
    pr = problem.to_numpy()
    f64 = lambda a: np.ascontiguousarray(np.asarray(a, dtype=np.float64))  # noqa: E731 - exact widening
    items = list(pr.items())
    payload: dict[str, Any] = {
        "x_q": [f64(t[0]) for t in items], "x_k": [f64(t[1]) for t in items],
        "x_v": [f64(t[2]) for t in items], "y": [f64(t[3]) for t in items],
        "w": {k: f64(pr.frozen_weight(k)) for k in ADAPTER_KEYS},
        "adapters": {k: (f64(ad.a), f64(ad.b)) for k, ad in pr.adapters.items()},
        "alpha": float(pr.alpha), "beta": float(pr.beta), "scaling": pr.scaling,
        "w_float": {k: f64(pr.weight(k)) for k in ADAPTER_KEYS},
    }
    payload["k_float"] = [x @ payload["w_float"]["K"] for x in payload["x_k"]]
    digest = hashlib.sha256()
    for arrays in (payload["x_q"], payload["x_k"], payload["x_v"], payload["y"], payload["w"].values()):
        for a in arrays:
            digest.update(a.tobytes())
    for k, (a, b) in payload["adapters"].items():
        digest.update(k.encode() + a.tobytes() + b.tobytes())
    digest.update(repr((payload["alpha"], payload["beta"], payload["scaling"])).encode())
    payload["token"] = digest.hexdigest()
    return payload


def enclose_blocked(problem: LoraAttention, digits: int = DEFAULT_DIGITS, *, block_size: int | None = None,
                    workers: int | None = None, scheduler: str | None = None,
                    progress: Callable[[int, int], None] | None = None, max_attempts: int = 3) -> Enclosure:
    """Rigorous enclosures of the loss, adapter gradients and ``dL/dW_mu`` in ``O(L L_k d)``.

    Parameters
    ----------
    problem:
        A :class:`~verified_lora.LoraAttention` (float inputs are taken as exact binary values).
    digits:
        Requested relative width ``10**-digits``; sets the working precision (see
        :func:`plan_blocks`). ``info["target_met"]`` says whether every quantity reached it.
    block_size:
        Query rows per block (default: ``2**19 / L_k`` rows, about 200 MB of work space, but at
        least 64 while ``64 L_k <= 2**21``, and at most ``L / 16``).
    workers, scheduler:
        Runner (see :func:`verified_lora.parallel.map_tasks`): serial by default, ``workers=N``
        for a dask LocalCluster, ``scheduler=ADDRESS`` for an existing dask cluster.
    progress:
        Optional ``progress(done_chunks, total_chunks)`` callback.
    max_attempts:
        Runs allowed: when the measured width misses ``10**-digits`` (cancellation beyond the
        guard bits), the run is repeated with 64 more bits, at most ``max_attempts`` runs in all.
        ``info["attempts"]`` lists each run's precision, time and width.

    Needs python-flint (the ``rigorous`` extra). Every true value lies in its interval; the
    enclosure is identical (bit for bit) whichever runner is used.
    """
    if not isinstance(problem, LoraAttention):
        raise InputError("problem", "a verified_lora.LoraAttention", type(problem).__name__)
    check_runner(workers, scheduler)
    if isinstance(max_attempts, bool) or not isinstance(max_attempts, int) or max_attempts < 1:
        raise InputError("max_attempts", "a positive int", repr(max_attempts))
    if "arb" not in available_backends():
        raise InputError("method", "python-flint for the blocked enclosure", "python-flint is not installed",
                         "pip install 'verified-lora[rigorous]'")
    plan = plan_blocks(problem, digits, block_size=block_size)
    payload = _payload(problem)
    attempts: list[dict[str, Any]] = []
    while True:
        tasks = [(item, r0, min(problem.L, r0 + plan.chunk_rows), plan.block, plan.prec)
                 for item in range(problem.n_batch) for r0 in range(0, problem.L, plan.chunk_rows)]
        start = time.perf_counter()
        timings: dict[str, float] = {}
        parts = map_tasks(arb_blocks.chunk, tasks, payload, workers=workers, scheduler=scheduler, progress=progress,
                          timings=timings)
        elapsed = time.perf_counter() - start
        enc = _assemble(problem, payload, parts, plan)
        width = enc.max_relative_width()
        cpu = sum(part["cpu_s"] for part in parts)
        attempts.append({"prec_bits": plan.prec, "seconds": elapsed, "chunk_cpu_s": cpu, "max_relative_width": width,
                         **timings})
        if width <= 10.0 ** -plan.digits or len(attempts) >= max_attempts:
            break
        # cancellation (e.g. a saturated softmax) ate more than the guard bits: one more limb
        plan = replace(plan, prec=plan.prec + 64)
    info = {**plan.as_dict(), "runner": describe_runner(workers, scheduler), "seconds": elapsed,
            "startup_s": timings.get("startup_s", 0.0), "chunk_cpu_s": cpu, "max_relative_width": width,
            "target_met": width <= 10.0 ** -plan.digits, "attempts": attempts}
    return Enclosure(loss=enc.loss, grads=enc.grads, weight_grads=enc.weight_grads, backend=enc.backend,
                     dps=enc.dps, info=info)


def _assemble(problem: LoraAttention, payload: dict[str, Any], parts: list[dict[str, Any]],
              plan: BlockPlan) -> Enclosure:
    """Add the chunk balls in task order, apply ``beta``, the batch mean and the chain rule."""
    import flint

    with scoped_precision(prec=plan.prec, backend="arb"):
        total: dict[str, Any] = {}
        for part in parts:  # fixed order: item-major, rows ascending
            for name, packed in part.items():
                if name == "cpu_s":
                    continue
                value = arb_blocks.unpack(packed)
                total[name] = value if name not in total else total[name] + value
        n = problem.n_batch
        beta = flint.arb(payload["beta"])
        loss = total["loss"] / n
        weight = {"Q": total["GQ"] * beta, "K": total["GK"] * beta, "V": total["GV"]}
        if n > 1:
            weight = {k: v * (flint.arb(1) / n) for k, v in weight.items()}
        grads: dict[str, Any] = {}
        for key in problem.adapted:
            a, b = (arb_blocks.arb_matrix(m) for m in payload["adapters"][key])
            s = arb_blocks.adapter_scale(payload, key)
            grads[f"A_{key}"] = (b.transpose() * weight[key]) * s
            grads[f"B_{key}"] = (weight[key] * a.transpose()) * s
        dps = int(plan.prec * math.log10(2))
        return Enclosure(loss=_arb_to_iv(loss), grads={k: _to_iv(v) for k, v in grads.items()},
                         weight_grads={k: _to_iv(v) for k, v in weight.items()},
                         backend="flint.arb (blocked)", dps=dps)


def _to_iv(m: Any) -> np.ndarray:
    return _wrap(m.tolist(), _arb_to_iv)
