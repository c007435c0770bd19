"""User-facing lifecycle hooks.

Subclass :class:`Hooks` and override what you need; pass an instance as
``hooks=`` to :meth:`~libertem_live.api.LiveContext.make_acquisition`.  The
calls are dispatched through pluggy together with any installed plugin that
implements the same hooks (a scan-engine driver, say), so the user's object
and plugins see the same events.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from libertem_live.acquisition import LiveAcquisition


@dataclass
class ReadyForDataEnv:
    """Passed to :meth:`Hooks.on_ready_for_data`; ``aq`` is the acquisition
    that has just been armed (``aq.shape.nav`` is the scan shape)."""

    aq: LiveAcquisition


@dataclass
class DetermineNavShapeEnv:
    """Passed to :meth:`Hooks.on_determine_nav_shape`.

    ``nimages`` is the number of images the detector announced;
    ``shape_hint`` is the nav shape the user passed (may hold ``-1``
    placeholders) or None.
    """

    nimages: int
    shape_hint: tuple[int, ...] | None


class Hooks:
    """Override these methods to synchronise other devices with an acquisition."""

    def on_ready_for_data(self, env: ReadyForDataEnv) -> None:
        """Called once in active mode, after the detector is armed and the
        receiver listens: trigger the scan here."""

    def on_determine_nav_shape(self, env: DetermineNavShapeEnv) -> tuple[int, ...] | None:
        """Called in passive mode when ``nav_shape`` is not concrete; return the
        scan shape (its product must equal ``env.nimages``) or None to fall
        back to the built-in rules."""
        return None


def overridden_hook_methods(hooks: Any) -> list[tuple[str, Any]]:
    """The hook methods a user object really implements (not the no-op defaults)."""
    found = []
    for name in ("on_ready_for_data", "on_determine_nav_shape"):
        method = getattr(hooks, name, None)
        if method is None:
            continue
        default = getattr(Hooks, name)
        if getattr(method, "__func__", None) is default:
            continue
        found.append((name, method))
    return found
