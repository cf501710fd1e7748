"""Who raised an exception inside a check: the implementation under audit, or the audit itself (no torch).

A check that makes the implementation raise fails with the reason (``raised ValueError: ...``): that is
a finding about the implementation. A programming error of the audit's own code (an ``AttributeError``,
``TypeError``, ``KeyError``, ... whose innermost frame outside torch, NumPy, mpmath and the standard
library is in ``verified_lora`` itself, not in ``verified_lora.testing``, which holds implementations
under test) is an error of the tool: it propagates, and the command line reports it in one line with
exit status 2 (the traceback with ``--debug``). Errors of other types (``ValueError``, ``RuntimeError``)
stay with the implementation, whose output or state usually caused them.
"""

from __future__ import annotations

import os
import sys
import traceback

__all__ = ["raised_by_the_audit", "PROGRAMMING_ERRORS"]

PROGRAMMING_ERRORS = (AttributeError, NameError, TypeError, KeyError, IndexError, AssertionError,
                      ZeroDivisionError, NotImplementedError)

_PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_TESTING = os.path.join(_PACKAGE, "testing")


def _neutral_dirs() -> list[str]:
    dirs = [os.path.dirname(os.path.abspath(os.__file__))]  # the standard library
    for name in ("torch", "numpy", "mpmath"):
        mod = sys.modules.get(name)
        if mod is not None and getattr(mod, "__file__", None):
            dirs.append(os.path.dirname(os.path.abspath(mod.__file__)))
    return [d + os.sep for d in dirs]


def raised_by_the_audit(exc: BaseException) -> bool:
    """True when ``exc`` is a programming error raised from the audit's own code (see the module docstring)."""
    if not isinstance(exc, PROGRAMMING_ERRORS):
        return False
    neutral = _neutral_dirs()
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        path = os.path.abspath(frame.filename)
        if any(path.startswith(d) for d in neutral):
            continue
        return path.startswith(_PACKAGE + os.sep) and not path.startswith(_TESTING + os.sep)
    return False
