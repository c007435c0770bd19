"""Decoding: all backends against each other, against the bitshuffle wheel and
hdf5plugin (independent C implementations), odd sizes, corrupt input."""
from __future__ import annotations

import pickle
import struct
import sys
import zlib

import lz4.block
import numpy as np
import pytest

from libertem_live_dectris.decode import (
    DectrisDecoder, available_backends, decode_bslz4, decode_lz4, decode_raw,
    parse_encoding,
)
from libertem_live_dectris.errors import PayloadError
from libertem_live_dectris.sim.encode import encode_bslz4, encode_lz4, encode_raw
from libertem_live_dectris.kernels import KIND_BSLZ4, KIND_LZ4, default_block_elements
from libertem_live_dectris.sim.source import make_frames

BSLZ4_BACKENDS = available_backends(KIND_BSLZ4)
LZ4_BACKENDS = available_backends(KIND_LZ4)

try:
    import bitshuffle
except ImportError:  # pragma: no cover - optional oracle
    bitshuffle = None


def _pixels(shape, dtype, seed=0):
    rng = np.random.default_rng(seed)
    info = np.iinfo(dtype)
    # a mix of low counts (like real data) and full-range values (all bits)
    a = rng.poisson(0.5, size=shape).astype(np.int64)
    mask = rng.random(shape) < 0.05
    a[mask] = rng.integers(0, info.max, size=int(mask.sum()), endpoint=True)
    return a.astype(dtype)


def _batch(blobs):
    sizes = np.array([len(b) for b in blobs], np.int64)
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    data = np.frombuffer(b"".join(blobs), np.uint8)
    return data, offsets, sizes


def test_default_block_size():
    assert [default_block_elements(s) for s in (1, 2, 4)] == [8192, 4096, 2048]


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "uint32"])
@pytest.mark.parametrize("shape", [(96, 96), (7, 9), (1, 8), (3, 5), (33, 67), (128, 130)])
@pytest.mark.parametrize("backend", BSLZ4_BACKENDS)
def test_bslz4_roundtrip_odd_sizes(dtype, shape, backend):
    a = _pixels(shape, dtype)
    out = np.zeros(shape, np.float32)
    decode_bslz4(encode_bslz4(a), out, dtype=dtype, backend=backend)
    np.testing.assert_array_equal(out, a.astype(np.float32))


@pytest.mark.parametrize("block_size", [8, 64, 1000 // 8 * 8, 5000])
@pytest.mark.parametrize("backend", BSLZ4_BACKENDS)
def test_bslz4_nondefault_block_sizes(block_size, backend):
    a = _pixels((50, 61), "uint16")
    out = np.zeros(a.shape, np.float32)
    decode_bslz4(encode_bslz4(a, block_size=block_size), out, dtype="uint16", backend=backend)
    np.testing.assert_array_equal(out, a)


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "uint32"])
@pytest.mark.parametrize("backend", BSLZ4_BACKENDS)
def test_header_block_size_zero_falls_back_to_default(dtype, backend):
    a = _pixels((40, 45), dtype)
    blob = encode_bslz4(a, write_block_size=False)
    assert blob[8:12] == b"\0\0\0\0"
    out = np.zeros(a.shape, np.float32)
    decode_bslz4(blob, out, dtype=dtype, backend=backend)
    np.testing.assert_array_equal(out, a.astype(np.float32))


