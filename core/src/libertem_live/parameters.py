"""The connection parameters of a driver, read from a signature.

A driver's documentation of its ``open(**params)`` is only as good as it is
kept up to date; the signature of the connection class cannot drift from the
code.  So names, order and defaults come from ``DetectorInfo.signature_of``
(or ``open``) and the plugin's ``parameters`` dict adds only the meaning.
"""
from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from libertem_live.errors import DriverError

if TYPE_CHECKING:
    from libertem_live.plugin import DetectorInfo


class _Marker:
    def __init__(self, text: str):
        self.text = text

    def __repr__(self) -> str:
        return self.text


#: The default of a parameter that must be given.
REQUIRED: Any = _Marker("REQUIRED")
#: The default of a parameter the plugin describes but the signature does not
#: show (it reaches the connection through ``**params``).
UNKNOWN: Any = _Marker("UNKNOWN")


@dataclass(frozen=True)
class Parameter:
    name: str
    default: Any = REQUIRED
    description: str = ""

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    @property
    def default_text(self) -> str:
        if self.default is REQUIRED:
            return "(required)"
        if self.default is UNKNOWN:
            return ""
        return repr(self.default)


def load_named(target: str) -> Any:
    """The object a ``"package.module:qualname"`` string (or
    ``"package.module.name"``) names, imported now.  DetectorInfo names code
    this way so that listing the drivers imports none of it."""
    module, sep, qualname = target.partition(":")
    if not sep:
        module, _, qualname = module.rpartition(".")
    if not module or not qualname:
        raise ValueError(f"expected 'package.module:name', got {target!r}")
    obj: Any = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


def signature_source(info: DetectorInfo) -> Callable[..., Any]:
    """The callable whose signature lists ``info``'s parameters (imports
    ``signature_of`` when it is a ``"module:qualname"`` string)."""
    target = info.signature_of
    if target is None:
        return info.open
    if callable(target):
        return target
    try:
        obj = load_named(str(target))
    except Exception as e:
        raise DriverError(
            f"the {info.name!r} driver names {target!r} as DetectorInfo.signature_of, "
            f"which cannot be imported: {type(e).__name__}: {e}. Use "
            "'package.module:ClassName'"
        ) from e
    if not callable(obj):
        raise DriverError(
            f"the {info.name!r} driver names {target!r} as DetectorInfo.signature_of, "
            f"but that is a {type(obj).__name__}, not a class or function"
        )
    return obj


def describe(info: DetectorInfo) -> list[Parameter]:
    """The parameters of ``info.open``: every named parameter of the signature
    (``self`` and ``*args`` left out), then any the plugin describes that the
    signature only takes through ``**params``."""
    source = signature_source(info)
    try:
        sig = inspect.signature(source)
    except (TypeError, ValueError):
        sig = inspect.Signature()
    words = dict(info.parameters)
    found: list[Parameter] = []
    for p in sig.parameters.values():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        default = REQUIRED if p.default is p.empty else p.default
        found.append(Parameter(p.name, default, words.pop(p.name, "")))
    found.extend(Parameter(name, UNKNOWN, text) for name, text in words.items())
    return found


def default_memory_mib(info: DetectorInfo, params: list[Parameter]) -> float | None:
    """MiB of shared memory a connection of this driver uses by default: its
    ``buffer_size`` default when that is a number, else the connection
    class's ``default_ring``; None when neither says."""
    for p in params:
        if p.name == "buffer_size" and isinstance(p.default, (int, float)) \
                and not isinstance(p.default, bool):
            return float(p.default)
    ring = getattr(signature_source(info), "default_ring", None)
    nbytes = getattr(ring, "nbytes", None)
    return None if nbytes is None else nbytes / (1 << 20)
