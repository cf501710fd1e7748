"""Every numerical tolerance used by the checks, in one place, derived from the dtype.

A tolerance here is ``unit roundoff x a stated condition factor``; nothing is guessed ad hoc in a
test. Relative errors are measured as ``max |computed - reference| / max |reference|`` over a
gradient (the max-entry relative form of docs/design.md section 2). ``unit_roundoff`` and ``gamma``
(Higham's ``gamma_n``, rounded up) are those of :mod:`verified_lora.numerics.rounding`.
"""

from __future__ import annotations

import numpy as np

from .numerics.rounding import gamma, unit_roundoff  # re-exported: u per dtype, gamma_n rounded up

__all__ = ["APPROX_VS_EXACT_ROUNDING", "KERNEL_BOUND_FACTOR", "LIBM_EXP_ULP", "unit_roundoff", "gamma", "fast_path_rounding", "EXACT_VS_REFERENCE", "max_relative_error", "reference_relative_error",
           "enclosure_relative_width", "FINITE_DIFFERENCE", "underflow_floor"]


# Exact blocked code vs the mpmath reference, for the small bounded problems of the test-suite
# (L <= 12, d <= 6, entries O(1)). The float64 figure is the acceptance threshold,
# about 9000 u: it leaves room for the O(L d) accumulation depth and the softmax condition
# number (both below ~100 on these problems) with two orders of magnitude to spare.
EXACT_VS_REFERENCE = {"float64": 1e-12, "float32": 9000 * 2.0**-24}


# A certified bound of :mod:`verified_lora.bounds` holds in exact arithmetic. A float64 observation
# |G~_fl - G_fl| of it adds the rounding of two float computations with the same operations and
# magnitudes as verified_lora.exact, each within EXACT_VS_REFERENCE of max|G| on the bounded test
# problems; so observation <= bound + 2 EXACT_VS_REFERENCE max|G|.
APPROX_VS_EXACT_ROUNDING = {k: 2 * v for k, v in EXACT_VS_REFERENCE.items()}


def underflow_floor(dtype) -> float:
    """Absolute error that underflow alone may leave in a gradient entry of a bounded test problem.

    A relative criterion cannot hold when a whole gradient lies below the dtype's range: with a
    saturated softmax (score gaps above ~87 in float32, ~745 in float64) every non-top entry of
    ``f`` underflows, and the true ``dL/dW_Q`` (about 1e-109 in a pinned float32 example) comes
    out as 0. Each underflowed entry of ``f`` is off by at most ``tiny`` (the smallest normal
    number); a gradient entry sums at most ``N L L_k <= 288`` of them, each weighted by
    ``|beta| |x| |q| |K| < 10^9`` on the test problems: ``10^12 * tiny`` (2e-296 in float64,
    1e-26 in float32), far below any meaningful gradient.
    """
    return 1e12 * float(np.finfo(np.dtype(dtype)).tiny)


def reference_relative_error(dps: int) -> float:
    """Max-entry relative error of the mpmath reference at ``dps`` digits (small test problems).

    Each entry is a sum of at most ``N L L_k d^2 ~ 10^4`` rounded products, each rounding costs
    ``10**-dps``, and the softmax condition factor is below ``10^2`` on bounded problems:
    ``10**(6 - dps)``. Used when two mpmath computations of one quantity are compared.
    """
    return 10.0 ** (6 - dps)


def enclosure_relative_width(dps: int) -> float:
    """Largest acceptable ``max width / max |value|`` of an interval enclosure at ``dps`` digits.

    Outward rounding widens each of the ``~10^4`` operations behind an entry by ``10**-dps``
    relative, and interval arithmetic's dependency effect (a quantity such as ``f_j`` appearing
    several times, e.g. in ``diag(f_j) - f_j f_j^T``) multiplies that by the softmax and
    cancellation factors, at most ``~10^6`` on the test problems: ``10**(10 - dps)``, i.e. 1e-20
    at the default 30 digits (observed: about 1e-25).
    """
    return 10.0 ** (10 - dps)


