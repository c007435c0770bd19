"""HDR and MQ1 headers: build/parse round trips and error messages."""
from __future__ import annotations

import pytest

from libertem_live_merlin.errors import MerlinProtocolError
from libertem_live_merlin.headers import (build_acquisition_header, build_frame_header,
                                          parse_acquisition_header, parse_frame_header,
                                          peek_data_offset)


def test_hdr_roundtrip_with_scan():
    b = build_acquisition_header(4096, 64, scan_x=64, scan_y=64, counter_depth=6,
                                 assembly_size="2x2G")
    assert b.startswith(b"HDR,") and len(b) % 2048 == 0 and b.rstrip().endswith(b"End")
    h = parse_acquisition_header(b)
    assert (h.frames_in_acquisition, h.frames_per_trigger) == (4096, 64)
    assert h.nav_shape == (64, 64)
    assert h.counter_depth == 6 and h.assembly_size == "2x2G"
    assert h.raw["Chip Type (Medipix 3.0, Medipix 3.1, Medipix 3RX)"] == "Medipix 3RX"


def test_hdr_without_scan_and_with_lf_lines():
    text = ("HDR,\t\nFrames in Acquisition (Number):\t0\n"
            "Frames per Trigger (Number):\t 256 \nTime:\t12:00:01\nEnd\t      ")
    h = parse_acquisition_header(text.encode())
    assert h.frames_in_acquisition == 0 and h.frames_per_trigger == 256
    assert h.nav_shape is None and h.counter_depth is None
    assert h.raw["Time"] == "12:00:01"  # split at the first ':' only


def test_hdr_stops_at_end_line():
    text = ("HDR,\r\nFrames in Acquisition (Number):\t1\r\n"
            "Frames per Trigger (Number):\t1\r\nEnd\r\nthis is junk without colon")
    assert parse_acquisition_header(text.encode()).frames_in_acquisition == 1


@pytest.mark.parametrize("text, needle", [
    ("XDR,\nEnd", "does not start with 'HDR'"),
    ("HDR,\nFrames per Trigger (Number):\t1\nEnd", "Frames in Acquisition"),
    ("HDR,\nFrames in Acquisition (Number):\tmany\nFrames per Trigger (Number):\t1\nEnd",
     "'many'"),
    ("HDR,\nFrames in Acquisition (Number):\t1\nFrames per Trigger (Number):\t1\n",
     "no 'End'"),
    ("HDR,\nno separator here\nEnd", "'no separator here'"),
])
def test_hdr_errors_quote_offending_text(text, needle):
    with pytest.raises(MerlinProtocolError, match=needle.replace("(", r"\(")):
        parse_acquisition_header(text.encode())


@pytest.mark.parametrize("layout, fmt, depth, chips, w, h, sig", [
    ("1x1", "U16", 12, 1, 256, 256, (256, 256)),
    ("1x1", "R64", 1, 1, 256, 256, (256, 256)),
    ("1x1", "R64", 24, 1, 512, 256, (256, 256)),
    ("2x2", "U08", 6, 4, 512, 512, (512, 512)),
    ("2x2G", "U32", 24, 4, 514, 514, (514, 514)),
    ("2x2", "R64", 12, 4, 1024, 256, (512, 512)),
    ("2x2G", "R64", 6, 4, 1024, 256, (514, 514)),
])
def test_mq1_roundtrip(layout, fmt, depth, chips, w, h, sig):
    b = build_frame_header(123456, layout=layout, pixel_format=fmt, counter_depth=depth)
    assert len(b) == 256 + 128 * chips
    assert b[11:16] == b"%05d" % len(b)
    fh = parse_frame_header(b + b"\xff" * 10)  # payload bytes after the header are ignored
    assert fh.sequence == 123456 and fh.data_offset == len(b)
    assert (fh.num_chips, fh.width, fh.height) == (chips, w, h)
    assert fh.pixel_format == fmt and fh.layout == layout and fh.counter_depth == depth
    assert fh.chip_select == (1 << chips) - 1
    assert fh.mq1a_shutter_ns == 1_000_000 and fh.shutter_time_s == 0.001
    assert fh.sig_shape == sig


def test_payload_sizes_match_spec_table():
    def size(layout, fmt, depth):
        return parse_frame_header(build_frame_header(
            1, layout=layout, pixel_format=fmt, counter_depth=depth)).payload_size
    assert size("1x1", "R64", 1) == 8192 and size("2x2", "R64", 1) == 32768
    assert size("1x1", "R64", 6) == 65536 and size("2x2", "R64", 6) == 262144
    assert size("1x1", "R64", 12) == 131072 and size("2x2G", "R64", 12) == 524288
    assert size("1x1", "U08", 6) == 65536 and size("2x2G", "U08", 6) == 264196
    assert size("2x2", "U16", 12) == 524288 and size("2x2G", "U16", 12) == 528392
    assert size("2x2", "U32", 24) == 1048576 and size("2x2G", "U32", 24) == 1056784


def test_mq1_parses_nul_padding_and_header_without_mq1a():
    b = build_frame_header(7, pad=b"\x00")
    assert b.endswith(b"\x00")
    assert parse_frame_header(b).counter_depth == 12
    bare = b"MQ1,000001,00384,01,0256,0256,U08,   1x1,01,2020-01-01 00:00:00.000000," \
           b"0.000500,0,0,0"
    fh = parse_frame_header(bare.ljust(384, b" "))
    assert fh.counter_depth is None and fh.pixel_format == "U08"
    with pytest.raises(MerlinProtocolError, match="no MQ1A counter depth"):
        parse_frame_header(bare.replace(b"U08", b"R64").ljust(384, b" ")).payload_size


@pytest.mark.parametrize("mutate, needle", [
    (lambda b: b"MQ2" + b[3:], "does not start with 'MQ1,'"),
    (lambda b: b[:4] + b"00x001" + b[10:], "sequence number.*'00x001'"),
    (lambda b: b[:11] + b"0038a" + b[16:], "data offset"),
    (lambda b: b.replace(b"U16", b"U12"), "pixel format 'U12'"),
    (lambda b: b.replace(b"   1x1", b"   3x3"), "sensor layout '   3x3'"),
    (lambda b: b.replace(b"ns,12,", b"ns,13,"), "counter depth '13'"),
])
def test_mq1_errors_quote_offending_text(mutate, needle):
    with pytest.raises(MerlinProtocolError, match=needle):
        parse_frame_header(mutate(build_frame_header(1)))


def test_peek_data_offset():
    assert peek_data_offset(build_frame_header(1, layout="2x2")) == 768
    with pytest.raises(MerlinProtocolError):
        peek_data_offset(b"MPX,0000000001,")
