"""The identification-stage interface: full-resolution crops in, structures out."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np

from samplescout.contracts import Region, Structure
from samplescout.geometry import FrameGeometry


@runtime_checkable
class Identifier(Protocol):
    """Says what structure each selected region holds, with its geometry in holder mm.

    Contract
    --------
    ``identify`` receives ``(region, crop)`` pairs of one frame, where ``crop`` is the
    full-resolution grey ``float32`` [0, 1] image of ``region.box_px`` (rows
    ``y0:y1``, columns ``x0:x1``), and that frame's geometry. Regions are processed
    in order of selection probability (highest first; ties by ``region_index``); an
    implementation may stop early (``top_k``, a probability floor), but what it
    returns for a region never depends on the other regions. Every processed region
    yields at least one :class:`Structure` (``no_structure`` when nothing is found);
    a region may yield several when it holds several edges. Geometry
    (``segment_mm`` / ``arc_mm``) is in holder mm; arcs run from ``start_deg`` to
    ``end_deg > start_deg`` with angles measured from +x towards +y (SPEC section 1).
    """

    def identify(
        self, crops: Sequence[tuple[Region, np.ndarray]], geometry: FrameGeometry
    ) -> list[Structure]: ...


@runtime_checkable
class CarrierAware(Protocol):
    """An identifier with settings per carrier kind.

    Contract
    --------
    ``for_carrier`` returns the identifier to use on the frames of a session whose
    carrier is ``carrier`` (a SPEC carrier name, ``unknown`` included); the same
    object for the same name, so nothing is rebuilt per frame, and ``self`` where
    nothing differs.
    """

    def for_carrier(self, carrier: str) -> Identifier: ...
