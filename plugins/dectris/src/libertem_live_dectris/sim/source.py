"""Where the simulator's images come from: a synthetic pool or a recorded dump.

Both sources answer the same questions: initial detector configuration,
the series id for an arm, and the 4 parts of image ``k`` of a series. The
synthetic source pre-encodes a pool of distinct frames (per compression) so
sending is only message assembly; the dump source hands out the recorded
parts unchanged.

Synthetic frames are deterministic low-dose 4D-STEM frames with a known
ground truth: mostly zeros, small Poisson counts inside a bright-field disk
that moves with the scan position, so compression ratios and decode speeds
are realistic and the sum over a series is known exactly (a receiver proves
that every frame arrived intact).  A series cycles a pool of ``k`` distinct
frames: frame ``i`` is pool frame ``i % k``.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from libertem_live_dectris.sim.dump import DumpFile, DumpWriter
from libertem_live_dectris.sim.encode import encode, encoding_for
from libertem_live_dectris.wire import (
    build_dconfig, build_dimage, build_dimage_d, build_dseries_end, build_header_parts,
    images_per_series, parse_dimage_d,
)


def make_frames(
    k: int,
    shape: tuple[int, int],
    dtype: np.dtype | str = np.uint16,
    seed: int = 0,
    disk_frac: float = 0.12,
    lam_disk: float = 4.0,
    lam_bg: float = 0.02,
) -> np.ndarray:
    """``k`` frames of ``shape``: a disk circling the centre plus sparse background.

    Background counts are drawn as a Poisson number of single hits at random
    positions (cheaper than a Poisson draw per pixel at lam_bg=0.02).
    """
    h, w = shape
    dtype = np.dtype(dtype)
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    r2 = (disk_frac * min(h, w)) ** 2
    out = np.zeros((k, h, w), dtype=dtype)
    maxval = np.iinfo(dtype).max
    for i in range(k):
        phase = 2 * np.pi * i / max(k, 1)
        cy = h / 2 + 0.05 * h * np.sin(phase)
        cx = w / 2 + 0.05 * w * np.cos(phase)
        disk = ((yy - cy) ** 2 + (xx - cx) ** 2) <= r2
        frame = np.zeros((h, w), dtype=np.int64)
        frame[disk] = rng.poisson(lam_disk, size=int(disk.sum()))
        nbg = rng.poisson(lam_bg * h * w)
        idx = rng.integers(0, h * w, size=nbg)
        np.add.at(frame.reshape(-1), idx, 1)
        out[i] = np.minimum(frame, maxval)
    return out


def default_pool_size(shape: tuple[int, int], nframes: int) -> int:
    """Pool size: up to 256 distinct frames, capped at ~16 Mpixel in total."""
    h, w = shape
    cap = max(8, (16 * 1024 * 1024) // max(1, h * w))
    return max(1, min(256, cap, nframes))


def expected_sum(pool: np.ndarray, nframes: int) -> np.ndarray:
    """float64 sum of frames ``0..nframes-1`` of a series cycling ``pool``."""
    k = pool.shape[0]
    counts = np.bincount(np.arange(nframes) % k, minlength=k).astype(np.float64)
    return np.tensordot(counts, pool.astype(np.float64), axes=(0, 0))


def default_config(shape: tuple[int, int], dtype: np.dtype, frames: int, compression: str) -> dict[str, Any]:
    """A plausible ARINA/QUADRO-like configuration (values only)."""
    h, w = shape
    bits = np.dtype(dtype).itemsize * 8
    return {
        "auto_summation": True,
        "bit_depth_image": bits,
        "bit_depth_readout": bits,
        "compression": compression,
        "count_time": 0.0009999,
        "countrate_correction_applied": False,
        "description": "libertem-live DECTRIS simulator",
        "detector_number": "SIM-0001",
        "frame_time": 0.001,
        "mask_to_zero": False,
        "nimages": 1,
        "ntrigger": int(frames),
        "roi_mode": "disabled",
        "roi_bit_depth": 16,
        "roi_y_size": h,
        "sensor_material": "Si",
        "software_version": "1.8.0",
        "trigger_mode": "exte",
        "x_pixel_size": 0.000075,
        "x_pixels_in_detector": w,
        "y_pixel_size": 0.000075,
        "y_pixels_in_detector": h,
    }


@dataclass
class EncodedPool:
    """Pre-encoded pool frames for one compression."""

    encoding: str
    blobs: list[bytes]
    hashes: list[str]
    descriptors: list[bytes]  # dimage_d part per pool frame


class Source(Protocol):
    fixed_series: int | None

    def initial_config(self) -> dict[str, Any]: ...
    def image_parts(self, series: int, k: int, config: dict[str, Any]) -> tuple[bytes, bytes, bytes]: ...
    def n_available(self, config: dict[str, Any]) -> int: ...
    def close(self) -> None: ...


class SyntheticSource:
    """Low-dose frames cycling a pool (:func:`make_frames`), encoded on demand."""

    fixed_series: int | None = None

    def __init__(
        self, shape: tuple[int, int] = (128, 128), dtype: str | np.dtype = "uint16",
        compression: str = "bslz4", frames: int = 1024, pool_size: int | None = None,
        seed: int = 0, lam_disk: float = 4.0, lam_bg: float = 0.02,
        pixel_mask: np.ndarray | None = None,
    ) -> None:
        self.shape = (int(shape[0]), int(shape[1]))
        self.dtype = np.dtype(dtype)
        if self.dtype.name not in ("uint8", "uint16", "uint32"):
            raise ValueError(f"dtype must be uint8, uint16 or uint32, got {self.dtype}")
        encoding_for(compression, self.dtype)  # validates
        self.compression = compression
        self.frames = int(frames)
        k = pool_size or default_pool_size(self.shape, self.frames)
        self.pool = make_frames(k, self.shape, self.dtype, seed=seed, lam_disk=lam_disk, lam_bg=lam_bg)
        # like a DCU: defective pixels (nonzero in the pixel mask) read 2**bits - 1,
        # or 0 with mask_to_zero
        self.defective: np.ndarray | None = None
        if pixel_mask is not None and np.shape(pixel_mask) == self.shape and np.any(pixel_mask):
            self.defective = np.asarray(pixel_mask) != 0
        self._pools: dict[bool, np.ndarray] = {}
        self._encoded: dict[tuple[str, bool], EncodedPool] = {}
        self.encoded(compression)  # encode now, not while the first series streams

    def pool_for(self, mask_to_zero: bool = False) -> np.ndarray:
        """The pool as sent: defective pixels set to max-int (or 0 with ``mask_to_zero``)."""
        if self.defective is None:
            return self.pool
        key = bool(mask_to_zero)
        pool = self._pools.get(key)
        if pool is None:
            pool = self.pool.copy()
            pool[:, self.defective] = 0 if key else np.iinfo(self.dtype).max
            self._pools[key] = pool
        return pool

    def initial_config(self) -> dict[str, Any]:
        return default_config(self.shape, self.dtype, self.frames, self.compression)

    def encoded(self, compression: str, mask_to_zero: bool = False) -> EncodedPool:
        """The pool encoded for ``compression`` (cached)."""
        key = (compression, bool(mask_to_zero) and self.defective is not None)
        ep = self._encoded.get(key)
        if ep is None:
            enc = encoding_for(compression, self.dtype)
            blobs = [encode(f, compression) for f in self.pool_for(key[1])]
            ep = EncodedPool(
                enc, blobs, [hashlib.md5(b).hexdigest() for b in blobs],
                [build_dimage_d(self.shape, self.dtype.name, enc, len(b)) for b in blobs],
            )
            self._encoded[key] = ep
        return ep

    def image_parts(self, series: int, k: int, config: dict[str, Any]) -> tuple[bytes, bytes, bytes]:
        ep = self.encoded(config["compression"], bool(config.get("mask_to_zero", False)))
        j = k % len(ep.blobs)
        return build_dimage(series, k, ep.hashes[j]), ep.descriptors[j], ep.blobs[j]

    def n_available(self, config: dict[str, Any]) -> int:
        return images_per_series(config["trigger_mode"], config["nimages"], config["ntrigger"])

    def frame(self, k: int, mask_to_zero: bool = False) -> np.ndarray:
        """Pixel data of image ``k`` of any series (pool frame ``k % pool_size``)."""
        return self.pool_for(mask_to_zero)[k % self.pool.shape[0]]

    def expected_sum(self, n: int, mask_to_zero: bool = False) -> np.ndarray:
        return expected_sum(self.pool_for(mask_to_zero), n)

    def close(self) -> None:
        pass


class DumpSource:
    """Replays the first series of a dump file; series id and config from it."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self.dump = DumpFile(path)
        s = self.dump.series
        if s.config is None:
            self.dump.close()
            raise ValueError(f"{path}: dump has header_detail=none, no configuration to replay")
        self.fixed_series = s.header.series
        self._config = dict(s.config.raw)
        self._images = s.images

    def initial_config(self) -> dict[str, Any]:
        return dict(self._config)

    @property
    def recorded_config(self) -> dict[str, Any]:
        return dict(self._config)

    def image_parts(self, series: int, k: int, config: dict[str, Any]) -> tuple[bytes, bytes, bytes]:
        img = self._images[k]
        return bytes(img[0]), bytes(img[1]), bytes(img[2])

    def dconfig_part(self, k: int) -> bytes:
        return bytes(self._images[k][3])

    def n_available(self, config: dict[str, Any]) -> int:
        return len(self._images)

    def expected_sum(self, n: int | None = None) -> np.ndarray:
        """Sum of the first ``n`` recorded images: from the ``.sum.npy`` sidecar if
        it matches, else by decoding the recording."""
        from libertem_live_dectris.decode import DectrisDecoder

        n = len(self._images) if n is None else n
        side = self.path + ".sum.npy"
        if n == len(self._images) and os.path.exists(side):
            return np.load(side)
        total: np.ndarray | None = None
        for img in self._images[:n]:
            d = parse_dimage_d(img[1])
            buf = np.empty(d.shape, np.float64)
            DectrisDecoder(d.encoding, d.dtype, d.shape).decode_one(np.frombuffer(img[2], np.uint8), buf)
            total = buf if total is None else total + buf
        assert total is not None
        return total

    def close(self) -> None:
        self._images = []
        self.dump.close()


