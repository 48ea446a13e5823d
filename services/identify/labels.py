"""Barcodes and 2D codes on slide labels, read from the crops identification already has.

The selection stage rarely marks a printed code as ``label`` (a dense barcode counts
as background texture there), so every crop identification already holds is tested
cheaply for code-like texture (dense strong gradients with both dark and bright
ink). Around each group of touching code-like crops a bounded box is read (a crop,
counted in ``full_res_pixels_read``; never the whole frame) and given to OpenCV's QR
code and barcode decoders. Corners come back in holder mm (SPEC section 1).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
from barcode.charsets import code128 as _code128

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
    crop; ``min_ink``: least share of both dark and bright pixels;
    ``min_contrast_to_noise``: least ink contrast in units of the crop's pixel noise
    (print is black on white, far above noise and faint edges); ``grow_mm`` and
    ``max_box_mm``: growth and largest side of the boxes read around code-like crops;
    ``max_boxes``: most boxes read per frame (the groups with the most code-like
    crops); ``upscale_below_px``: smaller boxes are also decoded at 2x (fine modules).
    """

    min_edge_density: float = 0.06
    min_ink: float = 0.1
    min_contrast_to_noise: float = 25.0
    grow_mm: float = 6.0
    max_boxes: int = 4
    max_box_mm: float = 30.0
    upscale_below_px: int = 600


def looks_like_code(crop: np.ndarray, config: LabelReaderConfig | None = None) -> bool:
    """Whether a grey float crop has the dense two-tone texture of printed codes."""
    cfg = config or LabelReaderConfig()
    img = np.asarray(crop, dtype=np.float32)
    if img.ndim != 2 or min(img.shape) < 16:
        return False
    # Order statistics on every other pixel: the same answer at a quarter of the cost,
    # which matters because this runs on every selected crop.
    lo, hi = np.percentile(img[::2, ::2], [5, 95])
    span = float(hi - lo)
    if span <= 1e-6:
        return False
    norm = ((img - lo) / span).astype(np.float32)
    gx = cv2.Sobel(norm, cv2.CV_32F, 1, 0, ksize=3, scale=0.125)
    gy = cv2.Sobel(norm, cv2.CV_32F, 0, 1, ksize=3, scale=0.125)
    density = float(np.mean(np.hypot(gx, gy) > 0.15))
    dark = float(np.mean(norm < 0.35))
    bright = float(np.mean(norm > 0.65))
    lap = cv2.Laplacian(img, cv2.CV_32F, ksize=1)
    # 4.47: the Laplacian kernel's L2 norm.
    noise = 1.4826 * float(np.median(np.abs(lap[::2, ::2]))) / 4.47 + 1e-9
    return (
        density >= cfg.min_edge_density
        and min(dark, bright) >= cfg.min_ink
        and span / noise >= cfg.min_contrast_to_noise
    )


