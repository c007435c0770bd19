"""``libertem-live new-driver NAME``: a new driver as a distribution of its own.

The template is a complete, working driver for a made-up detector, "ACME"
(a framed TCP stream: a JSON start message, frames of index + raw pixels, an
end message; passive and active mode), with its simulator and the
conformance test.  It passes the kit as generated, so a vendor starts from
something green and replaces the wire format with their own.  Generating
is plain text replacement of the name in paths and contents.
"""
from __future__ import annotations

import keyword
import re
from pathlib import Path

TEMPLATE = Path(__file__).with_name("template")
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


def template_files() -> list[Path]:
    """The template's files, relative to its root (``.tmpl`` suffix kept)."""
    return sorted(p.relative_to(TEMPLATE) for p in TEMPLATE.rglob("*.tmpl"))


def check_name(name: str) -> str:
    if not _NAME.match(name) or keyword.iskeyword(name):
        raise ValueError(
            f"{name!r} cannot name a driver: use lower-case letters, digits and '_', "
            "starting with a letter (it becomes the package libertem_live_<name> and the "
            "string users pass to ctx.make_connection)")
    return name


def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))


def render(text: str, name: str) -> str:
    """The template text with ACME/Acme/acme replaced by the driver's name."""
    dist = name.replace("_", "-")
    text = text.replace("libertem-live-acme", f"libertem-live-{dist}")
    text = text.replace("libertem_live_acme", f"libertem_live_{name}")
    text = text.replace("ACME", name.upper()).replace("Acme", _camel(name))
    return text.replace("acme", name)


def new_driver(name: str, dest: Path) -> Path:
    """Write the distribution ``libertem-live-<name>`` into ``dest/libertem-live-<name>``
    and return that folder; refuses to write into an existing one."""
    check_name(name)
    root = Path(dest) / f"libertem-live-{name.replace('_', '-')}"
    if root.exists():
        raise FileExistsError(f"{root} exists already; choose another place or name")
    for rel in template_files():
        target = root / render(str(rel), name)[: -len(".tmpl")]
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(render((TEMPLATE / rel).read_text(), name))
    return root
