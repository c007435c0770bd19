"""The per-driver part of the kit: how to start the simulator for a scenario."""
from __future__ import annotations

import abc
from types import MappingProxyType
from typing import Any, Mapping

import numpy as np

from libertem_live.driver import Fault

from libertem_live_testing.capabilities import Capabilities


class Scenario(abc.ABC):
    """One simulated acquisition setup with a known ground truth.

    The contract the suite relies on:

    * **re-armable**: the suite may run several acquisitions on one scenario
      and one connection; :meth:`arm_passive` is called again before each
      passive acquisition (and :meth:`active_controller` before each active
      one), and every acquisition sends the same frames;
    * **a fault applies to the first acquisition only**: a scenario made with
      ``fault=`` injects it into the first acquisition it serves; every later
      one is clean, so the suite can check that the driver recovers on the
      same connection (for ``restart_between`` the simulator restarts after
      the first acquisition, on the same ports);
    * **ground truth**: :meth:`expected_sum` and :meth:`frames` describe a
      clean acquisition (what the driver must deliver when nothing is wrong),
      not what a fault did to the first one;
    * :meth:`connection_params` sets a short ``timeout`` (a few seconds) when
      the scenario has a fault or ``short_by``, so that faults a driver
      handles badly fail in seconds instead of hanging the suite;
    * :meth:`close` (also on leaving the ``with`` block) stops everything the
      scenario started: simulator threads, sockets, child processes; the
      suite checks for leaks after every test.

    ``fault_frame``: the 0-based frame where the fault happens; by default
    where the kit asked for it (``fault.frame``); a simulator that can only
    place it elsewhere (at a chunk boundary) sets it.
    """

    nimages: int
    nav_shape: tuple[int, ...]
    sig_shape: tuple[int, ...]
    fault_frame: int | None = None

    @abc.abstractmethod
    def connection_params(self) -> dict[str, Any]:
        """Keyword arguments for ``ctx.make_connection(name).open(**params)``."""

    def arm_passive(self, conn: Any) -> None:
        """Do what external software does to start an acquisition (passive
        mode); called again before every further acquisition.  For a driver
        without active mode the interrupt tests call it with ``conn=None``
        (the session's connection is in another process): start the
        acquisition through the simulator then."""

    def active_controller_params(self) -> dict[str, Any]:
        """Keyword arguments for ``conn.get_active_controller(**params)`` in
        an active acquisition of this scenario; plain data, because the
        interrupt tests arm the detector from another process."""
        return {}

    def active_controller(self, conn: Any) -> Any:
        """The controller for an active acquisition of this scenario."""
        return conn.get_active_controller(**self.active_controller_params())

    @abc.abstractmethod
    def expected_sum(self) -> np.ndarray:
        """Sum over all frames of a clean acquisition, float64, sig-shaped."""

    def frames(self) -> np.ndarray:
        """All frames of a clean acquisition, shape nav + sig (only with
        Capabilities.frames).  Neighbouring frames must differ (the suite
        checks that a swap of two frames would be seen)."""
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self) -> Scenario:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class DriverHarness(abc.ABC):
    """Describes a driver to the suite: its name, capabilities and scenarios."""

    name: str
    capabilities: Capabilities = Capabilities()
    #: seconds a failing acquisition (a fault) may take, from arming to the error
    fault_time_bound: float = 20.0
    #: names of threads the simulator or driver starts (besides the core's
    #: ``libertem-live-*`` receivers) that must be gone after every test
    leak_thread_prefixes: tuple[str, ...] = ()
    #: ``{"frame_gap": "why"}``: fault kinds or capabilities known to fail for
    #: a reason outside the driver; their tests are expected to fail (strict
    #: xfail, so a fix shows) and they count as failed in the certification
    known_issues: Mapping[str, str] = MappingProxyType({})

    @abc.abstractmethod
    def scenario(self, nav_shape: tuple[int, ...], *, short_by: int = 0,
                 announce_nav_shape: bool = True, fault: Fault | None = None) -> Scenario:
        """A scenario of ``prod(nav_shape)`` frames.

        ``short_by``: the simulator ends the series (with its end marker)
        that many frames early.  ``announce_nav_shape``: whether the detector
        tells the scan shape (only matters with ``nav_shape_from_detector``).
        ``fault``: a stream fault for the first acquisition (only kinds in
        ``capabilities.faults`` are asked for; the suite passes a
        :class:`~libertem_live.driver.Fault` with its frame set, ``str(fault)``
        is the simulator's ``--fault`` spelling).  A harness written before
        ``fault`` existed may leave the parameter out while it declares no
        fault kinds.
        """

    def close(self) -> None:
        pass

    def __enter__(self) -> DriverHarness:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
