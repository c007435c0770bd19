"""The SDK's TCP reader against a real socket pair on 127.0.0.1: every way a
read can end is told apart, and nothing is consumed by a read that found
nothing."""
from __future__ import annotations

import socket
import threading
import time
from typing import Iterator

import pytest

from libertem_live.driver import (
    FOREVER, DetectorConnectionError, IdleTimeout, PeerClosed, Stalled, Stopped, TcpReader,
    Truncated,
)


@pytest.fixture
def server() -> Iterator[socket.socket]:
    srv = socket.create_server(("127.0.0.1", 0))
    yield srv
    srv.close()


@pytest.fixture
def pair(server: socket.socket) -> Iterator[tuple[TcpReader, socket.socket]]:
    reader = TcpReader("127.0.0.1", server.getsockname()[1], stall_timeout=0.5,
                       reconnect_timeout=2.0)
    reader.connect()
    peer, _ = server.accept()
    yield reader, peer
    reader.close()
    peer.close()


def test_exact_read_across_several_sends(pair) -> None:
    reader, peer = pair

    def send() -> None:
        for part in (b"ab", b"cdef", b"gh"):
            peer.sendall(part)
            time.sleep(0.01)

    t = threading.Thread(target=send)
    t.start()
    assert bytes(reader.read_exactly(8)) == b"abcdefgh"
    t.join()
    assert reader.offset == 8


def test_idle_at_a_boundary_consumes_nothing(pair) -> None:
    reader, peer = pair
    t0 = time.monotonic()
    with pytest.raises(IdleTimeout):
        reader.read_exactly(4, deadline=time.monotonic() + 0.2)
    assert time.monotonic() - t0 < 1.0
    peer.sendall(b"1234")
    assert bytes(reader.read_exactly(4, deadline=FOREVER)) == b"1234"


def test_peer_closed_between_messages(pair) -> None:
    reader, peer = pair
    peer.close()
    with pytest.raises(PeerClosed):
        reader.read_exactly(4, deadline=FOREVER)
    assert reader.broken is not None


def test_truncated_in_the_middle(pair) -> None:
    reader, peer = pair
    peer.sendall(b"12")
    peer.close()
    with pytest.raises(Truncated, match="2 of 4 bytes"):
        reader.read_exactly(4, what="frame 7")


def test_stalled_in_the_middle(pair) -> None:
    reader, peer = pair
    peer.sendall(b"12")
    t0 = time.monotonic()
    with pytest.raises(Stalled, match="frame 3"):
        reader.read_exactly(4, what="frame 3")
    assert 0.4 < time.monotonic() - t0 < 2.0
    assert reader.broken is not None


def test_stop_mid_message_skips_its_rest(pair) -> None:
    reader, peer = pair
    stop = threading.Event()
    peer.sendall(b"12")
    threading.Timer(0.1, stop.set).start()
    with pytest.raises(Stopped):
        reader.read_exactly(4, stop=stop, what="frame 0", after=2)
    assert reader.skip == 4
    peer.sendall(b"3456" + b"next")
    assert bytes(reader.read_exactly(4, deadline=FOREVER)) == b"next"


def test_push_back_and_read_some(pair) -> None:
    reader, peer = pair
    peer.sendall(b"abcdef")
    buf = bytearray(16)
    deadline = time.monotonic() + 2
    got = 0
    while got < 6 and time.monotonic() < deadline:
        got += reader.read_some(memoryview(buf)[got:])
    assert bytes(buf[:got]) == b"abcdef"
    reader.push_back(b"def")
    assert bytes(reader.read_exactly(3)) == b"def"
    assert reader.read_some(buf) == 0


def test_unreachable_names_the_address_and_hint() -> None:
    srv = socket.create_server(("127.0.0.1", 0))
    port = srv.getsockname()[1]
    srv.close()
    reader = TcpReader("127.0.0.1", port, where=f"the toy detector at 127.0.0.1:{port}",
                       hint="Is the toy software running?", reconnect_timeout=0.3)
    with pytest.raises(DetectorConnectionError) as info:
        reader.connect()
    assert f"127.0.0.1:{port}" in str(info.value)
    assert "Is the toy software running?" in str(info.value)
