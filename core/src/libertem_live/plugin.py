"""What a driver plugin imports from the core: the hook marker, the
description of a driver, and the plugin-API version it is written for."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import pluggy

from libertem_live.hookspecs import PROJECT_NAME

#: Major version of the plugin API.  A driver declares the version it was
#: written for; the registry refuses a driver whose version differs, with a
#: message naming the distribution to upgrade.
PLUGIN_API_VERSION = 1

hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@dataclass
class DetectorInfo:
    """A driver, as a plugin announces it.

    ``open`` takes the connection parameters as keyword arguments and returns a
    :class:`~libertem_live.protocols.DetectorConnection`.  ``compat_module``
    (a module path) becomes importable as ``libertem_live.detectors.<name>``.
    """

    name: str
    open: Callable[..., Any]
    plugin_api: int = PLUGIN_API_VERSION
    description: str = ""
    compat_module: str | None = None
    parameters: dict[str, str] = field(default_factory=dict)
