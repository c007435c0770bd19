"""Conformance kit for libertem-live detector drivers.

A driver certifies itself by running the shared suite against its
simulator::

    # tests/test_conformance.py of a driver
    import pytest
    from libertem_live_testing import Capabilities, DriverHarness, Scenario
    from libertem_live_testing.suite import *  # noqa: F401,F403

    class MyHarness(DriverHarness):
        name = "mydetector"
        capabilities = Capabilities(passive=True, active=True)
        def scenario(self, nav_shape, **kw) -> Scenario: ...

    @pytest.fixture(scope="module")
    def live_driver():
        with MyHarness() as harness:
            yield harness
"""
from libertem_live_testing.capabilities import Capabilities
from libertem_live_testing.harness import DriverHarness, Scenario
from libertem_live_testing.checks import assert_frames_equal, assert_sum_equal

__all__ = ["Capabilities", "DriverHarness", "Scenario", "assert_sum_equal", "assert_frames_equal"]
