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
from typing import Any, Protocol, Sequence

import cbor2
import numpy as np

from libertem_live_dectris.sim.dump import DumpError, DumpFile, DumpWriter, V2DumpFile, is_v2_dump
from libertem_live_dectris.sim.encode import encode, encode_lz4_hdf5, encoding_for
from libertem_live_dectris.wire import (
    build_dconfig, build_dimage, build_dimage_d, build_dseries_end, build_header_parts,
    images_per_series, parse_dimage_d,
)
from libertem_live_dectris.wire_v2 import build_end, build_image, build_start, compressed, mdarray


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

    def v2_blob(self, k: int, compression: str, mask_to_zero: bool = False) -> bytes:
        """Pixels of image ``k`` as a stream V2 array holds them: a DCU's bslz4
        bytes are the same in V1 and V2; lz4 is in the HDF5 filter framing in V2;
        ``none`` is little-endian pixels."""
        if compression == "bslz4":
            ep = self.encoded("bslz4", mask_to_zero)
            return ep.blobs[k % len(ep.blobs)]
        frame = self.frame(k, mask_to_zero)
        if compression == "lz4":
            return encode_lz4_hdf5(frame)
        return frame.astype(self.dtype.newbyteorder("<")).tobytes()

    def v2_data(self, k: int, compression: str, channels: Sequence[str],
                mask_to_zero: bool = False) -> dict[str, Any]:
        """The ``data`` map of image ``k``'s V2 message: channel ``j`` carries
        image ``k + j``."""
        return {ch: v2_array(self.v2_blob(k + j, compression, mask_to_zero), self.shape,
                             self.dtype, compression)
                for j, ch in enumerate(channels)}

    def frame(self, k: int, mask_to_zero: bool = False) -> np.ndarray:
        """Pixel data of image ``k`` of any series (pool frame ``k % pool_size``)."""
        return self.pool_for(mask_to_zero)[k % self.pool.shape[0]]

    def expected_sum(self, n: int, mask_to_zero: bool = False) -> np.ndarray:
        return expected_sum(self.pool_for(mask_to_zero), n)

    def close(self) -> None:
        pass


