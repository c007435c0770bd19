"""Real (tiny) distributions on disk, found by importlib.metadata like any
installed driver: for testing discovery errors without installing anything."""
from __future__ import annotations

import sys
import textwrap
from importlib import metadata
from pathlib import Path

from libertem_live.registry import ENTRY_POINT_GROUP, Registry


def make_dist(root: Path, dist: str, version: str, entry_points: dict[str, str],
              modules: dict[str, str]) -> None:
    info = root / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    lines = [f"[{ENTRY_POINT_GROUP}]"] + [f"{k} = {v}" for k, v in entry_points.items()]
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n")
    for name, source in modules.items():
        (root / f"{name}.py").write_text(textwrap.dedent(source))


def registry_for(root: Path) -> Registry:
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    eps = [ep for d in metadata.distributions(path=[str(root)])
           for ep in d.entry_points if ep.group == ENTRY_POINT_GROUP]
    return Registry(entry_points=eps)


GOOD_DRIVER = """
from libertem_live.plugin import hookimpl, DetectorInfo, PLUGIN_API_VERSION

def _open(**params):
    return ("{name}", params)

@hookimpl
def libertem_live_detectors():
    return [DetectorInfo(name="{name}", open=_open, plugin_api={api},
                         description="toy {name}")]
"""
