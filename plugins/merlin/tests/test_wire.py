"""MPX framing (pure: building and checking prefixes)."""
from __future__ import annotations

import pytest

from libertem_live_merlin.errors import MerlinProtocolError
from libertem_live_merlin.wire import build_message, build_prefix, parse_prefix


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


def test_parse_prefix_reports_the_stream_offset():
    with pytest.raises(MerlinProtocolError, match="stream offset 17.*b'GARB'"):
        parse_prefix(b"GARBAGE-GARBAGE", 17)


def test_build_prefix_refuses_impossible_lengths():
    with pytest.raises(ValueError, match="out of range"):
        build_prefix(-1)
    with pytest.raises(ValueError, match="out of range"):
        build_prefix(10 ** 10)
