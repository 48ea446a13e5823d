"""The selection-stage interface: coarse frame in, candidate structure regions out."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from samplescout.contracts import Region
from samplescout.geometry import FrameGeometry


@runtime_checkable
class Selector(Protocol):
    """Chooses the regions of a frame that are worth reading at full resolution.

    Contract
    --------
    ``select`` receives the coarse image of one frame (grey ``float32`` in [0, 1], as
    made by :func:`samplescout.coarse.make_coarse` with ``factor``) and the frame's
    full-resolution geometry. It returns regions whose ``box_px`` are half-open
    full-resolution pixel boxes inside the frame, at most about 256 x 256 pixels,
    with ``polygon_mm`` the box outline in holder mm, ``probability`` in [0, 1],
    ``orientation_deg`` the dominant edge direction in holder coordinates
    (in (-90, 90]) and ``kind`` one of ``structure``, ``label``, ``non_sample``.
    Regions are sorted by probability, highest first, and ``region_index`` is the
    rank. The result depends only on the inputs (no state between calls).
    """

    def select(
        self, coarse: np.ndarray, *, frame_index: int, geometry: FrameGeometry, factor: int
    ) -> list[Region]: ...
