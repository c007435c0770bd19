"""The kit's own tests: a deliberately broken toy driver must fail the suite,
and the failures must say what is wrong."""
from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

from _toys import harness

pytest_plugins = ["pytester"]

TOY_DRIVER = '''
"""A driver with three bugs: it adds one count to pixel (0, 0) of every
frame, announces an acquisition although nothing was armed, and ignores
short streams by padding them."""
import numpy as np
from libertem_live.plugin import hookimpl, DetectorInfo, PLUGIN_API_VERSION
from libertem_live.detectors.memory.connection import MemoryConnection
from libertem_live.transport.raw import RawDecoder


class OffByOneDecoder(RawDecoder):
    def decode(self, data, offsets, sizes, aux, out):
        super().decode(data, offsets, sizes, aux, out)
        out[:, 0, 0] += 1


class ToyConnection(MemoryConnection):
    detector_name = "toybroken"

    def frame_format(self):
        fmt = super().frame_format()
        fmt.decoder = OffByOneDecoder(self.data.dtype, self.sig_shape)
        return fmt

    def announce(self, count=1):
        pass

    def wait_for_acquisition(self, timeout=None):
        self.passive_count = None
        return super().wait_for_acquisition(timeout)


def _open(data, **params):
    params["truncate_after"] = None
    return ToyConnection(data, **params)


@hookimpl
def libertem_live_detectors():
    return [DetectorInfo(name="toybroken", open=_open, plugin_api=PLUGIN_API_VERSION)]
'''

TOY_TESTS = '''
import math
import numpy as np
import pytest
from libertem_live_testing import Capabilities, DriverHarness, Scenario
from libertem_live_testing.suite import *  # noqa


class ToyScenario(Scenario):
    def __init__(self, nav_shape, short_by, announce):
        self.nav_shape = tuple(nav_shape)
        self.sig_shape = (16, 16)
        self.nimages = math.prod(self.nav_shape)
        self.data = np.ones(self.nav_shape + self.sig_shape, dtype=np.uint16)
        self.short_by = short_by
        self.announce = announce

    def connection_params(self):
        return {"data": self.data, "passive_count": 0, "timeout": 5.0,
                "announce_nav_shape": self.announce,
                "truncate_after": self.nimages - self.short_by}

    def arm_passive(self, conn):
        conn.announce()

    def expected_sum(self):
        return self.data.reshape((-1, 16, 16)).sum(axis=0, dtype=np.float64)

    def frames(self):
        return self.data


class ToyHarness(DriverHarness):
    name = "toybroken"
    capabilities = Capabilities(passive=True, active=True, nav_shape_from_detector=True)

    def scenario(self, nav_shape, *, short_by=0, announce_nav_shape=True):
        return ToyScenario(nav_shape, short_by, announce_nav_shape)


@pytest.fixture(scope="module")
def live_driver():
    yield ToyHarness()
'''


def _install_toy(root: Path) -> None:
    info = root / "toybroken-0.0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: toybroken\nVersion: 0.0.1\n")
    (info / "entry_points.txt").write_text(
        "[libertem_live.detectors]\ntoybroken = toybroken_driver\n")
    (root / "toybroken_driver.py").write_text(textwrap.dedent(TOY_DRIVER))


def test_broken_toy_driver_fails_with_readable_messages(pytester: pytest.Pytester,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    site = pytester.mkdir("site")
    _install_toy(site)
    pytester.makepyfile(test_toy=TOY_TESTS)
    monkeypatch.setenv("PYTHONPATH", str(site))
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider", "--tb=short",
                                           "--live-executor=inline")
    out = result.stdout.str()
    assert result.ret == 1, out
    # the driver itself is found and registered correctly
    assert "TestDiscovery" not in "".join(line for line in out.splitlines()
                                           if line.startswith("FAILED"))
    # pixel bug: the message says where and by how much
    assert "SumUDF result differs from the simulator's ground truth at 1 of 256 pixels" in out
    assert "largest difference 128 at (0, 0)" in out
    # announced without arming
    assert "wait_for_acquisition must return None when nothing was armed" in out
    # short stream swallowed
    assert "test_short_stream_is_reported" in out
    assert "the run succeeded although the simulator ended the series after 44 of 64" in out
    # recording shows the corrupted frames
    assert "recorded frames differ from the frames sent; first wrong frame index 0" in out


def test_unsupported_features_are_skipped_with_reason(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_mem=TOY_TESTS.replace('"toybroken"', '"memory"').replace(
        "Capabilities(passive=True, active=True, nav_shape_from_detector=True)",
        "Capabilities(passive=True, active=False, nav_shape_from_detector=True)"))
    result = pytester.runpytest_subprocess("-q", "-rs", "-p", "no:cacheprovider",
                                           "--live-executor=inline", "-k", "TestActive")
    out = result.stdout.str()
    assert "memory: the driver declares no support for 'active'" in out
    assert result.ret == 0, out


# --- toy drivers with one bug each (built on the SDK and the memory driver) -------------
def _install_toys(root: Path) -> None:
    from _toys import DRIVERS
    info = root / "toy_drivers-0.0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-drivers\nVersion: 0.0.1\n")
    (info / "entry_points.txt").write_text(
        "[libertem_live.detectors]\ntoys = toy_drivers\n")
    (root / "toy_drivers.py").write_text(textwrap.dedent(DRIVERS))


