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
