"""``libertem-live-mib-sim`` (upstream's command name and options) and
``libertem-live sim merlin``, run as the installed console scripts."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest
from conftest import MpxReader, connect, read_acquisition

from libertem_live_merlin.sim import MerlinSim
from libertem_live_merlin.sim.upstream_cli import mib_file, parser, translate
from libertem_live_testing.processes import console_script as _script
from libertem_live_testing.processes import stop as _stop


def _start(args: list[str]) -> tuple[subprocess.Popen, dict]:
    p = subprocess.Popen([_script("libertem-live-mib-sim"), "--data-port", "0",
                          "--control-port", "0", *args],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = p.stdout.readline()
    if not line:
        p.wait(10)
        pytest.fail(f"simulator did not start: {p.stderr.read()}")
    return p, json.loads(line)


@pytest.fixture
def started() -> Iterator:
    procs: list[subprocess.Popen] = []

    def start(args: list[str]) -> dict:
        p, ports = _start(args)
        procs.append(p)
        return ports
    yield start, procs
    for p in procs:
        _stop(p)


def test_sim_merlin_help_shows_defaults_and_prog() -> None:
    out = subprocess.run([_script("libertem-live"), "sim", "merlin", "--help"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("usage: libertem-live sim merlin")
    assert "(default: 6342)" in out.stdout


def test_wait_trigger_serves_the_drivers_active_mode(started) -> None:
    from libertem.udf.sum import SumUDF
    from libertem_live.api import LiveContext

    start, procs = started
    ports = start(["--nav-shape", "4", "4", "--wait-trigger", "--cached", "MEM"])
    ctx = LiveContext(executor="inline")
    try:
        with ctx.make_connection("merlin").open(
                api_port=ports["control_port"], data_port=ports["data_port"]) as conn:
            # --wait-trigger: frames follow CMD SOFTTRIGGER, which this controller sends
            aq = ctx.make_acquisition(conn=conn, nav_shape=(4, 4),
                                      controller=conn.get_active_controller(soft_trigger=True))
            res = ctx.run_udf(dataset=aq, udf=SumUDF())
    finally:
        ctx.close()
    expected = MerlinSim(scan_shape=(4, 4)).expected_sum(16)
    np.testing.assert_array_equal(res["intensity"].data, expected)
    assert aq.ledger.snapshot().received == 16
    stderr = _stop(procs[0])
    assert procs[0].returncode == 0, stderr


def test_without_wait_trigger_streams_to_a_client_unasked(started) -> None:
    start, procs = started
    ports = start(["--nav-shape", "2", "3", "--dwelltime", "100", "--cached", "memfd",
                   "--trigger-port", "6343"])
    d = connect(ports["data_port"])
    try:
        for _ in range(2):  # back to back, no control command
            r = read_acquisition(MpxReader(d, timeout=10))
            assert len(r.frames) == 6 and r.header.frames_in_acquisition == 6
    finally:
        d.close()
    expected = MerlinSim(scan_shape=(2, 3)).expected_sum(6)
    np.testing.assert_array_equal(r.images.sum(axis=0, dtype=np.float64), expected)
    stderr = _stop(procs[0])
    assert "--cached MEMFD" in stderr and "--trigger-port: no trigger socket" in stderr
    assert "armed back to back" in stderr


def test_translation_of_upstream_options(tmp_path: Path, capsys) -> None:
    def ours(*argv: str) -> list[str]:
        return translate(parser().parse_args(list(argv)))

    a = ours("--nav-shape", "8", "4", "--wait-trigger", "--dwelltime", "250", "--host", "0.0.0.0")
    assert a[:2] == ["--host", "0.0.0.0"]
    assert a[a.index("--scan"):][:3] == ["--scan", "8", "4"]
    assert a[a.index("--trigger") + 1] == "5" and float(a[a.index("--frame-rate") + 1]) == 4000
    assert "--trigger" not in ours("--nav-shape", "2", "2")
    assert ours("--continuous")[-2:] == ["--frames", "0"]
    runs = ours("--continuous", "--nav-shape", "2", "2", "--max-runs", "3")
    assert runs[-2:] == ["--frames", "12"]
    capsys.readouterr()
    assert "--trigger" in ours("--garbage")
    assert "--garbage: no junk is sent" in capsys.readouterr().err
    ours("--max-runs", "2")
    assert "only has an effect with --continuous" in capsys.readouterr().err
    with pytest.raises(ValueError, match="exclude each other"):
        ours("--wait-trigger", "--manual-trigger")
    hdr = tmp_path / "default.hdr"
    hdr.write_text("HDR,\n")
    with pytest.raises(ValueError, match="no default\\*.mib next to it"):
        mib_file(str(hdr))
    (tmp_path / "default1.mib").write_bytes(b"")
    assert mib_file(str(hdr)) == str(tmp_path / "default1.mib")
    (tmp_path / "default2.mib").write_bytes(b"")
    with pytest.raises(ValueError, match="has 2 .mib files"):
        mib_file(str(hdr))
