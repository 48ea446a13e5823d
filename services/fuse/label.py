"""Where a slide's paper label lies, from the frames' coarse data.

A slide label is paper (or a frosted end) across the slide's whole width at one end,
much brighter than the glass part of the slide. No cover glass lies on it, whatever
edges the print on it and its border make. Selection finds the printed codes on a
label, but not always the label: a label may carry no code, or its code may be finer
than a coarse pixel (a wide frame at half scale). Its brightness is seen at any scale.

Along the slide's long axis the upper quartile of the grey across the middle of the
slide's width is taken from every frame that sees it; a label is a run from one end inwards whose
level is at least ``min_ratio`` times the level of the slide's middle half, ending
where the profile falls half way between the two.

Only coarse data are read: no full-resolution pixel is touched.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from samplescout.geometry import FrameGeometry, rotation_matrix


@dataclass(frozen=True)
class LabelConfig:
    """Sampling and acceptance of the label search (mm).

    ``step_mm`` along the slide, ``width_share`` of the slide's width sampled (its
    middle), ``end_mm`` of the end (after ``skip_mm`` of slide edge) whose level is
    the label's, ``min_ratio`` the least ratio of that level to the slide middle's,
    ``min_mm`` / ``max_mm`` the label lengths accepted.
    """

    step_mm: float = 0.5
    width_share: float = 0.7
    skip_mm: float = 1.0
    end_mm: float = 6.0
    min_ratio: float = 1.5
    min_mm: float = 8.0
    max_mm: float = 35.0


def label_span(
    views: Sequence[tuple[np.ndarray, FrameGeometry]],
    center: tuple[float, float],
    size: tuple[float, float],
    angle_deg: float,
    config: LabelConfig | None = None,
) -> tuple[float, float] | None:
    """The label's extent along the slide's long axis, slide-local mm ``(lo, hi)``
    measured from the slide's centre, or None when neither end is a label (or no frame
    sees the ends and the middle)."""
    cfg = config or LabelConfig()
    long = 0 if size[0] >= size[1] else 1
    half, half_w = size[long] / 2.0, size[1 - long] / 2.0
    us = np.arange(-half + cfg.step_mm / 2, half, cfg.step_mm)
    vs = np.linspace(-cfg.width_share * half_w, cfg.width_share * half_w, 9)
    local = np.zeros((len(us), len(vs), 2))
    local[..., long] = us[:, None]
    local[..., 1 - long] = vs[None, :]
    pts = (np.asarray(center) + local.reshape(-1, 2) @ rotation_matrix(angle_deg).T).reshape(-1, 2)
    samples = []
    for img, geometry in views:
        uv = geometry.holder_to_pixel(pts).astype(np.float32).reshape(len(us), len(vs), 2)
        samples.append(
            cv2.remap(
                np.ascontiguousarray(img, dtype=np.float32),
                uv[..., 0],
                uv[..., 1],
                cv2.INTER_LINEAR,
                borderValue=np.nan,
            )
        )
    if not samples:
        return None
    stack = np.concatenate(samples, axis=1)  # (along, across x frames)
    seen = np.isfinite(stack)
    profile = np.full(len(us), np.nan)
    rows = seen.any(axis=1)
    # Paper between the print: the upper quartile across the width (bars and text are
    # dark), which on glass is its level as well.
    profile[rows] = [float(np.percentile(stack[k][seen[k]], 75)) for k in np.flatnonzero(rows)]
    middle = profile[np.abs(us) <= half / 2.0]
    if np.isfinite(middle).sum() < len(middle) / 2:
        return None
    level = float(np.nanmedian(middle))
    best: tuple[float, float] | None = None
    for sign in (-1.0, 1.0):  # the end at -half, then the one at +half
        depth = half - sign * us  # mm from this end, along the slide
        end = profile[(depth >= cfg.skip_mm) & (depth <= cfg.skip_mm + cfg.end_mm)]
        if not np.isfinite(end).any():
            continue
        paper = float(np.nanmedian(end))
        if paper < cfg.min_ratio * level or paper <= level:
            continue
        order = np.argsort(depth)
        cut = 0.5 * (paper + level)
        inner = None
        for k in order:
            if depth[k] < cfg.skip_mm:
                continue
            if not np.isfinite(profile[k]) or profile[k] < cut:
                inner = depth[k]
                break
        if inner is None or not cfg.min_mm <= inner <= cfg.max_mm:
            continue
        span = (-half, -half + inner) if sign < 0 else (half - inner, half)
        if best is None or span[1] - span[0] > best[1] - best[0]:
            best = span
    return best
