"""Encoders and the numba decoder: round trips and spec-derived checks."""
from __future__ import annotations

import pickle

import numpy as np
import pytest

from libertem_live_merlin.decode import MerlinDecoder
from libertem_live_merlin.sim.encode import encode_chip_rows, encode_frame, encode_raw
from libertem_live_merlin.errors import DecodeError
from libertem_live_merlin.headers import (build_frame_header, decoded_shape,
                                          parse_frame_header)


def random_frame(layout: str, depth: int, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    f = rng.integers(0, 1 << depth, size=decoded_shape(layout), dtype=np.uint32)
    if layout.endswith("G"):
        f[256:258, :] = 0
        f[:, 256:258] = 0
    return f


def decoder_for(layout: str, depth: int, raw: bool, fmt: str) -> MerlinDecoder:
    """Build the decoder the way a receiver would: from a parsed MQ1 header."""
    hdr = build_frame_header(1, layout=layout, pixel_format=fmt, counter_depth=depth)
    return MerlinDecoder.from_frame_header(parse_frame_header(hdr))


@pytest.mark.parametrize("layout", ["1x1", "2x2", "2x2G"])
@pytest.mark.parametrize("depth", [1, 6, 12, 24])
@pytest.mark.parametrize("raw", [False, True], ids=["sorted", "raw"])
def test_roundtrip_exact(layout, depth, raw):
    frames = np.stack([random_frame(layout, depth, s) for s in (1, 2, 3)])
    payloads = []
    for f in frames:
        p, fmt = encode_frame(f, depth, layout, raw)
        payloads.append(p)
    dec = decoder_for(layout, depth, raw, fmt)
    assert dec.payload_size == len(payloads[0])
    # frames at odd, non-contiguous offsets in one buffer, out of order
    gap = 3
    data = np.zeros(gap + sum(len(p) + gap for p in payloads), dtype=np.uint8)
    offsets = []
    pos = gap
    for p in payloads:
        data[pos:pos + len(p)] = np.frombuffer(p, np.uint8)
        offsets.append(pos)
        pos += len(p) + gap
    order = [2, 0, 1]
    out = np.full((3,) + frames.shape[1:], 99.0, dtype=np.float32)  # dirty on purpose
    dec.decode(data, np.array([offsets[i] for i in order]),
               np.array([len(payloads[i]) for i in order]), None, out)
    for k, i in enumerate(order):
        np.testing.assert_array_equal(out[k], frames[i])


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.uint8, np.uint16,
                                   np.uint32, np.int64])
def test_output_dtypes(dtype):
    # sorted kernel: the dtype plumbing is the same for all kernels, and each
    # raw kernel x dtype costs seconds of numba compile time on a cold cache
    f = random_frame("1x1", 6)
    p, fmt = encode_frame(f, 6, "1x1", raw=False)
    out = decoder_for("1x1", 6, False, fmt).decode_one(p, dtype=dtype)
    assert out.dtype == dtype
    np.testing.assert_array_equal(out, f)


# -- spec rules checked with hand-made bytes (independent of our encoder) ------

def test_raw1_pixel_j_is_bit_j_of_big_endian_chunk():
    payload = np.zeros(8192, np.uint8)
    payload[7] = 0b0000_0101  # BE uint64 = 5 -> pixels 0 and 2 of chunk 0
    payload[8] = 0x80  # chunk 1, most significant byte, top bit -> pixel 63 of chunk 1
    out = MerlinDecoder("R64", 1, "1x1", (256, 256)).decode_one(payload)
    assert set(zip(*np.nonzero(out))) == {(0, 0), (0, 2), (0, 127)}


def test_raw6_pixel_j_is_byte_7_minus_j():
    payload = np.zeros(65536, np.uint8)
    payload[:8] = np.arange(10, 18)
    out = MerlinDecoder("R64", 6, "1x1", (256, 256)).decode_one(payload)
    assert list(out[0, :8]) == [17, 16, 15, 14, 13, 12, 11, 10]


def test_raw12_pixel_j_is_big_endian_word_3_minus_j():
    payload = np.zeros(131072, np.uint8)
    payload[:8] = np.array([0x0A, 0xBC, 0x01, 0x23, 0x04, 0x56, 0x07, 0x89], np.uint8)
    payload[512 + 6:512 + 8] = [0x0F, 0xFF]  # row 1, chunk 0, word 3 -> pixel 0
    out = MerlinDecoder("R64", 12, "1x1", (256, 256)).decode_one(payload)
    assert list(out[0, :4]) == [0x789, 0x456, 0x123, 0xABC]
    assert out[1, 0] == 0xFFF


def test_raw24_is_high_then_low_12bit_image():
    payload = np.zeros(2 * 131072, np.uint8)
    payload[6:8] = [0x0A, 0xBC]  # high image pixel (0, 0)
    payload[131072 + 6:131072 + 8] = [0x0D, 0xEF]  # low image pixel (0, 0)
    out = MerlinDecoder("R64", 24, "1x1", (256, 256)).decode_one(payload)  # f32 exact
    assert out[0, 0] == (0xABC << 12) + 0xDEF


