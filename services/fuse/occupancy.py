"""Whether a well holds sample material, from the frames' coarse data.

A LIMS asks which wells of a plate hold samples. A filled well shows its meniscus: the
liquid climbs the wall, so a bright ring runs round the inside of the wall, brighter
than the well's middle; an empty well's floor is as dark at the wall as in the middle
(darker, where the wall meets the floor). The ring's contrast over the middle, relative
to the middle's level (so exposure and 12-bit data in 16-bit frames do not matter), is
the measure: median over the frames that hold the whole well (a well larger than every
frame is not judged: on the development plates, large wells seen in part by the narrow
camera were right only about two times in three). Only coarse data are read.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from samplescout.geometry import FrameGeometry


@dataclass(frozen=True)
class OccupancyConfig:
    """Where the ring and the middle are, and the ring contrast at which a well counts
    as filled (``occupied`` 0.5), with the logistic ``scale`` round it.

    The ring runs from ``ring_outer`` of the radius (clear of the wall's own line)
    inwards by ``ring_mm``, but not past ``ring_inner`` of the radius; the middle is the
    ``middle_mm`` inside the ring (the whole middle of a small well). Both stay close,
    so the shading across a frame (vignetting, the LED ring) is nearly the same on
    both, even where a frame sees only part of a large well.
    """

    ring_outer: float = 0.9
    ring_inner: float = 0.6
    ring_mm: float = 2.5
    middle_mm: float = 3.0
    filled_contrast: float = 0.06
    scale: float = 0.015
    min_pixels: int = 3


def ring_contrast(
    views: Sequence[tuple[np.ndarray, FrameGeometry]],
    center: Sequence[float],
    diameter: float,
    cfg: OccupancyConfig,
) -> float | None:
    """``(mean(ring) - mean(middle)) / mean(middle)`` of a well, median over the frames
    that hold the whole well; ``None`` when none does."""
    r = diameter / 2.0
    lo = max(cfg.ring_inner, cfg.ring_outer - cfg.ring_mm / r)
    mid_lo = max(0.0, lo - cfg.middle_mm / r)
    gap = 0.05
    found = []
    for coarse, geometry in views:
        u, v = geometry.holder_to_pixel(np.asarray([center], dtype=np.float64))[0]
        rp = r / geometry.pose.pixel_size_mm
        h, w = coarse.shape
        x0, x1 = math.floor(u - rp), math.ceil(u + rp) + 1
        y0, y1 = math.floor(v - rp), math.ceil(v + rp) + 1
        if x0 < 0 or y0 < 0 or x1 > w or y1 > h:
            # only a frame that holds the whole well: across a frame in part, the
            # shading of the frame (and the wall's shadow) reads like a meniscus
            continue
        yy, xx = np.mgrid[y0:y1, x0:x1]
        d = np.hypot(xx - u, yy - v) / rp
        sub = coarse[y0:y1, x0:x1]
        ring = sub[(d > lo) & (d < cfg.ring_outer)]
        middle = sub[(d > mid_lo) & (d < lo - gap)]
        if middle.size < cfg.min_pixels or ring.size < cfg.min_pixels:
            continue
        level = float(middle.mean())
        if level <= 0.0:
            continue
        found.append((float(ring.mean()) - level) / level)
    return float(np.median(found)) if found else None


def well_occupancy(
    views: Sequence[tuple[np.ndarray, FrameGeometry]],
    center: Sequence[float],
    diameter: float,
    cfg: OccupancyConfig | None = None,
) -> float | None:
    """How likely the well at ``center`` (``diameter`` mm; a square well's side) holds
    sample material, 0..1, or ``None`` when no frame sees it."""
    cfg = cfg or OccupancyConfig()
    contrast = ring_contrast(views, center, diameter, cfg)
    if contrast is None:
        return None
    z = max(-30.0, min(30.0, (contrast - cfg.filled_contrast) / cfg.scale))
    return round(1.0 / (1.0 + math.exp(-z)), 4)
