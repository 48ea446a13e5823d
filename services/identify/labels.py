"""Barcodes and 2D codes on slide labels, read from the crops identification already has.

The selection stage boxes printed codes (blocks of dense two-tone print, seen on the
coarse frame) as ``label`` regions, quiet zone included; identification reads those
crops (counted in ``full_res_pixels_read`` like any other) and gives them to OpenCV's
QR code and barcode decoders. Corners come back in holder mm (SPEC section 1).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
from barcode.charsets import code128 as _code128

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
    """Settings of :func:`read_codes`.

    ``upscale_below_px``: smaller crops are also decoded at 2x (fine modules).
    ``retail_codes``: also report EAN / UPC symbols (OpenCV's reader, confirmed at a
    second scale). Off by default: slide labels carry Code 128 and 2D codes, and that
    reader turns an undersampled Code 128 symbol into a valid but wrong number now and
    then (4 of 52 wide half-scale labels of the fresh sets; at two scales alike on one),
    and a wrong sample ID is worse than none.
    """

    upscale_below_px: int = 600
    retail_codes: bool = False


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
        ``label`` regions the selection stage boxes around printed codes).
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
        # OpenCV reads EAN/UPC only, and reads an undersampled Code 128 symbol as one
        # now and then: the Code 128 reading of the same bars, where there is one, wins
        # (it has a check character; a wrong sample ID is worse than none).
        code128 = _read_code128(img, points) if points is not None else []
        for text, pts in code128:
            out.append(("CODE_128", text, _to_canvas(pts, s)))
        if cfg.retail_codes and ok and points is not None and not code128:
            for text, kind, pts in zip(texts, types, points, strict=True):
                if text and _read_again(canvas, bar, str(text), s):
                    fmt = _FORMATS.get(str(kind).upper().replace("-", "_"), str(kind).upper())
                    out.append((fmt, str(text), _to_canvas(pts, s)))
        if out:
            break
    return out


def _read_again(canvas: np.ndarray, bar: Any, text: str, scale: float) -> bool:
    """Whether OpenCV reads ``text`` off the canvas at another scale too: its EAN/UPC
    reader makes a wrong but valid number out of an undersampled symbol of another
    kind now and then, never the same one at two scales (seen on wide half-scale
    frames' Code 128 symbols)."""
    for other in (1.0, 1.5, 2.0):
        if other == scale:
            continue
        img = cv2.resize(canvas, None, fx=other, fy=other, interpolation=cv2.INTER_CUBIC)
        ok, texts, _, _ = bar.detectAndDecodeWithType(img)
        if ok and text in [str(t) for t in texts]:
            return True
    return False


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
        for widths in _symbols(runs, bool(dark[0])):
            for seq in (widths, widths[::-1]):
                text = _decode_code128(list(seq))
                if text:
                    corners = cv2.boxPoints(((cx, cy), (w, h), ang))
                    return [(text, np.asarray(corners, dtype=np.float64))]
    return []


def _symbols(runs: np.ndarray, first_dark: bool) -> list[np.ndarray]:
    """Bar-and-space runs between quiet zones, each starting and ending with a bar, and
    the whole line between its first and last bar; longest first.

    A quiet zone is a light run of at least 3.5 median runs (about 7 modules; no run
    inside a symbol is wider than 4).
    The scanline may start or end on something dark beside the symbol (the label's
    border, print), which must not count as a bar.
    """
    dark = np.zeros(len(runs), bool)
    dark[0 if first_dark else 1 :: 2] = True
    quiet = np.flatnonzero(~dark & (runs >= 3.5 * float(np.median(runs))))
    cuts = [-1, *quiet.tolist(), len(runs)]
    out = []
    for a, b in itertools.pairwise(cuts):
        seg = np.arange(a + 1, b)
        bars = seg[dark[seg]]
        if len(bars) >= 2:
            out.append(runs[bars[0] : bars[-1] + 1])
    bars = np.flatnonzero(dark)
    if len(bars) >= 2:
        out.append(runs[bars[0] : bars[-1] + 1])
    return sorted(out, key=len, reverse=True)


def _to_canvas(pts: np.ndarray, scale: float) -> np.ndarray:
    """Decoder corners at ``scale`` back to canvas pixel centres."""
    p = np.asarray(pts, dtype=np.float64).reshape(-1, 2)
    return (p + 0.5) / scale - 0.5
