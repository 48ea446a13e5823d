"""The overview-camera simulator: bundles, ground truth, determinism, visible edges."""

from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from samplescout.acquire.scene import Circle, Rect
from samplescout.acquire.simulator import (
    CARRIERS,
    camera_profile,
    ground_truth,
    make_scene,
    overview_path,
    render_frame,
    simulate,
)
from samplescout.bundle import open_bundle
from samplescout.geometry import FrameGeometry, Pose, rotation_matrix

SCALE = 0.25


def _check_sample_shape(s: dict) -> None:
    assert s["confidence"] == 1.0
    assert 0.0 <= s["occupied"] <= 1.0
    poly = np.asarray(s["polygon_mm"])
    c = np.asarray(s["center_mm"])
    if s["shape"] == "rectangle":
        assert poly.shape == (4, 2)
        assert -90 < s["angle_deg"] <= 90
        w, h = s["size_mm"]
        local = (poly - c) @ rotation_matrix(s["angle_deg"])
        np.testing.assert_allclose(np.abs(local), np.tile([w / 2, h / 2], (4, 1)), atol=1e-4)
    else:
        assert s["shape"] == "circle"
        assert poly.shape[0] >= 32 and poly.shape[1] == 2
        assert s["angle_deg"] == 0.0
        np.testing.assert_allclose(np.hypot(*(poly - c).T), s["size_mm"][0] / 2, atol=1e-4)


@pytest.mark.parametrize("carrier", CARRIERS)
def test_every_carrier_renders_a_valid_bundle(tmp_path: Path, carrier: str) -> None:
    out = simulate(tmp_path / carrier, carrier=carrier, seed=3, frame_scale=SCALE)
    bundle = open_bundle(out)
    assert bundle.manifest.carrier == carrier
    assert bundle.manifest.context["microscope"] == "sim"
    ((spec, img),) = list(bundle)
    assert img.shape[:2] == (750, 1000)
    assert img.dtype == np.uint8 and img.ndim == 2  # easy: 8-bit grey
    assert 0.0 < abs(spec.pose.rotation_deg) < 1.0
    gt = json.loads((out / "ground_truth.json").read_text())
    assert gt["version"] == 1 and gt["carrier"] == carrier
    assert set(gt) >= {"samples", "plate", "structures", "barcodes", "provenance", "stats"}
    assert gt["samples"], "every simulated carrier has sample places"
    element = {
        "slide": "cover_glass",
        "multiwell": "well",
        "chamber_slide": "chamber",
        "petri_dish": "dish_glass",
    }
    for s in gt["samples"]:
        assert s["element"] == element[carrier]
        _check_sample_shape(s)
    if carrier == "multiwell":
        assert gt["plate"] is not None
    else:
        assert gt["plate"] is None
        centres = [tuple(s["center_mm"]) for s in gt["samples"]]
        assert centres == sorted(centres)
    if carrier in ("slide", "chamber_slide"):
        fmts = sorted(b["format"] for b in gt["barcodes"])
        assert fmts == ["CODE_128", "QR_CODE"]
        assert all(len(b["polygon_mm"]) == 4 and b["text"] for b in gt["barcodes"])
    # everything lies inside the holder opening
    ow, oh = gt["provenance"]["simulator"]["holder_opening_mm"]
    for s in gt["samples"]:
        p = np.asarray(s["polygon_mm"])
        assert p.min() > 0 and p[:, 0].max() < ow and p[:, 1].max() < oh


