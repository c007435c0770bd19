"""libertem-live-core: live processing of 4D-STEM detector streams with LiberTEM."""
from __future__ import annotations

from importlib import metadata as _metadata

try:
    __version__ = _metadata.version("libertem-live-core")
except _metadata.PackageNotFoundError:  # running from a source tree
    __version__ = "0.0.0+unknown"


def list_detectors() -> list[dict[str, str]]:
    """Installed detector drivers: name, distribution, version, status, and the
    error for drivers that cannot be used."""
    from libertem_live.registry import default_registry
    return [
        {"name": r.name, "distribution": r.distribution, "version": r.version,
         "status": r.status, "description": r.info.description if r.info else "",
         "error": r.error.splitlines()[0] if r.error else ""}
        for r in default_registry().records()
    ]


__all__ = ["__version__", "list_detectors"]
