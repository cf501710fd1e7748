"""Reading ``.npz`` problem files: every unreadable file is an :class:`InputError` naming the path."""

from __future__ import annotations

import numpy as np

from .errors import InputError

__all__ = ["read_npz"]


def _describe(x) -> str:
    return f"array of shape {tuple(x.shape)} and dtype {x.dtype}"


def read_npz(path: str) -> dict[str, np.ndarray]:
    """All arrays of an ``.npz`` archive; unreadable files raise :class:`InputError` naming ``path``."""
    import zipfile

    fix = "write it with LoraAttention.save_npz or numpy.savez"
    try:
        with open(path, "rb") as fh:
            head = fh.read(6)
    except OSError as exc:
        raise InputError(f"{path}", "a readable .npz file", exc.strerror or type(exc).__name__,
                         "check the path" if isinstance(exc, FileNotFoundError) else fix) from None
    if not head.startswith((b"PK\x03\x04", b"PK\x05\x06", b"\x93NUMPY")):
        kind = "an empty file" if not head else "a file that is not an .npz archive (no zip header; first bytes " \
            f"{head!r})"
        raise InputError(f"{path}", "an .npz archive of named arrays", kind, fix)
    try:
        z = np.load(path, allow_pickle=False)
        if not hasattr(z, "files"):
            raise InputError(f"{path}", "an .npz archive of named arrays", f"a single array ({_describe(z)})", fix)
        with z:
            return {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:  # missing, not a zip, pickled data
        if isinstance(exc, InputError):
            raise
        raise InputError(f"{path}", "a readable .npz file of numeric arrays (no pickled objects)",
                         f"{type(exc).__name__}: {exc}", fix) from None
