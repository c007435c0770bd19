"""A synthetic specimen for the simulator: frames a microscopist recognises.

The default synthetic source (a disk circling the centre) proves the pipe
works but its virtual images show nothing.  This one scans a made-up
polycrystalline magnetic film, so the standard 4D-STEM images show real
structure:

* a specimen edge: vacuum on one side, where a frame holds only the direct
  beam (brightest in bright field, dark in annular dark field);
* grains (a distorted Voronoi tessellation), each with its own zone axis
  (hexagonal, square, rectangular spot lattice or one systematic row), its
  own in-plane rotation and diffracting strength: grains differ in bright
  field, dark field and in their spot patterns;
* thickness: a wedge growing from the edge plus a per-grain offset; thicker
  means more diffuse scattering and less direct beam, with faint thickness
  fringes in the diffracted intensity;
* a deflection field: stripe domains of in-plane magnetisation turning
  through smooth walls; the whole pattern (direct disc, spots, diffuse halo)
  shifts by a sub-pixel amount proportional to magnetisation x thickness,
  which is what the centre of mass measures;
* counting noise: every frame is an exact Poisson draw (a Poisson number of
  electrons per component, each placed by the component's distribution).

No physics is simulated: the numbers are chosen to look right.  Geometry is
in units of the scan (the same specimen at any scan size) and of the
detector (scaled from a 128x128 detector); the dose (2500 electrons per
frame in vacuum) is the same at any size.  Frame ``(y, x)`` is a pure
function of ``(y, x)``, the scan shape, the detector shape and ``seed``:
each scan row draws from its own random stream, so any frame can be made
again on its own (:meth:`Specimen.frame`) for the ground truth.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from libertem_live_dectris.sim.encode import encode, encoding_for
from libertem_live_dectris.sim.source import EncodedPool, SyntheticSource
from libertem_live_dectris.wire import build_dimage_d

_TABLE = 1 << 16  # entries per landing-position table
_BINS = 1 << 22  # pixels counted at once

# zone axes: (|g1|, |g2|, angle between them in degrees) on a 128-pixel detector;
# |g2| = 0 means a systematic row (one direction only)
_ZONES: dict[str, tuple[float, float, float]] = {
    "hexagonal": (21.0, 21.0, 60.0),
    "square": (24.0, 24.0, 90.0),
    "rectangular": (19.0, 29.0, 90.0),
    "row": (15.0, 0.0, 0.0),
}


@dataclass(frozen=True)
class Grain:
    """One crystal: its spot lattice (offsets from the direct beam, detector
    pixels) with relative intensities, and how strongly it diffracts."""

    zone: str
    rotation: float  # radians
    strength: float  # fraction of the coherent beam sent into spots (thick limit)
    extinction: float  # thickness period of its fringes, in mean free paths
    thickness_offset: float
    spots: np.ndarray  # (S, 2) dy, dx
    weights: np.ndarray  # (S,), sum 1


def square_scan(frames: int) -> tuple[int, int]:
    """The scan shape for ``frames`` images when none is given: a square."""
    n = int(np.sqrt(frames))
    if n * n != frames:
        raise ValueError(f"the specimen needs a scan shape: {frames} frames is not a square "
                         f"number; give scan=(height, width) (CLI: --scan H W)")
    return n, n


class Specimen:
    """The specimen's maps over the scan and the frames it gives.

    ``scan``: (rows, columns) of scan positions; ``shape``: detector (height,
    width).  The maps (``vacuum``, ``grain``, ``thickness``, ``deflection``)
    are the ground truth the virtual images should show.
    """

    def __init__(self, scan: tuple[int, int], shape: tuple[int, int] = (128, 128),
                 seed: int = 0, dose: float = 2500.0) -> None:
        self.scan = (int(scan[0]), int(scan[1]))
        self.shape = (int(shape[0]), int(shape[1]))
        if min(self.scan) < 1 or min(self.shape) < 16:
            raise ValueError(f"specimen needs a scan of at least 1x1 and frames of at least "
                             f"16x16, got scan {self.scan}, frames {self.shape}")
        self.seed = int(seed)
        h, w = self.shape
        s = min(h, w) / 128.0
        self.scale = s
        self.disc_radius = 5.0 * s
        self.diffuse_radius = 13.0 * s
        self.max_deflection = 2.5 * s
        self.dose = float(dose)  # electrons per frame in vacuum, whatever the detector size
        self.dark_rate = 2.0  # stray counts per frame, anywhere
        rng = np.random.default_rng([self.seed, 0x5EC])
        ny, nx = self.scan
        v, u = np.meshgrid((np.arange(ny) + 0.5) / ny, (np.arange(nx) + 0.5) / nx, indexing="ij")

        # specimen edge: vacuum left of a wavy line
        ph = rng.uniform(0, 2 * np.pi, 2)
        edge = 0.2 + 0.06 * np.sin(2 * np.pi * 0.9 * v + ph[0]) + 0.025 * np.sin(2 * np.pi * 2.7 * v + ph[1])
        dist = u - edge  # > 0 inside the specimen
        self.vacuum: np.ndarray = dist <= 0

        # grains: Voronoi cells in smoothly distorted coordinates
        n_grains = 16
        centres = rng.uniform(0, 1, (n_grains, 2))
        wv = rng.uniform(0, 2 * np.pi, 4)
        vd = v + 0.035 * np.sin(2 * np.pi * 2.3 * u + wv[0]) + 0.02 * np.sin(2 * np.pi * 4.1 * v + wv[1])
        ud = u + 0.035 * np.sin(2 * np.pi * 2.1 * v + wv[2]) + 0.02 * np.sin(2 * np.pi * 3.7 * u + wv[3])
        d2 = (vd[..., None] - centres[:, 0]) ** 2 + (ud[..., None] - centres[:, 1]) ** 2
        self.grain: np.ndarray = np.argmin(d2, axis=-1)
        zones = list(_ZONES)
        self.grains = [self._make_grain(rng, zones[int(rng.integers(len(zones)))]) for _ in range(n_grains)]

        # thickness in mean free paths: a wedge from the edge, plus each grain's own offset
        offs = np.array([g.thickness_offset for g in self.grains])
        wedge = 1.2 * (1.0 - np.exp(-np.maximum(dist, 0) / 0.3))
        self.thickness: np.ndarray = np.where(self.vacuum, 0.0, np.maximum(wedge + offs[self.grain], 0.02))

        # deflection: stripe domains (magnetisation +/- along the stripes, turning
        # through the perpendicular in the walls), times the thickness
        theta = rng.uniform(0, np.pi)
        across = u * np.cos(theta) + v * np.sin(theta)
        along = -u * np.sin(theta) + v * np.cos(theta)
        across = across + 0.05 * np.sin(2 * np.pi * 1.4 * along + wv[0])
        alpha = theta + np.pi / 2 + (np.pi / 2) * (1 + np.tanh(np.sin(2 * np.pi * across / 0.34) / 0.25))
        amp = self.max_deflection * self.thickness / max(float(self.thickness.max()), 1e-9)
        self.deflection: np.ndarray = np.stack([amp * np.sin(alpha), amp * np.cos(alpha)], axis=-1)

        # expected electrons per frame and component: direct, spots..., diffuse
        tau = self.thickness
        strength = np.array([g.strength for g in self.grains])[self.grain]
        ext = np.array([g.extinction for g in self.grains])[self.grain]
        diffuse = 1.0 - np.exp(-0.3 * tau)
        bragg = strength * (1.0 - np.exp(-2.5 * tau)) * (0.8 + 0.2 * np.cos(2 * np.pi * tau / ext))
        coherent = self.dose * (1.0 - diffuse)
        n_spots = max(len(g.weights) for g in self.grains)
        self._offsets = np.zeros((n_grains, n_spots + 3, 2))
        self._weights = np.zeros((n_grains, n_spots))
        for i, g in enumerate(self.grains):
            self._offsets[i, 1:1 + len(g.weights)] = g.spots
            self._weights[i, :len(g.weights)] = g.weights
        lam = np.zeros(self.scan + (n_spots + 3,))
        lam[..., 0] = coherent * (1.0 - bragg)
        lam[..., 1:-2] = (coherent * bragg)[..., None] * self._weights[self.grain]
        lam[..., -2] = self.dose * diffuse
        lam[..., -1] = self.dark_rate
        self.rates: np.ndarray = lam
        self.centre = np.stack([h / 2 + self.deflection[..., 0], w / 2 + self.deflection[..., 1]], axis=-1)
        # sub-pixel landing positions, relative to a component's centre: uniform
        # in a disc, the diffuse halo; then absolute: stray counts anywhere
        trng = np.random.default_rng([self.seed, 0x7AB])
        t1, t2 = trng.random((2, 2 * _TABLE))
        radius = np.concatenate([self.disc_radius * np.sqrt(t1[:_TABLE]),
                                 self.diffuse_radius * np.sqrt(t1[_TABLE:] / (1.0 - t1[_TABLE:]))])
        phi = 2 * np.pi * t2
        stray = trng.random((2, _TABLE)) * np.array([[h], [w]])
        self._table_y = np.concatenate([radius * np.sin(phi), stray[0]])
        self._table_x = np.concatenate([radius * np.cos(phi), stray[1]])
        self._table_base = np.zeros(n_spots + 3, np.int32)
        self._table_base[-2:] = (_TABLE, 2 * _TABLE)

    def _make_grain(self, rng: np.random.Generator, zone: str) -> Grain:
        g1, g2, angle = _ZONES[zone]
        s = self.scale
        rot = float(rng.uniform(0, 2 * np.pi))
        a = np.array([np.sin(rot), np.cos(rot)]) * g1 * s
        b = np.array([np.sin(rot + np.radians(angle)), np.cos(rot + np.radians(angle))]) * g2 * s
        gmax = 0.5 * min(self.shape) - self.disc_radius - self.max_deflection - 2.0
        spots, weights = [], []
        pair: dict[tuple[int, int], float] = {}
        r = range(-4, 5)
        for i in r:
            for j in (r if g2 else [0]):
                if (i, j) == (0, 0):
                    continue
                off = i * a + j * b
                glen = float(np.hypot(*off))
                if glen > gmax:
                    continue
                key = max((i, j), (-i, -j))  # Friedel pairs are equally bright: no CoM bias
                if key not in pair:
                    pair[key] = float(rng.uniform(0.3, 1.7))
                spots.append(off)
                weights.append(pair[key] * np.exp(-(glen / (30.0 * s)) ** 2))
        wts = np.array(weights)
        strength = float(rng.uniform(0.1, 0.35)) if zone == "row" else float(rng.uniform(0.25, 0.75))
        return Grain(zone, rot, strength, float(rng.uniform(0.25, 0.5)), float(rng.uniform(-0.15, 0.15)),
                     np.array(spots).reshape(-1, 2), wts / wts.sum())

    @property
    def n_frames(self) -> int:
        return self.scan[0] * self.scan[1]

    def row(self, y: int) -> np.ndarray:
        """Frames of scan row ``y``: (columns, height, width) uint16.

        Each electron lands at its component's centre plus a draw from a
        fixed table of sub-pixel positions (uniform in a disc, or the diffuse
        halo's radial profile): far cheaper than trigonometry per electron,
        and still an exact Poisson draw per pixel.
        """
        ny, nx = self.scan
        if not 0 <= y < ny:
            raise IndexError(f"scan row {y} outside the scan of {ny} rows")
        h, w = self.shape
        rng = np.random.default_rng([self.seed, 0xF4A, y])
        lam = self.rates[y]  # (nx, C)
        n_comp = lam.shape[1]
        counts = rng.poisson(lam)
        hit = np.repeat(np.arange(nx * n_comp, dtype=np.int32), counts.reshape(-1))
        per_frame = counts.sum(axis=1)
        clip = per_frame.max() > np.iinfo(np.uint16).max  # else no pixel can overflow
        frame = np.repeat(np.arange(nx, dtype=np.int64), per_frame)
        centres = self.centre[y][:, None, :] + self._offsets[self.grain[y]]
        centres[:, -1] = 0.0  # stray counts: the table holds absolute positions
        centres = np.ascontiguousarray(centres.reshape(-1, 2).T)
        table = np.tile(self._table_base, nx)[hit] + rng.integers(0, _TABLE, hit.size, dtype=np.int32)
        # clipped onto a one-pixel border around the frame, which is then dropped
        py = np.clip(np.floor(centres[0].take(hit) + self._table_y.take(table)), -1, h) + 1
        px = np.clip(np.floor(centres[1].take(hit) + self._table_x.take(table)), -1, w) + 1
        out = np.empty((nx, h, w), np.uint16)
        hp, wp = h + 2, w + 2
        step = max(1, _BINS // (hp * wp))  # bounds bincount's int64 scratch
        for f0 in range(0, nx, step):
            f1 = min(nx, f0 + step)
            a, b = np.searchsorted(frame, (f0, f1))
            flat = ((frame[a:b] - f0) * hp + py[a:b].astype(np.int64)) * wp + px[a:b].astype(np.int64)
            binned = np.bincount(flat, minlength=(f1 - f0) * hp * wp).reshape(f1 - f0, hp, wp)
            if clip:
                np.minimum(binned, np.iinfo(np.uint16).max, out=binned)
            out[f0:f1] = binned[:, 1:-1, 1:-1]
        return out

    def frame(self, y: int, x: int) -> np.ndarray:
        """The frame at scan position (``y``, ``x``): (height, width) uint16."""
        return self.row(y)[x]


class SpecimenSource(SyntheticSource):
    """The simulator's source for :class:`Specimen` frames (``sample="specimen"``).

    Image ``k`` of a series is scan position ``k % (rows * columns)`` in row
    order.  Only the encoded frames are kept (a few KiB each); the pixels of
    a frame are made again when :meth:`frame` or the ground truth needs them.
    """

    def __init__(
        self, shape: tuple[int, int] = (128, 128), dtype: str | np.dtype = "uint16",
        compression: str = "bslz4", frames: int = 1024, scan: tuple[int, int] | None = None,
        seed: int = 0, pixel_mask: np.ndarray | None = None,
    ) -> None:
        self.shape = (int(shape[0]), int(shape[1]))
        self.dtype = np.dtype(dtype)
        if self.dtype.name not in ("uint8", "uint16", "uint32"):
            raise ValueError(f"dtype must be uint8, uint16 or uint32, got {self.dtype}")
        encoding_for(compression, self.dtype)  # validates
        self.compression = compression
        self.frames = int(frames)
        self.specimen = Specimen(scan or square_scan(self.frames), self.shape, seed)
        self.defective: np.ndarray | None = None
        if pixel_mask is not None and np.shape(pixel_mask) == self.shape and np.any(pixel_mask):
            self.defective = np.asarray(pixel_mask) != 0
        self._encoded: dict[tuple[str, bool], EncodedPool] = {}
        self._total: np.ndarray | None = None
        self._row = lru_cache(maxsize=2)(self.specimen.row)
        self.encoded(compression)  # encode now, not while the first series streams

    @property
    def pool(self) -> range:
        """One entry per scan position (the simulator cycles them)."""
        return range(self.specimen.n_frames)

    def _sent(self, frames: np.ndarray, mask_to_zero: bool) -> np.ndarray:
        frames = frames.astype(self.dtype, copy=False)
        if self.defective is not None:
            frames = frames.copy()
            frames[..., self.defective] = 0 if mask_to_zero else np.iinfo(self.dtype).max
        return frames

    def encoded(self, compression: str, mask_to_zero: bool = False) -> EncodedPool:
        key = (compression, bool(mask_to_zero) and self.defective is not None)
        ep = self._encoded.get(key)
        if ep is None:
            enc = encoding_for(compression, self.dtype)
            blobs: list[bytes] = []
            total = np.zeros(self.shape, np.float64) if self._total is None else None
            for y in range(self.specimen.scan[0]):
                row = self.specimen.row(y)
                if total is not None:
                    total += row.sum(axis=0, dtype=np.float64)
                blobs.extend(encode(f, compression) for f in self._sent(row, key[1]))
            if total is not None:
                self._total = total
            ep = EncodedPool(
                enc, blobs, [hashlib.md5(b).hexdigest() for b in blobs],
                [build_dimage_d(self.shape, self.dtype.name, enc, len(b)) for b in blobs],
            )
            self._encoded[key] = ep
        return ep

    def frame(self, k: int, mask_to_zero: bool = False) -> np.ndarray:
        """Pixels of image ``k`` of any series (scan position ``k % len(pool)``)."""
        y, x = divmod(k % self.specimen.n_frames, self.specimen.scan[1])
        return self._sent(self._row(y)[x], mask_to_zero)

    def expected_sum(self, n: int, mask_to_zero: bool = False) -> np.ndarray:
        """float64 sum of images ``0..n-1`` (exact: the same frames as sent)."""
        spec = self.specimen
        cycles, rest = divmod(int(n), spec.n_frames)
        if self._total is None:
            self.encoded(self.compression)
        assert self._total is not None
        total = self._total * cycles
        rows, cols = divmod(rest, spec.scan[1])
        for y in range(rows):
            total = total + self._row(y).sum(axis=0, dtype=np.float64)
        if cols:
            total = total + self._row(rows)[:cols].sum(axis=0, dtype=np.float64)
        if self.defective is not None:
            total[self.defective] = n * (0 if mask_to_zero else float(np.iinfo(self.dtype).max))
        return total