@pytest.mark.skipif(bitshuffle is None, reason="bitshuffle wheel not installed")
@pytest.mark.parametrize("dtype", ["uint8", "uint16", "uint32"])
@pytest.mark.parametrize("n", [7, 8, 9216, 4096 * 3 + 13, 262144])
def test_cross_check_with_bitshuffle_wheel(dtype, n):
    a = _pixels((n,), dtype, seed=n)
    itemsize = np.dtype(dtype).itemsize
    # our encoder -> the wheel's decoder
    ours = encode_bslz4(a)
    (total, bsb) = struct.unpack(">QI", ours[:12])
    assert total == a.nbytes and bsb == default_block_elements(itemsize) * itemsize
    theirs = bitshuffle.decompress_lz4(np.frombuffer(ours, np.uint8)[12:], a.shape, a.dtype, bsb // itemsize)
    np.testing.assert_array_equal(theirs, a)
    # the wheel's encoder (+ a header we add) -> all our backends
    body = bytes(bitshuffle.compress_lz4(a, 0))
    blob = struct.pack(">QI", a.nbytes, default_block_elements(itemsize) * itemsize) + body
    for backend in BSLZ4_BACKENDS:
        out = np.zeros((1, n), np.float32)
        decode_bslz4(blob, out, dtype=dtype, backend=backend)
        np.testing.assert_array_equal(out[0], a.astype(np.float32))


def test_cross_check_with_hdf5plugin():
    """hdf5plugin's bitshuffle filter writes exactly the DCU chunk format."""
    h5py = pytest.importorskip("h5py")
    hdf5plugin = pytest.importorskip("hdf5plugin")
    frames = make_frames(3, (37, 53), np.uint16)
    with h5py.File("mem.h5", "w", driver="core", backing_store=False) as f:
        ds = f.create_dataset("d", data=frames, chunks=(1, 37, 53), **hdf5plugin.Bitshuffle(nelems=0, cname="lz4"))
        chunks = [bytes(ds.id.read_direct_chunk((i, 0, 0))[1]) for i in range(3)]
    data, offsets, sizes = _batch(chunks)
    for backend in BSLZ4_BACKENDS:
        out = np.zeros((3, 37, 53), np.float32)
        DectrisDecoder("bs16-lz4<", "uint16", (37, 53), backend).decode(data, offsets, sizes, sizes, out)
        np.testing.assert_array_equal(out, frames)


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "uint32"])
@pytest.mark.parametrize("backend", LZ4_BACKENDS)
def test_lz4_and_raw_roundtrip(dtype, backend):
    a = _pixels((61, 47), dtype)
    out = np.zeros(a.shape, np.float32)
    decode_lz4(encode_lz4(a), out, dtype=dtype, backend=backend)
    np.testing.assert_array_equal(out, a.astype(np.float32))
    # python-lz4 as an independent encoder
    out2 = np.zeros(a.shape, np.float32)
    decode_lz4(lz4.block.compress(a.tobytes(), store_size=False), out2, dtype=dtype, backend=backend)
    np.testing.assert_array_equal(out2, a.astype(np.float32))
    out3 = np.zeros(a.shape, np.float32)
    decode_raw(encode_raw(a), out3, dtype=dtype)
    np.testing.assert_array_equal(out3, a.astype(np.float32))


@pytest.mark.parametrize("encoding,compress", [("bs16-lz4<", encode_bslz4), ("lz4<", encode_lz4), ("<", encode_raw)])
@pytest.mark.parametrize("out_dtype", [np.float32, np.float64, np.uint16])
def test_batch_decode_into_any_out_dtype(encoding, compress, out_dtype):
    frames = make_frames(40, (96, 96), np.uint16, seed=3)
    blobs = [compress(f) for f in frames]
    # payloads inside a larger slot, with gaps, in shuffled order
    pad = b"\xAA" * 13
    data = np.frombuffer(pad + pad.join(blobs) + pad, np.uint8)
    offsets, pos = [], len(pad)
    for b in blobs:
        offsets.append(pos)
        pos += len(b) + len(pad)
    order = np.random.default_rng(1).permutation(len(blobs))
    offsets = np.array(offsets, np.int64)[order]
    sizes = np.array([len(b) for b in blobs], np.int64)[order]
    dec = DectrisDecoder(encoding, "uint16", (96, 96))
    out = np.zeros((len(blobs), 96, 96), out_dtype)
    dec.decode(data, offsets, sizes, np.zeros(len(blobs), np.int64), out)
    np.testing.assert_array_equal(out, frames[order].astype(out_dtype))


