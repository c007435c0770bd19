"""A per-frame checksum that sees frame order without RecordUDF.

``checksum(frame) = sum(frame * weights)`` with weights that differ under
transposition, so a frame written at the wrong scan position, a frame
transposed by the decoder or two swapped frames all change the nav-shaped
result, while a plain sum would not notice.  The same function computes the
ground truth from ``scenario.frames()``.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
from libertem.udf.base import UDF


def checksum_weights(sig_shape: tuple[int, ...]) -> np.ndarray:
    """1, 2, 3, ... in C order: ``w[i, j] != w[j, i]`` off the diagonal.  Exact
    in float64 for integer pixels below 2**24 on frames up to 512 x 512."""
    return np.arange(1, math.prod(sig_shape) + 1, dtype=np.float64).reshape(sig_shape)


def checksums(frames: np.ndarray, sig_dims: int = 2) -> np.ndarray:
    """The checksum of every frame of ``frames`` (nav + sig), nav-shaped."""
    frames = np.asarray(frames)
    sig = frames.shape[-sig_dims:]
    flat = frames.reshape((-1, math.prod(sig))).astype(np.float64)
    return (flat @ checksum_weights(sig).reshape(-1)).reshape(frames.shape[:-sig_dims])


class ChecksumUDF(UDF):
    """Nav-shaped result ``checksum``: :func:`checksums` of every frame as it
    arrived at the workers."""

    def get_result_buffers(self) -> dict[str, Any]:
        return {"checksum": self.buffer(kind="nav", dtype="float64")}

    def get_task_data(self) -> dict[str, Any]:
        sig = tuple(self.meta.dataset_shape.sig)
        return {"weights": checksum_weights(sig).reshape(-1)}

    def process_frame(self, frame: np.ndarray) -> None:
        flat = np.asarray(frame, dtype=np.float64).reshape(-1)
        self.results.checksum[:] = flat @ self.task_data.weights
