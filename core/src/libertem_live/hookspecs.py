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

Result hooks (``on_acquisition_started``, ``on_partial_results``,
``on_acquisition_ended``) let a frontend (a live dashboard, a logger) follow
every UDF run on a live acquisition without the user's script knowing about
it.  A frontend registers through the same entry-point group as a driver but
needs no ``libertem_live_detectors`` implementation.  These three hooks can
never break or stop an acquisition: each implementation is called on its
own, and whatever it raises is logged and swallowed.  They run on the thread
that merges the results, between partitions, so an implementation must
return within a millisecond or so: keep the latest state, do the work
elsewhere.

A plugin can also add subcommands to the ``libertem-live`` console command
(``libertem_live_commands``): the dashboard is ``libertem-live dashboard``.

A function marked ``@hookimpl`` whose name is none of the hooks below (a
misspelling) makes the registry refuse the whole plugin, naming its
distribution and the function; mark it ``@hookimpl(optionalhook=True)`` if it
implements another program's hook.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import pluggy

if TYPE_CHECKING:
    from libertem_live.hooks import (
        AcquisitionEndedEnv, AcquisitionStartedEnv, DetermineNavShapeEnv, PartialResultsEnv,
        ReadyForDataEnv,
    )
    from libertem_live.plugin import CommandInfo, DetectorInfo

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
    imported only by ``libertem-live detectors NAME``), what each one
    means (``parameters``), and the entry point of the driver's simulator
    (``simulator``, e.g. ``"my_package.sim.__main__:main"``, imported only by
    ``libertem-live sim NAME``).

    Two drivers claiming one name are reported as a conflict naming both
    distributions; neither is used until one is uninstalled.
    """


@hookspec
def libertem_live_commands() -> Sequence[CommandInfo]:
    """Return the subcommands this plugin adds to ``libertem-live``.

    A frontend such as the dashboard ships its own program; through this
    hook it is also ``libertem-live NAME``, next to the core's ``detectors``,
    ``sim`` and ``record``.  Each :class:`~libertem_live.plugin.CommandInfo`
    names the subcommand and the function that runs it (imported only then).
    Called when ``libertem-live`` builds its command line.
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


@hookspec
def on_acquisition_started(env: AcquisitionStartedEnv) -> None:
    """A UDF run (``run_udf`` or ``run_udf_iter``) on a live acquisition began.

    Called after the detector was armed and ``on_ready_for_data`` returned
    (active mode) or the announced stream was taken (passive mode);
    never for offline datasets.  ``env`` names the run (``run_id``), the
    detector, the mode, nav and signal shape, dtype, the frame format's
    metadata and the UDFs.  Exceptions are logged and ignored.
    """


@hookspec
def on_partial_results(env: PartialResultsEnv) -> None:
    """The results after one more merged partition of a live run.

    Called for ``run_udf`` too (the core then iterates internally), with the
    results exactly as ``run_udf_iter`` yields them, a ledger snapshot
    (received, processed, missing...) and the throughput so far.  The arrays
    change after the call: copy what you keep, and keep only the latest.
    ``env.update_parameters(udf, **params)`` changes a UDF's parameters from
    the next partition on.  Exceptions are logged and ignored; a slow
    implementation delays the merge of results, so return quickly.
    """


@hookspec
def on_acquisition_ended(env: AcquisitionEndedEnv) -> None:
    """A live run that started ended: ``env.outcome`` is ``"complete"``,
    ``"failed"`` (with ``env.error``) or ``"cancelled"``.

    Called exactly once per ``on_acquisition_started``, after the detector was
    stopped, with the final ledger and the last results (if any).  Exceptions
    are logged and ignored; the caller of ``run_udf`` sees the acquisition's
    own outcome only.
    """
