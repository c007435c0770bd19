"""The shared conformance suite.  ``from libertem_live_testing.suite import *``
in a driver's test module collects every test class here against that
module's ``live_driver`` fixture."""
from libertem_live_testing.suite.test_discovery import TestDiscovery
from libertem_live_testing.suite.test_connection import TestConnection
from libertem_live_testing.suite.test_passive import TestPassive
from libertem_live_testing.suite.test_active import TestActive
from libertem_live_testing.suite.test_navshape import TestNavShape
from libertem_live_testing.suite.test_results import TestResults
from libertem_live_testing.suite.test_faults import TestFaults
from libertem_live_testing.suite.test_order import TestFrameOrder
from libertem_live_testing.suite.test_interrupts import TestInterrupts

__all__ = ["TestDiscovery", "TestConnection", "TestPassive", "TestActive", "TestNavShape",
           "TestResults", "TestFaults", "TestFrameOrder", "TestInterrupts"]
