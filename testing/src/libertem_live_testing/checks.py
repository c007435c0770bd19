"""Assertions whose failure messages say what differs, and by how much."""
from __future__ import annotations

import numpy as np


def assert_sum_equal(actual: np.ndarray, expected: np.ndarray, what: str = "SumUDF") -> None:
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    if actual.shape != expected.shape:
        raise AssertionError(
            f"{what} result has shape {actual.shape}, the ground truth {expected.shape}")
    diff = np.abs(actual - expected)
    bad = int(np.count_nonzero(diff))
    if bad:
        where = np.unravel_index(int(np.argmax(diff)), diff.shape)
        raise AssertionError(
            f"{what} result differs from the simulator's ground truth at {bad} of "
            f"{diff.size} pixels; largest difference {diff.max():g} at {tuple(map(int, where))} "
            f"(got {actual[where]:g}, expected {expected[where]:g}); total got "
            f"{actual.sum():g}, expected {expected.sum():g}"
        )


def assert_frames_equal(actual: np.ndarray, expected: np.ndarray) -> None:
    if actual.shape != expected.shape:
        raise AssertionError(f"recorded shape {actual.shape}, sent {expected.shape}")
    flat_a = actual.reshape((-1,) + actual.shape[-2:])
    flat_e = expected.reshape((-1,) + expected.shape[-2:])
    wrong = [i for i in range(len(flat_e)) if not np.array_equal(flat_a[i], flat_e[i])]
    if wrong:
        raise AssertionError(
            f"{len(wrong)} of {len(flat_e)} recorded frames differ from the frames sent; "
            f"first wrong frame index {wrong[0]}"
        )


def assert_checksums_equal(actual: np.ndarray, expected: np.ndarray) -> None:
    """Per-frame checksums (nav-shaped) against the ground truth; a mismatch
    says which frame each wrong position holds, so a swap or a shift is
    named as such."""
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    if actual.shape != expected.shape:
        raise AssertionError(
            f"per-frame checksum result has nav shape {actual.shape}, the scan {expected.shape}")
    flat_a, flat_e = actual.reshape(-1), expected.reshape(-1)
    wrong = np.flatnonzero(~np.isclose(flat_a, flat_e, rtol=1e-12, atol=0))
    if not len(wrong):
        return
    where = {float(v): i for i, v in reversed(list(enumerate(flat_e)))}
    shown = []
    for i in wrong[:4]:
        src = where.get(float(flat_a[i]))
        pos = tuple(int(x) for x in np.unravel_index(i, expected.shape))
        holds = (f"holds frame {src}" if src is not None
                 else "holds no frame that was sent (corrupted, transposed or foreign)")
        shown.append(f"position {pos} (frame {i}) {holds}")
    moved = [i for i in wrong if float(flat_a[i]) in where]
    kind = ("frames are out of order (swapped or shifted)" if len(moved) == len(wrong)
            else "frames differ from the frames sent")
    raise AssertionError(
        f"frame order: {len(wrong)} of {flat_e.size} frames at the wrong place or wrong; "
        f"{kind}: " + "; ".join(shown))
