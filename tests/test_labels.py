"""Reading the barcode and QR code of a simulated slide label."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from samplescout.geometry import FrameGeometry, Pose
from samplescout.identify.labels import read_codes

scene_mod = pytest.importorskip("samplescout.acquire.scene")


@pytest.mark.parametrize("seed", [0, 3])
def test_codes_of_a_simulated_label(seed: int) -> None:
    scene = scene_mod.make_scene("slide", seed, "easy")
    label = scene.label
    assert label is not None
    # The label decal seen by a camera of 0.04 mm pixels, aligned with the label.
    rgba = label.rgba
    grey = (rgba[..., 0] * 0.114 + rgba[..., 1] * 0.587 + rgba[..., 2] * 0.299).astype(np.float32)
    shrink = 2
    img = cv2.resize(grey, None, fx=1 / shrink, fy=1 / shrink, interpolation=cv2.INTER_AREA)
    h, w = img.shape
    geometry = FrameGeometry(
        Pose(label.rect.center, label.texel_mm * shrink, label.rect.angle_deg), w, h
    )
    codes = read_codes([((0, 0, w, h), img)], geometry)
    truth = {(b.format, b.text): b.polygon_mm for b in scene.barcodes}
    assert {(c["format"], c["text"]) for c in codes} == set(truth)
    for c in codes:
        centre = np.mean(c["polygon_mm"], axis=0)
        # OpenCV's barcode boxes hug the bars loosely; QR corners are exact.
        tol = 0.3 if c["format"] == "QR_CODE" else 0.6
        assert math.dist(centre, truth[(c["format"], c["text"])].mean(axis=0)) < tol


def _code128_image(text: str, module: int = 5) -> np.ndarray:
    """A Code 128 (set B) symbol drawn as bars, with a dark border before its quiet zone."""
    from barcode.charsets import code128

    values = [104, *(code128.B[c] for c in text)]
    check = (values[0] + sum(i * v for i, v in enumerate(values[1:], start=1))) % 103
    pattern = "".join(code128.CODES[v] for v in [*values, check]) + code128.STOP + "11"
    row = np.concatenate(
        [
            np.zeros(6 * module),  # the dark edge of whatever lies beside the label
            np.ones(12 * module),  # quiet zone
            np.array([0.0 if b == "1" else 1.0 for b in pattern]).repeat(module),
            np.ones(12 * module),
        ]
    )
    img = 0.1 + 0.8 * np.tile(row, (40 * module, 1)).astype(np.float32)
    img = np.pad(img, ((60, 60), (0, 20)), constant_values=0.9)
    return cv2.GaussianBlur(img, (0, 0), 1.0)  # optics: the detector needs soft edges


def test_code128_is_read_when_the_crop_starts_on_something_dark() -> None:
    img = _code128_image("S-2024-0042")
    h, w = img.shape
    geometry = FrameGeometry(Pose((10.0, 10.0), 0.02, 0.0), w, h)
    codes = read_codes([((0, 0, w, h), img)], geometry)
    assert ("CODE_128", "S-2024-0042") in {(c["format"], c["text"]) for c in codes}