def test_96_well_plate_ground_truth() -> None:
    for seed in range(40):
        scene = make_scene("multiwell", seed)
        if scene.plate is not None and scene.plate.wells == 96:
            break
    else:  # pragma: no cover - the generator picks 96 wells often
        pytest.fail("no 96-well plate in 40 seeds")
    gt = ground_truth(scene)
    wells = gt["samples"]
    names = [w["label"] for w in wells]
    assert names == [f"{r}{c}" for r in "ABCDEFGH" for c in range(1, 13)]
    plate = gt["plate"]
    assert (plate["wells"], plate["rows"], plate["cols"]) == (96, 8, 12)
    assert plate["well_spacing_mm"] == [9.0, 9.0] and plate["circular_wells"] is True
    assert plate["well_size_mm"] == pytest.approx(6.4)
    assert wells[0]["center_mm"] == plate["a1_center_mm"]
    c = np.array([w["center_mm"] for w in wells]).reshape(8, 12, 2)
    np.testing.assert_allclose(np.hypot(*np.diff(c, axis=1).T), 9.0, atol=1e-5)
    np.testing.assert_allclose(np.hypot(*np.diff(c, axis=0).T), 9.0, atol=1e-5)
    a = math.radians(plate["rotation_deg"])
    step = c[0, 1] - c[0, 0]
    np.testing.assert_allclose(step, [9 * math.cos(a), 9 * math.sin(a)], atol=1e-5)
    # A1 sits 14.38 / 11.24 mm from the plate's top-left corner (SBS)
    corner = scene.plate.body.polygon()[0]
    local = (np.asarray(plate["a1_center_mm"]) - corner) @ rotation_matrix(plate["rotation_deg"])
    np.testing.assert_allclose(local, [14.38, 11.24], atol=1e-4)


def test_same_seed_same_bytes(tmp_path: Path) -> None:
    a = simulate(tmp_path / "a", carrier="slide", seed=11, difficulty="hard", frame_scale=0.2)
    b = simulate(tmp_path / "b", carrier="slide", seed=11, difficulty="hard", frame_scale=0.2)
    c = simulate(tmp_path / "c", carrier="slide", seed=12, difficulty="hard", frame_scale=0.2)
    for name in ("manifest.json", "ground_truth.json", "frame_000.png"):
        assert (a / name).read_bytes() == (b / name).read_bytes()
    assert (a / "frame_000.png").read_bytes() != (c / "frame_000.png").read_bytes()
    img = cv2.imread(str(a / "frame_000.png"), cv2.IMREAD_UNCHANGED)
    assert img is not None
    assert img.dtype == np.uint16  # hard: 16-bit


def test_reported_pose_differs_from_true_pose(tmp_path: Path) -> None:
    out = simulate(tmp_path / "p", carrier="petri_dish", seed=2, frame_scale=0.1)
    manifest = json.loads((out / "manifest.json").read_text())
    gt = json.loads((out / "ground_truth.json").read_text())
    rep = manifest["frames"][0]
    true = gt["provenance"]["simulator"]["true_poses"][0]
    err = np.hypot(*(np.subtract(rep["center_mm"], true["center_mm"])))
    assert 0.0 < err < 0.1
    assert rep["rotation_deg"] != 0.0


def _edge_points(shape: Rect | Circle, step: float = 0.25) -> np.ndarray:
    if isinstance(shape, Circle):
        n = max(32, int(math.pi * shape.diameter / step))
        t = np.linspace(0, 2 * math.pi, n, endpoint=False)
        r = shape.diameter / 2
        return np.stack([shape.center[0] + r * np.cos(t), shape.center[1] + r * np.sin(t)], 1)
    poly = shape.polygon()
    pts = []
    for i in range(4):
        p, q = poly[i], poly[(i + 1) % 4]
        n = max(2, int(np.hypot(*(q - p)) / step))
        t = np.linspace(0.05, 0.95, n)[:, None]
        pts.append(p + t * (q - p))
    return np.concatenate(pts)


