import pickle

import numpy as np
import pytest
import scipy.sparse

from libertem_live_asi_tpx3.decode import DecodeError, Tpx3Decoder, chunk_arrays
from libertem_live_asi_tpx3.sim.encode import encode_chunk
from libertem_live_asi_tpx3.headers import HEADER_SIZE, DType, FormatType
from libertem_live_asi_tpx3.sim.source import SynthAcquisition, SynthConfig

from _helpers import batch_from_records, batch_from_synth

ALL_VALUES = (DType.U8, DType.U16, DType.U32, DType.U64)


def _check_all(acq: SynthAcquisition, batch, dec: Tpx3Decoder):
    n = batch.offsets.size
    h, w = acq.config.sig_shape
    out = np.full((n, h, w), 99, np.float32)  # decode must zero it
    dec.decode(batch.data, batch.offsets, batch.sizes, batch.aux, out)
    m = dec.decode_csr(batch.data, batch.offsets, batch.sizes, batch.aux)
    assert isinstance(m, scipy.sparse.csr_matrix)
    assert m.shape == (n, h * w)
    assert m.nnz == acq.expected_nnz_total()
    assert m.dtype == np.float32
    np.testing.assert_array_equal(out.sum(axis=0, dtype=np.float64), acq.expected_sum())
    np.testing.assert_array_equal(m.toarray().reshape(n, h, w), out)
    for k in (0, n // 2, n - 1):
        np.testing.assert_array_equal(out[k], acq.expected_frame(k))


# every indices dtype with a sig shape it can address, every indptr dtype,
# all four value dtypes mixed over the chunks of one scan
@pytest.mark.parametrize("indices_dtype,sig", [
    (DType.U8, (16, 16)), (DType.U16, (64, 128)), (DType.U32, (512, 512)),
    (DType.U64, (256, 256)),
])
@pytest.mark.parametrize("indptr_dtype", [DType.U8, DType.U16, DType.U32, DType.U64])
def test_dtype_matrix_matches_ground_truth(indices_dtype, sig, indptr_dtype):
    cfg = SynthConfig(nav_shape=(6, 7), sig_shape=sig, events_per_frame=20,
                      frames_per_chunk=5, value_dtypes=ALL_VALUES,
                      indptr_dtype=indptr_dtype, indices_dtype=indices_dtype,
                      format_type=FormatType.TOT, seed=int(indices_dtype) * 10 + indptr_dtype)
    acq = SynthAcquisition.generate(cfg)
    dec = Tpx3Decoder(sig, indptr_dtype, indices_dtype)
    _check_all(acq, batch_from_synth(acq, gap=3), dec)


@pytest.mark.parametrize("align,extra_pad", [(8, 0), (16, 5), (1, 7), (64, 1)])
def test_padded_offsets_are_honoured(align, extra_pad):
    cfg = SynthConfig(nav_shape=(5, 9), sig_shape=(64, 128), events_per_frame=30,
                      frames_per_chunk=4, value_dtypes=ALL_VALUES, indices_dtype=DType.U16,
                      indptr_dtype=DType.U16, align=align, extra_pad=extra_pad, seed=3,
                      format_type=FormatType.TOT)
    acq = SynthAcquisition.generate(cfg)
    rec = acq.chunks[0]
    ca = chunk_arrays(rec, DType.U16, DType.U16)
    assert ca.header.indices_offset % align == 0 and ca.header.values_offset % align == 0
    assert ca.header.indices_offset >= (ca.nframes + 1) * 2 + extra_pad
    _check_all(acq, batch_from_synth(acq, gap=1), Tpx3Decoder((64, 128), "uint16", "uint16"))


def test_duplicates_add_up_and_junk_padding_is_ignored():
    rec = encode_chunk([0, 4, 4, 5], [3, 3, 0, 3, 15], [1, 2, 3, 4, 250],
                       indptr_dtype=DType.U16, indices_dtype=DType.U32,
                       value_dtype=DType.U8, align=16, extra_pad=3, junk=0xFF)
    ca = chunk_arrays(rec, DType.U16, DType.U32, sig_size=16)
    np.testing.assert_array_equal(ca.indptr, [0, 4, 4, 5])
    np.testing.assert_array_equal(ca.values, [1, 2, 3, 4, 250])
    assert ca.values.dtype == np.uint8 and ca.indices.dtype == np.uint32
    b = batch_from_records([rec], [3])
    dec = Tpx3Decoder((4, 4), DType.U16, DType.U32)
    out = np.empty((3, 4, 4), np.int32)
    dec.decode(b.data, b.offsets, b.sizes, b.aux, out)
    assert out[0].ravel()[3] == 7 and out[0].ravel()[0] == 3 and out[0].sum() == 10
    assert out[1].sum() == 0 and out[2].ravel()[15] == 250
    m = dec.decode_csr(b.data, b.offsets, b.sizes, b.aux)
    np.testing.assert_array_equal(m.toarray().reshape(3, 4, 4), out)


def test_frame_order_within_batch_and_shared_records():
    acq = SynthAcquisition.generate(SynthConfig(nav_shape=(4, 6), sig_shape=(32, 32),
                                                events_per_frame=10, frames_per_chunk=6))
    full = batch_from_synth(acq)
    # a batch picking frames out of order, some twice, across records
    pick = np.array([7, 8, 9, 0, 23, 7, 12])
    dec = Tpx3Decoder((32, 32), DType.U32, DType.U32)
    out = np.empty((pick.size, 32, 32), np.float32)
    dec.decode(full.data, full.offsets[pick], full.sizes[pick], full.aux[pick], out)
    m = dec.decode_csr(full.data, full.offsets[pick], full.sizes[pick], full.aux[pick])
    for i, k in enumerate(pick):
        np.testing.assert_array_equal(out[i], acq.expected_frame(k))
        np.testing.assert_array_equal(m[i].toarray().reshape(32, 32), acq.expected_frame(k))


def test_non_contiguous_out_and_other_dtypes():
    acq = SynthAcquisition.generate(SynthConfig(nav_shape=(2, 3), sig_shape=(16, 16),
                                                events_per_frame=40, frames_per_chunk=6))
    b = batch_from_synth(acq)
    dec = Tpx3Decoder((16, 16), DType.U32, DType.U32, csr_dtype=np.uint64)
    big = np.full((6, 16, 32), 5, np.float32)
    view = big[:, :, ::2]
    dec.decode(b.data, b.offsets, b.sizes, b.aux, view)
    np.testing.assert_array_equal(view.sum(axis=0), acq.expected_sum())
    assert np.all(big[:, :, 1::2] == 5)
    m = dec.decode_csr(b.data, b.offsets, b.sizes, b.aux)
    assert m.dtype == np.uint64
    with pytest.raises(ValueError, match="shape"):
        dec.decode(b.data, b.offsets, b.sizes, b.aux, np.empty((6, 16, 15), np.float32))


def test_empty_batch_and_empty_rows():
    rec = encode_chunk([0, 0, 0], [], [], indptr_dtype=DType.U32, indices_dtype=DType.U32,
                       value_dtype=DType.U64)
    b = batch_from_records([rec], [2])
    dec = Tpx3Decoder((8, 8), DType.U32, DType.U32)
    out = np.ones((2, 8, 8), np.float32)
    dec.decode(b.data, b.offsets, b.sizes, b.aux, out)
    assert not out.any()
    assert dec.decode_csr(b.data, b.offsets, b.sizes, b.aux).nnz == 0
    e = np.empty(0, np.int64)
    assert dec.decode_csr(b.data, e, e, e).shape == (0, 64)
    dec.decode(b.data, e, e, e, np.empty((0, 8, 8), np.float32))


def test_decoder_pickles():
    dec = Tpx3Decoder((16, 16), DType.U16, "uint32", csr_dtype=np.float64)
    dec2 = pickle.loads(pickle.dumps(dec))
    assert (dec2.sig_shape, dec2.indptr_dtype, dec2.indices_dtype, dec2.csr_dtype) == \
        ((16, 16), np.dtype("<u2"), np.dtype("<u4"), np.dtype(np.float64))


def _corrupt_cases():
    good = encode_chunk([0, 2, 3], [1, 2, 3], [1, 1, 1], indptr_dtype=DType.U32,
                        indices_dtype=DType.U32, value_dtype=DType.U8)
    ip0 = HEADER_SIZE  # start of indptr in the record
    cases = {}

    def mod(name, fn, match, rows=(0, 1)):
        rec = bytearray(good)
        fn(rec)
        cases[name] = (bytes(rec), rows, match)

    mod("indptr_not_monotonic", lambda r: r.__setitem__(slice(ip0 + 4, ip0 + 8),
                                                          (4).to_bytes(4, "little")),
        "not monotonic", rows=(0, 1))
    mod("indptr_end_not_nnz", lambda r: r.__setitem__(slice(ip0 + 8, ip0 + 12),
                                                        (2).to_bytes(4, "little")),
        "differs from the chunk's nnz")
    mod("index_out_of_frame", lambda r: r.__setitem__(slice(ip0 + 12 + 8, ip0 + 12 + 12),
                                                        (64).to_bytes(4, "little")),
        "outside the frame")
    mod("bad_tag", lambda r: r.__setitem__(0, 3), "tag byte 3")
    mod("bad_value_dtype", lambda r: r.__setitem__(1, 1), "value_dtype code 1")
    cases["row_beyond_chunk"] = (good, (0, 2), "not below the chunk's nframes")
    cases["record_too_short"] = (good[:-1], (0,), "more than its stored size")
    return cases


@pytest.mark.parametrize("name", list(_corrupt_cases()))
@pytest.mark.parametrize("mode", ["dense", "csr"])
def test_corrupt_records_raise_decode_error(name, mode):
    rec, rows, match = _corrupt_cases()[name]
    dec = Tpx3Decoder((8, 8), DType.U32, DType.U32)
    data = np.frombuffer(b"\x00" * 8 + rec, np.uint8)
    offs = np.full(len(rows), 8)
    sizes = np.full(len(rows), len(rec))
    aux = np.array(rows)
    with pytest.raises(DecodeError, match=match) as ei:
        if mode == "dense":
            dec.decode(data, offs, sizes, aux, np.empty((len(rows), 8, 8), np.float32))
        else:
            dec.decode_csr(data, offs, sizes, aux)
    assert "slot offset 8" in str(ei.value) and "batch frame" in str(ei.value)


def test_chunk_arrays_checks():
    rec = encode_chunk([0, 2], [1, 70], [1, 1], indptr_dtype=DType.U32,
                       indices_dtype=DType.U32, value_dtype=DType.U8)
    with pytest.raises(DecodeError, match="signal index 70"):
        chunk_arrays(rec, DType.U32, DType.U32, sig_size=64)
    with pytest.raises(DecodeError, match="header implies"):
        chunk_arrays(rec[:-1], DType.U32, DType.U32)
    ca = chunk_arrays(np.frombuffer(rec, np.uint8), "uint32", "uint32", check=False)
    assert ca.header.nnz == 2
