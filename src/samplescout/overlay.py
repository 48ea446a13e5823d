"""Overlay picture: frames stitched into holder coordinates with the localization drawn on.

The picture shows, in holder millimetres:

- the frames of the bundle (stitched with their poses; thin grey outlines when there
  are several),
- the fused structure regions, outlined in the colour of their class,
- the localized samples (green outlines) with their names (``A1``...) and confidence,
  names being drawn only where they fit inside the sample,
- the decoded barcodes (red) with their text,
- a legend band below the picture: carrier, sample count, plate pose, one swatch per
  class that occurs.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import cv2
import numpy as np

from samplescout.atomic import write_bytes_atomic
from samplescout.bundle import Bundle
from samplescout.errors import InputError
from samplescout.geometry import rotation_matrix

BGR = tuple[int, int, int]

#: BGR colours per structure class.
CLASS_COLOURS: dict[str, BGR] = {
    "straight_cover_glass_edge": (0, 200, 255),
    "round_cover_glass_edge": (0, 160, 255),
    "polygonal_cover_glass_edge": (0, 230, 200),
    "sample_carrier_edge": (255, 128, 0),
    "plate_edge": (255, 170, 60),
    "holding_frame": (160, 160, 160),
    "spacer": (120, 120, 200),
    "well": (255, 0, 255),
    "sample_chamber_edge": (255, 0, 200),
    "sample_chamber": (200, 80, 255),
    "label": (60, 60, 255),
    "straight_structure": (200, 200, 0),
    "round_structure": (200, 200, 0),
    "polygonal_structure": (200, 200, 0),
}
DEFAULT_COLOUR: BGR = (200, 200, 0)
SAMPLE_COLOUR: BGR = (0, 220, 0)
BARCODE_COLOUR: BGR = (0, 0, 255)
FRAME_COLOUR: BGR = (110, 110, 110)
_FONT = cv2.FONT_HERSHEY_SIMPLEX


def _to_display(img: np.ndarray) -> np.ndarray:
    """8-bit BGR with a robust contrast stretch (16-bit frames are rarely full range)."""
    if img.ndim == 2:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    f = img.astype(np.float32)
    lo, hi = np.percentile(f, [0.5, 99.5])
    f = (f - lo) * (255.0 / max(hi - lo, 1e-6))
    return np.clip(f, 0, 255).astype(np.uint8)


def _stitch(
    bundle: Bundle, max_side: int
) -> tuple[np.ndarray, np.ndarray, float, list[np.ndarray]]:
    """Frames warped into one canvas: (canvas, holder mm of pixel (0, 0), mm per px, footprints)."""
    frames = bundle.manifest.frames
    footprints: list[np.ndarray] = []
    images: list[np.ndarray] = []
    for spec in frames:
        # Reduced decoding keeps the overlay cheap for large bundles.
        img = cv2.imread(str(bundle.path / spec.file), cv2.IMREAD_REDUCED_COLOR_4)
        if img is None:
            raise InputError(bundle.name, f"frames[{spec.index}].file", "not a readable image")
        images.append(img)
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
    for spec, img in zip(frames, images, strict=True):
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
    return canvas, lo, mm_per_px, footprints


def render_overlay(
    bundle: Bundle, result: Mapping[str, Any], *, max_side: int = 1800
) -> np.ndarray:
    """Stitch the bundle's frames into holder mm and draw samples, structures and codes.

    Parameters
    ----------
    bundle
        The frame bundle the result was computed from.
    result
        A SPEC section 3 result document.
    max_side
        Longest side of the stitched picture in pixels (the legend band comes below).

    Returns
    -------
    numpy.ndarray
        An 8-bit BGR image (picture plus legend band).

    Raises
    ------
    InputError
        A frame of the bundle cannot be decoded.
    """
    canvas, lo, mm_per_px, footprints = _stitch(bundle, max_side)
    scale = max(canvas.shape[:2]) / 1800.0
    font = 0.55 * max(scale, 0.6)
    thick = max(1, round(2 * scale))

    def px(points: Any) -> np.ndarray:
        p = (np.asarray(points, float).reshape(-1, 2) - lo) / mm_per_px
        return np.round(p).astype(np.int32)

    if len(footprints) > 1:
        for fp in footprints:
            cv2.polylines(canvas, [px(fp)], True, FRAME_COLOUR, 1, cv2.LINE_AA)

    structures = list(result.get("structures") or [])
    for s in structures:
        colour = _class_colour(s.get("class", ""))
        cv2.polylines(canvas, [px(s["polygon_mm"])], True, colour, thick, cv2.LINE_AA)

    hidden = 0
    for s in result.get("samples") or []:
        pts = px(s["polygon_mm"])
        cv2.polylines(canvas, [pts], True, SAMPLE_COLOUR, thick, cv2.LINE_AA)
        cx, cy = (int(v) for v in px([s["center_mm"]])[0])
        span = _inner_span_px(s, mm_per_px)
        name = str(s.get("label", "") or "")
        conf = f"{float(s.get('confidence', 0.0)):.2f}"
        lines = _fit_lines([[name, conf], [f"{name} {conf}".strip()], [name]], span, font)
        if lines is None:
            hidden += 1
            continue
        _text_block(canvas, lines, (cx, cy), SAMPLE_COLOUR, font, centred=True)

    for b in result.get("barcodes") or []:
        pts = px(b["polygon_mm"])
        cv2.polylines(canvas, [pts], True, BARCODE_COLOUR, thick + 1, cv2.LINE_AA)
        x0, y0 = (int(v) for v in pts.min(axis=0))
        text = f"{b.get('format', '')}: {b.get('text', '')}".strip(": ")
        (_, th), _ = cv2.getTextSize("Ag", _FONT, font, 1)
        _text_block(canvas, [text], (x0, max(y0 - 2 * th, 0)), (255, 255, 255), font)

    return np.vstack([canvas, _legend(result, structures, canvas.shape[1], font, hidden)])


def _class_colour(name: str) -> BGR:
    return CLASS_COLOURS.get(name, DEFAULT_COLOUR)


def _inner_span_px(sample: Mapping[str, Any], mm_per_px: float) -> tuple[float, float]:
    """Width and height (px) of the box a name may use inside the sample's outline."""
    size = [float(v) for v in sample.get("size_mm") or [0.0]]
    if sample.get("shape") == "circle" or len(size) == 1:
        side = size[0] / np.sqrt(2.0)  # the square inscribed in the circle
        return side / mm_per_px, side / mm_per_px
    w, h = size[0], size[1]
    a = abs(np.deg2rad(float(sample.get("angle_deg", 0.0))))
    if a > np.pi / 4:
        w, h = h, w
    return w / mm_per_px, h / mm_per_px