def test_sorted_is_big_endian():
    payload = np.zeros(2 * 65536, np.uint8)
    payload[:2] = [0x12, 0x34]
    assert MerlinDecoder("U16", 12, "1x1", (256, 256)).decode_one(payload)[0, 0] == 0x1234
    payload = np.zeros(4 * 65536, np.uint8)
    payload[4:8] = [0x00, 0xAB, 0xCD, 0xEF]
    assert MerlinDecoder("U32", 24, "1x1", (256, 256)).decode_one(payload)[0, 1] == 0xABCDEF


@pytest.mark.parametrize("layout, g", [("2x2", 0), ("2x2G", 2)])
def test_quad_placement_table(layout, g):
    """Row group k holds chip rows Q4, Q3, Q2, Q1; bottom chips rotated 180°."""
    H = 512 + g
    rows = np.zeros((256, 4, 256), np.uint32)  # (row group, chip slot, pixel)
    k, j = 5, 7
    rows[k, 0, j] = 4  # Q4
    rows[k, 1, j] = 3  # Q3
    rows[k, 2, j] = 2  # Q2
    rows[k, 3, j] = 1  # Q1
    payload = encode_chip_rows(rows.reshape(1024, 256), 12).tobytes()  # per-row rule only
    out = MerlinDecoder("R64", 12, layout, (H, H)).decode_one(payload)
    expected = {(k, j): 1, (k, 256 + g + j): 2, (H - 1 - k, 255 - j): 3,
                (H - 1 - k, 256 + g + 255 - j): 4}
    got = {tuple(map(int, p)): int(out[tuple(p)]) for p in np.argwhere(out)}
    assert got == expected


def test_gap_pixels_are_zeroed_in_reused_output():
    f = random_frame("2x2G", 12)
    p = encode_raw(f, 12, "2x2G")
    out = np.full((1, 514, 514), 7.0, np.float32)
    MerlinDecoder("R64", 12, "2x2G", (514, 514)).decode(
        np.frombuffer(p, np.uint8), np.array([0]), np.array([len(p)]), None, out)
    assert not out[0, 256:258].any() and not out[0, :, 256:258].any()
    np.testing.assert_array_equal(out[0], f)


def test_one_bit_matches_upstream_benchmark_generator_layout():
    """gen_mib.py's R64 1-bit rule: packbits little-endian per 64, then reverse bytes."""
    f = random_frame("1x1", 1)
    groups = f.reshape(-1, 64).astype(np.uint8)
    upstream = np.packbits(groups, axis=1, bitorder="little")[:, ::-1].tobytes()
    assert encode_raw(f, 1, "1x1") == upstream


# -- decoder API ----------------------------------------------------------------

def test_spans_including_header():
    f = random_frame("1x1", 12)
    p, fmt = encode_frame(f, 12, "1x1")
    hdr = build_frame_header(1, pixel_format=fmt)
    dec = MerlinDecoder.from_frame_header(parse_frame_header(hdr), spans_include_header=True)
    data = np.frombuffer(hdr + p, np.uint8)
    out = np.empty((1, 256, 256), np.float32)
    dec.decode(data, np.array([0]), np.array([len(data)]), None, out)
    np.testing.assert_array_equal(out[0], f)


def test_wrong_size_names_the_frame():
    dec = MerlinDecoder("U16", 12, "1x1", (256, 256))
    data = np.zeros(4 * 131072, np.uint8)
    out = np.empty((3, 256, 256), np.float32)
    with pytest.raises(DecodeError, match=r"frame 1 of the batch \(3 frames\) has 131071 "
                                          r"bytes, expected 131072"):
        dec.decode(data, np.array([0, 131072, 262144]), np.array([131072, 131071, 131072]),
                   None, out)


def test_other_decode_errors():
    dec = MerlinDecoder("R64", 1, "1x1", (256, 256))
    data = np.zeros(8192 * 2, np.uint8)
    with pytest.raises(DecodeError, match="out has shape"):
        dec.decode(data, np.array([0]), np.array([8192]), None, np.empty((1, 256, 255)))
    with pytest.raises(DecodeError, match="outside the data buffer"):
        dec.decode(data, np.array([8193]), np.array([8192]), None, np.empty((1, 256, 256)))
    with pytest.raises(DecodeError, match="needs counter depth"):
        MerlinDecoder("R64", None, "1x1", (256, 256))
    with pytest.raises(DecodeError, match="layouts 1x1, 2x2 and 2x2G"):
        MerlinDecoder("R64", 12, "Nx1", (256, 1024))


def test_decoder_pickles_and_sorted_nx1_works():
    dec = MerlinDecoder("U08", 6, "Nx1", (256, 1024))
    dec2 = pickle.loads(pickle.dumps(dec))
    assert dec2 == dec
    f = np.arange(256 * 1024, dtype=np.uint32).reshape(256, 1024) % 64
    np.testing.assert_array_equal(dec2.decode_one(f.astype(np.uint8).tobytes()), f)


def test_encoder_refuses_values_beyond_counter_depth():
    f = np.zeros((256, 256), np.uint32)
    f[0, 0] = 64
    with pytest.raises(ValueError, match="do not fit in 6 bit"):
        encode_frame(f, 6, "1x1", raw=True)
