"""Overlay picture: frames stitched into holder coordinates with the localization drawn on."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import cv2
import numpy as np

from samplescout.atomic import write_bytes_atomic
from samplescout.bundle import Bundle
from samplescout.errors import InputError
from samplescout.geometry import rotation_matrix

#: BGR colours per structure class family.
CLASS_COLOURS: dict[str, tuple[int, int, int]] = {
    "straight_cover_glass_edge": (0, 200, 255),
    "round_cover_glass_edge": (0, 200, 255),
    "polygonal_cover_glass_edge": (0, 200, 255),
    "sample_carrier_edge": (255, 128, 0),
    "plate_edge": (255, 128, 0),
    "holding_frame": (160, 160, 160),
    "well": (255, 0, 255),
    "sample_chamber_edge": (255, 0, 200),
    "sample_chamber": (255, 0, 200),
    "label": (0, 0, 255),
}
DEFAULT_COLOUR = (200, 200, 0)
SAMPLE_COLOUR = (0, 220, 0)


def _to_display(img: np.ndarray) -> np.ndarray:
    """8-bit BGR with a robust contrast stretch (16-bit frames are rarely full range)."""
    if img.ndim == 2:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    f = img.astype(np.float32)
    lo, hi = np.percentile(f, [0.5, 99.5])
    f = (f - lo) * (255.0 / max(hi - lo, 1e-6))
    return np.clip(f, 0, 255).astype(np.uint8)


def render_overlay(
    bundle: Bundle, result: Mapping[str, Any], *, max_side: int = 1800
) -> np.ndarray:
    """Stitch the bundle's frames into holder mm and draw samples, structures and codes."""
    frames = bundle.manifest.frames
    footprints = []
    sizes = []
    for spec in frames:
        # Reduced decoding keeps the overlay cheap for large bundles.
        img = cv2.imread(str(bundle.path / spec.file), cv2.IMREAD_REDUCED_COLOR_4)
        if img is None:
            raise InputError(bundle.name, f"frames[{spec.index}].file", "not a readable image")
        sizes.append(img)
        h, w = img.shape[:2]
        fw, fh = w * 4, h * 4
        c = np.array([(fw - 1) / 2, (fh - 1) / 2])
        corners = np.array([[0, 0], [fw, 0], [fw, fh], [0, fh]], float) - c
        m = rotation_matrix(spec.pose.rotation_deg) * spec.pose.pixel_size_mm
        footprints.append(corners @ m.T + np.asarray(spec.pose.center_mm))
    allpts = np.concatenate(footprints)
    lo = allpts.min(axis=0) - 1.0
    hi = allpts.max(axis=0) + 1.0
    mm_per_px = float(max(hi - lo) / max_side)
    cw, ch = (int(np.ceil(v)) for v in (hi - lo) / mm_per_px)
    canvas = np.zeros((ch, cw, 3), np.uint8)
    for spec, img in zip(frames, sizes, strict=True):
        disp = _to_display(img)
        # Reduced pixel (u', v') covers full-res pixels 4u'..4u'+3: centre at 4u' + 1.5.
        full_w, full_h = img.shape[1] * 4, img.shape[0] * 4
        c = np.array([(full_w - 1) / 2, (full_h - 1) / 2])
        a = rotation_matrix(spec.pose.rotation_deg) * spec.pose.pixel_size_mm * 4 / mm_per_px
        t = (np.asarray(spec.pose.center_mm) - lo) / mm_per_px + (
            rotation_matrix(spec.pose.rotation_deg) * spec.pose.pixel_size_mm / mm_per_px
        ) @ (np.array([1.5, 1.5]) - c)
        mat = np.hstack([a, t[:, None]]).astype(np.float64)
        cv2.warpAffine(
            disp, mat, (cw, ch), dst=canvas, flags=cv2.INTER_AREA, borderMode=cv2.BORDER_TRANSPARENT
        )

    def px(points: Any) -> np.ndarray:
        p = (np.asarray(points, float).reshape(-1, 2) - lo) / mm_per_px
        return np.round(p).astype(np.int32)

    for s in result.get("structures", []):
        colour = CLASS_COLOURS.get(s.get("class", ""), DEFAULT_COLOUR)
        cv2.polylines(canvas, [px(s["polygon_mm"])], True, colour, 1, cv2.LINE_AA)
    for b in result.get("barcodes", []):
        pts = px(b["polygon_mm"])
        cv2.polylines(canvas, [pts], True, (0, 0, 255), 2, cv2.LINE_AA)
        x0, y0 = pts.min(axis=0)
        _text(canvas, b.get("text", ""), (int(x0), int(y0)), (0, 0, 255))
    for s in result.get("samples", []):
        pts = px(s["polygon_mm"])
        cv2.polylines(canvas, [pts], True, SAMPLE_COLOUR, 2, cv2.LINE_AA)
        label = f"{s.get('label', '')} {s.get('confidence', 0):.2f}".strip()
        cx, cy = px([s["center_mm"]])[0]
        _text(canvas, label, (int(cx), int(cy)), SAMPLE_COLOUR)
    _text(
        canvas,
        f"{result.get('carrier', '?')}: {len(result.get('samples', []))} samples",
        (10, 24),
        (255, 255, 255),
    )
    return canvas


def _text(img: np.ndarray, text: str, org: tuple[int, int], colour: tuple[int, int, int]) -> None:
    if not text:
        return
    cv2.putText(img, text, org, cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(img, text, org, cv2.FONT_HERSHEY_SIMPLEX, 0.5, colour, 1, cv2.LINE_AA)


def write_overlay(path: str | os.PathLike[str], bundle: Bundle, result: Mapping[str, Any]) -> None:
    ok, data = cv2.imencode(".png", render_overlay(bundle, result))
    if not ok:
        raise OSError(f"could not encode overlay for {path}")
    write_bytes_atomic(path, data.tobytes())
