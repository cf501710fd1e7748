"""One error hierarchy for the whole package.

Every error raised on purpose by verified_lora derives from :class:`VerifiedLoraError`.
Input problems raise :class:`InputError`, which names the offending field, what was
expected and what was received, and suggests a fix. It subclasses ``ValueError`` so that
generic callers that catch ``ValueError`` keep working.
"""

from __future__ import annotations

__all__ = [
    "VerifiedLoraError",
    "InputError",
    "OverflowInputError",
    "RegimeError",
    "CertificationError",
    "CodegenError",
    "AuditError",
]


class VerifiedLoraError(Exception):
    """Base class of every error that verified_lora raises deliberately."""


class InputError(VerifiedLoraError, ValueError):
    """An argument is malformed: wrong shape, dtype, non-finite value, unknown name, ...

    Attributes
    ----------
    field:
        Dotted name of the offending input, e.g. ``"adapters['Q'].a"``.
    expected:
        What the field should have been.
    got:
        What was received (already formatted for humans).
    fix:
        A short suggestion, or ``None``.
    """

    def __init__(self, field: str, expected: str, got: str, fix: str | None = None):
        self.field = field
        self.expected = expected
        self.got = got
        self.fix = fix
        message = f"{field}: expected {expected}, got {got}"
        if fix:
            message += f". Fix: {fix}"
        super().__init__(message)

    def __reduce__(self):  # keep the error picklable (multiprocessing, pytest-xdist)
        return (type(self), (self.field, self.expected, self.got, self.fix))


class OverflowInputError(InputError, ArithmeticError):
    """Finite inputs whose scores, weights, loss or gradients leave the range of the problem's dtype.

    Raised instead of returning ``inf``/``NaN`` in silence; ``field`` names the input that drives
    the magnitude and ``fix`` says how to rescale. It is an :class:`InputError` (the CLI exits 2)
    and an ``ArithmeticError`` (generic numeric callers can catch it as such).
    """


class RegimeError(VerifiedLoraError):
    """The fast path was forced outside the regime where its error can be certified."""


class CertificationError(VerifiedLoraError):
    """A requested certificate (error bound, enclosure, proof) could not be established."""


class CodegenError(VerifiedLoraError):
    """A symbolic expression cannot be printed as a supported kernel."""


class AuditError(VerifiedLoraError):
    """An audit target cannot be loaded or does not follow a supported LoRA convention."""