def test_cover_glass_edge_is_visible_at_ground_truth() -> None:
    scene = make_scene("slide", 5, "easy")
    assert scene.cover_glasses
    cam = camera_profile("wide", scene.holder_opening_mm, frame_size=(1600, 1200))
    pose = Pose(scene.holder_center_mm, cam.pixel_size_mm, scene.camera_rotation_deg)
    img = render_frame(scene, pose, cam.width, cam.height, rng=np.random.default_rng(0))
    f = img.astype(np.float32)
    grad = np.hypot(cv2.Sobel(f, cv2.CV_32F, 1, 0), cv2.Sobel(f, cv2.CV_32F, 0, 1))
    # strongest gradient within 2 px of each ground-truth edge point
    near = cv2.dilate(grad, np.ones((5, 5), np.uint8))
    geom = FrameGeometry(pose, cam.width, cam.height)
    assert scene.slide is not None
    slide_px = geom.holder_to_pixel(scene.slide.polygon()).astype(np.int32)
    mask = np.zeros(img.shape, np.uint8)
    cv2.fillConvexPoly(mask, slide_px, 1)
    background = float(np.median(grad[mask > 0]))
    for g in scene.cover_glasses:
        uv = np.round(geom.holder_to_pixel(_edge_points(g.shape))).astype(int)
        on_edge = near[uv[:, 1], uv[:, 0]]
        assert np.median(on_edge) > 3 * background + 5, (np.median(on_edge), background)
        # and not just anywhere: 1 mm inside the cover glass it is much weaker
        c = np.asarray(g.shape.center)
        inner = c + (_edge_points(g.shape) - c) * 0.8
        uv_in = np.round(geom.holder_to_pixel(inner)).astype(int)
        assert np.median(on_edge) > 2 * np.median(near[uv_in[:, 1], uv_in[:, 0]])


@pytest.mark.parametrize("carrier", ["slide", "multiwell"])
def test_narrow_frames_cover_the_holder_opening(carrier: str) -> None:
    scene = make_scene(carrier, 1)
    cam = camera_profile("narrow", scene.holder_opening_mm)
    assert (cam.width, cam.height, cam.pixel_size_mm) == (1600, 1200, 0.0125)
    poses = overview_path(cam, scene.holder_opening_mm, rotation_deg=scene.reported_rotation_deg)
    expected = {"slide": range(12, 19), "multiwell": range(48, 64)}[carrier]
    assert len(poses) in expected
    ow, oh = scene.holder_opening_mm
    gx, gy = np.meshgrid(np.linspace(0, ow, 200), np.linspace(0, oh, 150))
    pts = np.stack([gx.ravel(), gy.ravel()], 1)
    covered = np.zeros(len(pts), bool)
    for i, p in enumerate(poses):
        geom = FrameGeometry(p, cam.width, cam.height)
        uv = geom.holder_to_pixel(pts)
        covered |= (
            (uv[:, 0] >= 0)
            & (uv[:, 0] <= cam.width - 1)
            & (uv[:, 1] >= 0)
            & (uv[:, 1] <= cam.height - 1)
        )
        if i:  # serpentine: consecutive frames are neighbours that overlap
            d = np.abs(np.subtract(p.center_mm, poses[i - 1].center_mm))
            assert d[0] < 0.9 * 20.0 and d[1] < 0.9 * 15.0
    assert covered.all()


def test_narrow_bundle_small(tmp_path: Path) -> None:
    out = simulate(tmp_path / "n", carrier="slide", profile="narrow", seed=4, frame_scale=0.1)
    bundle = open_bundle(out)
    assert len(bundle.manifest.frames) >= 12
    assert all(f.pose.pixel_size_mm == pytest.approx(0.125) for f in bundle.manifest.frames)


@pytest.mark.parametrize(
    ("kwargs", "word"),
    [
        ({"carrier": "tray"}, "carrier"),
        ({"profile": "tele"}, "profile"),
        ({"difficulty": "insane"}, "difficulty"),
    ],
)
def test_unknown_values_name_the_allowed_ones(tmp_path: Path, kwargs: dict, word: str) -> None:
    with pytest.raises(ValueError, match=word) as exc:
        simulate(tmp_path / "x", **kwargs)
    assert "one of" in str(exc.value)
    assert not (tmp_path / "x").exists()
