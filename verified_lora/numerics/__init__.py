"""Numerics base shared by every layer that bounds rounding errors.

* :mod:`.rounding` -- unit roundoff per dtype (bfloat16 included), Higham's ``gamma_n`` rounded
  up, and directed (downward / upward) conversion of exact rationals to float64;
* :mod:`.intervals` -- the one interval backend (python-flint ``arb`` balls or ``mpmath.iv``
  intervals, named ``"arb"`` / ``"iv"``), a scoped precision manager and a three-valued sign.

Leaf package: it imports nothing from the rest of :mod:`verified_lora` but :mod:`..errors`.
"""
