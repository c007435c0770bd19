"""Raw frames are converted to the tile's dtype exactly, whatever their
offsets in the slot and whatever dtype LiberTEM asks for; a frame of the
wrong size is named."""
from __future__ import annotations

import numpy as np
import pytest

from libertem_live.transport.raw import RawDecoder
from libertem_live.transport.ring import frame_aligned


def _slot_with(frames: np.ndarray, offsets: list[int]) -> np.ndarray:
    data = np.zeros(max(offsets) + frames[0].nbytes + 16, dtype=np.uint8)
    for f, o in zip(frames, offsets):
        data[o:o + f.nbytes] = f.reshape(-1).view(np.uint8)
    return data


@pytest.mark.parametrize("src,dest", [
    ("uint16", "float32"), ("float32", "float32"), ("int32", "float64"), ("uint8", "uint16"),
    (">u2", "float32"), ("uint16", "complex64"),
])
@pytest.mark.parametrize("layout", ["regular", "shuffled", "odd"])
def test_raw_decoder_converts_exactly(src: str, dest: str, layout: str) -> None:
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 200, size=(3, 4, 5)).astype(src)
    stride = frame_aligned(frames[0].nbytes)
    offsets = {"regular": [0, stride, 2 * stride], "shuffled": [2 * stride, 0, stride],
               "odd": [1, stride + 3, 2 * stride + 6]}[layout]
    data = _slot_with(frames, offsets)
    out = np.full((3, 4, 5), 255, dtype=dest)
    dec = RawDecoder(src, (4, 5))
    dec.decode(data, np.array(offsets, dtype=np.int64), np.full(3, frames[0].nbytes, np.int64),
               np.zeros(3, np.int64), out)
    np.testing.assert_array_equal(out, frames.astype(dest))


def test_raw_decoder_names_the_frame_of_wrong_size() -> None:
    frames = np.ones((3, 4, 5), dtype=np.uint16)
    data = _slot_with(frames, [0, 48, 96])
    sizes = np.array([40, 40, 38], dtype=np.int64)
    with pytest.raises(ValueError, match="frame 2 of the batch has 38 bytes, expected 40"):
        RawDecoder("uint16", (4, 5)).decode(data, np.array([0, 48, 96], np.int64), sizes,
                                            np.zeros(3, np.int64),
                                            np.empty((3, 4, 5), np.float32))
