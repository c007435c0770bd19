import pickle

import numpy as np
import pytest

from libertem_live_asi_tpx3.headers import (
    HEADER_SIZE, AcquisitionEnd, AcquisitionStart, ArrayChunk, DType, FormatType, ScanEnd,
    ScanStart, Tag, dtype_code, itemsize, numpy_dtype, parse_header,
)
from libertem_live_asi_tpx3.errors import Tpx3ProtocolError

ALL = [
    AcquisitionStart(nav_shape=(3, 70000 % 65536), sig_shape=(256, 512),
                     indptr_dtype=DType.U64, indices_dtype=DType.U16,
                     format_type=FormatType.TOT, sequence=0xDEADBEEF, version=7),
    ScanStart(sequence=5, metadata_length=2**40 + 3),
    ArrayChunk(value_dtype=DType.U8, nframes=128, length=2**32 - 1, indices_offset=520,
               values_offset=2**31),
    ScanEnd(sequence=9),
    AcquisitionEnd(sequence=2**32 - 1),
]


@pytest.mark.parametrize("hdr", ALL, ids=lambda h: type(h).__name__)
def test_round_trip(hdr):
    raw = hdr.pack()
    assert len(raw) == HEADER_SIZE
    assert raw[0] == hdr.TAG
    assert type(hdr).unpack(raw) == hdr
    assert parse_header(raw) == hdr


def test_acquisition_start_byte_layout():
    raw = AcquisitionStart(nav_shape=(0x0102, 0x0304), sig_shape=(0x0506, 0x0708),
                           indptr_dtype=DType.U32, indices_dtype=DType.U16,
                           format_type=FormatType.TOT, sequence=0x0A0B0C0D, version=7).pack()
    assert raw[:17] == bytes([0, 7, 1, 0x02, 0x01, 0x04, 0x03, 4, 0x06, 0x05, 0x08, 0x07, 3,
                              0x0D, 0x0C, 0x0B, 0x0A])
    assert raw[17:] == bytes(15)


def test_array_chunk_byte_layout_and_payload_size():
    h = ArrayChunk(value_dtype=DType.U16, nframes=2, length=3, indices_offset=12,
                   values_offset=24)
    raw = h.pack()
    assert raw[:18] == bytes([2, 3, 2, 0, 0, 0, 3, 0, 0, 0, 12, 0, 0, 0, 24, 0, 0, 0])
    assert h.payload_size() == 24 + 3 * 2
    assert h.regions(DType.U32, DType.U32) == (slice(0, 12), slice(12, 24), slice(24, 30))


def test_dtype_codes():
    assert [numpy_dtype(c) for c in (2, 3, 4, 5)] == [np.dtype("<u1"), np.dtype("<u2"),
                                                      np.dtype("<u4"), np.dtype("<u8")]
    assert [itemsize(c) for c in (2, 3, 4, 5)] == [1, 2, 4, 8]
    assert dtype_code(np.uint16) == DType.U16
    assert dtype_code(5) == DType.U64
    for bitpacked in (0, 1):
        with pytest.raises(Tpx3ProtocolError, match="bit-packed"):
            numpy_dtype(bitpacked)
    with pytest.raises(Tpx3ProtocolError, match="unknown dtype code 9"):
        numpy_dtype(9)
    with pytest.raises(ValueError):
        dtype_code(np.float32)


def test_unknown_tag_says_what_and_where():
    raw = bytes([0x07]) + bytes(31)
    with pytest.raises(Tpx3ProtocolError) as ei:
        parse_header(raw, offset=1234, chunk=5)
    e = ei.value
    assert "unknown header tag 0x07" in str(e)
    assert "stream byte offset 1234" in str(e) and "chunk 5" in str(e)
    assert "reconnect" in str(e)
    assert (e.offset, e.chunk) == (1234, 5)
    e2 = pickle.loads(pickle.dumps(e))
    assert str(e2) == str(e) and e2.offset == 1234


@pytest.mark.parametrize("code", [0, 1, 6])
def test_bad_value_dtype_in_chunk(code):
    raw = bytearray(ArrayChunk(DType.U8, 1, 0, 8, 8).pack())
    raw[1] = code
    with pytest.raises(Tpx3ProtocolError, match="value_dtype"):
        parse_header(bytes(raw), offset=64, chunk=0)


@pytest.mark.parametrize("field_pos,name", [(7, "indptr_dtype"), (12, "indices_dtype")])
def test_bad_index_dtype_in_acquisition_start(field_pos, name):
    raw = bytearray(AcquisitionStart(nav_shape=(1, 1)).pack())
    raw[field_pos] = 1  # U4
    with pytest.raises(Tpx3ProtocolError, match=name):
        parse_header(bytes(raw))


def test_unknown_format_type():
    raw = bytearray(AcquisitionStart(nav_shape=(1, 1)).pack())
    raw[2] = 9
    with pytest.raises(Tpx3ProtocolError, match="format_type"):
        parse_header(bytes(raw))


def test_layout_validation():
    ok = ArrayChunk(DType.U8, nframes=3, length=2, indices_offset=16, values_offset=24)
    ok.validate(DType.U32, DType.U32)
    with pytest.raises(Tpx3ProtocolError, match="indices_offset 12 overlaps the indptr"):
        ArrayChunk(DType.U8, 3, 2, 12, 24).validate(DType.U32, DType.U32, chunk=3)
    with pytest.raises(Tpx3ProtocolError, match="values_offset 20 overlaps the indices"):
        ArrayChunk(DType.U8, 3, 2, 16, 20).validate(DType.U32, DType.U32)


def test_wrong_length_and_tag():
    with pytest.raises(ValueError):
        parse_header(b"\x00" * 31)
    with pytest.raises(Tpx3ProtocolError, match="expected ScanEnd"):
        ScanEnd.unpack(AcquisitionEnd().pack())
    assert Tag(parse_header(ScanEnd().pack()).TAG) is Tag.SCAN_END
