"""Lazy package exports: one helper for every ``__init__.py`` that loads its submodules on first use."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Mapping
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(package: str, exports: Mapping[str, str] | None = None,
                 submodules: Iterable[str] = ()) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package`` that imports on first access.

    ``exports`` maps an attribute name to the submodule (relative to ``package``) that defines it;
    a name in ``submodules`` returns that submodule itself. Any other name raises
    ``AttributeError`` as a plain module would. Use as ``__getattr__ = lazy_exports(__name__, ...)``.
    """
    exports = dict(exports or {})
    submodules = frozenset(submodules)

    def __getattr__(name: str) -> Any:
        if name in exports:
            return getattr(importlib.import_module(f".{exports[name]}", package), name)
        if name in submodules:
            return importlib.import_module(f".{name}", package)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
