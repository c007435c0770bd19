"""Conformance kit for libertem-live detector drivers.

A driver certifies itself by running the shared suite against its
simulator::

    # tests/test_conformance.py of a driver
    import pytest
    from libertem_live_testing import Capabilities, DriverHarness, Scenario
    from libertem_live_testing.suite import *  # noqa: F401,F403

    class MyHarness(DriverHarness):
        name = "mydetector"
        capabilities = Capabilities(passive=True, active=True,
                                    faults={"frame_gap", "ends_short", "never_ends"})
        def scenario(self, nav_shape, *, short_by=0, announce_nav_shape=True,
                     fault=None) -> Scenario: ...

    @pytest.fixture(scope="module")
    def live_driver():
        with MyHarness() as harness:
            yield harness

What the plugin adds to a driver's test run: the ``live_ctx`` fixture
(``LiveContext()``; ``--live-executor=inline`` to debug), ``live_mode``
(mode-neutral tests run once per declared mode), ``live_no_leaks`` (the leak
check, autouse for the suite), a time limit per suite test (ini
``live_test_timeout``) and a certification summary at the end of the run.
The Scenario contract (re-armable, a fault applies to the first acquisition
only, close() stops everything) is in :class:`Scenario`'s docstring; what
each fault kind must end in is :data:`libertem_live_testing.faults.OUTCOMES`.
"""
from libertem_live_testing.capabilities import Capabilities
from libertem_live_testing.harness import DriverHarness, Scenario
from libertem_live_testing.checks import (
    assert_checksums_equal, assert_frames_equal, assert_sum_equal,
)
from libertem_live_testing.faults import OUTCOMES, Outcome

__all__ = ["Capabilities", "DriverHarness", "Scenario", "assert_sum_equal", "assert_frames_equal",
           "assert_checksums_equal", "OUTCOMES", "Outcome"]