class DumpSource:
    """Replays the first series of a dump file, stream V1 or V2 (``stream``:
    ``"legacy"`` or ``"v2"``, told from the file); series id and configuration
    come from the recording."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self.stream = "v2" if is_v2_dump(path) else "legacy"
        self.dump: DumpFile | V2DumpFile
        if self.stream == "v2":
            self._open_v2()
            return
        self.dump = DumpFile(path)
        s = self.dump.series
        if s.config is None:
            self.dump.close()
            raise ValueError(f"{path}: dump has header_detail=none, no configuration to replay")
        self.fixed_series = s.header.series
        self._config = dict(s.config.raw)
        self._images = s.images

    def _open_v2(self) -> None:
        from libertem_live_dectris.wire_v2 import loads, parse_start

        self.dump = v2 = V2DumpFile(self.path)
        try:
            start = parse_start(loads(v2.start))
            if not v2.images:
                raise ValueError("no image messages recorded")
            data = loads(v2.images[0]).get("data", {})
            value = data[start.channels[0]].array.value
        except (ValueError, KeyError, AttributeError, TypeError) as e:
            v2.close()
            raise DumpError(f"{self.path}: not a replayable stream V2 recording: {e}") from None
        compression = getattr(value, "algorithm", "none")
        self.fixed_series = start.series
        self.start_message = bytes(v2.start)
        self.channels = start.channels
        self._v2_shape, self._v2_dtype = start.shape, start.dtype
        self._config = default_config(start.shape, start.dtype, len(v2.images), compression)
        for key in ("count_time", "frame_time"):
            if isinstance(start.metadata.get(key), (int, float)):
                self._config[key] = float(start.metadata[key])
        self._images = v2.images  # type: ignore[assignment]

    def initial_config(self) -> dict[str, Any]:
        return dict(self._config)

    @property
    def recorded_config(self) -> dict[str, Any]:
        return dict(self._config)

    @property
    def v1_images(self) -> list[tuple[memoryview, memoryview, memoryview, memoryview]]:
        """The recorded V1 image messages (4 parts each), in order."""
        return self._images  # type: ignore[return-value]

    @property
    def v2_images(self) -> list[memoryview]:
        """The recorded V2 image messages, in order (stream V2 recordings)."""
        return self._images  # type: ignore[return-value]

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
        n = len(self._images) if n is None else n
        side = self.path + ".sum.npy"
        if n == len(self._images) and os.path.exists(side):
            return np.load(side)
        if self.stream == "v2":
            return self._v2_sum(n)
        from libertem_live_dectris.decode import DectrisDecoder

        total: np.ndarray | None = None
        for img in self._images[:n]:
            d = parse_dimage_d(img[1])
            buf = np.empty(d.shape, np.float64)
            DectrisDecoder(d.encoding, d.dtype, d.shape).decode_one(np.frombuffer(img[2], np.uint8), buf)
            total = buf if total is None else total + buf
        assert total is not None
        return total

    def _v2_sum(self, n: int) -> np.ndarray:
        from libertem_live_dectris.decode_v2 import decode_payload
        from libertem_live_dectris.wire_v2 import image_payload, loads

        total = np.zeros(self._v2_shape, np.float64)
        pixels = np.empty(self._v2_shape, self._v2_dtype)
        for k, msg in enumerate(self.v2_images[:n]):
            _, _, payload, kind = image_payload(loads(msg), self.channels[0], self._v2_shape,
                                                self._v2_dtype, f"{self.path} message {k + 1}")
            decode_payload(payload, kind, pixels.reshape(-1))
            total += pixels
        return total

    def close(self) -> None:
        self._images = []
        self.dump.close()


def v2_array(blob: bytes, shape: tuple[int, int], dtype: np.dtype, compression: str) -> Any:
    """A V2 image array around ``blob`` (tag 40, typed array, tag 56500 when compressed)."""
    payload = blob if compression == "none" else compressed(
        compression, dtype.itemsize if compression == "bslz4" else 0, blob)
    return mdarray(payload, shape, dtype.name)


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
    stream: str = "legacy",
) -> np.ndarray:
    """Write a synthetic recording in the dump format (see :mod:`.dump`).

    Stream V1 (``stream="legacy"``), laid out like upstream's test file:
    dheader, config (``exte``, ``ntrigger=frames``), 4 parts per image,
    dseries_end. Stream V2 (``stream="v2"``): the start message, one message
    per image, the end message; the same pixels as V1 for the same arguments.
    Writes ``<path>.sum.npy`` with the float64 sum over all frames (returned
    too), which :class:`DectrisSim` uses as ``expected_sum()`` when replaying.
    """
    if stream not in ("legacy", "v2"):
        raise ValueError(f"stream must be 'legacy' or 'v2', got {stream!r}")
    src = SyntheticSource(shape, dtype, compression, frames, pool_size, seed)
    cfg = src.initial_config()
    if stream == "v2":
        _write_v2_dump(path, src, cfg, series)
    else:
        _write_v1_dump(path, src, cfg, series, header_detail)
    total = src.expected_sum(frames)
    if write_sum:
        np.save(os.fspath(path) + ".sum.npy", total)
    return total


def _write_v2_dump(path: str | os.PathLike[str], src: SyntheticSource, cfg: dict[str, Any],
                   series: int) -> None:
    channels = ("threshold_1",)
    count_ns = int(cfg["count_time"] * 1e9)
    frame_ns = int(cfg["frame_time"] * 1e9)
    t0 = 5_396_052_835_800
    pool = len(src.encoded(src.compression).blobs)
    data = [cbor2.dumps(src.v2_data(j, src.compression, channels)) for j in range(pool)]
    with DumpWriter(path) as w:
        w.write(build_start(series, src.frames, src.shape, src.dtype.name, channels,
                            extra={"count_time": cfg["count_time"], "frame_time": cfg["frame_time"]}))
        for k in range(src.frames):
            st = t0 + k * frame_ns
            w.write(build_image(series, k, data[k % pool], st, st + count_ns))
        w.write(build_end(series))


def _write_v1_dump(path: str | os.PathLike[str], src: SyntheticSource, cfg: dict[str, Any],
                   series: int, header_detail: str) -> None:
    frames = src.frames
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
