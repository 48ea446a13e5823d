"""Barcodes and 2D codes on slide labels, read from the crops identification already has.

The selection stage rarely marks a printed code as ``label`` (a barcode's bars are a
coherent texture, like an edge), so every crop is tested cheaply for code-like
texture (dense strong gradients and both dark and bright ink); touching code-like
crops of one frame are pasted onto one canvas at their frame positions (a code cut
by a tile border reads whole again; pixels outside the selected crops are never
read) and the canvas is given to OpenCV's QR code and barcode decoders. Corners come
back in holder mm (SPEC section 1).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from samplescout.contracts import Region
from samplescout.geometry import FrameGeometry

#: OpenCV barcode type names -> SPEC (ZXing-style) symbology names.
_FORMATS = {
    "CODE_128": "CODE_128",
    "CODE_39": "CODE_39",
    "EAN_13": "EAN_13",
    "EAN_8": "EAN_8",
    "UPC_A": "UPC_A",
    "UPC_E": "UPC_E",
    "ITF": "ITF",
    "CODABAR": "CODABAR",
    "QR_CODE": "QR_CODE",
}


@dataclass(frozen=True)
class LabelReaderConfig:
    """Thresholds of :func:`read_codes`.

    ``min_edge_density``: least share of pixels on strong gradients for a code-like
    crop; ``min_ink``: least share of both dark and bright pixels; ``max_canvas_px``:
    largest canvas side; ``min_module_px``: canvases whose codes would be finer than
    this are enlarged before decoding (its expected module size is unknown, so small
    canvases are read at 1x and 2x).
    """

    min_edge_density: float = 0.12
    min_ink: float = 0.08
    max_canvas_px: int = 2048
    upscale_below_px: int = 600


def looks_like_code(crop: np.ndarray, config: LabelReaderConfig | None = None) -> bool:
    """Whether a grey float crop has the dense two-tone texture of printed codes."""
    cfg = config or LabelReaderConfig()
    img = np.asarray(crop, dtype=np.float32)
    if img.ndim != 2 or min(img.shape) < 16:
        return False
    lo, hi = np.percentile(img, [5, 95])
    span = float(hi - lo)
    if span <= 1e-6:
        return False
    norm = ((img - lo) / span).astype(np.float32)
    gx = cv2.Sobel(norm, cv2.CV_32F, 1, 0, ksize=3, scale=0.125)
    gy = cv2.Sobel(norm, cv2.CV_32F, 0, 1, ksize=3, scale=0.125)
    density = float(np.mean(np.hypot(gx, gy) > 0.15))
    dark = float(np.mean(norm < 0.35))
    bright = float(np.mean(norm > 0.65))
    return density >= cfg.min_edge_density and min(dark, bright) >= cfg.min_ink


def read_codes(
    crops: Sequence[tuple[Region, np.ndarray]],
    geometry: FrameGeometry,
    config: LabelReaderConfig | None = None,
) -> list[dict[str, Any]]:
    """Codes in the crops of one frame: ``{"format", "text", "polygon_mm"}``, each once.

    Parameters
    ----------
    crops
        ``(region, crop)`` pairs of one frame, crops grey float [0, 1] of
        ``region.box_px`` (the identification stage's input).
    geometry
        That frame's geometry, for holder coordinates.
    """
    cfg = config or LabelReaderConfig()
    chosen = [(r, c) for r, c in crops if r.kind == "label" or looks_like_code(c, cfg)]
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for group in _touching(chosen):
        canvas, origin = _canvas(group, cfg)
        if canvas is None:
            continue
        for fmt, text, pts in _decode(canvas, cfg):
            key = (fmt, text)
            if key in found:
                continue
            poly = geometry.pixel_to_holder(pts + origin)
            found[key] = {
                "format": fmt,
                "text": text,
                "polygon_mm": [[float(x), float(y)] for x, y in poly],
            }
    return [found[k] for k in sorted(found)]


def _touching(
    crops: Sequence[tuple[Region, np.ndarray]], gap_px: int = 4
) -> list[list[tuple[Region, np.ndarray]]]:
    """Groups of crops whose boxes touch or overlap (within ``gap_px``), in region order."""
    items = sorted(crops, key=lambda rc: rc[0].region_index)
    parent = list(range(len(items)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in range(len(items)):
        a = items[i][0].box_px
        for j in range(i + 1, len(items)):
            b = items[j][0].box_px
            if (
                a[0] <= b[2] + gap_px
                and b[0] <= a[2] + gap_px
                and a[1] <= b[3] + gap_px
                and b[1] <= a[3] + gap_px
            ):
                parent[find(j)] = find(i)
    groups: dict[int, list[tuple[Region, np.ndarray]]] = {}
    for i, item in enumerate(items):
        groups.setdefault(find(i), []).append(item)
    return [groups[k] for k in sorted(groups)]


def _canvas(
    group: Sequence[tuple[Region, np.ndarray]], cfg: LabelReaderConfig
) -> tuple[np.ndarray | None, np.ndarray]:
    """The group's crops pasted at their frame positions on a uint8 canvas (grey elsewhere),
    and the canvas origin in frame pixels."""
    x0 = min(r.box_px[0] for r, _ in group)
    y0 = min(r.box_px[1] for r, _ in group)
    x1 = max(r.box_px[2] for r, _ in group)
    y1 = max(r.box_px[3] for r, _ in group)
    origin = np.array([x0, y0], dtype=np.float64)
    if max(x1 - x0, y1 - y0) > cfg.max_canvas_px:
        return None, origin
    values = np.concatenate([np.asarray(c, np.float32).ravel() for _, c in group])
    lo, hi = np.percentile(values, [1, 99])
    scale = 255.0 / max(float(hi - lo), 1e-6)
    canvas = np.full((y1 - y0, x1 - x0), float(np.median(values)), np.float32)
    for r, c in group:
        bx0, by0, bx1, by1 = r.box_px
        canvas[by0 - y0 : by1 - y0, bx0 - x0 : bx1 - x0] = c
    out = np.clip((canvas - lo) * scale, 0, 255).astype(np.uint8)
    return out, origin


def _decode(canvas: np.ndarray, cfg: LabelReaderConfig) -> list[tuple[str, str, np.ndarray]]:
    """``(format, text, corners px)`` of the codes on a canvas, at 1x and, if small, 2x."""
    out: list[tuple[str, str, np.ndarray]] = []
    scales = [1.0, 2.0] if max(canvas.shape) < cfg.upscale_below_px else [1.0]
    qr = cv2.QRCodeDetector()
    bar = cv2.barcode.BarcodeDetector()
    for s in scales:
        img = (
            canvas
            if s == 1.0
            else cv2.resize(canvas, None, fx=s, fy=s, interpolation=cv2.INTER_CUBIC)
        )
        ok, texts, points, _ = qr.detectAndDecodeMulti(img)
        if ok and points is not None:
            for text, pts in zip(texts, points, strict=True):
                if text:
                    out.append(("QR_CODE", str(text), _to_canvas(pts, s)))
        ok, texts, types, points = bar.detectAndDecodeWithType(img)
        if ok and points is not None:
            for text, kind, pts in zip(texts, types, points, strict=True):
                if text:
                    fmt = _FORMATS.get(str(kind).upper().replace("-", "_"), str(kind).upper())
                    out.append((fmt, str(text), _to_canvas(pts, s)))
        if out:
            break
    return out


def _to_canvas(pts: np.ndarray, scale: float) -> np.ndarray:
    """Decoder corners at ``scale`` back to canvas pixel centres."""
    p = np.asarray(pts, dtype=np.float64).reshape(-1, 2)
    return (p + 0.5) / scale - 0.5
