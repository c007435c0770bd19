"""The conformance kit against DectrisSim serving stream V2 (CBOR), passive
and active, over real HTTP and ZeroMQ sockets."""
from __future__ import annotations

from typing import Iterator

import pytest

from libertem_live_testing.suite import *  # noqa: F401,F403

from dectris_conformance import DectrisV2Harness

# Interrupts and killed workers are handled by the core's task loop, the same
# for stream V1 and V2; test_conformance.py runs them once for this driver.
del TestInterrupts  # noqa: F821


@pytest.fixture(scope="module")
def live_driver() -> Iterator[DectrisV2Harness]:
    with DectrisV2Harness() as harness:
        yield harness