def write_dump(
    path: str | os.PathLike[str],
    frames: int = 16384,
    shape: tuple[int, int] = (512, 512),
    dtype: str = "uint16",
    compression: str = "bslz4",
    series: int = 34,
    seed: int = 0,
    pool_size: int | None = None,
    header_detail: str = "basic",
    write_sum: bool = True,
) -> np.ndarray:
    """Write a synthetic recording in the dump format (see :mod:`.dump`).

    Layout like upstream's test file: dheader, config (``exte``,
    ``ntrigger=frames``), 4 parts per image, dseries_end. Writes
    ``<path>.sum.npy`` with the float64 sum over all frames (returned too),
    which :class:`DectrisSim` uses as ``expected_sum()`` when replaying.
    """
    src = SyntheticSource(shape, dtype, compression, frames, pool_size, seed)
    cfg = src.initial_config()
    with DumpWriter(path) as w:
        w.write_all(build_header_parts(series, header_detail, cfg))
        count_ns = int(cfg["count_time"] * 1e9)
        frame_ns = int(cfg["frame_time"] * 1e9)
        t0 = 5_396_052_835_800
        for k in range(frames):
            d, dd, blob = src.image_parts(series, k, cfg)
            st = t0 + k * frame_ns
            w.write_all((d, dd, blob, build_dconfig(st, st + count_ns, count_ns)))
        w.write(build_dseries_end(series))
    total = src.expected_sum(frames)
    if write_sum:
        np.save(os.fspath(path) + ".sum.npy", total)
    return total
