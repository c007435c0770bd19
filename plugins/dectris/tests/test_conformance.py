"""The conformance kit against DectrisSim (stream V1), over real HTTP and
ZeroMQ sockets."""
from __future__ import annotations

from typing import Iterator

import pytest

from libertem_live_testing.suite import *  # noqa: F401,F403

from dectris_conformance import DectrisHarness


@pytest.fixture(scope="module")
def live_driver() -> Iterator[DectrisHarness]:
    with DectrisHarness() as harness:
        yield harness
