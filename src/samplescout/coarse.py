"""Coarse data: the cheap reduced version of a frame that the selection stage sees."""

from __future__ import annotations

import cv2
import numpy as np

DEFAULT_FACTOR = 8


def to_gray_float(image: np.ndarray) -> np.ndarray:
    """Grey ``float32`` in [0, 1] from an 8/16-bit grey or BGR image."""
    img = image
    if img.ndim == 3:
        img = cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_BGR2GRAY)
    scale = 65535.0 if img.dtype == np.uint16 else 255.0
    return img.astype(np.float32) * np.float32(1.0 / scale)


def make_coarse(image: np.ndarray, factor: int = DEFAULT_FACTOR) -> np.ndarray:
    """Reduce a full-resolution frame by ``factor`` (area average) to grey ``float32``.

    Pixel ``(i, j)`` of the result covers full-resolution pixels
    ``[j*factor, (j+1)*factor) x [i*factor, (i+1)*factor)``; trailing pixels that do not
    fill a whole block are dropped.
    """
    if factor < 1:
        raise ValueError("factor must be >= 1")
    h, w = image.shape[:2]
    ch, cw = h // factor, w // factor
    if ch < 1 or cw < 1:
        raise ValueError(f"frame {w}x{h} is smaller than one coarse block of {factor}")
    img = image[: ch * factor, : cw * factor]
    if img.ndim == 3:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
    small = cv2.resize(img, (cw, ch), interpolation=cv2.INTER_AREA)
    return to_gray_float(small)


def coarse_box_to_full(
    box: tuple[int, int, int, int], factor: int, width: int, height: int, margin: int = 0
) -> tuple[int, int, int, int]:
    """Map a coarse box ``(x0, y0, x1, y1)`` (half-open) to full-resolution pixels."""
    x0, y0, x1, y1 = box
    return (
        max(0, x0 * factor - margin),
        max(0, y0 * factor - margin),
        min(width, x1 * factor + margin),
        min(height, y1 * factor + margin),
    )
