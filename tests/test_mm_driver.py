"""The pymmcore-plus driver against a real ``UniMMCore`` hosting simulator devices.

``SimXYStage`` and ``SimCamera`` are genuine pymmcore-plus Python device adapters
(``pymmcore_plus.experimental.unicore``): the core drives them exactly as it drives
hardware (``setXYPosition``/``waitForDevice``/``snapImage``/``getImage``, pixel-size
configuration). The "hardware truth" that maps stage µm to where the camera really
looks on the holder is a plain matrix owned by the test, independent of
:class:`StageCalibration`; the camera renders the simulated holder there.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("pymmcore_plus")

from pymmcore_plus.experimental.unicore import (
    SimpleCameraDevice,
    UniMMCore,
    XYStageDevice,
)

from samplescout.acquire.drivers import MicroscopeSource
from samplescout.acquire.mm import (
    MMCoreMicroscope,
    StageCalibration,
    open_mm_microscope,
    sidecar_path,
)
from samplescout.acquire.render import render_frame
from samplescout.acquire.scene import Scene, make_scene
from samplescout.errors import InputError, OperationalError
from samplescout.geometry import FrameGeometry, Pose, rotation_matrix
from samplescout.microscope import Microscope

W, H = 400, 300  # small frames: the whole file runs in a few seconds
NOISE_SEED = 1234


class HardwareTruth:
    """Where stage µm really puts the overview camera centre on the holder (test-owned)."""

    def __init__(self, a: np.ndarray, b: np.ndarray) -> None:
        self.a = np.asarray(a, dtype=np.float64)
        self.b = np.asarray(b, dtype=np.float64)

    def stage_um(self, holder_mm: tuple[float, float]) -> tuple[float, float]:
        s = self.a @ np.asarray(holder_mm, dtype=np.float64) + self.b
        return (float(s[0]), float(s[1]))

    def holder_mm(self, stage_um: tuple[float, float]) -> tuple[float, float]:
        h = np.linalg.solve(self.a, np.asarray(stage_um, dtype=np.float64) - self.b)
        return (float(h[0]), float(h[1]))


IDENTITY_UM = HardwareTruth(np.eye(2) * 1000.0, np.zeros(2))
# y flipped, µm, offset, and the stage turned 0.4 deg against the holder
TRICKY = HardwareTruth(
    1000.0 * rotation_matrix(0.4) @ np.diag([1.0, -1.0]), np.array([-41_250.0, 37_800.0])
)


class SimXYStage(XYStageDevice):
    """An XY stage in µm that quantises to ``step_um`` and settles after ``settle_s``."""

    def __init__(self, step_um: float = 0.1, settle_s: float = 0.0) -> None:
        super().__init__()
        self.step_um = step_um
        self.settle_s = settle_s
        self._pos = (0.0, 0.0)
        self._target = (0.0, 0.0)
        self._done_at = 0.0
        self.moves: list[tuple[float, float]] = []

    def _settle(self) -> None:
        if time.perf_counter() >= self._done_at:
            self._pos = self._target

    def set_position_um(self, x: float, y: float) -> None:
        q = self.step_um
        self._target = (round(x / q) * q, round(y / q) * q)
        self._done_at = time.perf_counter() + self.settle_s
        self.moves.append((x, y))
        self._settle()

    def get_position_um(self) -> tuple[float, float]:
        self._settle()  # while moving it still reports where it was
        return self._pos

    def busy(self) -> bool:
        return time.perf_counter() < self._done_at

    def set_origin_x(self) -> None:
        raise NotImplementedError

    def set_origin_y(self) -> None:
        raise NotImplementedError

    def home(self) -> None:
        self.set_position_um(0.0, 0.0)

    def stop(self) -> None:
        self._done_at = 0.0


class SimCamera(SimpleCameraDevice):
    """Renders the simulated holder where the stage really is (through ``truth``)."""

    def __init__(
        self,
        scene: Scene,
        stage: SimXYStage,
        truth: HardwareTruth,
        pixel_size_mm: float,
        width: int = W,
        height: int = H,
    ) -> None:
        super().__init__()
        self.scene, self.stage, self.truth = scene, stage, truth
        self.pixel_size_mm = pixel_size_mm
        self.width, self.height = width, height
        self._exposure = 10.0
        self.true_poses: list[Pose] = []

    def get_exposure(self) -> float:
        return self._exposure

    def set_exposure(self, exposure: float) -> None:
        self._exposure = exposure

    def sensor_shape(self) -> tuple[int, int] | tuple[int, int, int]:
        return (self.height, self.width, 3) if self.scene.color else (self.height, self.width)

    def dtype(self) -> Any:
        return np.uint16 if self.scene.bit_depth == 16 else np.uint8

    def snap(self, buffer: np.ndarray) -> Mapping[str, Any]:
        true = Pose(
            self.truth.holder_mm(self.stage.get_position_um()),
            self.pixel_size_mm,
            self.scene.camera_rotation_deg,
        )
        img = render_frame(
            self.scene, true, self.width, self.height, rng=np.random.default_rng(NOISE_SEED)
        )
        buffer[:] = img[..., ::-1] if img.ndim == 3 else img  # MM cameras deliver RGB
        self.true_poses.append(true)
        return {}


def build_core(
    scene: Scene,
    truth: HardwareTruth,
    *,
    pixel_size_mm: float,
    step_um: float = 0.1,
    settle_s: float = 0.0,
    with_main_camera: bool = False,
) -> tuple[UniMMCore, SimXYStage, SimCamera]:
    core = UniMMCore()
    stage = SimXYStage(step_um, settle_s)
    camera = SimCamera(scene, stage, truth, pixel_size_mm)
    core.loadPyDevice("OverviewCam", camera)
    core.loadPyDevice("XY", stage)
    if with_main_camera:  # a second camera selected as the main one
        other = SimCamera(scene, stage, truth, pixel_size_mm / 10, 64, 48)
        core.loadPyDevice("MainCam", other)
    core.initializeAllDevices()
    core.setCameraDevice("MainCam" if with_main_camera else "OverviewCam")
    core.setXYStageDevice("XY")
    core.definePixelSizeConfig("overview")
    core.setPixelSizeUm("overview", pixel_size_mm * 1000.0)
    return core, stage, camera


@pytest.fixture
def slide_scene() -> Scene:
    return make_scene("slide", 3, "easy")


@pytest.fixture
def cores() -> Iterator[list[UniMMCore]]:
    made: list[UniMMCore] = []
    yield made
    for core in made:  # python devices must be unloaded before the core goes away
        core.unloadAllDevices()


def fit_calibration(truth: HardwareTruth) -> StageCalibration:
    """What a facility does: centre known holder points, read the stage, fit."""
    holder = [(0.0, 0.0), (80.0, 0.0), (80.0, 30.0), (0.0, 30.0), (40.0, 15.0)]
    return StageCalibration.from_points(holder, [truth.stage_um(p) for p in holder])


# ---------------------------------------------------------------------------
# calibration


def test_calibration_default_is_micrometres() -> None:
    cal = StageCalibration()
    assert cal.to_stage((1.5, -2.0)) == (1500.0, -2000.0)
    assert cal.to_holder((1500.0, -2000.0)) == (1.5, -2.0)


def test_calibration_from_points_recovers_flip_offset_rotation() -> None:
    cal = fit_calibration(TRICKY)
    for p in [(0.0, 0.0), (12.3, 4.5), (79.0, 29.0)]:
        assert np.allclose(cal.to_stage(p), TRICKY.stage_um(p), atol=1e-6)
        assert np.allclose(cal.to_holder(cal.to_stage(p)), p, atol=1e-9)
    simple = StageCalibration.simple(flip_y=True, offset_um=(100.0, 200.0))
    assert simple.to_stage((1.0, 1.0)) == (1100.0, -800.0)
    assert StageCalibration.from_dict(cal.to_dict()) == cal
    assert json.loads(json.dumps(cal.to_dict()))["matrix"] == [list(r) for r in cal.matrix]


@pytest.mark.parametrize(
    ("holder", "stage"),
    [
        ([(0, 0), (1, 1)], [(0, 0), (1, 1)]),  # too few
        ([(0, 0), (1, 1), (2, 2)], [(0, 0), (5, 1), (2, 9)]),  # collinear
        ([(0, 0), (1, 0), (0, 1)], [(0, 0), (1, 0)]),  # mismatched
    ],
)
def test_calibration_rejects_bad_points(holder: list[Any], stage: list[Any]) -> None:
    with pytest.raises(ValueError):
        StageCalibration.from_points(holder, stage)


def test_calibration_rejects_singular_matrix() -> None:
    with pytest.raises(ValueError, match="singular"):
        StageCalibration(((1000.0, 0.0, 0.0), (2000.0, 0.0, 0.0)))


# ---------------------------------------------------------------------------
# the driver on a real UniMMCore


def test_describe_reports_overview_camera_and_range(
    slide_scene: Scene, cores: list[UniMMCore]
) -> None:
    core, _, _ = build_core(slide_scene, IDENTITY_UM, pixel_size_mm=0.05)
    cores.append(core)
    scope = MMCoreMicroscope(
        core, rotation_deg=slide_scene.reported_rotation_deg, stage_range_mm=((0, 0), (80, 30))
    )
    assert isinstance(scope, Microscope)
    info = scope.describe()
    assert (info.camera_width, info.camera_height) == (W, H)
    assert info.pixel_size_mm == pytest.approx(0.05)  # from core.getPixelSizeUm()
    assert info.rotation_deg == slide_scene.reported_rotation_deg
    assert (info.stage_min_mm, info.stage_max_mm) == ((0.0, 0.0), (80.0, 30.0))
    assert info.context["driver"] == "pymmcore-plus"
    assert info.context["camera"] == "OverviewCam"


@pytest.mark.parametrize("truth", [IDENTITY_UM, TRICKY], ids=["um", "flip-offset-rotated"])
def test_move_and_snap_match_the_requested_position(
    slide_scene: Scene, cores: list[UniMMCore], truth: HardwareTruth
) -> None:
    core, stage, camera = build_core(
        slide_scene, truth, pixel_size_mm=0.05, step_um=0.1, settle_s=0.005
    )
    cores.append(core)
    cal = fit_calibration(truth)
    scope = MMCoreMicroscope(
        core,
        overview_camera="OverviewCam",
        xy_stage="XY",
        calibration=cal,
        rotation_deg=slide_scene.reported_rotation_deg,
        stage_range_mm=((0.0, 0.0), (80.0, 30.0)),
    )
    for requested in [(40.0, 15.0), (10.25, 7.5), (71.1, 24.9), (0.0, 30.0)]:
        reached = scope.move_to(requested)
        # the stage was sent the calibrated µm position ...
        assert np.allclose(stage.moves[-1], truth.stage_um(requested), atol=1e-6)
        # ... and the reached position is read back (after settling), within a step
        assert np.allclose(reached, requested, atol=1e-4)
        image, pose = scope.snap()
        assert image.shape == (H, W) and image.dtype == np.uint8
        assert pose.center_mm == reached
        assert np.allclose(pose.center_mm, requested, atol=1e-4)
        assert pose.pixel_size_mm == pytest.approx(0.05)
        assert pose.rotation_deg == slide_scene.reported_rotation_deg
        # the camera really looked where the pose says (true vs reported < 1 µm)
        assert np.allclose(camera.true_poses[-1].center_mm, pose.center_mm, atol=1e-6)


def test_reported_pose_comes_from_the_stage_not_the_request(
    slide_scene: Scene, cores: list[UniMMCore]
) -> None:
    core, _, _ = build_core(slide_scene, TRICKY, pixel_size_mm=0.05, step_um=25.0)
    cores.append(core)
    cal = fit_calibration(TRICKY)
    scope = MMCoreMicroscope(core, calibration=cal, stage_range_mm=((0.0, 0.0), (80.0, 30.0)))
    requested = (33.3337, 12.3456)
    reached = scope.move_to(requested)
    _, pose = scope.snap()
    readback = cal.to_holder(core.getXYPosition("XY"))
    assert pose.center_mm == pytest.approx(readback, abs=1e-9)
    assert reached == pytest.approx(readback, abs=1e-9)
    offset = math.dist(pose.center_mm, requested)
    assert 1e-4 < offset < 0.025  # off by the 25 µm stage step, not by the request


def test_moves_are_clipped_to_the_stage_range(slide_scene: Scene, cores: list[UniMMCore]) -> None:
    core, _, _ = build_core(slide_scene, TRICKY, pixel_size_mm=0.05)
    cores.append(core)
    scope = MMCoreMicroscope(
        core, calibration=fit_calibration(TRICKY), stage_range_mm=((5.0, 5.0), (75.0, 25.0))
    )
    assert np.allclose(scope.move_to((-100.0, 1000.0)), (5.0, 25.0), atol=1e-4)
    with pytest.raises(ValueError):
        scope.move_to((math.nan, 0.0))


def test_snapped_frame_equals_direct_render(slide_scene: Scene, cores: list[UniMMCore]) -> None:
    core, _, _ = build_core(slide_scene, TRICKY, pixel_size_mm=0.05)
    cores.append(core)
    scope = MMCoreMicroscope(
        core,
        calibration=fit_calibration(TRICKY),
        rotation_deg=slide_scene.reported_rotation_deg,
        stage_range_mm=((0.0, 0.0), (80.0, 30.0)),
    )
    requested = (38.0, 14.0)  # the slide and cover glass are in view
    scope.move_to(requested)
    image, _ = scope.snap()
    # independent of the driver: the true pose from the hardware truth and the stage step
    sx, sy = TRICKY.stage_um(requested)
    true = Pose(
        TRICKY.holder_mm((round(sx / 0.1) * 0.1, round(sy / 0.1) * 0.1)),
        0.05,
        slide_scene.camera_rotation_deg,
    )
    direct = render_frame(slide_scene, true, W, H, rng=np.random.default_rng(NOISE_SEED))
    assert image.shape == direct.shape and image.dtype == direct.dtype
    diff = np.abs(image.astype(np.int32) - direct.astype(np.int32))
    assert diff.max() <= 1 and diff.mean() < 0.01
    assert float(direct.std()) > 5.0  # a real picture, not a flat field


def test_colour_frames_come_back_bgr_with_16_bit(cores: list[UniMMCore]) -> None:
    scene = next(s for seed in range(40) if (s := make_scene("slide", seed, "hard")).color)
    core, _, _ = build_core(scene, IDENTITY_UM, pixel_size_mm=0.05)
    cores.append(core)
    scope = MMCoreMicroscope(core, stage_range_mm=((0.0, 0.0), (80.0, 30.0)))
    scope.move_to((40.0, 15.0))
    image, pose = scope.snap()
    direct = render_frame(
        scene,
        Pose(pose.center_mm, 0.05, scene.camera_rotation_deg),
        W,
        H,
        rng=np.random.default_rng(NOISE_SEED),
    )
    assert image.shape == (H, W, 3) and image.dtype == direct.dtype == np.uint16
    assert np.abs(image.astype(np.int64) - direct.astype(np.int64)).max() <= 1


def test_overview_camera_selected_for_snap_and_restored(
    slide_scene: Scene, cores: list[UniMMCore]
) -> None:
    core, _, camera = build_core(
        slide_scene, IDENTITY_UM, pixel_size_mm=0.05, with_main_camera=True
    )
    cores.append(core)
    scope = MMCoreMicroscope(
        core, overview_camera="OverviewCam", stage_range_mm=((0.0, 0.0), (80.0, 30.0))
    )
    assert core.getCameraDevice() == "MainCam"
    image, _ = scope.snap()
    assert image.shape == (H, W) and len(camera.true_poses) == 1
    assert core.getCameraDevice() == "MainCam"


def test_default_range_is_one_field_around_the_stage(
    slide_scene: Scene, cores: list[UniMMCore]
) -> None:
    core, _, _ = build_core(slide_scene, IDENTITY_UM, pixel_size_mm=0.05)
    cores.append(core)
    core.setXYPosition("XY", 40_000.0, 15_000.0)
    scope = MMCoreMicroscope(core)
    info = scope.describe()
    assert np.allclose(info.stage_min_mm, (30.0, 7.5)) and np.allclose(
        info.stage_max_mm, (50.0, 22.5)
    )


def test_missing_pixel_size_is_an_operational_error(
    slide_scene: Scene, cores: list[UniMMCore]
) -> None:
    core, _, _ = build_core(slide_scene, IDENTITY_UM, pixel_size_mm=0.05)
    cores.append(core)
    core.deletePixelSizeConfig("overview")
    scope = MMCoreMicroscope(core, stage_range_mm=((0.0, 0.0), (1.0, 1.0)))
    with pytest.raises(OperationalError, match="pixel_size_mm"):
        scope.describe()
    given = MMCoreMicroscope(core, pixel_size_mm=0.05, stage_range_mm=((0.0, 0.0), (1.0, 1.0)))
    assert given.describe().pixel_size_mm == 0.05


def test_microscope_source_rasters_the_stage_range(
    slide_scene: Scene, cores: list[UniMMCore]
) -> None:
    core, _, camera = build_core(slide_scene, TRICKY, pixel_size_mm=0.05)
    cores.append(core)
    rng_mm = ((0.0, 0.0), (80.0, 30.0))
    scope = MMCoreMicroscope(
        core,
        calibration=fit_calibration(TRICKY),
        rotation_deg=slide_scene.reported_rotation_deg,
        stage_range_mm=rng_mm,
    )
    source = MicroscopeSource(scope)
    frames = list(source.frames())
    assert source.frame_count == len(frames) > 1
    assert [f.index for f in frames] == list(range(len(frames)))
    for frame, true in zip(frames, camera.true_poses, strict=True):
        assert frame.image.shape == (H, W)
        assert np.allclose(frame.pose.center_mm, true.center_mm, atol=1e-6)
    # every point of the range is seen by some frame
    geoms = [FrameGeometry(f.pose, W, H) for f in frames]
    xs, ys = np.meshgrid(np.linspace(0, 80, 41), np.linspace(0, 30, 16))
    pts = np.stack([xs.ravel(), ys.ravel()], axis=1)
    seen = np.zeros(len(pts), bool)
    for g in geoms:
        uv = g.holder_to_pixel(pts)
        seen |= (
            (uv[:, 0] >= -0.5) & (uv[:, 0] <= W - 0.5) & (uv[:, 1] >= -0.5) & (uv[:, 1] <= H - 0.5)
        )
    assert seen.all()


# ---------------------------------------------------------------------------
# addresses


def test_open_demo_without_adapters_explains_mmcore_install() -> None:
    from pymmcore_plus import find_micromanager

    if find_micromanager():
        pytest.skip("Micro-Manager adapters are installed here")
    with pytest.raises(InputError, match="mmcore install"):
        open_mm_microscope("mm:demo")


@pytest.mark.parametrize("address", ["mm:", "mmx:demo", "mm:/no/such/config.cfg"])
def test_open_bad_addresses(address: str) -> None:
    with pytest.raises(InputError, match=r"microscope\.address"):
        open_mm_microscope(address)


class CfgWorld:
    """What the ``#py pyDevice`` lines of the config test build (no-arg devices)."""

    scene: Scene | None = None
    stage: SimXYStage | None = None


