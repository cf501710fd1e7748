"""Every numerical tolerance used by the checks, in one place, derived from the dtype.

A tolerance here is ``unit roundoff x a stated condition factor``; nothing is guessed ad hoc in a
test. Relative errors are measured as ``max |computed - reference| / max |reference|`` over a
gradient (the max-entry relative form of DESIGN.md section 2).
"""

from __future__ import annotations

import numpy as np

__all__ = ["unit_roundoff", "EXACT_VS_REFERENCE", "max_relative_error"]


def unit_roundoff(dtype) -> float:
    """``u = eps/2`` of a floating dtype (2**-53 for float64, 2**-24 for float32)."""
    return float(np.finfo(np.dtype(dtype)).eps) / 2


# Exact blocked code vs the mpmath reference, for the small bounded problems of the test-suite
# (L <= 12, d <= 6, entries O(1)). The float64 figure is the acceptance threshold,
# about 9000 u: it leaves room for the O(L d) accumulation depth and the softmax condition
# number (both below ~100 on these problems) with two orders of magnitude to spare.
EXACT_VS_REFERENCE = {"float64": 1e-12, "float32": 9000 * 2.0**-24}


def max_relative_error(computed, reference) -> float:
    """``max|computed - reference| / max|reference|`` (absolute error when the reference is 0)."""
    c = np.asarray(computed, dtype=np.float64)
    r = np.asarray(reference, dtype=np.float64)
    err = float(np.max(np.abs(c - r))) if c.size else 0.0
    scale = float(np.max(np.abs(r))) if r.size else 0.0
    return err / scale if scale > 0 else err