def code_boxes(
    crops: Sequence[tuple[Region, np.ndarray]],
    geometry: FrameGeometry,
    config: LabelReaderConfig | None = None,
) -> list[tuple[int, int, int, int]]:
    """Frame pixel boxes to read for codes: around touching code-like crops, grown.

    The selection stage keeps only the parts of a label it finds edge-like (text lines,
    the ends of a barcode), so the box around code-like crops is grown by
    ``grow_mm`` (at most ``max_box_mm`` a side) to take the whole code in.
    """
    cfg = config or LabelReaderConfig()
    ps = geometry.pose.pixel_size_mm
    chosen = [(r, c) for r, c in crops if r.kind == "label" or looks_like_code(c, cfg)]
    grow = round(cfg.grow_mm / ps)
    limit = round(cfg.max_box_mm / ps)
    boxes: list[tuple[int, int, int, int]] = []
    groups = sorted(_touching(chosen, gap_px=grow), key=lambda g: (-len(g), g[0][0].region_index))
    for group in groups[: cfg.max_boxes]:
        x0 = min(r.box_px[0] for r, _ in group) - grow
        y0 = min(r.box_px[1] for r, _ in group) - grow
        x1 = max(r.box_px[2] for r, _ in group) + grow
        y1 = max(r.box_px[3] for r, _ in group) + grow
        cx, cy = (x0 + x1) // 2, (y0 + y1) // 2
        x0, x1 = max(x0, cx - limit // 2, 0), min(x1, cx + limit // 2, geometry.width)
        y0, y1 = max(y0, cy - limit // 2, 0), min(y1, cy + limit // 2, geometry.height)
        if x1 - x0 >= 16 and y1 - y0 >= 16:
            boxes.append((int(x0), int(y0), int(x1), int(y1)))
    return boxes


def read_codes(
    crops: Sequence[tuple[tuple[int, int, int, int], np.ndarray]],
    geometry: FrameGeometry,
    config: LabelReaderConfig | None = None,
) -> list[dict[str, Any]]:
    """Codes in some crops of one frame: ``{"format", "text", "polygon_mm"}``, each once.

    Parameters
    ----------
    crops
        ``(box_px, crop)`` pairs, crops grey float [0, 1] of ``box_px`` (usually the
        boxes of :func:`code_boxes`).
    geometry
        That frame's geometry, for holder coordinates.
    """
    cfg = config or LabelReaderConfig()
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for box, crop in crops:
        img = np.asarray(crop, dtype=np.float32)
        if img.size == 0:
            continue
        lo, hi = np.percentile(img, [1, 99])
        u8 = np.clip((img - lo) * (255.0 / max(float(hi - lo), 1e-6)), 0, 255).astype(np.uint8)
        origin = np.array(box[:2], dtype=np.float64)
        for fmt, text, pts in _decode(u8, cfg):
            if (fmt, text) in found:
                continue
            poly = geometry.pixel_to_holder(pts + origin)
            found[(fmt, text)] = {
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
        elif points is not None:  # bars found, but OpenCV reads EAN/UPC only
            for text, pts in _read_code128(img, points):
                out.append(("CODE_128", text, _to_canvas(pts, s)))
        if out:
            break
    return out


def _code128_table() -> dict[tuple[int, ...], int]:
    """Code 128 symbol values by their six bar/space widths (in modules)."""
    table = {}
    for value, pattern in enumerate(_code128.CODES):
        runs = [len(run) for run in _runs_of(pattern)]
        table[tuple(runs)] = value
    return table


def _runs_of(pattern: str) -> list[str]:
    out: list[str] = []
    for ch in pattern:
        if out and out[-1][0] == ch:
            out[-1] += ch
        else:
            out.append(ch)
    return out


_CODE128 = _code128_table()
_STOP_RUNS = tuple(len(r) for r in _runs_of(_code128.STOP))


def _decode_code128(widths: Sequence[float]) -> str | None:
    """Text of a Code 128 symbol from the run widths of a scanline (first run a bar),
    or None when the checksum or a pattern does not fit."""
    values: list[int] = []
    k = 0
    while k + 6 <= len(widths):
        chunk = np.asarray(widths[k : k + 6], dtype=np.float64)
        module = chunk.sum() / 11.0
        key = tuple(int(v) for v in np.clip(np.rint(chunk / module), 1, 4))
        if key == _STOP_RUNS and values:
            break
        if key not in _CODE128:
            return None
        values.append(_CODE128[key])
        k += 6
    else:
        return None
    if len(values) < 3 or values[0] not in (103, 104, 105):
        return None
    data, check = values[1:-1], values[-1]
    if (values[0] + sum(i * v for i, v in enumerate(data, start=1))) % 103 != check:
        return None
    text, mode = [], {103: "A", 104: "B", 105: "C"}[values[0]]
    for v in data:
        if (
            v in (99, 100, 101)
            and not (mode == "A" and v == 101)
            and not (mode == "B" and v == 100)
        ):
            mode = {99: "C", 100: "B", 101: "A"}[v]
        elif mode == "C":
            text.append(f"{v:02d}")
        elif v < 64 or mode == "B":
            text.append(chr(v + 32) if v < 96 else "")
        else:
            text.append(chr(v - 64))
    return "".join(text)


def _read_code128(gray: np.ndarray, quads: np.ndarray) -> list[tuple[str, np.ndarray]]:
    """Code 128 symbols along scanlines through the detector's barcode boxes.

    OpenCV's detector finds the bars (often as several boxes along one symbol); the
    boxes of one symbol are merged and scanned across the bars at a few heights.
    """
    if quads is None or len(quads) == 0:
        return []
    rect = cv2.minAreaRect(np.asarray(quads, np.float32).reshape(-1, 2))
    (cx, cy), (w, h), ang = rect
    if h > w:  # scan along the long side
        w, h, ang = h, w, ang + 90.0
    u = np.array([np.cos(np.radians(ang)), np.sin(np.radians(ang))])
    v = np.array([-u[1], u[0]])
    t = np.arange(-0.6 * w, 0.6 * w, 0.5)
    for off in (0.0, -0.25, 0.25, -0.4, 0.4):
        pts = np.array([cx, cy]) + off * h * v + t[:, None] * u
        line = cv2.remap(
            gray.astype(np.float32),
            pts[:, 0].astype(np.float32).reshape(1, -1),
            pts[:, 1].astype(np.float32).reshape(1, -1),
            cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_REPLICATE,
        ).ravel()
        thr = 0.5 * (float(np.percentile(line, 5)) + float(np.percentile(line, 95)))
        dark = line < thr
        edges = np.flatnonzero(np.diff(dark.astype(np.int8))) + 1
        bounds = np.concatenate([[0], edges, [len(dark)]])
        runs = np.diff(bounds) * 0.5
        first_dark = bool(dark[0])
        # drop the quiet zones: the runs before the first and after the last bar
        start = 0 if first_dark else 1
        stop = len(runs) if dark[-1] else len(runs) - 1
        widths = runs[start:stop]
        for seq in (widths, widths[::-1]):
            text = _decode_code128(list(seq))
            if text:
                corners = cv2.boxPoints(((cx, cy), (w, h), ang))
                return [(text, np.asarray(corners, dtype=np.float64))]
    return []


def _to_canvas(pts: np.ndarray, scale: float) -> np.ndarray:
    """Decoder corners at ``scale`` back to canvas pixel centres."""
    p = np.asarray(pts, dtype=np.float64).reshape(-1, 2)
    return (p + 0.5) / scale - 0.5
