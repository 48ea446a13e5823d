from __future__ import annotations

import json
import time

import cv2
import numpy as np
import pytest

from samplescout.coarse import make_coarse
from samplescout.geometry import FrameGeometry, Pose
from samplescout.select.base import Selector
from samplescout.select.classical import ClassicalSelector, noise_sigma

W, H = 1600, 1200
GEOM = FrameGeometry(Pose((20.0, 15.0), 0.0125, 0.3), W, H)


def _frame(seed: int = 0, noise: float = 0.02) -> np.ndarray:
    """Grey frame with one faint thin vertical line at column 800, rows 300..900."""
    rng = np.random.default_rng(seed)
    img = np.full((H, W), 0.4, np.float32) + rng.normal(0, noise, (H, W)).astype(np.float32)
    img[300:900, 799:802] += 0.05
    return (np.clip(img, 0, 1) * 255).astype(np.uint8)


def test_classical_selector_is_a_selector() -> None:
    assert isinstance(ClassicalSelector(), Selector)


def test_noise_sigma_ignores_shading() -> None:
    rng = np.random.default_rng(1)
    ramp = np.tile(np.linspace(0, 0.5, 400, dtype=np.float32), (300, 1))
    img = ramp + rng.normal(0, 0.01, ramp.shape).astype(np.float32)
    assert noise_sigma(img) == pytest.approx(0.01, rel=0.1)


def test_faint_line_maps_to_full_res_boxes_and_holder_polygons() -> None:
    coarse = make_coarse(_frame())
    regions = ClassicalSelector().select(coarse, frame_index=3, geometry=GEOM, factor=8)
    assert regions, "the faint line must be selected"
    on_line = [r for r in regions if r.box_px[0] <= 800 < r.box_px[2]]
    assert on_line and on_line[0] is regions[0]
    covered = np.zeros(H, bool)
    for r in on_line:
        x0, y0, x1, y1 = r.box_px
        assert x1 - x0 <= 256 and y1 - y0 <= 256
        covered[y0:y1] = True
        assert r.frame_index == 3
        assert r.kind == "structure"
        np.testing.assert_allclose(r.polygon_mm, GEOM.box_to_holder(*r.box_px))
        # A vertical line in the frame runs at 90 deg + the camera rotation in holder mm.
        assert abs(abs(r.orientation_deg) - 89.7) < 3.0
    assert covered[320:880].all()
    probs = [r.probability for r in regions]
    assert probs == sorted(probs, reverse=True)
    assert [r.region_index for r in regions] == list(range(len(regions)))
    assert all(0.0 <= p <= 1.0 for p in probs)


def test_pure_noise_selects_little() -> None:
    rng = np.random.default_rng(5)
    img = (np.clip(0.4 + rng.normal(0, 0.02, (H, W)), 0, 1) * 255).astype(np.uint8)
    regions = ClassicalSelector().select(make_coarse(img), frame_index=0, geometry=GEOM, factor=8)
    area = sum((r.box_px[2] - r.box_px[0]) * (r.box_px[3] - r.box_px[1]) for r in regions)
    assert area < 0.02 * W * H


def test_edge_on_texture_ranks_first() -> None:
    """Gradient energy counts relative to the local texture level, so a straight edge
    across a textured surface outranks the texture."""
    rng = np.random.default_rng(2)
    tex = cv2.GaussianBlur(rng.normal(0, 1, (H, W)).astype(np.float32), (0, 0), 6)
    img = 0.4 + 0.02 * tex / tex.std() + rng.normal(0, 0.01, (H, W)).astype(np.float32)
    img[:, 800:] += 0.04
    coarse = make_coarse((np.clip(img, 0, 1) * 255).astype(np.uint8))
    regions = ClassicalSelector().select(coarse, frame_index=0, geometry=GEOM, factor=8)
    on_edge = [r.box_px[0] <= 816 and r.box_px[2] >= 784 for r in regions[:10]]
    assert on_edge[0] and sum(on_edge) >= 4


def test_select_is_fast_on_a_wide_coarse_frame() -> None:
    coarse = np.random.default_rng(0).random((375, 500), dtype=np.float32) * 0.05 + 0.4
    sel = ClassicalSelector()
    sel.select(coarse, frame_index=0, geometry=GEOM, factor=8)
    t = time.perf_counter()
    for _ in range(5):
        sel.select(coarse, frame_index=0, geometry=GEOM, factor=8)
    assert (time.perf_counter() - t) / 5 < 0.05