def _fit_lines(
    options: Sequence[Sequence[str]], span: tuple[float, float], font: float
) -> list[str] | None:
    """The first option whose lines fit in ``span`` (px), else ``None``."""
    for lines in options:
        lines = [t for t in lines if t]
        if not lines:
            continue
        w, h = _block_size(lines, font)
        if w <= span[0] * 0.95 and h <= span[1] * 0.95:
            return list(lines)
    return None


def _block_size(lines: Sequence[str], font: float) -> tuple[int, int]:
    sizes = [cv2.getTextSize(t, _FONT, font, 1) for t in lines]
    w = max(s[0][0] for s in sizes) + 4
    h = sum(s[0][1] + s[1] + 2 for s in sizes) + 2
    return w, h


def _text_block(
    img: np.ndarray,
    lines: Sequence[str],
    org: tuple[int, int],
    colour: BGR,
    font: float,
    *,
    centred: bool = False,
) -> None:
    """Lines of text on a dark translucent box; ``org`` is the top left (or the centre)."""
    w, h = _block_size(lines, font)
    x, y = org
    if centred:
        x, y = x - w // 2, y - h // 2
    x = int(np.clip(x, 0, max(img.shape[1] - w, 0)))
    y = int(np.clip(y, 0, max(img.shape[0] - h, 0)))
    box = img[y : y + h, x : x + w]
    box[:] = (box.astype(np.float32) * 0.35).astype(np.uint8)
    cy = y + 1
    for t in lines:
        (tw, th), base = cv2.getTextSize(t, _FONT, font, 1)
        tx = x + (w - tw) // 2 if centred else x + 2
        cy += th
        cv2.putText(img, t, (tx, cy), _FONT, font, colour, 1, cv2.LINE_AA)
        cy += base + 2


