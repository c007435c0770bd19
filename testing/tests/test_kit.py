"""The kit's own tests: a deliberately broken toy driver must fail the suite,
and the failures must say what is wrong."""
from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

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
    assert "DID NOT RAISE" in out
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
