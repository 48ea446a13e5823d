"""Micro-Manager driver: a ``pymmcore-plus`` core as a :class:`samplescout.microscope.Microscope`.

Install with ``pip install samplescout[mm]``. ``pymmcore_plus`` is imported lazily
(only by :func:`open_mm_microscope`), so samplescout works without it;
:class:`MMCoreMicroscope` itself only needs an already-built core object.

Coordinates: everything samplescout sees is in holder millimetres (SPEC section 1).
Micro-Manager moves XY stages in micrometres, in the stage's own frame (axis flips,
offset between the overview camera and the objective, ...). The per-microscope
:class:`StageCalibration` (an affine map holder mm -> stage µm) is applied only here,
where stage positions are produced, and inverted on the stage position read back
after each move: the reported pose is where the stage says it is, not where it was
asked to go.

Typical use::

    from pymmcore_plus import CMMCorePlus
    from samplescout.acquire.mm import MMCoreMicroscope, StageCalibration

    core = CMMCorePlus()
    core.loadSystemConfiguration("C:/Micro-Manager/scope3.cfg")
    cal = StageCalibration.from_points(
        holder_pts=[(0, 0), (80, 0), (0, 30)],
        stage_pts=[(-41200, 15300), (38800, 15300), (-41200, -14700)],
    )
    scope = MMCoreMicroscope(
        core, overview_camera="OverviewCam", calibration=cal,
        stage_range_mm=((0, 0), (80, 30)),
    )
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike

from samplescout.errors import InputError, OperationalError
from samplescout.geometry import Pose
from samplescout.microscope import MicroscopeInfo

if TYPE_CHECKING:
    from pymmcore_plus import CMMCorePlus

__all__ = [
    "INSTALL_HINT",
    "MMCoreMicroscope",
    "StageCalibration",
    "open_mm_microscope",
    "sidecar_path",
]

INSTALL_HINT = "pip install samplescout[mm]"
_ADDRESS_FIELD = "microscope.address"

Range = tuple[tuple[float, float], tuple[float, float]]


# ---------------------------------------------------------------------------
# calibration


@dataclass(frozen=True, slots=True)
class StageCalibration:
    """Affine map from holder millimetres to stage micrometres (SPEC section 1).

    ``stage_um = A @ holder_mm + b`` with ``matrix = [[a11, a12, bx], [a21, a22, by]]``.
    The default is 1000 µm per mm, no flip, no offset.

    Parameters
    ----------
    matrix
        The 2x3 matrix ``[A | b]``; ``A`` must be invertible and all entries finite.

    Raises
    ------
    ValueError
        For a matrix of the wrong shape, with non-finite entries, or singular.
    """

    matrix: tuple[tuple[float, float, float], tuple[float, float, float]] = (
        (1000.0, 0.0, 0.0),
        (0.0, 1000.0, 0.0),
    )

    def __post_init__(self) -> None:
        m = np.asarray(self.matrix, dtype=np.float64)
        if m.shape != (2, 3):
            raise ValueError(f"calibration matrix must be 2x3, got shape {m.shape}")
        if not np.all(np.isfinite(m)):
            raise ValueError("calibration matrix must be finite")
        det = float(np.linalg.det(m[:, :2]))
        scale = float(np.abs(m[:, :2]).max())
        if scale == 0.0 or abs(det) <= 1e-12 * scale * scale:
            raise ValueError("calibration matrix is singular (holder mm cannot be recovered)")
        # normalise to plain floats so equality and JSON round trips behave
        object.__setattr__(
            self, "matrix", tuple(tuple(float(v) for v in row) for row in m.tolist())
        )

    # -- constructors -------------------------------------------------------

    @classmethod
    def simple(
        cls,
        *,
        um_per_mm: float = 1000.0,
        flip_x: bool = False,
        flip_y: bool = False,
        offset_um: tuple[float, float] = (0.0, 0.0),
    ) -> StageCalibration:
        """Scale, axis flips and offset: ``stage = (±s·x + ox, ±s·y + oy)``.

        Parameters
        ----------
        um_per_mm
            Stage micrometres per holder millimetre (1000 for a stage in true µm).
        flip_x, flip_y
            Whether the stage axis runs against the holder axis.
        offset_um
            Stage position (µm) of the holder origin.
        """
        sx = -um_per_mm if flip_x else um_per_mm
        sy = -um_per_mm if flip_y else um_per_mm
        return cls(((sx, 0.0, float(offset_um[0])), (0.0, sy, float(offset_um[1]))))

    @classmethod
    def from_points(cls, holder_pts: ArrayLike, stage_pts: ArrayLike) -> StageCalibration:
        """Least-squares affine fit from matching points.

        Parameters
        ----------
        holder_pts
            ``(N, 2)`` holder positions in mm (N >= 3, not all on one line), e.g. the
            holder corners or fiducials centred in the overview camera.
        stage_pts
            ``(N, 2)`` stage positions in µm read at those points
            (``core.getXYPosition()``).

        Returns
        -------
        StageCalibration
            The fitted calibration.

        Raises
        ------
        ValueError
            For mismatched shapes, fewer than 3 points or collinear points.
        """
        h = np.asarray(holder_pts, dtype=np.float64)
        s = np.asarray(stage_pts, dtype=np.float64)
        if h.ndim != 2 or h.shape[1] != 2 or h.shape != s.shape:
            raise ValueError("holder_pts and stage_pts must both be (N, 2) with the same N")
        if h.shape[0] < 3:
            raise ValueError("need at least 3 point pairs for an affine calibration")
        if not (np.all(np.isfinite(h)) and np.all(np.isfinite(s))):
            raise ValueError("calibration points must be finite")
        centred = h - h.mean(axis=0)
        span = float(np.abs(centred).max())
        if span == 0.0 or np.linalg.matrix_rank(centred / span, tol=1e-9) < 2:
            raise ValueError("calibration points are collinear")
        design = np.hstack([h, np.ones((h.shape[0], 1))])
        sol, *_ = np.linalg.lstsq(design, s, rcond=None)  # (3, 2)
        return cls(tuple(tuple(float(v) for v in row) for row in sol.T))  # type: ignore[arg-type]

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StageCalibration:
        """Read ``{"matrix": [[...], [...]]}`` or ``{"holder_mm": [...], "stage_um": [...]}``.

        Raises
        ------
        ValueError
            For neither form, or an invalid matrix or point set.
        """
        if "matrix" in data:
            return cls(tuple(tuple(row) for row in data["matrix"]))  # type: ignore[arg-type]
        if "holder_mm" in data and "stage_um" in data:
            return cls.from_points(data["holder_mm"], data["stage_um"])
        raise ValueError('give "matrix" (2x3) or "holder_mm" and "stage_um" point lists')

    def to_dict(self) -> dict[str, list[list[float]]]:
        """``{"matrix": [[a11, a12, bx], [a21, a22, by]]}`` (JSON-ready)."""
        return {"matrix": [list(row) for row in self.matrix]}

    # -- mapping ------------------------------------------------------------

    @property
    def _m(self) -> np.ndarray:
        return np.asarray(self.matrix, dtype=np.float64)

    def to_stage(self, xy_mm: ArrayLike) -> tuple[float, float]:
        """Holder position (mm) -> stage position (µm)."""
        m = self._m
        p = np.asarray(xy_mm, dtype=np.float64).reshape(2)
        out = m[:, :2] @ p + m[:, 2]
        return (float(out[0]), float(out[1]))

    def to_holder(self, xy_um: ArrayLike) -> tuple[float, float]:
        """Stage position (µm) -> holder position (mm); the inverse of :meth:`to_stage`."""
        m = self._m
        p = np.asarray(xy_um, dtype=np.float64).reshape(2) - m[:, 2]
        out = np.linalg.solve(m[:, :2], p)
        return (float(out[0]), float(out[1]))


# ---------------------------------------------------------------------------
# driver


class MMCoreMicroscope:
    """A Micro-Manager core (``CMMCorePlus`` or ``UniMMCore``) as a samplescout microscope.

    Parameters
    ----------
    core
        A loaded and initialised core (its system configuration already loaded).
    overview_camera
        Label of the overview camera; default: the core's current camera. It is
        selected for each snap and the previously selected camera restored after.
    xy_stage
        Label of the XY stage; default: the core's current XY stage.
    calibration
        Holder mm -> stage µm; default :class:`StageCalibration` (1000 µm/mm).
    pixel_size_mm
        Overview pixel size in holder mm; default ``core.getPixelSizeUm() / 1000``
        read with the overview camera selected (a pixel-size configuration must match).
    rotation_deg
        Overview camera rotation in holder coordinates (SPEC section 1).
    stage_range_mm
        ``((xmin, ymin), (xmax, ymax))`` in holder mm that frame centres may reach
        (moves are clipped to it); default: one field of view around the stage
        position at construction.
    context
        Free-form context (SPEC section 2); ``driver``, ``camera`` and
        ``stage_calibration`` are added unless given.
    name
        Reported microscope name (default ``mm:<camera label>``).

    Raises
    ------
    ValueError
        For a missing camera or stage, a non-positive pixel size or an empty range.
    """

    def __init__(
        self,
        core: CMMCorePlus,
        *,
        overview_camera: str | None = None,
        xy_stage: str | None = None,
        calibration: StageCalibration | None = None,
        pixel_size_mm: float | None = None,
        rotation_deg: float = 0.0,
        stage_range_mm: Range | None = None,
        context: Mapping[str, str] | None = None,
        name: str | None = None,
    ) -> None:
        self.core = core
        self.camera = overview_camera or str(core.getCameraDevice())
        if not self.camera:
            raise ValueError("no overview camera: pass overview_camera= or select a camera")
        self.name = name or f"mm:{self.camera}"
        self.xy_stage = xy_stage or str(core.getXYStageDevice())
        if not self.xy_stage:
            raise ValueError("no XY stage: pass xy_stage= or select an XY stage")
        loaded = set(core.getLoadedDevices())
        for label in (self.camera, self.xy_stage):
            if label not in loaded:
                raise ValueError(f"device {label!r} is not loaded in the core")
        self.calibration = calibration or StageCalibration()
        if pixel_size_mm is not None and not (math.isfinite(pixel_size_mm) and pixel_size_mm > 0):
            raise ValueError("pixel_size_mm must be > 0")
        self._pixel_size_mm = pixel_size_mm
        if not math.isfinite(rotation_deg):
            raise ValueError("rotation_deg must be finite")
        self.rotation_deg = float(rotation_deg)
        if stage_range_mm is None:
            width, height = self._frame_size()
            ps = self.pixel_size_mm()
            cx, cy = self.position_mm()
            hw, hh = width * ps / 2, height * ps / 2
            stage_range_mm = ((cx - hw, cy - hh), (cx + hw, cy + hh))
        (x0, y0), (x1, y1) = stage_range_mm
        rng = ((float(x0), float(y0)), (float(x1), float(y1)))
        if not all(math.isfinite(v) for pt in rng for v in pt) or x1 < x0 or y1 < y0:
            raise ValueError("stage_range_mm must be finite ((xmin, ymin), (xmax, ymax))")
        self.stage_range_mm: Range = rng
        ctx = dict(context or {})
        ctx.setdefault("driver", "pymmcore-plus")
        ctx.setdefault("camera", self.camera)
        ctx.setdefault("stage_calibration", json.dumps(self.calibration.to_dict()["matrix"]))
        self.context = ctx

    # -- helpers ------------------------------------------------------------

    @contextlib.contextmanager
    def _overview_selected(self) -> Iterator[None]:
        """Select the overview camera for the block, then restore the previous camera."""
        previous = str(self.core.getCameraDevice())
        if previous != self.camera:
            self.core.setCameraDevice(self.camera)
        try:
            yield
        finally:
            if previous and previous != self.camera:
                self.core.setCameraDevice(previous)

    def _frame_size(self) -> tuple[int, int]:
        with self._overview_selected():
            return int(self.core.getImageWidth()), int(self.core.getImageHeight())

    def pixel_size_mm(self) -> float:
        """The overview pixel size in holder mm (given, else from the core's calibration).

        Raises
        ------
        OperationalError
            When neither was given nor does a pixel-size configuration match.
        """
        if self._pixel_size_mm is not None:
            return self._pixel_size_mm
        with self._overview_selected():
            ps_um = float(self.core.getPixelSizeUm())
        if not (math.isfinite(ps_um) and ps_um > 0):
            raise OperationalError(
                f"{self.name}: no pixel size "
                "calibrated in Micro-Manager for the overview camera; define a pixel-size "
                "configuration or pass pixel_size_mm="
            )
        return ps_um / 1000.0

    def position_mm(self) -> tuple[float, float]:
        """Where the stage says it is, in holder mm (after waiting for it to settle)."""
        self.core.waitForDevice(self.xy_stage)
        x, y = self.core.getXYPosition(self.xy_stage)
        return self.calibration.to_holder((x, y))

    # -- Microscope protocol ------------------------------------------------

    def describe(self) -> MicroscopeInfo:
        """Camera size, pixel size, rotation and stage range; moves nothing."""
        width, height = self._frame_size()
        (x0, y0), (x1, y1) = self.stage_range_mm
        return MicroscopeInfo(
            name=self.name,
            camera_width=width,
            camera_height=height,
            pixel_size_mm=self.pixel_size_mm(),
            rotation_deg=self.rotation_deg,
            stage_min_mm=(x0, y0),
            stage_max_mm=(x1, y1),
            carrier=None,
            context=dict(self.context),
        )

    def move_to(self, center_mm: tuple[float, float]) -> tuple[float, float]:
        """Move the overview camera centre to ``center_mm`` (clipped to the stage range).

        Returns
        -------
        tuple of float
            The holder position reached, from the stage position read back.
        """
        (x0, y0), (x1, y1) = self.stage_range_mm
        x, y = float(center_mm[0]), float(center_mm[1])
        if not (math.isfinite(x) and math.isfinite(y)):
            raise ValueError(f"center_mm must be finite, got {center_mm!r}")
        target = (min(max(x, x0), x1), min(max(y, y0), y1))
        sx, sy = self.calibration.to_stage(target)
        self.core.setXYPosition(self.xy_stage, sx, sy)
        return self.position_mm()

    def snap(self) -> tuple[np.ndarray, Pose]:
        """Snap the overview camera at the current position.

        Returns
        -------
        image : numpy.ndarray
            ``(H, W)`` grey or ``(H, W, 3)`` BGR, the camera's integer dtype.
        pose : Pose
            Centre from the stage position read back, the pixel size and rotation.
        """
        center = self.position_mm()
        ps = self.pixel_size_mm()
        with self._overview_selected():
            self.core.snapImage()
            image = np.array(self.core.getImage(), copy=True)
        if image.ndim == 3:
            # pymmcore-plus gives colour as RGB(A); samplescout frames are BGR (cv2).
            image = np.ascontiguousarray(image[..., 2::-1])
        return image, Pose(center, ps, self.rotation_deg)


# ---------------------------------------------------------------------------
# factory


def _import_pymmcore_plus() -> Any:
    try:
        import pymmcore_plus
    except ImportError:
        raise InputError(
            "request",
            _ADDRESS_FIELD,
            f"mm: microscopes need pymmcore-plus ({INSTALL_HINT})",
        ) from None
    return pymmcore_plus


def _new_core(pmp: Any) -> CMMCorePlus:
    """A fresh core: ``UniMMCore`` (C++ and Python devices) when available."""
    try:
        from pymmcore_plus.experimental.unicore import UniMMCore
    except ImportError:  # pragma: no cover - older or newer pymmcore-plus
        return pmp.CMMCorePlus()
    return UniMMCore()


@contextlib.contextmanager
def _quiet_discovery() -> Iterator[None]:
    """Silence pymmcore-plus's 'no Micro-Manager found' log; we report it ourselves."""
    log = logging.getLogger("pymmcore-plus")
    level = log.level
    log.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        log.setLevel(level)


def sidecar_path(config: Path) -> Path:
    """The samplescout settings next to a Micro-Manager config: ``<stem>.samplescout.json``."""
    return config.with_name(config.stem + ".samplescout.json")


def _load_sidecar(path: Path) -> dict[str, Any]:
    """Driver keyword arguments from a sidecar file (see ``docs/drivers.md``)."""
    src = str(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(src, "", f"cannot read settings: {exc}") from None
    if not isinstance(data, dict):
        raise InputError(src, "", "must be a JSON object")
    kwargs: dict[str, Any] = {}
    for key in ("overview_camera", "xy_stage", "name"):
        if key in data:
            if not isinstance(data[key], str) or not data[key]:
                raise InputError(src, key, "must be a non-empty string")
            kwargs[key] = data[key]
    for key in ("pixel_size_mm", "rotation_deg"):
        if key in data:
            value = data[key]
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise InputError(src, key, "must be a number")
            if not math.isfinite(value) or (key == "pixel_size_mm" and value <= 0):
                raise InputError(src, key, "must be > 0" if key == "pixel_size_mm" else "finite")
            kwargs[key] = float(value)
    if "stage_range_mm" in data:
        try:
            (x0, y0), (x1, y1) = data["stage_range_mm"]
            kwargs["stage_range_mm"] = ((float(x0), float(y0)), (float(x1), float(y1)))
        except (TypeError, ValueError):
            raise InputError(
                src, "stage_range_mm", "must be [[xmin, ymin], [xmax, ymax]]"
            ) from None
    if "calibration" in data:
        if not isinstance(data["calibration"], dict):
            raise InputError(src, "calibration", "must be an object")
        try:
            kwargs["calibration"] = StageCalibration.from_dict(data["calibration"])
        except (TypeError, ValueError) as exc:
            raise InputError(src, "calibration", str(exc)) from None
    if "context" in data:
        ctx = data["context"]
        if not isinstance(ctx, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in ctx.items()
        ):
            raise InputError(src, "context", "must map strings to strings")
        kwargs["context"] = ctx
    return kwargs


def open_mm_microscope(spec: str, **overrides: Any) -> MMCoreMicroscope:
    """A Micro-Manager microscope from an address.

    Parameters
    ----------
    spec
        ``mm:/path/to/config.cfg``: load that Micro-Manager system configuration;
        driver settings (overview camera, calibration, range...) come from the
        sidecar ``/path/to/config.samplescout.json`` when it exists.
        ``mm:demo``: the Micro-Manager demo configuration (needs the demo device
        adapters, installed once with ``mmcore install``; nothing is downloaded here).
    **overrides
        :class:`MMCoreMicroscope` keyword arguments that win over the sidecar.

    Returns
    -------
    MMCoreMicroscope
        The driver, its core loaded and initialised.

    Raises
    ------
    InputError
        Without pymmcore-plus, for a missing config or sidecar error, or ``mm:demo``
        without Micro-Manager adapters.
    OperationalError
        When Micro-Manager fails to load the configuration (missing adapter,
        hardware not connected...).
    """
    kind, sep, rest = spec.partition(":")
    if kind != "mm" or not sep or not rest:
        raise InputError(
            "request", _ADDRESS_FIELD, f"not a Micro-Manager address {spec!r} (mm:CONFIG.cfg)"
        )
    pmp = _import_pymmcore_plus()
    kwargs: dict[str, Any] = {}
    if rest == "demo":
        with _quiet_discovery():
            mm_path = pmp.find_micromanager()
            if not mm_path:
                raise InputError(
                    "request",
                    _ADDRESS_FIELD,
                    "mm:demo needs the Micro-Manager demo device adapters: install them once "
                    "with `mmcore install` (or set MICROMANAGER_PATH)",
                )
            core = _new_core(pmp)
        config = Path(mm_path) / "MMConfig_demo.cfg"
        # The demo stage starts at (0, 0) µm; give it a small range to raster.
        kwargs.update(
            name="mm:demo",
            stage_range_mm=((-1.0, -1.0), (1.0, 1.0)),
            context={"microscope": "demo"},
        )
    else:
        config = Path(rest).expanduser()
        if not config.is_file():
            raise InputError("request", _ADDRESS_FIELD, f"no Micro-Manager config at {rest!r}")
        sidecar = sidecar_path(config)
        kwargs.update(name=f"mm:{config.stem}", context={"microscope": config.stem})
        if sidecar.is_file():
            kwargs.update(_load_sidecar(sidecar))
        with _quiet_discovery():
            core = _new_core(pmp)
    kwargs.update(overrides)
    try:
        core.loadSystemConfiguration(str(config))
    except Exception as exc:  # Micro-Manager raises RuntimeError/OSError subclasses
        raise OperationalError(
            f"{spec}: Micro-Manager could not load the configuration: {exc}".splitlines()[0]
        ) from exc
    try:
        return MMCoreMicroscope(core, **kwargs)
    except (ValueError, OperationalError) as exc:
        with contextlib.suppress(Exception):
            core.unloadAllDevices()
        if isinstance(exc, OperationalError):
            raise
        raise InputError("request", _ADDRESS_FIELD, f"{spec}: {exc}") from None