def _legend(
    result: Mapping[str, Any],
    structures: Sequence[Mapping[str, Any]],
    width: int,
    font: float,
    hidden: int,
) -> np.ndarray:
    """A band with the title and one swatch per drawn class, wrapped to ``width``."""
    samples = result.get("samples") or []
    title = f"carrier: {result.get('carrier', '?')}   samples: {len(samples)}"
    plate = result.get("plate")
    if isinstance(plate, Mapping) and plate.get("wells"):
        title += (
            f"   plate: {plate.get('wells')} wells ({plate.get('rows')}x{plate.get('cols')}), "
            f"rotation {float(plate.get('rotation_deg', 0.0)):.2f} deg"
        )
    barcodes = result.get("barcodes") or []
    if barcodes:
        title += f"   barcodes: {len(barcodes)}"
    if hidden:
        title += f"   ({hidden} sample names too small to draw)"
    entries: list[tuple[str, BGR]] = [("sample", SAMPLE_COLOUR)]
    if barcodes:
        entries.append(("barcode", BARCODE_COLOUR))
    for name in sorted({str(s.get("class", "")) for s in structures}):
        entries.append((name.replace("_", " "), _class_colour(name)))
    (_, th), base = cv2.getTextSize("Ag", _FONT, font, 1)
    line_h = th + base + 10
    sw = th + 4
    rows: list[list[tuple[str, BGR, int]]] = [[]]
    x = 10
    for text, colour in entries:
        tw = cv2.getTextSize(text, _FONT, font, 1)[0][0]
        item_w = sw + 6 + tw + 24
        if x + item_w > width and rows[-1]:
            rows.append([])
            x = 10
        rows[-1].append((text, colour, x))
        x += item_w
    band = np.full((line_h * (len(rows) + 1) + 8, width, 3), 32, np.uint8)
    y = line_h
    cv2.putText(band, title, (10, y - base), _FONT, font, (255, 255, 255), 1, cv2.LINE_AA)
    for row in rows:
        y += line_h
        for text, colour, x in row:
            cv2.rectangle(band, (x, y - base - th), (x + sw, y - base), colour, -1)
            cv2.putText(
                band, text, (x + sw + 6, y - base), _FONT, font, (230, 230, 230), 1, cv2.LINE_AA
            )
    return band


def encode_overlay(image: np.ndarray, fmt: str = ".png", quality: int = 90) -> bytes:
    """Encode a rendered overlay (``.png`` or ``.jpg``) to bytes."""
    params = [cv2.IMWRITE_JPEG_QUALITY, quality] if fmt in (".jpg", ".jpeg") else []
    ok, data = cv2.imencode(fmt, image, params)
    if not ok:
        raise OSError(f"could not encode the overlay as {fmt}")
    return bytes(data.tobytes())


def write_overlay(path: str | os.PathLike[str], bundle: Bundle, result: Mapping[str, Any]) -> None:
    """Render the overlay of ``result`` on ``bundle`` and write it as a PNG, atomically."""
    try:
        data = encode_overlay(render_overlay(bundle, result))
    except OSError as exc:
        raise OSError(f"{path}: {exc}") from None
    write_bytes_atomic(path, data)