def _run_toy(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, name: str,
             *args: str, faults: str | None = None) -> tuple[int, str]:
    site = pytester.mkdir("site")
    _install_toys(site)
    source = harness(name) if faults is None else harness(name, faults)
    pytester.makepyfile(**{f"test_{name}": source})
    monkeypatch.setenv("PYTHONPATH", str(site))
    result = pytester.runpytest_subprocess(
        "-q", "-p", "no:cacheprovider", "--tb=short", "-rfEs", "--live-executor=inline",
        "-o", "live_test_timeout=60", *args)
    return result.ret, result.stdout.str()


def _failed(out: str) -> list[str]:
    return [line for line in out.splitlines() if line.startswith(("FAILED", "ERROR"))]


def test_stream_that_never_ends_fails(pytester: pytest.Pytester,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """(a) the driver ignores the end of a short series and waits: a time-out
    instead of StreamTruncatedError must not pass."""
    ret, out = _run_toy(pytester, monkeypatch, "toyneverends", "-k",
                        "test_short_stream_is_reported and passive or "
                        "test_fault and passive and ends_short")
    assert ret == 1, out
    failed = _failed(out)
    assert any("test_short_stream_is_reported[passive]" in line for line in failed), out
    assert any("test_fault[passive-ends_short]" in line for line in failed), out
    assert "expected StreamTruncatedError, the driver raised AcquisitionTimeoutError" in out
    assert "a time-out means the driver missed the end of the series" in out
    assert "fault ends_short@33 (passive): expected a StreamTruncatedError" in out
    assert re.search(r"fault ends_short +failed", out), out
    assert "verdict: failed" in out


def test_receiver_that_ignores_stop_fails(pytester: pytest.Pytester,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """(b) the receiver thread blocks without looking at the stop flag."""
    ret, out = _run_toy(pytester, monkeypatch, "toystuck", "-k",
                        "test_pending_acquisition_and_sum")
    assert ret == 1, out
    assert "ERROR at teardown of TestPassive.test_pending_acquisition_and_sum" in out
    assert "toystuck: leak after the test" in out
    assert "receiver threads that ignored stop (stuck_receivers())" in out
    assert "libertem-live-toystuck-receiver" in out


def test_swapped_frames_fail_the_checksum(pytester: pytest.Pytester,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """(c) neighbouring frames swapped: the sum is right, the per-frame
    checksum (independent of RecordUDF) names the swap."""
    ret, out = _run_toy(pytester, monkeypatch, "toyswap", "-k",
                        "test_checksum_per_frame or test_pending_acquisition_and_sum")
    assert ret == 1, out
    failed = _failed(out)
    assert len(failed) == 2, out  # both modes; the sum test passes
    assert all("test_checksum_per_frame" in line for line in failed), out
    assert "frames are out of order (swapped or shifted)" in out
    assert "position (0, 0) (frame 0) holds frame 1" in out


def test_hidden_frame_gap_fails(pytester: pytest.Pytester,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    """(d) a dropped frame renumbered away looks like a short stream: the
    frame_gap fault must fail, naming the fault and what was expected."""
    ret, out = _run_toy(pytester, monkeypatch, "toyrenumber", "-k", "frame_gap")
    assert ret == 1, out
    assert "fault frame_gap@33 (passive): expected a FrameGapError whose ledger books the " \
           "missing frame; the driver raised StreamTruncatedError" in out
    assert re.search(r"fault frame_gap +failed +\(2 tests\)", out), out
    assert "verdict: failed (failed: capability passive, capability active, fault frame_gap)" \
        in out


def test_no_fault_kinds_declared_is_partial(pytester: pytest.Pytester,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """(e) a correct driver that declares no fault kinds: nothing fails, the
    fault tests are skipped with the reason, the verdict is "partial"."""
    source = harness("memory", "frozenset()")
    pytester.makepyfile(test_mem=source)
    result = pytester.runpytest_subprocess(
        "-q", "-rs", "-p", "no:cacheprovider", "--live-executor=inline", "-k",
        "test_fault or TestDiscovery")
    out = result.stdout.str()
    assert result.ret == 0, out
    assert "memory: the driver's simulator declares no fault 'frame_gap' (Capabilities.faults)" \
        in out
    assert "memory (ToyHarness): PARTIAL" in out
    assert re.search(r"fault frame_gap +not declared", out), out
    assert re.search(r"fault never_ends +not declared", out), out
    assert "verdict: partial (not verified: " in out
    assert "fault restart_between (not declared)" in out


def test_memory_driver_passes_its_fault_kinds(pytester: pytest.Pytester) -> None:
    """The same harness against the memory driver, with every kind its
    simulator can inject: all verified (so the toys fail for their bug)."""
    pytester.makepyfile(test_mem=harness("memory"))
    result = pytester.runpytest_subprocess(
        "-q", "-p", "no:cacheprovider", "--live-executor=inline", "-k",
        "test_fault and passive or test_short_stream or TestFrameOrder")
    out = result.stdout.str()
    assert result.ret == 0, out
    for kind in ("frame_gap", "duplicate_frame", "out_of_order", "truncated_payload",
                 "ends_short", "never_ends"):
        assert re.search(rf"fault {kind} +verified +\(1 passed\)", out), out
