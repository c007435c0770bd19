"""pytest plugin: fixtures, options, checks and the certification summary of
the conformance kit.

For the suite's tests (``libertem_live_testing.suite``) it skips what the
driver does not declare, runs each mode-neutral test in every declared mode
(``live_mode``), puts a time limit on each test, checks for leaks after each
one and reports per driver what was verified.
"""
from __future__ import annotations

from typing import Any, Iterator

import pytest

from libertem_live_testing import leaks
from libertem_live_testing.capabilities import MODES
from libertem_live_testing.certify import BASICS, HarnessRecord, render
from libertem_live_testing.watchdog import time_limit

_HARNESS = pytest.StashKey[Any]()
_RECORDS = pytest.StashKey[dict[int, HarnessRecord]]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("libertem-live")
    group.addoption(
        "--live-executor", default="pipelined", choices=["pipelined", "inline"],
        help="executor of the LiveContext the conformance suite uses (default: pipelined, "
             "LiveContext()'s own default, as at the microscope)",
    )
    parser.addini("live_test_timeout", "seconds each conformance-suite test may take "
                  "(0: no limit)", default="120")
    parser.addini("live_leak_threads", "name prefixes of threads (besides the core's "
                  "libertem-live-* receivers) that must not outlive a test", type="linelist",
                  default=[])
    parser.addini("live_leak_fd_tolerance", "how many more open file descriptors than "
                  "before a test are not yet a leak", default="2")
    parser.addini("live_leak_settle", "seconds to wait for threads, descriptors and shared "
                  "memory to go away before a leak is reported", default="2.0")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "live_requires(feature): skip unless the driver declares the capability")
    config.stash[_RECORDS] = {}


def _is_suite(item: pytest.Item) -> bool:
    obj = getattr(item, "obj", None)
    return getattr(obj, "__module__", "").startswith("libertem_live_testing.suite")


def _features(item: pytest.Item) -> tuple[str, ...]:
    """What a test verifies: its live_requires capabilities, the mode it runs
    in and the fault kind it injects ("basics" when none)."""
    found: list[str] = []
    for marker in item.iter_markers("live_requires"):
        found.extend(marker.args)
    params = getattr(getattr(item, "callspec", None), "params", {})
    if "live_mode" in params:
        found.append(params["live_mode"])
    if "fault_kind" in params:
        found.append(f"fault:{getattr(params['fault_kind'], 'value', params['fault_kind'])}")
    return tuple(dict.fromkeys(found)) or (BASICS,)


# --- fixtures ---------------------------------------------------------------------------
@pytest.fixture(scope="session")
def live_ctx(request: pytest.FixtureRequest) -> Iterator[Any]:
    """A LiveContext, shared by the whole test session: ``LiveContext()``
    exactly as a user makes it (``--live-executor=inline`` for debugging).

    One for the session, not one per module: starting the worker processes
    costs seconds on a small machine, and a context must survive whatever a
    test did to it (a failed run, a killed worker) anyway, as a user's does."""
    from libertem_live.api import LiveContext
    if request.config.getoption("--live-executor") == "inline":
        from libertem.executor.inline import InlineJobExecutor
        ctx = LiveContext(executor=InlineJobExecutor())
    else:
        ctx = LiveContext()
    try:
        yield ctx
    finally:
        ctx.close()


@pytest.fixture(params=MODES)
def live_mode(request: pytest.FixtureRequest) -> str:
    """The acquisition mode of a mode-neutral test: it runs once per mode;
    modes the driver does not declare are skipped (by ``_live_suite``)."""
    return str(request.param)


def _leak_options(config: pytest.Config, harness: Any = None) -> dict[str, Any]:
    prefixes = tuple(config.getini("live_leak_threads"))
    prefixes += tuple(getattr(harness, "leak_thread_prefixes", ()))
    return {"prefixes": prefixes,
            "fd_tolerance": int(config.getini("live_leak_fd_tolerance")),
            "settle_s": float(config.getini("live_leak_settle"))}


@pytest.fixture
def live_no_leaks(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fails the test (at teardown) if it left threads, file descriptors,
    ``psm_*`` shared memory or child processes behind.  Autouse for the
    suite's tests; a driver's own tests request it (before any fixture that
    starts a simulator, so that it is checked after the simulator stopped).
    Thread prefixes of simulators: ini ``live_leak_threads``."""
    opts = _leak_options(request.config)
    before = leaks.take(opts["prefixes"])
    yield
    found = leaks.check(before, settle_s=opts["settle_s"], fd_tolerance=opts["fd_tolerance"])
    if found:
        pytest.fail("leak after the test:\n  " + "\n  ".join(found), pytrace=False)


@pytest.fixture(autouse=True)
def _live_suite(request: pytest.FixtureRequest) -> Iterator[None]:
    item = request.node
    suite = _is_suite(item)
    if not suite and item.get_closest_marker("live_requires") is None:
        yield
        return
    harness = request.getfixturevalue("live_driver")
    item.stash[_HARNESS] = harness
    for feature in _features(item):
        if feature == BASICS:
            continue
        reason = harness.capabilities.missing(feature)
        if reason is not None:
            pytest.skip(f"{harness.name}: {reason}")
    for feature in _features(item):
        issue = harness.known_issues.get(feature.partition(":")[2] or feature)
        if issue:
            request.applymarker(pytest.mark.xfail(
                reason=f"{harness.name}: known issue with {feature}: {issue}", strict=False))
    if not suite:
        yield
        return
    opts = _leak_options(request.config, harness)
    before = leaks.take(opts["prefixes"])
    yield
    found = leaks.check(before, settle_s=opts["settle_s"], fd_tolerance=opts["fd_tolerance"])
    if found:
        pytest.fail(f"{harness.name}: leak after the test:\n  " + "\n  ".join(found),
                    pytrace=False)


# --- time limit and certification -------------------------------------------------------
@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    if not _is_suite(item):
        return (yield)
    limit = float(item.config.getini("live_test_timeout"))
    with time_limit(limit, item.nodeid):
        return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Any:
    report = yield
    harness = item.stash.get(_HARNESS, None)
    if harness is None or not _is_suite(item):
        return report
    records = item.config.stash[_RECORDS]
    rec = records.setdefault(id(harness), HarnessRecord(harness))
    if hasattr(report, "wasxfail"):
        outcome = "known issue"
    elif report.failed:
        outcome = "failed"
    elif report.skipped:
        outcome = "skipped"
    elif report.when == "call":
        outcome = "passed"
    else:
        return report
    rec.record(item.nodeid, _features(item), outcome)
    return report


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int,
                            config: pytest.Config) -> None:
    records = list(config.stash.get(_RECORDS, {}).values())
    if not records:
        return
    terminalreporter.write_sep("=", "libertem-live conformance")
    render(records, terminalreporter.write_line)
