"""pytest plugin: fixtures and options of the conformance kit."""
from __future__ import annotations

from typing import Any, Iterator

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("libertem-live")
    group.addoption(
        "--live-executor", default="pipelined", choices=["pipelined", "inline"],
        help="executor of the LiveContext the conformance suite uses (default: pipelined, "
             "two worker processes, as at the microscope)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "live_requires(feature): skip unless the driver declares the capability")


@pytest.fixture(scope="module")
def live_ctx(request: pytest.FixtureRequest) -> Iterator[Any]:
    """A LiveContext, shared by the tests of one module."""
    from libertem_live.api import LiveContext
    kind = request.config.getoption("--live-executor")
    if kind == "inline":
        from libertem.executor.inline import InlineJobExecutor
        ctx = LiveContext(executor=InlineJobExecutor())
    else:
        from libertem.executor.pipelined import PipelinedExecutor
        ctx = LiveContext(executor=PipelinedExecutor(
            spec=PipelinedExecutor.make_spec(cpus=range(2), cudas=[]), pin_workers=False))
    try:
        yield ctx
    finally:
        ctx.close()


@pytest.fixture(autouse=True)
def _live_requires(request: pytest.FixtureRequest) -> None:
    marker = request.node.get_closest_marker("live_requires")
    if marker is None:
        return
    harness = request.getfixturevalue("live_driver")
    for feature in marker.args:
        reason = harness.capabilities.missing(feature)
        if reason is not None:
            pytest.skip(f"{harness.name}: {reason}")
