'''Broken toy drivers for the kit's own tests, built on the SDK and the memory
driver's classes.  Each one has exactly one bug the suite must name.

Installed into a pytester subprocess as module ``toy_drivers`` with one
entry point per driver.'''

DRIVERS = '''
"""Toy drivers, each with one bug."""
import threading

from libertem_live.driver import PLUGIN_API_VERSION, DetectorInfo, hookimpl
from libertem_live.detectors.memory.connection import MemoryConnection
from libertem_live.detectors.memory.receiver import MemoryFraming


class NeverEndsFraming(MemoryFraming):
    """Bug: when the detector ends a series early it keeps waiting for the
    frames that will never come (it ignores the end marker)."""

    def __init__(self, frames, nimages, *args):
        super().__init__(frames, nimages, *args)
        self.nimages = nimages

    def receive(self, out, stop):
        if self.sent >= self.count and self.count < self.nimages:
            stop.wait(0.05)
            return True
        return super().receive(out, stop)


class StuckFraming(MemoryFraming):
    """Bug: after the last frame it waits for the end marker with a blocking
    read that has no time-out and does not look at the stop flag."""

    def receive(self, out, stop):
        if self.sent >= self.count:
            threading.Event().wait(60)
            return False
        return super().receive(out, stop)


class SwapFraming(MemoryFraming):
    """Bug: writes the payloads of neighbouring frames swapped (the indices
    are in order, the sum is unchanged)."""

    def receive(self, out, stop):
        i = self.sent
        if i >= self.count:
            return False
        j = i ^ 1 if (i ^ 1) < self.count else i
        out.put(i, self.rows[j % len(self.rows)])
        self.sent += 1
        return True


class _Renumbered:
    def __init__(self, out):
        self.out = out
        self.next = 0

    def put(self, index, payload, aux=0):
        self.out.put(self.next, payload, aux)
        self.next += 1

    def put_frames(self, index, frames):
        n = self.out.put_frames(self.next, frames)
        self.next += n
        return n


class RenumberFraming(MemoryFraming):
    """Bug: numbers frames by arrival, not by the detector's frame number, so
    a frame the detector skipped makes the rest shift up (the gap is hidden)."""

    def receive(self, out, stop):
        if getattr(self, "_wrapped", None) is None or self._wrapped.out is not out:
            self._wrapped = _Renumbered(out)
        return super().receive(self._wrapped, stop)


def _connection(name, framing_class, **loop_options):
    class Toy(MemoryConnection):
        detector_name = name

        def start_series(self, nimages):
            framing = framing_class(self._frames, nimages, self.frames_per_stack,
                                    self.truncate_after, self.start_delay, self.fault)
            return self.start_stream(nimages, framing, **loop_options)

    Toy.__name__ = Toy.__qualname__ = f"{name}Connection"
    return Toy


CLASSES = {
    "toyneverends": _connection("toyneverends", NeverEndsFraming),
    "toystuck": _connection("toystuck", StuckFraming, join_timeout=0.5),
    "toyswap": _connection("toyswap", SwapFraming),
    "toyrenumber": _connection("toyrenumber", RenumberFraming),
}


@hookimpl
def libertem_live_detectors():
    return [DetectorInfo(name=name, open=cls, plugin_api=PLUGIN_API_VERSION)
            for name, cls in CLASSES.items()]
'''

HARNESS = '''
import math
import numpy as np
import pytest
from libertem_live_testing import Capabilities, DriverHarness, Scenario
from libertem_live_testing.suite import *  # noqa


class ToyScenario(Scenario):
    """The memory connection keeps its fault for every series: cleared once
    the first acquisition was armed (a fault applies to the first one only)."""

    def __init__(self, nav_shape, short_by, announce, fault):
        self.nav_shape = tuple(nav_shape)
        self.sig_shape = (16, 16)
        self.nimages = math.prod(self.nav_shape)
        rng = np.random.default_rng(self.nimages)
        self.data = rng.integers(1, 4096, size=self.nav_shape + self.sig_shape, dtype=np.uint16)
        self.short_by = short_by
        self.announce = announce
        self.fault = fault
        self.armed = 0

    def connection_params(self):
        return {"data": self.data, "passive_count": 0, "timeout": 3.0,
                "frames_per_stack": 8, "announce_nav_shape": self.announce,
                "truncate_after": self.nimages - self.short_by if self.short_by else None,
                "fault": None if self.fault is None else str(self.fault)}

    def _next(self, conn):
        if self.armed:
            conn.fault = None
        self.armed += 1

    def arm_passive(self, conn):
        self._next(conn)
        conn.announce()

    def active_controller(self, conn):
        self._next(conn)
        return conn.get_active_controller()

    def expected_sum(self):
        return self.data.reshape((-1, 16, 16)).sum(axis=0, dtype=np.float64)

    def frames(self):
        return self.data


class ToyHarness(DriverHarness):
    name = NAME
    capabilities = Capabilities(passive=True, active=True, nav_shape_from_detector=True,
                                faults=FAULTS)

    def scenario(self, nav_shape, *, short_by=0, announce_nav_shape=True, fault=None):
        return ToyScenario(nav_shape, short_by, announce_nav_shape, fault)


@pytest.fixture(scope="module")
def live_driver():
    yield ToyHarness()
'''

ALL_MEMORY_FAULTS = ('{"frame_gap", "duplicate_frame", "out_of_order", "truncated_payload", '
                     '"ends_short", "never_ends"}')


def harness(name: str, faults: str = ALL_MEMORY_FAULTS) -> str:
    return f"NAME = {name!r}\nFAULTS = {faults}\n" + HARNESS
