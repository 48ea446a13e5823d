"""Microscope drivers: one protocol, the built-in simulator as the default implementation."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np
from samplescout.acquire.render import render_frame
from samplescout.acquire.scene import make_scene
from samplescout.acquire.simulator import CameraProfile, camera_profile, overview_path
from samplescout.acquire.sources import AcquiredFrame, BundleSource, FrameSource

from samplescout.bundle import open_bundle
from samplescout.errors import InputError
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


class SimulatedMicroscope:
    """The simulator as a microscope: a simulated holder seen by a wide or narrow camera.

    The reported pose differs from the true one as on a real stage (tens of µm).
    """

    def __init__(
        self,
        *,
        carrier: str = "slide",
        profile: str = "narrow",
        seed: int = 0,
        difficulty: str = "easy",
        frame_scale: float = 1.0,
    ) -> None:
        self.scene = make_scene(carrier, seed, difficulty)
        self.camera = camera_profile(profile, self.scene.holder_opening_mm, frame_scale=frame_scale)
        self._rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0x5C0]))
        self._carrier = carrier
        self._profile = profile
        ow, oh = self.scene.holder_opening_mm
        self._position = (ow / 2, oh / 2)

    def describe(self) -> MicroscopeInfo:
        ow, oh = self.scene.holder_opening_mm
        return MicroscopeInfo(
            name=f"sim:{self._carrier}",
            camera_width=self.camera.width,
            camera_height=self.camera.height,
            pixel_size_mm=self.camera.pixel_size_mm,
            rotation_deg=self.scene.reported_rotation_deg,
            stage_min_mm=(0.0, 0.0),
            stage_max_mm=(ow, oh),
            carrier=self._carrier,
            context={"microscope": "sim", "camera": self._profile, "light": "ring-led"},
        )

    def move_to(self, center_mm: tuple[float, float]) -> tuple[float, float]:
        ow, oh = self.scene.holder_opening_mm
        self._position = (
            float(np.clip(center_mm[0], -10.0, ow + 10.0)),
            float(np.clip(center_mm[1], -10.0, oh + 10.0)),
        )
        return self._position

    def snap(self) -> tuple[np.ndarray, Pose]:
        err = self._rng.normal(0.0, self.scene.pose_sigma_mm, 2)
        true = Pose(
            (self._position[0] + float(err[0]), self._position[1] + float(err[1])),
            self.camera.pixel_size_mm,
            self.scene.camera_rotation_deg,
        )
        image = render_frame(self.scene, true, self.camera.width, self.camera.height, rng=self._rng)
        reported = Pose(self._position, self.camera.pixel_size_mm, self.scene.reported_rotation_deg)
        return image, reported


def open_microscope(address: str) -> Microscope:
    """A driver from an address: ``sim:CARRIER[:PROFILE]`` (e.g. ``sim:slide:wide``)."""
    kind, _, rest = address.partition(":")
    if kind == "sim":
        carrier, _, profile = rest.partition(":")
        try:
            return SimulatedMicroscope(carrier=carrier or "slide", profile=profile or "narrow")
        except ValueError as exc:
            raise InputError("request", "microscope.address", str(exc)) from None
    raise InputError(
        "request", "microscope.address", f"unsupported microscope {address!r} (use sim:CARRIER)"
    )


class MicroscopeSource:
    """Frames snapped along the overview path that covers the microscope's stage range."""

    def __init__(self, microscope: Microscope) -> None:
        info = microscope.describe()
        self._microscope = microscope
        self.name = info.name
        self.carrier = info.carrier
        self.context = dict(info.context)
        opening = (
            info.stage_max_mm[0] - info.stage_min_mm[0],
            info.stage_max_mm[1] - info.stage_min_mm[1],
        )
        # A field that covers the whole range gives one frame, otherwise a raster.
        camera = CameraProfile(
            "raster", info.camera_width, info.camera_height, info.pixel_size_mm, overlap=0.15
        )
        self._path = [
            Pose(
                (p.center_mm[0] + info.stage_min_mm[0], p.center_mm[1] + info.stage_min_mm[1]),
                p.pixel_size_mm,
                p.rotation_deg,
            )
            for p in overview_path(camera, opening, rotation_deg=info.rotation_deg)
        ]
        self.frame_count = len(self._path)

    def frames(self) -> Iterator[AcquiredFrame]:
        for index, pose in enumerate(self._path):
            self._microscope.move_to(pose.center_mm)
            t0 = time.perf_counter()
            image, reported = self._microscope.snap()
            yield AcquiredFrame(index, image, reported, "", time.perf_counter() - t0)


def open_source(*, bundle_path: str | None = None, microscope: str | None = None) -> FrameSource:
    """The frame source of a session: a bundle directory or a microscope address."""
    if bundle_path:
        return BundleSource(open_bundle(bundle_path))
    if microscope:
        return MicroscopeSource(open_microscope(microscope))
    raise InputError("request", "source", "give a bundle path or a microscope address")
