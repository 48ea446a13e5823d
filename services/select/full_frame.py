"""The classical full-resolution baseline's "selection": every tile of the frame."""

from __future__ import annotations

import numpy as np

from samplescout.contracts import Region
from samplescout.geometry import FrameGeometry


class FullFrameSelector:
    """Selects the whole frame as overlapping tiles, so identification reads every pixel.

    This is what one does without a selection step; the benchmark compares against it.
    """

    name = "full-frame-tiles@1"

    def __init__(self, *, tile: int = 256, overlap: int = 32) -> None:
        if tile <= overlap:
            raise ValueError("tile must be larger than overlap")
        self.tile = tile
        self.overlap = overlap

    def select(
        self, coarse: np.ndarray, *, frame_index: int, geometry: FrameGeometry, factor: int
    ) -> list[Region]:
        w, h = geometry.width, geometry.height
        step = self.tile - self.overlap
        regions: list[Region] = []
        for y0 in range(0, max(1, h - self.overlap), step):
            for x0 in range(0, max(1, w - self.overlap), step):
                x1, y1 = min(w, x0 + self.tile), min(h, y0 + self.tile)
                poly = geometry.box_to_holder(x0, y0, x1, y1)
                regions.append(
                    Region(
                        frame_index=frame_index,
                        region_index=len(regions),
                        box_px=(x0, y0, x1, y1),
                        probability=1.0,
                        polygon_mm=tuple((float(x), float(y)) for x, y in poly),
                    )
                )
        return regions
