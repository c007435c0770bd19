"""The per-driver part of the kit: how to start the simulator for a scenario."""
from __future__ import annotations

import abc
from typing import Any

import numpy as np

from libertem_live_testing.capabilities import Capabilities


class Scenario(abc.ABC):
    """One simulated acquisition setup with a known ground truth.

    A scenario is a context manager; leaving it stops whatever it started.
    """

    nimages: int
    nav_shape: tuple[int, ...]
    sig_shape: tuple[int, ...]

    @abc.abstractmethod
    def connection_params(self) -> dict[str, Any]:
        """Keyword arguments for ``ctx.make_connection(name).open(**params)``."""

    def arm_passive(self, conn: Any) -> None:
        """Do what external software does to start an acquisition (passive mode)."""

    def active_controller(self, conn: Any) -> Any:
        """The controller for an active acquisition of this scenario."""
        return conn.get_active_controller()

    @abc.abstractmethod
    def expected_sum(self) -> np.ndarray:
        """Sum over all frames the simulator sends, float64, sig-shaped."""

    def frames(self) -> np.ndarray:
        """All frames, shape nav + sig (only with Capabilities.frames)."""
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

    @abc.abstractmethod
    def scenario(self, nav_shape: tuple[int, ...], *, short_by: int = 0,
                 announce_nav_shape: bool = True) -> Scenario:
        """A scenario of ``prod(nav_shape)`` frames.

        ``short_by``: the simulator stops that many frames early (a stream
        that ends short).  ``announce_nav_shape``: whether the detector tells
        the scan shape (only matters with ``nav_shape_from_detector``).
        """

    def close(self) -> None:
        pass

    def __enter__(self) -> DriverHarness:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
