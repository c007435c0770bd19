"""Message builders/parsers and the dump file format."""
from __future__ import annotations

import json
import struct

import numpy as np
import pytest

from libertem_live_dectris import wire as M
from libertem_live_dectris.sim.dump import DumpError, DumpFile, iter_records, write_parts
from libertem_live_dectris.sim.encode import encode_bslz4
from libertem_live_dectris.sim import write_dump


def test_builders_are_valid_json_with_required_keys():
    d = json.loads(M.build_dimage(7, 3, "ab" * 16))
    assert d == {"htype": "dimage-1.0", "series": 7, "frame": 3, "hash": "ab" * 16}
    dd = json.loads(M.build_dimage_d((192, 96), "uint16", "bs16-lz4<", 40112))
    assert dd["shape"] == [96, 192]  # [width, height] on the wire
    assert dd["size"] == 40112
    dc = json.loads(M.build_dconfig(1, 2, 1))
    assert set(dc) == {"htype", "start_time", "stop_time", "real_time"}
    assert json.loads(M.build_dseries_end(7)) == {"htype": "dseries_end-1.0", "series": 7}


@pytest.mark.parametrize("mode,nimages,ntrigger,expected", [
    ("exte", 5, 100, 100), ("inte", 5, 100, 100), ("exts", 5, 100, 500), ("ints", 5, 100, 500),
])
def test_images_per_series(mode, nimages, ntrigger, expected):
    assert M.images_per_series(mode, nimages, ntrigger) == expected


def test_images_per_series_rejects_unknown_mode():
    with pytest.raises(ValueError, match="trigger_mode"):
        M.images_per_series("burst", 1, 1)


CFG = {"ntrigger": 16384, "nimages": 1, "trigger_mode": "exte", "x_pixels_in_detector": 96,
       "y_pixels_in_detector": 48, "bit_depth_image": 16, "compression": "bslz4"}


@pytest.mark.parametrize("detail,count", [("none", 1), ("basic", 2), ("all", 8)])
def test_header_parts(detail, count):
    parts = M.build_header_parts(9, detail, CFG)
    assert len(parts) == count == M.header_part_count(detail)
    h = M.parse_dheader(parts[0])
    assert (h.series, h.header_detail) == (9, detail)
    if detail != "none":
        cfg = M.parse_config(parts[1])
        assert cfg.n_images == 16384 and cfg.shape == (48, 96) and cfg.dtype == np.uint16
    if detail == "all":
        assert [M.peek_htype(p) for p in parts[2::2]] == [M.DFLATFIELD, M.DPIXELMASK, M.DCOUNTRATE]
        assert len(parts[3]) == 48 * 96 * 4 and len(parts[5]) == 48 * 96 * 4
        assert M.peek_htype(parts[3]) is None


def test_parse_config_errors():
    with pytest.raises(M.MessageError, match="required keys"):
        M.parse_config(json.dumps({"ntrigger": 1}).encode())
    with pytest.raises(M.MessageError, match="bit_depth"):
        M.parse_config({**CFG, "bit_depth_image": 12})
    with pytest.raises(M.MessageError, match="not a JSON"):
        M.parse_config(b"\x00\x01binary")


@pytest.mark.parametrize("part", [
    b'{"htype": "dimage-1.0", "series": 34, "frame": 17, "hash": "x"}',
    b'{"htype":"dimage-1.0","series":34,"frame":17,"hash":"x"}',
    b'{"frame": 17, "hash": "x", "series": 34, "htype": "dimage-1.0"}',
    b'{ "htype" : "dimage-1.0" ,\n "series" : 34 , "frame" : 17 }',
])
def test_parse_dimage_formats(part):
    assert M.parse_dimage(part) == (34, 17)
    assert M.parse_dimage(memoryview(part)) == (34, 17)


@pytest.mark.parametrize("part,match", [
    (b'{"htype": "dseries_end-1.0", "series": 34}', "expected dimage-1.0"),
    (b'{"htype": "dimage-1.0", "series": 34}', "lacks"),
    (b'{"htype": "dimage-1.0", "series": -1, "frame": 2}', "invalid"),
    (b'\x89binary', "not a JSON"),
])
def test_parse_dimage_errors(part, match):
    with pytest.raises(M.MessageError, match=match):
        M.parse_dimage(part)


def test_parse_dimage_d_cache_keeps_sizes_apart():
    a = M.parse_dimage_d(M.build_dimage_d((96, 96), "uint16", "bs16-lz4<", 100))
    b = M.parse_dimage_d(M.build_dimage_d((96, 96), "uint16", "bs16-lz4<", 200))
    c = M.parse_dimage_d(M.build_dimage_d((97, 96), "uint16", "bs16-lz4<", 200))
    assert (a.size, b.size) == (100, 200)
    assert a.shape == b.shape == (96, 96) and c.shape == (97, 96)
    with pytest.raises(M.MessageError, match="shape"):
        M.parse_dimage_d(b'{"htype": "dimage_d-1.0", "shape": [96], "type": "uint16", "encoding": "<"}')


def test_peek_and_end():
    assert M.peek_htype(M.build_dseries_end(3)) == M.DSERIES_END
    assert M.peek_htype(b"\x00\x01") is None
    assert M.parse_dseries_end(M.build_dseries_end(3)) == 3
    with pytest.raises(M.MessageError):
        M.parse_dseries_end(M.build_dimage(1, 1, "x"))


def test_dump_roundtrip(tmp_path):
    p = tmp_path / "x.dump"
    parts = [M.build_dseries_end(33)] + M.build_header_parts(34, "basic", CFG)
    blob = encode_bslz4(np.ones((48, 96), np.uint16))
    for k in range(3):
        parts += [M.build_dimage(34, k, "h"), M.build_dimage_d((48, 96), "uint16", "bs16-lz4<", len(blob)),
                  blob, M.build_dconfig(k, k + 1, 1)]
    parts.append(M.build_dseries_end(34))
    write_parts(p, parts)
    raw = p.read_bytes()
    assert struct.unpack("<q", raw[:8])[0] == len(parts[0])
    assert [bytes(r) for r in iter_records(raw)] == parts
    with DumpFile(p) as d:
        s = d.series
        assert s.header.series == 34 and s.skipped_before == 1 and s.has_end
        assert len(s.images) == 3 and bytes(s.images[1][2]) == blob
        assert s.config.n_images == 16384


def test_dump_truncated(tmp_path):
    p = tmp_path / "bad.dump"
    p.write_bytes(struct.pack("<q", 100) + b"short")
    with pytest.raises(DumpError, match="claims 100 bytes"):
        DumpFile(p)


def test_write_dump_matches_gen_dectris_layout(tmp_path):
    p = tmp_path / "syn.dump"
    total = write_dump(p, frames=20, shape=(32, 24), pool_size=8)
    with DumpFile(p) as d:
        s = d.series
        assert s.header == M.SeriesHeader(34, "basic")
        assert s.config.n_images == 20 and s.config.shape == (32, 24)
        assert [M.parse_dimage(img[0]) for img in s.images] == [(34, k) for k in range(20)]
        assert s.has_end
    np.testing.assert_array_equal(np.load(str(p) + ".sum.npy"), total)