def test_non_contiguous_out():
    frames = make_frames(4, (16, 24), np.uint16)
    data, offsets, sizes = _batch([encode_bslz4(f) for f in frames])
    big = np.zeros((4, 16, 48), np.float32)
    out = big[:, :, ::2]
    DectrisDecoder("bs16-lz4<", "uint16", (16, 24)).decode(data, offsets, sizes, sizes, out)
    np.testing.assert_array_equal(out, frames)


def test_decoder_pickles_and_rejects_bad_shapes():
    dec = DectrisDecoder("bs16-lz4<", "uint16", (96, 96))
    dec2 = pickle.loads(pickle.dumps(dec))
    assert (dec2.encoding, dec2.dtype, dec2.shape) == ("bs16-lz4<", "uint16", (96, 96))
    data, offsets, sizes = _batch([encode_bslz4(np.ones((96, 96), np.uint16))])
    out = np.zeros((1, 96, 96), np.float32)
    dec2.decode(data, offsets, sizes, sizes, out)
    assert out.sum() == 96 * 96
    with pytest.raises(ValueError, match="shape"):
        dec2.decode(data, offsets, sizes, sizes, np.zeros((1, 96, 95), np.float32))


@pytest.mark.parametrize("encoding,dtype,match", [
    ("bs16-lz4<", "uint32", "16-bit"),
    ("bs32-lz4<", "uint16", "32-bit"),
    ("bs16-lz4>", "uint16", "little-endian"),
    ("zstd<", "uint16", "unsupported encoding"),
    ("bs16-<", "uint16", "unsupported encoding"),
    ("lz4<", "float32", "pixel type"),
])
def test_bad_encodings(encoding, dtype, match):
    with pytest.raises(PayloadError, match=match):
        parse_encoding(encoding, dtype)


def _decode_err(blob: bytes, backend: str, encoding="bs16-lz4<", shape=(96, 96), index=2) -> str:
    good = encode_bslz4(np.ones(shape, np.uint16)) if encoding.startswith("bs") else encode_lz4(np.ones(shape, np.uint16))
    blobs = [good] * index + [blob]
    data, offsets, sizes = _batch(blobs)
    out = np.zeros((len(blobs), *shape), np.float32)
    with pytest.raises(PayloadError) as ei:
        DectrisDecoder(encoding, "uint16", shape, backend).decode(data, offsets, sizes, sizes, out)
    msg = str(ei.value)
    assert f"frame {index} of the batch" in msg
    # frames before the broken one were decoded
    assert (out[:index] == 1).all()
    return msg


