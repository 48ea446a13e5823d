from __future__ import annotations

import numpy as np
import pytest

from samplescout.geometry import (
    FrameGeometry,
    Pose,
    circle_polygon,
    covered_share,
    normalize_angle_deg,
    polygon_iou,
    rectangle_polygon,
)


def test_spec_test_vector() -> None:
    g = FrameGeometry(Pose((10.0, 20.0), 0.0125, 90.0), 1600, 1200)
    np.testing.assert_allclose(g.pixel_to_holder([1599, 599.5]), [10.0, 29.99375], atol=1e-9)


def test_centre_pixel_maps_to_centre() -> None:
    g = FrameGeometry(Pose((3.0, -4.0), 0.02, 17.0), 101, 51)
    np.testing.assert_allclose(g.pixel_to_holder([50, 25]), [3.0, -4.0], atol=1e-12)


@pytest.mark.parametrize("rotation", [-179.0, -33.3, 0.0, 0.4, 90.0, 123.0])
def test_round_trip_with_rotation(rotation: float) -> None:
    g = FrameGeometry(Pose((31.5, 22.0), 0.0125, rotation), 1600, 1200)
    rng = np.random.default_rng(0)
    uv = rng.uniform(-10, 1700, size=(200, 2))
    back = g.holder_to_pixel(g.pixel_to_holder(uv))
    np.testing.assert_allclose(back, uv, atol=1e-9)


def test_positive_rotation_turns_x_towards_y_down() -> None:
    g = FrameGeometry(Pose((0.0, 0.0), 1.0, 30.0), 3, 3)
    x, y = g.pixel_to_holder([2, 1])  # one pixel to the right of the centre
    assert x == pytest.approx(np.cos(np.radians(30)))
    assert y == pytest.approx(np.sin(np.radians(30)))
    assert y > 0


def test_footprint_size() -> None:
    g = FrameGeometry(Pose((0.0, 0.0), 0.5, 0.0), 40, 20)
    fp = g.footprint_mm()
    assert fp[:, 0].max() - fp[:, 0].min() == pytest.approx(20.0)
    assert fp[:, 1].max() - fp[:, 1].min() == pytest.approx(10.0)


def test_rectangle_polygon_and_iou() -> None:
    a = rectangle_polygon((0.0, 0.0), (4.0, 2.0), 0.0)
    assert polygon_iou(a, a) == pytest.approx(1.0)
    b = rectangle_polygon((1.0, 0.0), (4.0, 2.0), 0.0)
    assert polygon_iou(a, b) == pytest.approx(6.0 / 10.0)
    turned = rectangle_polygon((0.0, 0.0), (4.0, 2.0), 90.0)
    np.testing.assert_allclose(np.sort(np.abs(turned[:, 0])), [1, 1, 1, 1], atol=1e-12)
    assert polygon_iou(circle_polygon((0, 0), 2.0), circle_polygon((5, 5), 2.0)) == 0.0
    small = rectangle_polygon((2.0, 0.0), (2.0, 2.0), 0.0)  # half of it inside a
    assert covered_share(a, small) == pytest.approx(0.5)
    assert covered_share(small, a) == pytest.approx(0.25)
    assert covered_share(a, circle_polygon((9, 9), 2.0)) == 0.0


@pytest.mark.parametrize(
    ("a", "b"),
    [((62.054, 22.255), (62.0544, 22.2534)), ((64.793, 10.63), (64.7988, 10.6236))],
)
def test_iou_of_nearly_coincident_circles(a: tuple[float, float], b: tuple[float, float]) -> None:
    # Two 64-gons of a 15.6 mm well a few micrometres apart: OpenCV's convex
    # intersection returned about a third of their area for such pairs.
    iou = polygon_iou(circle_polygon(a, 15.6), circle_polygon(b, 15.6))
    assert iou == pytest.approx(1.0, abs=2e-3)


@pytest.mark.parametrize(
    ("angle", "expected"), [(0, 0), (90, 90), (-90, 90), (135, -45), (-100, 80), (270, 90)]
)
def test_normalize_angle(angle: float, expected: float) -> None:
    assert normalize_angle_deg(angle) == pytest.approx(expected)
