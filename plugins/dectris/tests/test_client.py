"""SIMPLON REST client (client.py) against the simulator over real HTTP."""
from __future__ import annotations

import base64
import socket

import numpy as np
import pytest
import requests

from libertem_live_dectris.client import DetectorAPIError, SimplonClient
from libertem_live_dectris.sim import DectrisSim


@pytest.fixture
def sim():
    mask = np.zeros((48, 64), np.uint32)
    mask[3, 5] = 1
    s = DectrisSim(shape=(48, 64), frames=10, pixel_mask=mask, port=0, zmqport=0)
    s.start()
    s.wait_for_listen()
    yield s
    s.stop()


@pytest.fixture
def client(sim):
    with SimplonClient("127.0.0.1", sim.port, timeout=5) as c:
        yield c


def test_version_and_geometry(client):
    assert client.version() == "1.8.0"
    assert client.version("stream") == "1.8.0"
    x = client.detectorConfig("x_pixels_in_detector")
    assert x["value"] == 64 and x["access_mode"] == "r"
    assert client.detectorConfig("y_pixels_in_detector")["value"] == 48
    assert client.detectorConfig("bit_depth_image")["value"] == 16
    keys = client.detectorConfigKeys()
    assert {"nimages", "ntrigger", "trigger_mode", "compression", "pixel_mask"} <= set(keys)


def test_put_config_returns_changed_keys(client):
    assert client.setDetectorConfig("nimages", 5) == ["nimages"]
    assert client.setDetectorConfig("nimages", 5) == []
    assert client.detectorConfig("nimages")["value"] == 5
    assert client.setDetectorConfig("count_time", 0.0005) == ["count_time"]
    tm = client.detectorConfig("trigger_mode")
    assert tm["allowed_values"] == ["exte", "exts", "inte", "ints"]
    assert client.setStreamConfig("header_detail", "all") == ["header_detail"]
    assert client.streamConfig("header_detail")["value"] == "all"
    assert client.setFileWriterConfig("mode", "disabled") == []
    assert client.fileWriterConfig("mode")["value"] == "disabled"


@pytest.mark.parametrize("name,value,match", [
    ("trigger_mode", "bogus", "allowed"),
    ("nimages", -1, "expected uint"),
    ("nimages", 1.5, "expected uint"),
    ("count_time", "fast", "expected float"),
    ("x_pixels_in_detector", 10, "read-only"),
])
def test_bad_values_are_400(client, name, value, match):
    with pytest.raises(DetectorAPIError, match=match) as ei:
        client.setDetectorConfig(name, value)
    assert ei.value.status == 400
    assert f"/detector/api/1.8.0/config/{name}" in str(ei.value)


def test_unknown_paths_are_404(client, sim):
    with pytest.raises(DetectorAPIError) as ei:
        client.detectorConfig("no_such_key")
    assert ei.value.status == 404 and "no_such_key" in ei.value.body
    r = requests.get(f"http://127.0.0.1:{sim.port}/nowhere/api/1.8.0/config/x", timeout=5)
    assert r.status_code == 404 and "error" in r.json()
    r = requests.get(f"http://127.0.0.1:{sim.port}/detector/api/1.7.0/config/nimages", timeout=5)
    assert r.status_code == 404
    with pytest.raises(DetectorAPIError, match="HTTP 404"):
        client.sendDetectorCommand("selfdestruct")


def test_pixel_mask_darray(client):
    v = client.detectorConfig("pixel_mask")["value"]
    assert "base64" in v["filters"] and v["shape"] == [64, 48]
    arr = np.frombuffer(base64.b64decode(v["data"]), dtype=v["type"]).reshape(v["shape"][1], v["shape"][0])
    assert arr[3, 5] == 1 and arr.sum() == 1


def test_arm_disarm_status(client, sim):
    assert client.detectorStatus("state")["value"] == "idle"
    a = client.sendDetectorCommand("arm")
    assert a == {"sequence id": 1}
    with pytest.raises(DetectorAPIError, match="already armed"):
        client.sendDetectorCommand("arm")
    with pytest.raises(DetectorAPIError, match="while armed"):
        client.setDetectorConfig("nimages", 3)
    assert client.sendDetectorCommand("disarm") == {"sequence id": 1}
    # no receiver: the header send waits; disarm ends the series promptly
    assert sim.wait_idle(5)
    assert client.detectorStatus("state")["value"] == "idle"
    assert client.sendDetectorCommand("arm") == {"sequence id": 2}
    client.sendDetectorCommand("abort")
    assert client.streamStatus("dropped")["value"] == 0
    assert client.sendStreamCommand("initialize") == {}


def test_trigger_needs_internal_mode(client):
    with pytest.raises(DetectorAPIError, match="not armed"):
        client.sendDetectorCommand("trigger")
    client.sendDetectorCommand("arm")
    with pytest.raises(DetectorAPIError, match="not inte/ints"):
        client.sendDetectorCommand("trigger", 0.001)
    client.sendDetectorCommand("disarm")


def _free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_connection_refused_message():
    port = _free_port()
    c = SimplonClient("127.0.0.1", port, timeout=2)
    with pytest.raises(DetectorAPIError, match=f"reachable at 127.0.0.1:{port}"):
        c.version()


def test_no_answer_times_out():
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)  # accepts connections in the kernel, never answers
    try:
        c = SimplonClient("127.0.0.1", srv.getsockname()[1], timeout=0.3)
        with pytest.raises(DetectorAPIError, match="no answer within 0.3 s"):
            c.detectorConfig("nimages")
    finally:
        srv.close()
