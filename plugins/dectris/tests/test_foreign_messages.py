"""Messages that are not the next image of the series: stale ones of earlier
series are discarded, images of another series and a header in the middle
of a series fail the acquisition with a FrameOrderError that says why.

The stream here is a hand-made ZeroMQ PUSH socket (so that anything can be
sent in any order); the REST side is a DectrisSim's.  Passive mode, through
the public API.
"""
from __future__ import annotations

import os

os.environ.setdefault("MPLBACKEND", "Agg")

import math  # noqa: E402
from typing import Any, Iterator  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import zmq  # noqa: E402
from libertem.udf.sum import SumUDF  # noqa: E402

from libertem_live.driver import FrameOrderError  # noqa: E402
from libertem_live_dectris import wire  # noqa: E402
from libertem_live_dectris.sim import DectrisSim  # noqa: E402
from libertem_live_dectris.sim.source import SyntheticSource  # noqa: E402

NAV = (4, 4)
N = math.prod(NAV)
SIG = (16, 24)


class Stream:
    """The detector's end of the data connection, driven by the test."""

    def __init__(self) -> None:
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.PUSH)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.SNDTIMEO, 5000)  # no receiver: fail, do not hang
        self.sock.bind("tcp://127.0.0.1:*")
        self.port = int(self.sock.getsockopt(zmq.LAST_ENDPOINT).decode().rsplit(":", 1)[1])
        self.source = SyntheticSource(SIG, "uint16", "bslz4", frames=N, pool_size=4)
        self.config = self.source.initial_config()

    def header(self, series: int) -> None:
        for part in wire.build_header_parts(series, "basic", self.config):
            self.sock.send(part)

    def image(self, series: int, k: int) -> None:
        d, dd, blob = self.source.image_parts(series, k, self.config)
        self.sock.send_multipart([d, dd, blob, wire.build_dconfig(0, 1, 1)])

    def end(self, series: int) -> None:
        self.sock.send(wire.build_dseries_end(series))

    def series(self, series: int) -> None:
        self.header(series)
        for k in range(N):
            self.image(series, k)
        self.end(series)

    def close(self) -> None:
        self.sock.close(0)
        self.ctx.term()


@pytest.fixture
def setup(no_leaks: None, ctx: Any) -> Iterator[tuple[Any, Stream, Any]]:
    stream = Stream()
    with DectrisSim(frames=N, shape=SIG) as rest:
        rest.wait_for_listen()
        with ctx.make_connection("dectris").open(
                api_host="127.0.0.1", api_port=rest.port, data_host="127.0.0.1",
                data_port=stream.port, timeout=3.0) as conn:
            yield ctx, stream, conn
    stream.close()


def _run(ctx: Any, conn: Any) -> np.ndarray:
    pending = conn.wait_for_acquisition(timeout=5.0)
    assert pending is not None
    aq = ctx.make_acquisition(conn=conn, pending_aq=pending, nav_shape=NAV)
    return ctx.run_udf(dataset=aq, udf=SumUDF())["intensity"].data.astype(np.float64)


def _fails(ctx: Any, conn: Any, match: str) -> FrameOrderError:
    with pytest.raises(FrameOrderError, match=match) as info:
        _run(ctx, conn)
    err = info.value
    assert err.ledger is not None
    led = err.ledger.as_dict()
    assert led["received"] + led["missing"] == led["expected"] == N, led
    assert led["received"] <= 3
    return err


def _next_series_exact(ctx: Any, stream: Stream, conn: Any, series: int) -> None:
    stream.series(series)
    assert np.array_equal(_run(ctx, conn), stream.source.expected_sum(N))


def test_stale_messages_before_the_header_are_discarded(setup, receive_loop) -> None:
    ctx, stream, conn = setup
    stream.end(3)
    stream.image(3, 7)
    _next_series_exact(ctx, stream, conn, 4)


def test_images_of_another_series(setup, receive_loop) -> None:
    ctx, stream, conn = setup
    stream.header(5)
    for k in range(3):
        stream.image(5, k)
    stream.image(1005, 3)
    err = _fails(ctx, conn, "another acquisition is sending")
    assert "series 1005 (frame 3) while receiving series 5" in str(err)
    assert f"tcp://127.0.0.1:{stream.port}" in str(err)
    _next_series_exact(ctx, stream, conn, 6)


def test_header_in_the_middle_of_a_series(setup, receive_loop) -> None:
    ctx, stream, conn = setup
    stream.header(7)
    for k in range(2):
        stream.image(7, k)
    stream.header(8)
    _fails(ctx, conn, "had sent only 2 of 16 images: the detector was re-armed")
    _next_series_exact(ctx, stream, conn, 9)
