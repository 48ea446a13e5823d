"""Microscope drivers: one protocol, the built-in simulator as the default implementation."""

from __future__ import annotations

import time
from collections.abc import Iterator

import grpc
import numpy as np

from samplescout.acquire.render import render_frame
from samplescout.acquire.scene import make_scene
from samplescout.acquire.simulator import CameraProfile, camera_profile, overview_path
from samplescout.acquire.sources import AcquiredFrame, BundleSource, FrameSource
from samplescout.bundle import Bundle, open_bundle
from samplescout.errors import InputError, OperationalError
from samplescout.geometry import Pose
from samplescout.microscope import Microscope, MicroscopeInfo


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


class ReplayMicroscope:
    """Serves the frames of a recorded bundle by position: a session replayed exactly.

    ``move_to`` goes to the recorded frame nearest to the requested centre; ``snap``
    returns that frame with its recorded pose.
    """

    def __init__(self, bundle: Bundle) -> None:
        self._bundle = bundle
        frames = bundle.manifest.frames
        self._centres = np.array([f.pose.center_mm for f in frames], dtype=np.float64)
        self._current = 0
        width, height = bundle.image_size(0)
        first = frames[0].pose
        half = np.array([width, height], dtype=np.float64) * first.pixel_size_mm / 2
        lo, hi = self._centres.min(axis=0) - half, self._centres.max(axis=0) + half
        self._info = MicroscopeInfo(
            name=f"replay:{bundle.name}",
            camera_width=width,
            camera_height=height,
            pixel_size_mm=first.pixel_size_mm,
            rotation_deg=first.rotation_deg,
            stage_min_mm=(float(lo[0]), float(lo[1])),
            stage_max_mm=(float(hi[0]), float(hi[1])),
            carrier=bundle.manifest.carrier,
            context=dict(bundle.manifest.context),
        )

    def describe(self) -> MicroscopeInfo:
        return self._info

    def positions(self) -> list[tuple[float, float]]:
        """The recorded overview path."""
        return [(float(x), float(y)) for x, y in self._centres]

    def move_to(self, center_mm: tuple[float, float]) -> tuple[float, float]:
        d = np.hypot(*(self._centres - np.asarray(center_mm, dtype=np.float64)).T)
        self._current = int(np.argmin(d))
        x, y = self._centres[self._current]
        return float(x), float(y)

    def snap(self) -> tuple[np.ndarray, Pose]:
        spec = self._bundle.manifest.frames[self._current]
        return self._bundle.read_image(self._current), spec.pose


def open_microscope(address: str) -> Microscope:
    """A driver from an address.

    ``sim:CARRIER[:PROFILE]`` (the simulator, e.g. ``sim:slide:wide``),
    ``grpc://HOST:PORT`` (a remote ``MicroscopeService``), ``replay:BUNDLE_DIR``.
    """
    kind, _, rest = address.partition(":")
    if kind == "sim":
        carrier, _, profile = rest.partition(":")
        try:
            return SimulatedMicroscope(carrier=carrier or "slide", profile=profile or "narrow")
        except ValueError as exc:
            raise InputError("request", "microscope.address", str(exc)) from None
    if kind == "grpc" and rest.startswith("//") and len(rest) > 2:
        from samplescout.acquire.remote import GrpcMicroscope

        scope = GrpcMicroscope(rest[2:])
        try:
            scope.describe()
        except grpc.RpcError as err:
            raise OperationalError(
                f"microscope {address}: {err.code().name}: {err.details()}"
            ) from None
        return scope
    if kind == "replay" and rest:
        return ReplayMicroscope(open_bundle(rest))
    if kind == "mm" and rest:
        from samplescout.acquire.mm import open_mm_microscope

        return open_mm_microscope(address)
    raise InputError(
        "request",
        "microscope.address",
        f"unsupported microscope {address!r} (sim:CARRIER[:PROFILE], grpc://HOST:PORT, "
        "replay:BUNDLE, mm:CONFIG.cfg, mm:demo)",
    )


class MicroscopeSource:
    """Frames snapped along the overview path that covers the microscope's stage range."""

    def __init__(
        self, microscope: Microscope, *, path: list[tuple[float, float]] | None = None
    ) -> None:
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
        if path is not None:
            self._path = [Pose(c, info.pixel_size_mm, info.rotation_deg) for c in path]
        else:
            self._path = [
                Pose(
                    (
                        p.center_mm[0] + info.stage_min_mm[0],
                        p.center_mm[1] + info.stage_min_mm[1],
                    ),
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
        driver = open_microscope(microscope)
        path = driver.positions() if isinstance(driver, ReplayMicroscope) else None
        return MicroscopeSource(driver, path=path)
    raise InputError("request", "source", "give a bundle path or a microscope address")
