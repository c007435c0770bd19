"""MPX framing over real TCP sockets."""
from __future__ import annotations

import threading

import pytest

from libertem_live_merlin.errors import (MerlinConnectionClosed, MerlinProtocolError,
                                         MerlinStopped, MerlinTimeout, MerlinTruncatedError)
from libertem_live_merlin.mpx import (MpxReader, build_message, build_prefix, parse_prefix,
                                      recv_exactly)


def test_length_counts_comma_plus_payload():
    assert build_prefix(0) == b"MPX,0000000001,"
    assert build_message(b"GET,IMAGEX") == b"MPX,0000000011,GET,IMAGEX"
    assert parse_prefix(b"MPX,0000000011,") == 10


@pytest.mark.parametrize("prefix, needle", [
    (b"XPX,0000000011,", "bad MPX magic at stream offset 0"),
    (b"MPX,00000000a1,", "not 10 ASCII digits"),
    (b"MPX,0000000011;", "lacks the ','"),
    (b"MPX,0000000000,", "must be >= 1"),
    (b"MPX,00", "need 15"),
])
def test_parse_prefix_errors(prefix, needle):
    with pytest.raises(MerlinProtocolError, match=needle) as ei:
        parse_prefix(prefix)
    assert repr(bytes(prefix))[2:-1] in str(ei.value)  # quotes what it saw


def test_messages_roundtrip_and_offsets(tcp_pair):
    srv, cli = tcp_pair
    payloads = [b"", b"x", b"HDR,\tstuff", bytes(range(256)) * 100]
    srv.sendall(b"".join(build_message(p) for p in payloads))
    r = MpxReader(cli, timeout=5)
    for p in payloads:
        assert r.read_message() == p
    assert r.offset == sum(15 + len(p) for p in payloads)


def test_message_split_into_single_bytes(tcp_pair):
    """A message delivered in 1-byte segments is reassembled exactly."""
    srv, cli = tcp_pair
    msg = build_message(b"SET,COUNTERDEPTH,12")

    def dribble():
        for b in msg:
            srv.sendall(bytes([b]))
    t = threading.Thread(target=dribble)
    t.start()
    assert MpxReader(cli, timeout=5).read_message() == b"SET,COUNTERDEPTH,12"
    t.join()


def test_bad_magic_reports_stream_offset(tcp_pair):
    srv, cli = tcp_pair
    srv.sendall(build_message(b"ok") + b"GARBAGE-GARBAGE-GARBAGE")
    r = MpxReader(cli, timeout=5)
    r.read_message()
    with pytest.raises(MerlinProtocolError) as ei:
        r.read_message()
    assert "stream offset 17" in str(ei.value)
    assert "b'GARB'" in str(ei.value)


def test_eof_mid_prefix_and_mid_payload(tcp_pair):
    srv, cli = tcp_pair
    srv.sendall(b"MPX,00000")
    srv.close()
    with pytest.raises(MerlinTruncatedError, match=r"got 9 of 15 bytes, stream offset 9"):
        MpxReader(cli, timeout=5).read_message()


def test_eof_mid_payload(tcp_pair):
    srv, cli = tcp_pair
    srv.sendall(build_message(b"0123456789")[:-4])
    srv.close()
    with pytest.raises(MerlinTruncatedError, match=r"got 6 of 10 bytes, stream offset 21"):
        MpxReader(cli, timeout=5).read_message()


def test_clean_eof_between_messages(tcp_pair):
    srv, cli = tcp_pair
    srv.sendall(build_message(b"last"))
    srv.close()
    r = MpxReader(cli, timeout=5)
    assert r.read_message() == b"last"
    with pytest.raises(MerlinConnectionClosed, match="stream offset 19"):
        r.read_message()


def test_inactivity_timeout(tcp_pair):
    srv, cli = tcp_pair
    srv.sendall(b"MPX,0000000005,ab")
    with pytest.raises(MerlinTimeout, match=r"2 of 4 bytes"):
        MpxReader(cli, timeout=0.2).read_message()


def test_stop_flag_interrupts_a_blocked_read(tcp_pair):
    srv, cli = tcp_pair
    stop = threading.Event()
    errors = []

    def reader():
        try:
            recv_exactly(cli, 10, stop=stop, what="frame")
        except Exception as e:  # noqa: BLE001 - captured for the assertion
            errors.append(e)
    t = threading.Thread(target=reader)
    t.start()
    stop.set()
    t.join(5)
    assert not t.is_alive()
    assert isinstance(errors[0], MerlinStopped)


def test_oversized_length_rejected(tcp_pair):
    srv, cli = tcp_pair
    srv.sendall(b"MPX,9999999999,")
    with pytest.raises(MerlinProtocolError, match="more than the limit"):
        MpxReader(cli, timeout=5, max_payload=1 << 20).read_message()
