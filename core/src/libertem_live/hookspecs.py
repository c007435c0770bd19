"""The plugin API of libertem-live, documented where it is declared.

A detector driver is a Python distribution with an entry point in the group
``libertem_live.detectors``; the entry point names a module (or object)
holding ``@hookimpl`` functions.  The built-in ``memory`` driver registers
exactly this way, so it doubles as the reference implementation::

    [project.entry-points."libertem_live.detectors"]
    mydetector = "my_package.plugin"

    # my_package/plugin.py
    from libertem_live.plugin import hookimpl, DetectorInfo, PLUGIN_API_VERSION

    @hookimpl
    def libertem_live_detectors():
        return [DetectorInfo(name="mydetector", open=open_connection,
                             plugin_api=PLUGIN_API_VERSION)]

Lifecycle hooks (``on_ready_for_data``, ``on_determine_nav_shape``) are the
same calls that the user's :class:`~libertem_live.hooks.Hooks` subclass
receives; an installed plugin (for example a scan-engine driver that starts
the scan when the detector is armed) can implement them too.

A function marked ``@hookimpl`` whose name is none of the hooks below (a
misspelling) makes the registry refuse the whole plugin, naming its
distribution and the function; mark it ``@hookimpl(optionalhook=True)`` if it
implements another program's hook.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import pluggy

if TYPE_CHECKING:
    from libertem_live.hooks import DetermineNavShapeEnv, ReadyForDataEnv
    from libertem_live.plugin import DetectorInfo

PROJECT_NAME = "libertem_live"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)


@hookspec
def libertem_live_detectors() -> Sequence[DetectorInfo]:
    """Return the detector drivers this plugin provides.

    Called once per process when the registry first loads plugins.  Each
    :class:`~libertem_live.plugin.DetectorInfo` names the driver (the string
    users pass to ``ctx.make_connection(name)``), the callable that opens a
    connection (``open(**params) -> DetectorConnection``), the plugin-API
    version the driver was written for, and optionally a module that should
    also be importable as ``libertem_live.detectors.<name>`` for scripts
    written against older import paths, the callable whose signature lists
    the parameters (``signature_of``, e.g. ``"my_package.connection:MyConnection"``,
    imported only by ``libertem-live detectors NAME``) and what each one
    means (``parameters``).

    Two drivers claiming one name are reported as a conflict naming both
    distributions; neither is used until one is uninstalled.
    """


@hookspec
def on_ready_for_data(env: ReadyForDataEnv) -> None:
    """Active mode: the detector is armed and the receiver listens.

    Called exactly once per acquisition run, before any frame is expected.
    Start the scan or trigger the detector here.  An exception aborts the
    acquisition (the detector is disarmed) and reaches the caller of
    ``run_udf``.
    """


@hookspec(firstresult=True)
def on_determine_nav_shape(env: DetermineNavShapeEnv) -> tuple[int, ...] | None:
    """Passive mode: return the scan shape for ``env.nimages`` images.

    Called when ``make_acquisition`` got no concrete ``nav_shape``.  The first
    non-None result wins (the user's ``hooks=`` object is asked first); it
    must not contain ``-1`` and its product must equal ``env.nimages``.
    Return None to fall back to the built-in rules.
    """
