"""The microscope driver interface (SPEC section 4): shared, free of heavy dependencies."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

from samplescout.geometry import Pose


@dataclass(frozen=True, slots=True)
class MicroscopeInfo:
    """What a driver reports about its overview camera and stage (``Describe``)."""

    name: str
    camera_width: int
    camera_height: int
    pixel_size_mm: float
    rotation_deg: float
    stage_min_mm: tuple[float, float]
    stage_max_mm: tuple[float, float]
    carrier: str | None = None
    context: dict[str, str] = field(default_factory=dict)


@runtime_checkable
class Microscope(Protocol):
    """A microscope's overview camera on its stage, in holder coordinates (SPEC section 4).

    Contract
    --------
    - ``describe`` is cheap and does not move anything.
    - ``move_to(center_mm)`` moves so that the next frame's centre is at that holder
      position (clipped to the stage range) and returns the position reached.
    - ``snap`` takes a frame at the current position and returns the image (8/16-bit,
      grey or BGR) with the pose the microscope reports for it.
    """

    def describe(self) -> MicroscopeInfo: ...

    def move_to(self, center_mm: tuple[float, float]) -> tuple[float, float]: ...

    def snap(self) -> tuple[np.ndarray, Pose]: ...
