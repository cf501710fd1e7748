"""The audit's checks on one linear LoRA layer (imports torch), and their runner.

For every example of a :class:`~verified_lora.audit.cases.LayerCase` each check builds its own
fresh module, writes the drawn values through the layout mapping (:mod:`..adapters`) and compares
with the mpmath reference (:mod:`..layer_reference`) under the derived bounds of
:mod:`..error_bounds`. The checks live in the submodules below, each registered once, where it is
defined, in :mod:`..registry`; they are imported here in the order of the report's rows:

* :mod:`.structure`: ``layout``, ``qkv_slices``, ``embed_scale`` (detect how adapters are stored and placed);
* :mod:`.dora`: ``dora_bias``, ``dora_norm`` (detect DoRA's bias handling and norm axis);
* :mod:`.forward_backward`: ``scaling``, ``forward``, ``grad_A``, ``grad_B``, ``grad_input``,
  ``grad_nonzero`` (one shared float64 pass);
* :mod:`.merge`: ``merge_forward``, ``merge_roundtrip``, ``double_merge``;
* :mod:`.behaviour`: ``dropout``, ``input_unchanged``;
* :mod:`.precision`: ``precision_float32``, ``precision_bfloat16``, ``precision_float16``,
  ``precision_mixed``.

The bug classes each check targets are described in ``docs/audit_bug_classes.md``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial

import numpy as np

from .. import registry
from ..cases import Example, LayerCase
from ..outcome import CheckResult, Outcome, aggregate, guard
from . import structure  # noqa: F401  (registers; the import order is the report's row order)
from . import dora  # noqa: F401
from . import forward_backward
from . import merge  # noqa: F401
from . import behaviour  # noqa: F401
from . import precision  # noqa: F401

__all__ = ["run_layer_case"]


def run_layer_case(case: LayerCase, *, seed: int, examples: int, checks: list[str] | None = None,
                   progress: Callable[[str], None] | None = None) -> list[CheckResult]:
    """Run the registered layer checks (all, or those named in ``checks``) on ``examples`` draws of ``case``.

    Per example: the placement probe runs first (always: the other checks use what it detects),
    then the structure checks on one fresh module, then one shared float64 forward/backward pass
    and the checks that read it, then the checks that build their own modules. Each check's time
    includes an equal share of the shared pass.
    """
    layer_specs = registry.specs("layer")
    wanted = [s for s in layer_specs if checks is None or s.name in checks]
    per_check: dict[str, list[Outcome]] = {s.name: [] for s in wanted}
    seconds: dict[str, float] = {s.name: 0.0 for s in wanted}
    n_uses_pass = sum(s.takes == "pass" for s in layer_specs)
    for i in range(examples):
        rng = np.random.default_rng([seed, i])
        spec = case.draw(rng, i) if case.draw is not None else None
        ex = Example(case, spec, seed=int(rng.integers(2**31)))
        if progress:
            progress(f"{case.name}: example {i + 1}/{examples}")
        view0 = ex.fresh(probe=False)
        for s in layer_specs:
            if s.takes == "probe":
                t0 = time.perf_counter()
                out = guard(partial(s.run, ex))
                if s.name in per_check:
                    per_check[s.name].append(out)
                    seconds[s.name] += time.perf_counter() - t0
        for s in wanted:
            if s.takes == "view":
                per_check[s.name].append(guard(partial(s.run, ex, view0)))
        shared: list[forward_backward.Pass] = []

        def standard() -> Outcome:
            shared.append(forward_backward.standard_pass(ex))
            return Outcome(True)

        t0 = time.perf_counter()
        std = guard(standard)
        t_std = time.perf_counter() - t0
        for s in wanted:
            if s.takes not in ("pass", "example"):
                continue
            t0 = time.perf_counter()
            if s.takes == "pass" and not shared:
                out = Outcome(False, None, None, std.detail or "forward/backward failed")
            elif s.takes == "pass":
                out = guard(partial(s.run, shared[0]))
            else:
                out = guard(partial(s.run, ex))
            seconds[s.name] += time.perf_counter() - t0 + (t_std / n_uses_pass if s.takes == "pass" else 0)
            per_check[s.name].append(out)
    return [aggregate(name, case.name, outs, seconds[name]) for name, outs in per_check.items()]