# Central differences of the loss in mpmath: (L(x + h t) - L(x - h t)) / (2h) = <grad, t> +
# (h^2/6) D3L(x)[t, t, t] + rounding 10**-dps |L| / h. At dps = 60 and h = 1e-20 both error terms
# are about 1e-40 times a problem constant (|D3L| and |L| are below 1e4 on the bounded test
# problems), so a relative tolerance of 1e-30, relative to max(sum |grad_i t_i|, |L|), keeps a 10^6
# margin while remaining 10^17 times tighter than any float64 effect. (|L| must be in the scale:
# the error terms do not shrink with the gradient, e.g. on a saturated softmax row.)
FINITE_DIFFERENCE = {"dps": 60, "step": 1e-20, "rtol": 1e-30}


def fast_path_rounding(k: int, L_k: int, g: int, R: float, dtype="float64") -> float:
    """Relative (to the gradient's max entry) float rounding allowance of the fast path (issue 5).

    A model, not a proof (the certified bounds of :mod:`verified_lora.bounds` cover the
    approximation error in exact arithmetic only). Each normaliser, numerator and gradient entry of
    the fast path is a chain of at most ``n = k + L_k + 4 (g + 1)`` roundings (the k-term feature
    contraction, the L_k-term key sum, the g-step monomial products and derivative weights), so the
    absolute-value computation bounds its error by ``gamma_n``; the alternating Taylor-like
    polynomial sum cancels at most ``P_abs(R) / P(-R) <= e^R / e^-R = e^{2R}`` (up to 1 + eps_A),
    and the softmax/residual chain adds a factor below 16 on bounded problems. Hence
    ``16 e^{2R} gamma_n``.
    """
    import math

    return 16.0 * math.exp(2.0 * float(R)) * gamma(int(k) + int(L_k) + 4 * (int(g) + 1), dtype)


def max_relative_error(computed, reference) -> float:
    """``max|computed - reference| / max|reference|`` (absolute error when the reference is 0)."""
    c = np.asarray(computed, dtype=np.float64)
    r = np.asarray(reference, dtype=np.float64)
    err = float(np.max(np.abs(c - r))) if c.size else 0.0
    scale = float(np.max(np.abs(r))) if r.size else 0.0
    return err / scale if scale > 0 else err


# ---- generated kernels (verified_lora.codegen) ---------------------------------------------------
# A kernel's output entry is held to KERNEL_BOUND_FACTOR * u * e, where e is a first-order
# running-error bound (units of u) computed by verified_lora.codegen.accuracy from exactly the
# program the template prints: each +, -, *, / rounds once (|delta| <= u, IEEE round-to-nearest,
# no FMA: the CPU build uses -ffp-contract=off), exp is within LIBM_EXP_ULP ulp (1 ulp <= 2u
# relative), inputs are exact in their dtype. The bound is first order: it neglects the
# O((n u)^2) terms and evaluates magnitudes at exact rather than computed values. With n <= 100
# operations on any path and the bounded inputs of the tests, those terms are below n u <= 1e-5
# (float32) of the bound, so a factor 2 covers them with a wide margin; it is the same for both
# dtypes because the analysis is already in units of each dtype's u. A fused multiply-add (nvcc
# contracts by default) rounds once where the model charges two roundings, so on a GPU the same
# bound holds with the CUDA libm figures below.
KERNEL_BOUND_FACTOR = 2.0

# Maximum ulp error of exp/expf: glibc documents < 1 ulp for both on x86_64; the CUDA Math API
# documents 1 ulp for exp and 2 ulp for expf (without -use_fast_math).
LIBM_EXP_ULP = {"cpu": {"float32": 1, "float64": 1}, "cuda": {"float32": 2, "float64": 1}}
