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


def _ean13_image(first12: str, module: int = 4) -> tuple[str, np.ndarray]:
    """An EAN-13 symbol (its 13 digits with the check digit, and the drawing)."""
    left = ["0001101", "0011001", "0010011", "0111101", "0100011"]
    left += ["0110001", "0101111", "0111011", "0110111", "0001011"]
    even = ["".join("1" if b == "0" else "0" for b in code)[::-1] for code in left]
    right = ["".join("1" if b == "0" else "0" for b in code) for code in left]
    parity = ["LLLLLL", "LLGLGG", "LLGGLG", "LLGGGL", "LGLLGG"]
    parity += ["LGGLLG", "LGGGLL", "LGLGLG", "LGLGGL", "LGGLGL"]
    digits = [int(c) for c in first12]
    check = (10 - sum(d * (3 if i % 2 else 1) for i, d in enumerate(digits)) % 10) % 10
    digits.append(check)
    bits = "101"
    pairs = zip(parity[digits[0]], digits[1:7], strict=True)
    bits += "".join((left if p == "L" else even)[d] for p, d in pairs)
    bits += "01010" + "".join(right[d] for d in digits[7:]) + "101"
    bars = np.array([0.0 if b == "1" else 1.0 for b in bits]).repeat(module)
    row = np.concatenate([np.ones(12 * module), bars, np.ones(12 * module)])
    img = 0.1 + 0.8 * np.tile(row, (50 * module, 1)).astype(np.float32)
    img = np.pad(img, ((60, 60), (20, 20)), constant_values=0.9)
    return "".join(map(str, digits)), cv2.GaussianBlur(img, (0, 0), 1.0)


def test_retail_codes_are_read_only_when_asked_for() -> None:
    """EAN / UPC: OpenCV's reader makes valid but wrong numbers of undersampled Code 128
    symbols, so they are reported only with ``retail_codes`` (and confirmed at a second
    scale); a Code 128 symbol is read either way."""
    from samplescout.identify.labels import LabelReaderConfig

    text, img = _ean13_image("400638133393")
    h, w = img.shape
    geometry = FrameGeometry(Pose((10.0, 10.0), 0.02, 0.0), w, h)
    assert read_codes([((0, 0, w, h), img)], geometry) == []
    codes = read_codes([((0, 0, w, h), img)], geometry, LabelReaderConfig(retail_codes=True))
    assert [(c["format"], c["text"]) for c in codes] == [("EAN_13", text)]
    img = _code128_image("S-2024-0042")
    h, w = img.shape
    geometry = FrameGeometry(Pose((10.0, 10.0), 0.02, 0.0), w, h)
    codes = read_codes([((0, 0, w, h), img)], geometry, LabelReaderConfig(retail_codes=True))
    assert [(c["format"], c["text"]) for c in codes] == [("CODE_128", "S-2024-0042")]