def test_ridge_width_reads_a_thin_strip_along_an_edge() -> None:
    rng = np.random.default_rng(7)
    img = np.full((H, W), 0.4, np.float32) + rng.normal(0, 0.01, (H, W)).astype(np.float32)
    img[:, 300:] += 0.05  # a long straight edge along column 300
    coarse = make_coarse((np.clip(img, 0, 1) * 255).astype(np.uint8))
    wide = ClassicalSelector().select(coarse, frame_index=0, geometry=GEOM, factor=8)
    thin = ClassicalSelector(ridge_width=1).select(coarse, frame_index=0, geometry=GEOM, factor=8)
    wide = [r for r in wide if r.box_px[0] <= 300 <= r.box_px[2]]
    thin = [r for r in thin if r.box_px[0] <= 300 <= r.box_px[2]]
    covered = np.zeros(H, bool)
    for r in thin:
        covered[r.box_px[1] : r.box_px[3]] = True
    assert covered.mean() > 0.9, "the strip follows the whole edge"
    assert max(r.box_px[2] - r.box_px[0] for r in thin) <= 48
    assert sum(_area(r) for r in thin) < 0.8 * sum(_area(r) for r in wide)


def test_long_structures_outrank_short_ones() -> None:
    rng = np.random.default_rng(8)
    img = np.full((H, W), 0.4, np.float32) + rng.normal(0, 0.01, (H, W)).astype(np.float32)
    for x, y in ((900, 300), (1200, 700), (1000, 1000)):  # strong dust specks
        cv2.circle(img, (x, y), 10, 0.1, -1)
    img[:, 300:302] += 0.03  # a faint line, 15 mm long
    coarse = make_coarse((np.clip(img, 0, 1) * 255).astype(np.uint8))
    regions = ClassicalSelector().select(coarse, frame_index=0, geometry=GEOM, factor=8)
    on_line = [r.box_px[0] <= 300 <= r.box_px[2] for r in regions]
    assert sum(on_line) >= 2 and not all(on_line)
    first_speck = on_line.index(False)
    assert all(on_line[:first_speck]) and not any(on_line[first_speck:])


def _area(r) -> int:  # type: ignore[no-untyped-def]
    return (r.box_px[2] - r.box_px[0]) * (r.box_px[3] - r.box_px[1])


def test_printed_codes_become_label_regions_that_read(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from samplescout.acquire.simulator import simulate
    from samplescout.bundle import open_bundle
    from samplescout.coarse import to_gray_float
    from samplescout.geometry import polygon_iou
    from samplescout.identify.labels import read_codes

    path = simulate(tmp_path / "b", carrier="slide", profile="wide", seed=0, difficulty="easy")
    bundle = open_bundle(path)
    image = bundle.read_image(0)
    geometry = bundle.geometry(0, image)
    regions = ClassicalSelector().select(
        make_coarse(image), frame_index=0, geometry=geometry, factor=8
    )
    labels = [r for r in regions if r.kind == "label"]
    assert labels and regions[0].kind == "label", "codes are read first"
    truth = json.loads((path / "ground_truth.json").read_text())
    qr = next(b for b in truth["barcodes"] if b["format"] == "QR_CODE")
    # The QR code lies inside one label region, quiet zone included.
    assert any(
        polygon_iou(qr["polygon_mm"], r.polygon_mm) > 0
        and all(
            r.polygon_mm[0][0] <= x <= r.polygon_mm[2][0]
            and r.polygon_mm[0][1] <= y <= r.polygon_mm[2][1]
            for x, y in qr["polygon_mm"]
        )
        for r in labels
    )
    grey = to_gray_float(image)
    crops = [(r.box_px, grey[r.box_px[1] : r.box_px[3], r.box_px[0] : r.box_px[2]]) for r in labels]
    read = {(c["format"], c["text"]) for c in read_codes(crops, geometry)}
    # Both codes: the QR code, and the barcode whose sparse stretches split its block.
    assert read == {(b["format"], b["text"]) for b in truth["barcodes"]}
    # Label regions are small: the codes, not the whole label or frame.
    assert sum(_area(r) for r in labels) < 0.08 * image.shape[0] * image.shape[1]


def test_a_code_finer_than_a_coarse_pixel_is_found_on_paper_only() -> None:
    """A coarse pixel larger than a code's modules averages them: the code's contrast
    drops below the usual threshold. On such coarse data a weaker block still counts
    where it is print on paper (a label), not where the same texture lies on the slide."""
    rng = np.random.default_rng(1)
    img = np.full((120, 240), 0.3, np.float32)
    img[20:90, 140:210] = 0.85  # paper, 25 mm square at 0.36 mm per coarse pixel
    for y, x, base in ((40, 160, 0.85), (40, 40, 0.4)):
        modules = (rng.random((22, 22)) > 0.5).astype(np.float32)
        img[y : y + 22, x : x + 22] = base - 0.2 * modules
    img += rng.normal(0, 0.003, img.shape).astype(np.float32)
    (box,) = ClassicalSelector().code_blocks(img, 0.36)
    assert box[0] <= 160 and box[2] >= 182 and box[1] <= 40 and box[3] >= 62
    assert ClassicalSelector().code_blocks(img, 0.2) == []  # fine pixels: no such block
