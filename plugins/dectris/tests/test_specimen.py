"""The simulator's synthetic specimen (``sample="specimen"``) shows what a
microscopist expects in the standard virtual images, and the simulator serves
it with an exact ground truth.

The structure tests compute the virtual images the way the demo does (a
bright-field disc, the centre of mass of the direct beam) straight from the
generated frames and compare them with the specimen's own maps.
"""
from __future__ import annotations

import numpy as np
import pytest

from libertem_live_dectris import wire as M
from libertem_live_dectris.client import SimplonClient
from libertem_live_dectris.sim import DectrisSim
from libertem_live_dectris.sim.specimen import Specimen

SCAN = (32, 32)
SHAPE = (64, 64)


@pytest.fixture(scope="module")
def scan() -> tuple[Specimen, np.ndarray]:
    spec = Specimen(SCAN, SHAPE, seed=3)
    frames = np.stack([spec.row(y) for y in range(SCAN[0])]).astype(np.float64)
    return spec, frames


def _bright_field_disc(spec: Specimen) -> np.ndarray:
    yy, xx = np.mgrid[:SHAPE[0], :SHAPE[1]]
    r = np.hypot(yy - (SHAPE[0] - 1) / 2, xx - (SHAPE[1] - 1) / 2)
    return r < spec.disc_radius + spec.max_deflection + 1.5


def test_bright_field_shows_the_grains_far_above_the_counting_noise(scan):
    spec, frames = scan
    bf = (frames * _bright_field_disc(spec)).sum(axis=(2, 3))
    inside = ~spec.vacuum
    means = [bf[inside & (spec.grain == g)].mean() for g in np.unique(spec.grain[inside])
             if np.count_nonzero(inside & (spec.grain == g)) >= 10]
    noise = np.sqrt(bf[inside].mean())  # Poisson: the standard deviation of one pixel's counts
    assert len(means) >= 5
    assert np.std(means) > 5 * noise, (np.std(means), noise)


def test_vacuum_is_brighter_than_the_specimen_in_bright_field(scan):
    spec, frames = scan
    bf = (frames * _bright_field_disc(spec)).sum(axis=(2, 3))
    assert spec.vacuum.any() and (~spec.vacuum).any()
    vacuum, specimen = bf[spec.vacuum], bf[~spec.vacuum]
    assert vacuum.mean() > 1.2 * specimen.mean()
    assert np.median(vacuum) > np.percentile(specimen, 90)
    # and in vacuum only the direct beam: nothing outside the disc but stray counts
    outside = (frames[spec.vacuum] * ~_bright_field_disc(spec)).sum(axis=(1, 2))
    assert outside.mean() < 0.01 * vacuum.mean()


def test_centre_of_mass_follows_the_deflection_field(scan):
    spec, frames = scan
    disc = _bright_field_disc(spec)
    yy, xx = np.mgrid[:SHAPE[0], :SHAPE[1]]
    total = (frames * disc).sum(axis=(2, 3))
    com = np.stack([(frames * (disc * yy)).sum(axis=(2, 3)) / total,
                    (frames * (disc * xx)).sum(axis=(2, 3)) / total], axis=-1)
    com -= np.median(com[spec.vacuum], axis=0)  # the beam in vacuum is the reference
    inside = ~spec.vacuum
    measured, truth = com[inside].reshape(-1), spec.deflection[inside].reshape(-1)
    assert np.corrcoef(measured, truth)[0, 1] > 0.9
    assert np.abs(truth).max() > 0.5 * spec.max_deflection  # a field worth measuring


def test_a_frame_is_a_pure_function_of_position_and_seed(scan):
    spec, frames = scan
    again = Specimen(SCAN, SHAPE, seed=3)
    np.testing.assert_array_equal(again.frame(17, 5), frames[17, 5])
    np.testing.assert_array_equal(again.frame(0, 31), frames[0, 31])
    other = Specimen(SCAN, SHAPE, seed=4)
    assert not np.array_equal(other.frame(17, 5), frames[17, 5])
    assert frames.dtype.kind == "f" and again.frame(3, 3).dtype == np.uint16
    # counts per frame follow the specimen's rates (Poisson: within a few sigma overall)
    expected = spec.rates.sum()
    assert abs(frames.sum() - expected) < 5 * np.sqrt(expected) + 0.01 * expected


def test_simulator_serves_the_specimen_with_its_ground_truth(receiver_factory):
    sim = DectrisSim(frames=80, shape=SHAPE, sample="specimen", scan=(8, 8), seed=1)
    with sim:
        rx = receiver_factory(sim.zmqport)
        SimplonClient("127.0.0.1", sim.port).sendDetectorCommand("arm")
        r = rx.series()
        assert r.end is not None and len(r.images) == 80
        assert M.parse_dimage_d(r.images[0][1]).encoding == "bs16-lz4<"
        got = r.decoded()
        for k in (0, 9, 63, 64, 79):  # images past the 64 scan positions start the scan again
            np.testing.assert_array_equal(got[k], sim.frame(k))
        np.testing.assert_array_equal(got[64], got[0])
        np.testing.assert_array_equal(got.sum(axis=0, dtype=np.float64), sim.expected_sum())
        np.testing.assert_array_equal(got[:21].sum(axis=0, dtype=np.float64), sim.expected_sum(21))


def test_specimen_needs_a_scan_shape_unless_the_frames_fill_a_square():
    with pytest.raises(ValueError, match="scan shape"):
        DectrisSim(frames=50, shape=SHAPE, sample="specimen")
    with pytest.raises(ValueError, match="sample must be"):
        DectrisSim(frames=16, shape=SHAPE, sample="grains")
