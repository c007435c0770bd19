"""Shared helpers: real TCP socket pairs and a passive-style acquisition reader."""
from __future__ import annotations

import socket
from dataclasses import dataclass
from typing import Iterator, Optional

import numpy as np
import pytest

from libertem_live_merlin.decode import MerlinDecoder
from libertem_live_merlin.headers import (AcquisitionHeader, FrameHeader,
                                          parse_acquisition_header, parse_frame_header)
from libertem_live_merlin.wire import PREFIX_LEN, parse_prefix


class MpxReader:
    """The tests' own blocking reader of MPX messages from a raw socket (what
    a client of the simulator sees); ``timeout``: seconds for each message.
    A clean EOF between messages raises EOFError, one inside a message
    ConnectionAbortedError, no data TimeoutError."""

    def __init__(self, sock: socket.socket, timeout: float = 5.0):
        self.sock = sock
        self.offset = 0
        sock.settimeout(timeout)

    def recv_exactly(self, n: int) -> bytearray:
        buf = bytearray(n)
        view = memoryview(buf)
        got = 0
        while got < n:
            k = self.sock.recv_into(view[got:])
            if k == 0:
                if got == 0:
                    raise EOFError(f"connection closed at stream offset {self.offset}")
                raise ConnectionAbortedError(
                    f"connection closed after {got} of {n} bytes at offset {self.offset}")
            got += k
            self.offset += k
        return buf

    def read_prefix(self) -> int:
        start = self.offset
        return parse_prefix(self.recv_exactly(PREFIX_LEN), start)

    def read_message(self) -> bytearray:
        return self.recv_exactly(self.read_prefix())


@pytest.fixture
def tcp_pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    """(server side, client side) of one real TCP connection on 127.0.0.1."""
    ls = socket.create_server(("127.0.0.1", 0))
    cli = socket.create_connection(ls.getsockname(), timeout=5)
    srv, _ = ls.accept()
    ls.close()
    try:
        yield srv, cli
    finally:
        srv.close()
        cli.close()


@dataclass
class ReadResult:
    header: AcquisitionHeader
    frames: list[FrameHeader]
    images: np.ndarray  # (n, H, W) float32 (exact up to 24 bit)


def read_acquisition(reader: MpxReader, max_frames: Optional[int] = None) -> ReadResult:
    """A passive read as a Merlin client does it: the acquisition header, then N frames, decoded.

    Checks the MPX length against the first frame and the sequence numbers.
    """
    hdr = parse_acquisition_header(reader.read_message())
    n = hdr.frames_in_acquisition if max_frames is None else max_frames
    frames: list[FrameHeader] = []
    images = None
    dec = None
    first_len = None
    for i in range(n):
        length = reader.read_prefix()
        if first_len is None:
            first_len = length
        assert length == first_len, f"frame {i + 1}: MPX length changed"
        msg = reader.recv_exactly(length)
        fh = parse_frame_header(msg)
        assert fh.sequence == i + 1
        if dec is None:
            dec = MerlinDecoder.from_frame_header(fh)
            images = np.zeros((n,) + dec.sig_shape, dtype=np.float32)
        arr = np.frombuffer(msg, dtype=np.uint8)
        dec.decode(arr, np.array([fh.data_offset]), np.array([length - fh.data_offset]),
                   None, images[i:i + 1])
        frames.append(fh)
    return ReadResult(hdr, frames, images if images is not None else np.zeros((0, 0, 0)))


def connect(port: int, timeout: float = 5.0) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=timeout)


@pytest.fixture(autouse=True)
def no_leftover_sim_threads():
    """Every test must leave no simulator thread behind (stop() joins them all);
    simulators of module-scoped fixtures, started before the test, may run on."""
    import threading
    before = set(threading.enumerate())
    yield
    new = [t for t in threading.enumerate()
           if t.name.startswith("merlin-sim") and t not in before]
    for t in new:  # a control-client thread ends once it sees our socket close
        t.join(2.0)
    left = [t.name for t in new if t.is_alive()]
    assert not left, f"simulator threads still running: {left}"