class CfgStage(SimXYStage):
    def __init__(self) -> None:
        super().__init__(0.1)
        CfgWorld.stage = self


class CfgCamera(SimCamera):
    def __init__(self) -> None:
        assert CfgWorld.scene is not None and CfgWorld.stage is not None
        super().__init__(CfgWorld.scene, CfgWorld.stage, TRICKY, 0.05)


def test_open_config_with_sidecar(tmp_path: Path, slide_scene: Scene) -> None:
    CfgWorld.scene = slide_scene
    cfg = tmp_path / "scope3.cfg"
    cfg.write_text(
        "\n".join(
            [
                f"#py pyDevice,XY,{__name__},CfgStage",
                f"#py pyDevice,OverviewCam,{__name__},CfgCamera",
                "Property,Core,Initialize,1",
                "#py Property,Core,XYStage,XY",
                "#py Property,Core,Camera,OverviewCam",
                "",
            ]
        )
    )
    holder = [[0, 0], [80, 0], [0, 30]]
    sidecar_path(cfg).write_text(
        json.dumps(
            {
                "overview_camera": "OverviewCam",
                "xy_stage": "XY",
                "pixel_size_mm": 0.05,
                "rotation_deg": slide_scene.reported_rotation_deg,
                "stage_range_mm": [[0, 0], [80, 30]],
                "calibration": {
                    "holder_mm": holder,
                    "stage_um": [TRICKY.stage_um((x, y)) for x, y in holder],
                },
                "context": {"microscope": "scope-3", "light": "ring-led"},
            }
        )
    )
    scope = open_mm_microscope(f"mm:{cfg}")
    try:
        info = scope.describe()
        assert info.name == "mm:scope3"
        assert info.context["microscope"] == "scope-3"
        assert (info.camera_width, info.camera_height, info.pixel_size_mm) == (W, H, 0.05)
        scope.move_to((20.0, 10.0))
        image, pose = scope.snap()
        assert image.shape == (H, W)
        assert np.allclose(pose.center_mm, (20.0, 10.0), atol=1e-4)
    finally:
        scope.core.unloadAllDevices()


def test_sidecar_errors_name_the_field(tmp_path: Path) -> None:
    cfg = tmp_path / "scope.cfg"
    cfg.write_text("Property,Core,Initialize,1\n")
    sidecar_path(cfg).write_text(json.dumps({"calibration": {"matrix": [[1, 0, 0], [2, 0, 0]]}}))
    with pytest.raises(InputError, match=r"calibration: .*singular"):
        open_mm_microscope(f"mm:{cfg}")


def test_config_that_micro_manager_cannot_load_is_operational(tmp_path: Path) -> None:
    cfg = tmp_path / "broken.cfg"
    cfg.write_text("Device,Cam,NoSuchAdapter,NoSuchCamera\nProperty,Core,Initialize,1\n")
    with pytest.raises(OperationalError, match="could not load"):
        open_mm_microscope(f"mm:{cfg}")


def test_config_without_stage_is_an_input_error(tmp_path: Path) -> None:
    cfg = tmp_path / "empty.cfg"
    cfg.write_text("Property,Core,Initialize,1\n")
    with pytest.raises(InputError, match="no overview camera"):
        open_mm_microscope(f"mm:{cfg}")
