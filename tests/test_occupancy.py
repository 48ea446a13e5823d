"""Whether a well holds sample material: the meniscus ring on the coarse data."""

from __future__ import annotations

import numpy as np

from samplescout.fuse.occupancy import OccupancyConfig, ring_contrast, well_occupancy
from samplescout.geometry import FrameGeometry, Pose

from conftest import plate_frame


def _well_frame(filled: bool, *, shading: float = 0.0) -> tuple[np.ndarray, FrameGeometry]:
    """A 0.1 mm/px coarse frame centred on (20, 10) mm with one 6.4 mm well there."""
    geometry = FrameGeometry(Pose((20.0, 10.0), 0.1, 0.0), 200, 160)
    yy, xx = np.mgrid[0:160, 0:200].astype(np.float32)
    d = np.hypot(xx - 99.5, yy - 79.5) * 0.1  # mm from the well's centre
    img = np.full((160, 200), 0.5, np.float32)  # plate top
    img[d < 3.2] = 0.2  # floor
    if filled:
        img += np.where(d < 3.2, 0.15 * np.exp((d - 3.2) / 0.45), 0.0).astype(np.float32)
    img *= (1.0 + shading * (xx - 100.0) / 100.0).astype(np.float32)  # vignetting-like
    rng = np.random.default_rng(0)
    return img + rng.normal(0.0, 0.004, img.shape).astype(np.float32), geometry


def test_a_filled_wells_meniscus_says_occupied_and_an_empty_well_not() -> None:
    for shading in (0.0, 0.3):
        full = well_occupancy([_well_frame(True, shading=shading)], (20.0, 10.0), 6.4)
        empty = well_occupancy([_well_frame(False, shading=shading)], (20.0, 10.0), 6.4)
        assert full is not None and empty is not None
        assert full > 0.9 and empty < 0.1


def test_a_well_no_frame_sees_is_not_judged() -> None:
    view = _well_frame(True)
    assert well_occupancy([view], (60.0, 10.0), 6.4) is None
    assert ring_contrast([], (20.0, 10.0), 6.4, OccupancyConfig()) is None


def test_frames_that_disagree_give_their_median() -> None:
    filled, empty = _well_frame(True), _well_frame(False)
    one = ring_contrast([filled], (20.0, 10.0), 6.4, OccupancyConfig())
    assert one is not None
    three = ring_contrast([filled, filled, empty], (20.0, 10.0), 6.4, OccupancyConfig())
    assert three == one


def test_the_grid_is_placed_from_the_plate_body_when_no_well_was_identified() -> None:
    from samplescout.fuse.plate import PlateBody, grid_from_body

    img, geometry, a1 = plate_frame(96, a1_shift=(0.6, -0.4))  # body seen 0.7 mm off
    fit = grid_from_body(PlateBody((64.0, 43.0), 0.5, 0.9), [(img, geometry)])
    assert fit is not None and fit.fmt.wells == 96
    assert np.hypot(*(np.asarray(fit.a1_center) - a1)) < 0.15
    assert fit.score < 0.5  # placed by the body and the rims only: low confidence
    flat = np.full_like(img, 0.05) + np.random.default_rng(2).normal(0, 0.01, img.shape)
    flat = flat.astype(np.float32)
    assert grid_from_body(PlateBody((64.0, 43.0), 0.5, 0.9), [(flat, geometry)]) is None
