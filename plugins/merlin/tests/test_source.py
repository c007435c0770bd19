"""Frame pools: wire bytes per batch, sequence numbers, ground truth."""
from __future__ import annotations

import numpy as np
import pytest

from libertem_live_merlin.headers import parse_frame_header
from libertem_live_merlin.wire import parse_prefix
from libertem_live_merlin.sim.source import SyntheticSource


def split_messages(buf: bytes) -> list[bytes]:
    out, pos = [], 0
    while pos < len(buf):
        n = parse_prefix(buf[pos:pos + 15], pos)
        out.append(buf[pos + 15:pos + 15 + n])
        pos += 15 + n
    return out


@pytest.mark.parametrize("start", [0, 5, 999_997])
def test_batch_wire_bytes_and_sequence_numbers(start):
    pool = SyntheticSource(pool_size=3).pool(12, False, "1x1")
    wire = b"".join(bytes(v) for v in pool.batch(start, start + 3))
    msgs = split_messages(wire)
    assert len(msgs) == 3
    for j, m in enumerate(msgs):
        fh = parse_frame_header(m)
        assert fh.sequence == start + j + 1 and fh.data_offset == 384
        assert m[384:] == bytes(pool.payload(start + j))
    with pytest.raises(ValueError, match="at most the pool size"):
        pool.batch(0, 4)


def test_expected_sum_cycles_the_pool():
    pool = SyntheticSource(pool_size=4).pool(6, True, "2x2G")
    truth = pool.truth.astype(np.float64)
    np.testing.assert_array_equal(pool.expected_sum(10), 3 * truth[:2].sum(0)
                                  + 2 * truth[2:].sum(0))
    assert not pool.truth[:, 256:258].any() and pool.truth.max() == 63