@pytest.mark.parametrize("backend", BSLZ4_BACKENDS)
def test_corrupt_bslz4_errors(backend):
    a = make_frames(1, (96, 96), np.uint16)[0]
    blob = encode_bslz4(a)
    assert "truncated bslz4 header" in _decode_err(blob[:7], backend)
    wrong_total = struct.pack(">QI", 1234, 8192) + blob[12:]
    assert "expected 18432" in _decode_err(wrong_total, backend)
    assert "got 1234" in _decode_err(wrong_total, backend)
    bad_bs = blob[:8] + struct.pack(">I", 8191) + blob[12:]
    assert "block size" in _decode_err(bad_bs, backend)
    # truncated in the middle of the blocks
    msg = _decode_err(blob[: len(blob) // 2], backend)
    assert "block" in msg and ("exceeds" in msg or "truncated" in msg)
    # a length field pointing far beyond the blob
    huge = blob[:12] + struct.pack(">I", 0x7FFFFFF0) + blob[16:]
    assert "corrupt LZ4 block 0" in _decode_err(huge, backend)
    # trailing junk
    assert "size mismatch after the last block" in _decode_err(blob + b"xx", backend)
    # garbage inside a block's LZ4 stream: sizes stay consistent
    L = struct.unpack(">I", blob[12:16])[0]
    garbage = bytearray(blob)
    garbage[16:16 + L] = b"\xff" * L
    assert "LZ4 block" in _decode_err(bytes(garbage), backend)


@pytest.mark.parametrize("backend", LZ4_BACKENDS)
def test_corrupt_lz4_errors(backend):
    a = make_frames(1, (96, 96), np.uint16)[0]
    blob = encode_lz4(a)
    assert "LZ4 block" in _decode_err(blob[: len(blob) // 2], backend, "lz4<")
    short = encode_lz4(a[:48])
    assert "size mismatch" in _decode_err(short, backend, "lz4<")
    assert "corrupt LZ4" in _decode_err(b"\xff" * 64, backend, "lz4<")


def test_raw_size_mismatch():
    data, offsets, sizes = _batch([b"\0" * 100])
    with pytest.raises(PayloadError, match="expected 18432 bytes of raw pixels, got 100"):
        DectrisDecoder("<", "uint16", (96, 96)).decode(data, offsets, sizes, sizes, np.zeros((1, 96, 96), np.float32))


@pytest.mark.parametrize("backend", BSLZ4_BACKENDS)
def test_offsets_outside_buffer(backend):
    data = np.zeros(100, np.uint8)
    dec = DectrisDecoder("bs16-lz4<", "uint16", (8, 8), backend)
    for off, size in ((90, 20), (-1, 5), (0, -3)):
        with pytest.raises(PayloadError, match="outside the data buffer"):
            dec.decode(data, np.array([off]), np.array([size]), np.array([0]), np.zeros((1, 8, 8), np.float32))


@pytest.mark.parametrize("backend", sorted(set(BSLZ4_BACKENDS) | set(LZ4_BACKENDS)))
def test_fuzz_never_crashes(backend):
    """Random byte flips and truncations: a PayloadError or a clean decode, never a crash."""
    rng = np.random.default_rng(42)
    a = make_frames(1, (32, 40), np.uint16)[0]
    base = {"bs16-lz4<": encode_bslz4(a), "lz4<": encode_lz4(a)}
    for encoding, blob in base.items():
        if backend not in available_backends(KIND_BSLZ4 if encoding.startswith("bs") else KIND_LZ4):
            continue
        dec = DectrisDecoder(encoding, "uint16", (32, 40), backend)
        out = np.zeros((1, 32, 40), np.float32)
        for _ in range(300):
            b = bytearray(blob)
            for _ in range(rng.integers(1, 6)):
                b[rng.integers(0, len(b))] = rng.integers(0, 256)
            if rng.random() < 0.3:
                b = b[: rng.integers(0, len(b))]
            arr = np.frombuffer(bytes(b), np.uint8)
            try:
                dec.decode(arr, np.array([0]), np.array([arr.size]), np.array([0]), out)
            except PayloadError:
                pass


def test_bits_shuffle_layout_matches_protocol_recipe():
    """Our shuffled block equals the plain numpy recipe of bit shuffling: per block of
    8 * n elements, bit plane b of element i lands in byte row b, bit i."""
    from libertem_live_dectris.kernels import bitshuffle_frame

    a = _pixels((64,), "uint16")
    raw = a.view(np.uint8)
    ours = np.empty_like(raw)
    bitshuffle_frame(raw, 64, 2, 64, ours)
    bits = np.unpackbits(ours, bitorder="little").reshape(16, 64)
    back = np.packbits(bits.T, axis=-1, bitorder="little").reshape(-1).view("<u2")
    np.testing.assert_array_equal(back, a)


@pytest.mark.skipif("bitshuffle" not in BSLZ4_BACKENDS, reason="bitshuffle backend not available")
@pytest.mark.parametrize("dtype", ["uint8", "uint16", "uint32"])
@pytest.mark.parametrize("kind", ["all_planes", "low_planes", "mixed", "zero"])
@pytest.mark.parametrize("shape,block_size", [((512, 512), None), ((96, 96), None), ((33, 67), None),
                                              ((50, 61), 64), ((50, 61), 1000 // 8 * 8), ((7, 9), None)])
def test_plane_aware_unshuffle_matches_numba_reference(dtype, kind, shape, block_size):
    """decode_batch_bshuf's plane-skipping un-shuffle (kernels.bitunshuffle_block_planes)
    against the pure-numba kernels.decode_batch: every bit plane used, only low planes,
    low-dose frames with rare full-range pixels (high planes in a few words), all zero."""
    from libertem_live_dectris import ckernels, kernels

    rng = np.random.default_rng(zlib.crc32(repr((dtype, kind, shape)).encode()))
    info = np.iinfo(dtype)
    if kind == "all_planes":
        frames = rng.integers(0, info.max, size=(3, *shape), endpoint=True, dtype=dtype)
        frames[0].reshape(-1)[::7] = info.max
    elif kind == "low_planes":
        frames = make_frames(3, shape, dtype, seed=5)
    elif kind == "mixed":
        frames = make_frames(3, shape, dtype, seed=6).astype(np.int64)
        hot = rng.random(frames.shape) < 0.003
        frames[hot] = rng.integers(0, info.max, size=int(hot.sum()), endpoint=True)
        frames = frames.astype(dtype)
    else:
        frames = np.zeros((3, *shape), dtype)
    kw = {} if block_size is None else {"block_size": block_size}
    data, offsets, sizes = _batch([encode_bslz4(f, **kw) for f in frames])
    itemsize = np.dtype(dtype).itemsize
    n_el = shape[0] * shape[1]
    for out_dtype in (np.float32, np.float64, np.uint16):
        ref = np.zeros((3, n_el), out_dtype)
        got = np.full((3, n_el), 77, out_dtype)
        err = np.zeros(5, np.int64)
        assert kernels.decode_batch(KIND_BSLZ4, data, offsets, sizes, ref, itemsize, err) == 0
        assert ckernels.decode_batch_bshuf(data, offsets, sizes, got, itemsize, err) == 0
        np.testing.assert_array_equal(got, ref)
        np.testing.assert_array_equal(ref, frames.reshape(3, -1).astype(out_dtype))


@pytest.mark.skipif(sys.byteorder != "little", reason="plane-aware un-shuffle is little-endian only")
@pytest.mark.parametrize("itemsize", [1, 2, 4])
@pytest.mark.parametrize("m", [64, 1024, 4096])
def test_plane_aware_block_all_paths(itemsize, m):
    """kernels.bitunshuffle_block_planes on its own, incl. the numba transpose path for
    blocks using planes >= 8 (decline_high=False) that decode_batch_bshuf hands to C."""
    from libertem_live_dectris.kernels import bitshuffle_block, bitunshuffle_block, bitunshuffle_block_planes

    rng = np.random.default_rng(m * 10 + itemsize)
    dt = {1: np.uint8, 2: np.uint16, 4: np.uint32}[itemsize]
    info = np.iinfo(dt)
    for top in range(0, 8 * itemsize + 1):
        hi = (1 << top) - 1 if top < 64 else info.max
        vals = rng.integers(0, hi, size=m, endpoint=True).astype(dt) if top else np.zeros(m, dt)
        vals[rng.random(m) < 0.5] = 0  # zero 64-element words too
        shuffled = np.zeros(m * itemsize + 8, np.uint8)
        bitshuffle_block(vals.view(np.uint8), m, itemsize, shuffled, 0)
        s64 = shuffled.view(np.uint64)
        ref = np.zeros(m + 16, np.float64)
        bitunshuffle_block(shuffled, m, itemsize, ref, 8)
        np.testing.assert_array_equal(ref[8:8 + m], vals)
        tmp = np.zeros(32, np.uint64)
        for decline in (False, True):
            got = np.full(m + 16, -1.0)
            done = bitunshuffle_block_planes(s64, m, itemsize, got, 8, tmp, decline)
            used_top = int(np.max(vals)).bit_length()
            if decline and used_top > 8:
                assert not done
                assert (got == -1).all()
            else:
                assert done
                np.testing.assert_array_equal(got, np.r_[np.full(8, -1.0), ref[8:8 + m], np.full(8, -1.0)])
