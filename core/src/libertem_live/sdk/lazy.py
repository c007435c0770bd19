"""Public names of a package that load on first use.

Why: a driver package is imported whenever drivers are listed (its
``plugin.py`` lives in it), so its ``__init__`` must not pull in ZeroMQ,
numba or the simulator just to offer their names.
"""
from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Mapping
from typing import Any

Target = str | tuple[str, str]


def lazy_names(package: str, names: Mapping[str, Target], *, also: Iterable[str] = ()
               ) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for ``package``: ``names`` maps a public
    name to the module holding it (``".connection"`` is relative to
    ``package``) or to ``(module, attribute)`` for a name exported under
    another one.  ``also``: names the package defines itself, for ``dir()``.

    Usage in ``__init__.py``: ``__getattr__, __dir__ = lazy_names(__name__, {...})``.
    """
    mod = importlib.import_module(package)
    public = sorted(set(names) | set(also))

    def getattr_(name: str) -> Any:
        target = names.get(name)
        if target is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module, attr = (target, name) if isinstance(target, str) else target
        value = getattr(importlib.import_module(module, package), attr)
        setattr(mod, name, value)
        return value

    def dir_() -> list[str]:
        return list(public)

    return getattr_, dir_
