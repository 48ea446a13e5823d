"""Overview-camera simulator: random holders, analytic frames, bundles with ground truth.

Typical use::

    from samplescout.acquire.simulator import simulate
    simulate("run42", carrier="multiwell", profile="narrow", seed=3, difficulty="hard")

writes a frame bundle (SPEC section 2) plus ``ground_truth.json`` (SPEC section 3
result format, true holder coordinates). The manifest holds the *reported* poses:
they differ from the true poses used for rendering by a few tens of micrometres
(stage error) and by a small error in the calibrated camera rotation, which itself
is not 0.

Pieces for drivers and training-data generators: :func:`make_scene`,
:func:`camera_profile`, :func:`overview_path`, :func:`render_frame`,
:func:`ground_truth`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from samplescout.acquire.render import holder_grid, render_frame
from samplescout.acquire.scene import (
    CARRIERS,
    DIFFICULTIES,
    HOLDER_OPENINGS_MM,
    Scene,
    ground_truth,
    make_scene,
)
from samplescout.bundle import write_bundle
from samplescout.geometry import Pose

__all__ = [
    "CARRIERS",
    "DIFFICULTIES",
    "PROFILES",
    "CameraProfile",
    "Scene",
    "camera_profile",
    "ground_truth",
    "holder_grid",
    "make_scene",
    "overview_path",
    "render_frame",
    "simulate",
    "true_poses",
]

PROFILES: tuple[str, ...] = ("wide", "narrow")
IMAGE_FORMATS: tuple[str, ...] = ("png", "jpg", "tif")
GROUND_TRUTH = "ground_truth.json"


@dataclass(frozen=True, slots=True)
class CameraProfile:
    """An overview camera: frame size in pixels, pixel size in holder mm, raster overlap."""

    name: str
    width: int
    height: int
    pixel_size_mm: float
    overlap: float = 0.0

    @property
    def field_mm(self) -> tuple[float, float]:
        return (self.width * self.pixel_size_mm, self.height * self.pixel_size_mm)


def camera_profile(
    name: str,
    holder: str | tuple[float, float],
    *,
    frame_scale: float = 1.0,
    frame_size: tuple[int, int] | None = None,
) -> CameraProfile:
    """The camera for a profile and holder.

    Parameters
    ----------
    name
        ``wide``: one 4000x3000 frame seeing the whole holder opening plus a margin
        (pixel size 0.0225-0.035 mm depending on the holder). ``narrow``: 1600x1200
        frames of 0.0125 mm pixels (a 20x15 mm field) along a raster path.
    holder
        Holder type (``slide_holder``, ``plate_holder``, ``dish_holder``) or its
        opening ``(w, h)`` in mm.
    frame_scale
        Shrinks the pixel counts (and enlarges the pixel size) by this factor,
        keeping the field of view: for fast tests.
    frame_size
        Explicit ``(width, height)`` in pixels instead of the profile's; the field of
        view is kept (pixel size adapts).

    Raises
    ------
    ValueError
        For an unknown profile or holder, or a non-positive scale.
    """
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r} (one of {', '.join(PROFILES)})")
    if isinstance(holder, str):
        if holder not in HOLDER_OPENINGS_MM:
            raise ValueError(f"unknown holder {holder!r} (one of {', '.join(HOLDER_OPENINGS_MM)})")
        opening = HOLDER_OPENINGS_MM[holder]
    else:
        opening = (float(holder[0]), float(holder[1]))
    if not frame_scale > 0:
        raise ValueError("frame_scale must be > 0")
    if name == "wide":
        w, h = 4000, 3000
        margin = 10.0
        ps = max((opening[0] + margin) / w, (opening[1] + margin) / h)
        ps = math.ceil(ps * 2e4) / 2e4  # a round number (multiple of 0.05 um)
        overlap = 0.0
    else:
        w, h, ps, overlap = 1600, 1200, 0.0125, 0.15
    fw, fh = w * ps, h * ps
    if frame_size is not None:
        w, h = int(frame_size[0]), int(frame_size[1])
    else:
        w, h = max(16, round(w * frame_scale)), max(16, round(h * frame_scale))
    ps = max(fw / w, fh / h)
    return CameraProfile(name, w, h, ps, overlap)


def overview_path(
    profile: CameraProfile,
    opening_mm: tuple[float, float],
    *,
    rotation_deg: float = 0.0,
    margin_mm: float = 0.5,
) -> list[Pose]:
    """Frame poses that cover the holder opening.

    A wide profile gives one frame at the opening centre. A narrow profile gives a
    serpentine raster (rows top to bottom, alternating direction) whose frames
    overlap by at least ``profile.overlap`` and cover the opening plus
    ``margin_mm`` on every side.
    """
    ow, oh = opening_mm
    if profile.name == "wide" or profile.overlap <= 0:
        return [Pose((ow / 2, oh / 2), profile.pixel_size_mm, rotation_deg)]
    fw, fh = profile.field_mm
    # shrink the usable field a little so a small camera rotation leaves no gaps
    a = math.radians(abs(rotation_deg))
    ew = fw * math.cos(a) - fh * math.sin(a)
    eh = fh * math.cos(a) - fw * math.sin(a)

    def centres(length: float, field: float) -> list[float]:
        span = length + 2 * margin_mm
        if span <= field:
            return [length / 2]
        step = field * (1 - profile.overlap)
        n = math.ceil((span - field) / step) + 1
        first, last = -margin_mm + field / 2, length + margin_mm - field / 2
        return [first + (last - first) * k / (n - 1) for k in range(n)]

    xs, ys = centres(ow, ew), centres(oh, eh)
    poses: list[Pose] = []
    for r, y in enumerate(ys):
        row = xs if r % 2 == 0 else xs[::-1]
        poses.extend(Pose((x, y), profile.pixel_size_mm, rotation_deg) for x in row)
    return poses


def true_poses(scene: Scene, reported: list[Pose], rng: np.random.Generator) -> list[Pose]:
    """The poses the frames were really taken at: stage error and the true camera rotation."""
    out = []
    for p in reported:
        err = rng.normal(0.0, scene.pose_sigma_mm, 2)
        out.append(
            Pose(
                (p.center_mm[0] + float(err[0]), p.center_mm[1] + float(err[1])),
                p.pixel_size_mm,
                scene.camera_rotation_deg,
            )
        )
    return out


def simulate(
    out: Path | str,
    *,
    carrier: str = "slide",
    profile: str = "wide",
    seed: int = 0,
    difficulty: str = "easy",
    image_format: str = "png",
    frame_scale: float = 1.0,
) -> Path:
    """Simulate an overview acquisition and write it as a bundle with ground truth.

    Parameters
    ----------
    out
        Bundle directory to create (replaced atomically if it exists).
    carrier
        ``slide``, ``multiwell``, ``chamber_slide`` or ``petri_dish``.
    profile
        ``wide`` (one frame) or ``narrow`` (raster of overlapping frames).
    seed
        Same seed and arguments give byte-identical bundles.
    difficulty
        ``easy`` or ``hard`` (see :func:`make_scene`).
    image_format
        ``png``, ``jpg`` (8-bit only: 16-bit frames are scaled down) or ``tif``.
    frame_scale
        < 1 renders fewer, larger pixels over the same field of view (fast tests).

    Returns
    -------
    pathlib.Path
        ``out``. It holds ``manifest.json`` (reported poses), the frames and
        ``ground_truth.json`` (SPEC section 3, true holder coordinates).

    Raises
    ------
    ValueError
        For an unknown carrier, profile, difficulty or image format.
    """
    if carrier not in CARRIERS:
        raise ValueError(f"unknown carrier {carrier!r} (one of {', '.join(CARRIERS)})")
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r} (one of {', '.join(PROFILES)})")
    if difficulty not in DIFFICULTIES:
        raise ValueError(f"unknown difficulty {difficulty!r} (one of {', '.join(DIFFICULTIES)})")
    if image_format not in IMAGE_FORMATS:
        raise ValueError(
            f"unknown image_format {image_format!r} (one of {', '.join(IMAGE_FORMATS)})"
        )
    scene = make_scene(carrier, seed, difficulty)
    cam = camera_profile(profile, scene.holder_opening_mm, frame_scale=frame_scale)
    reported = overview_path(cam, scene.holder_opening_mm, rotation_deg=scene.reported_rotation_deg)
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0xCA3]))
    actual = true_poses(scene, reported, rng)
    blur = scene.blur_px * min(1.0, frame_scale)

    def frames() -> Iterator[tuple[np.ndarray, Pose]]:
        # Rendered one at a time while the bundle is written: memory stays flat.
        for rep, true in zip(reported, actual, strict=True):
            img = render_frame(scene, true, cam.width, cam.height, rng=rng, blur_px=blur)
            if image_format == "jpg" and img.dtype != np.uint8:
                img = (img.astype(np.float32) * (255.0 / ((1 << scene.adc_bits) - 1)) + 0.5).astype(
                    np.uint8
                )
            yield img, rep

    context = {"microscope": "sim", "camera": profile, "light": "ring-led"}
    gt = ground_truth(scene, context)
    gt["provenance"]["simulator"].update(
        {
            "profile": profile,
            "frame_scale": frame_scale,
            "true_poses": [p.to_dict() for p in actual],
        }
    )
    return write_bundle(
        os.fspath(out),
        frames(),
        carrier=carrier,
        context=context,
        image_format=image_format,
        extra_files={GROUND_TRUTH: gt},
    )
