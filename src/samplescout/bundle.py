"""Frame bundles (SPEC section 2): validation, reading and writing.

A bundle is a directory with ``manifest.json`` and the images it names. Every
input error is raised as :class:`~samplescout.errors.InputError` naming the
bundle and the field, before any frame is processed.
"""

from __future__ import annotations

import io
import json
import math
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any, BinaryIO

import cv2
import numpy as np

from samplescout.atomic import atomic_directory, write_json_atomic
from samplescout.errors import InputError
from samplescout.geometry import FrameGeometry, Pose

MANIFEST = "manifest.json"
SUPPORTED_VERSIONS = (1,)
CARRIERS = ("slide", "multiwell", "chamber_slide", "petri_dish", "unknown")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")
MAX_MANIFEST_BYTES = 16 * 1024 * 1024
MAX_FRAMES = 10_000
MAX_FRAME_PIXELS = 64_000_000
MAX_IMAGE_BYTES = 512 * 1024 * 1024
#: Even a blank frame needs about one byte per thousand pixels in PNG/JPEG/TIFF.
MAX_PIXELS_PER_BYTE = 5000


@dataclass(frozen=True, slots=True)
class FrameSpec:
    """One entry of ``frames``: its index, file and pose."""

    index: int
    file: str
    pose: Pose


@dataclass(frozen=True, slots=True)
class Manifest:
    version: int
    carrier: str | None
    context: dict[str, str]
    frames: tuple[FrameSpec, ...]


@dataclass(slots=True)
class Bundle:
    """A validated bundle on disk."""

    path: Path
    manifest: Manifest
    _sizes: dict[int, tuple[int, int]] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return bundle_label(self.path)

    def read_image(self, index: int) -> np.ndarray:
        """Decode frame ``index`` (8/16-bit, grey or colour) or raise :class:`InputError`."""
        spec = self.manifest.frames[index]
        return decode_image_file(self.path / spec.file, self.name, f"frames[{index}].file")

    def geometry(self, index: int, image: np.ndarray) -> FrameGeometry:
        return FrameGeometry(self.manifest.frames[index].pose, image.shape[1], image.shape[0])

    def image_size(self, index: int) -> tuple[int, int]:
        """``(width, height)`` of frame ``index`` from its header (no pixel decoding)."""
        if index not in self._sizes:
            spec = self.manifest.frames[index]
            self._sizes[index] = probe_image_file(
                self.path / spec.file, self.name, f"frames[{index}].file"
            )
        return self._sizes[index]

    def check_images(self) -> None:
        """Check every image header (size, readability) without decoding pixels."""
        for spec in self.manifest.frames:
            path = self.path / spec.file
            fld = f"frames[{spec.index}].file"
            self._sizes[spec.index] = probe_image_file(path, self.name, fld)

    def __iter__(self) -> Iterator[tuple[FrameSpec, np.ndarray]]:
        for spec in self.manifest.frames:
            yield spec, self.read_image(spec.index)


def bundle_label(path: Path) -> str:
    return f"{path.name or str(path)}/"


def open_bundle(path: str | os.PathLike[str], *, check_images: bool = True) -> Bundle:
    """Validate a bundle directory and its manifest (and, by default, its image files)."""
    root = Path(path)
    label = bundle_label(root)
    if not root.is_dir():
        raise InputError(label, "", "not a bundle directory")
    manifest_path = root / MANIFEST
    if not manifest_path.is_file():
        raise InputError(label, MANIFEST, "missing")
    if manifest_path.stat().st_size > MAX_MANIFEST_BYTES:
        raise InputError(label, MANIFEST, f"larger than {MAX_MANIFEST_BYTES} bytes")
    try:
        raw = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(label, MANIFEST, f"not valid JSON ({exc})") from None
    manifest = parse_manifest(raw, label, root)
    bundle = Bundle(root, manifest)
    if check_images:
        bundle.check_images()
    return bundle


def parse_manifest(raw: Any, label: str, root: Path | None = None) -> Manifest:
    """Validate a decoded manifest; unknown fields are ignored."""
    if not isinstance(raw, Mapping):
        raise InputError(label, MANIFEST, "must be a JSON object")
    version = raw.get("version")
    if isinstance(version, bool) or not isinstance(version, int):
        raise InputError(label, "version", "missing or not an integer")
    if version not in SUPPORTED_VERSIONS:
        raise InputError(label, "version", f"unknown version {version} (supported: 1)")
    carrier = raw.get("carrier")
    if carrier is not None and carrier not in CARRIERS:
        raise InputError(
            label, "carrier", f"unknown carrier {carrier!r} (one of {', '.join(CARRIERS)})"
        )
    context = raw.get("context", {}) or {}
    if not isinstance(context, Mapping):
        raise InputError(label, "context", "must be an object")
    for k, v in context.items():
        if not isinstance(v, str):
            raise InputError(label, f"context.{k}", "must be a string")
    frames_raw = raw.get("frames")
    if not isinstance(frames_raw, list):
        raise InputError(label, "frames", "missing or not a list")
    if not frames_raw:
        raise InputError(label, "frames", "must not be empty")
    if len(frames_raw) > MAX_FRAMES:
        raise InputError(label, "frames", f"more than {MAX_FRAMES} frames")
    frames = tuple(_parse_frame(i, f, label, root) for i, f in enumerate(frames_raw))
    return Manifest(
        version=version,
        carrier=None if carrier in (None, "unknown") else carrier,
        context={str(k): v for k, v in context.items()},
        frames=frames,
    )


def _number(value: Any, label: str, fld: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InputError(label, fld, "must be a number")
    if not math.isfinite(value):
        raise InputError(label, fld, "must be finite")
    return float(value)


def _parse_frame(i: int, raw: Any, label: str, root: Path | None) -> FrameSpec:
    where = f"frames[{i}]"
    if not isinstance(raw, Mapping):
        raise InputError(label, where, "must be an object")
    file = raw.get("file")
    if not isinstance(file, str) or not file:
        raise InputError(label, f"{where}.file", "missing or not a string")
    _check_relative(file, label, f"{where}.file", root)
    center = raw.get("center_mm")
    if not isinstance(center, list | tuple) or len(center) != 2:
        raise InputError(label, f"{where}.center_mm", "must be [x, y]")
    cx = _number(center[0], label, f"{where}.center_mm[0]")
    cy = _number(center[1], label, f"{where}.center_mm[1]")
    ps = _number(raw.get("pixel_size_mm"), label, f"{where}.pixel_size_mm")
    if ps <= 0:
        raise InputError(label, f"{where}.pixel_size_mm", "must be > 0")
    rot = _number(raw.get("rotation_deg", 0.0), label, f"{where}.rotation_deg")
    return FrameSpec(index=i, file=file, pose=Pose((cx, cy), ps, rot))


def _check_relative(file: str, label: str, fld: str, root: Path | None) -> None:
    if (
        PurePosixPath(file).is_absolute()
        or PureWindowsPath(file).is_absolute()
        or file.startswith(("/", "\\"))
    ):
        raise InputError(label, fld, f"absolute path {file!r} not allowed")
    parts = PurePosixPath(file.replace("\\", "/")).parts
    if ".." in parts:
        raise InputError(label, fld, f"path {file!r} leaves the bundle")
    if root is not None:
        resolved = (root / file).resolve()
        if not resolved.is_relative_to(root.resolve()):
            raise InputError(label, fld, f"path {file!r} leaves the bundle")
        if not resolved.is_file():
            raise InputError(label, fld, f"missing file {file!r}")
    if not file.lower().endswith(IMAGE_SUFFIXES):
        raise InputError(label, fld, f"{file!r} is not a PNG, JPEG or TIFF file")


def probe_image_file(path: Path, label: str, fld: str) -> tuple[int, int]:
    """Return ``(width, height)`` from the image header only, rejecting bad or huge images."""
    try:
        with path.open("rb") as fh:
            return _probe(fh, repr(path.name), label, fld, path.stat().st_size)
    except OSError as exc:
        raise InputError(label, fld, f"cannot read {path.name!r} ({exc.strerror})") from None


def _probe(fh: BinaryIO, what: str, label: str, fld: str, nbytes: int) -> tuple[int, int]:
    """Header check with Pillow: format, size limits, before any pixel is decoded.

    A file that claims far more pixels than its bytes can plausibly hold (a
    decompression bomb) is refused too.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(fh) as im:
            width, height = im.size
            fmt = im.format
    except (UnidentifiedImageError, Image.DecompressionBombError, SyntaxError, ValueError):
        raise InputError(label, fld, f"{what} is not a readable PNG, JPEG or TIFF image") from None
    except OSError as exc:
        raise InputError(label, fld, f"{what} is not a readable image ({exc})") from None
    if fmt not in ("PNG", "JPEG", "TIFF"):
        raise InputError(label, fld, f"{what} is {fmt}, not PNG, JPEG or TIFF")
    if width < 16 or height < 16:
        raise InputError(label, fld, f"image too small ({width}x{height})")
    if width * height > MAX_FRAME_PIXELS:
        raise InputError(label, fld, f"image has more than {MAX_FRAME_PIXELS} pixels")
    if width * height > MAX_PIXELS_PER_BYTE * max(nbytes, 1):
        raise InputError(
            label, fld, f"{width}x{height} pixels in {nbytes} bytes: not a plausible image"
        )
    return int(width), int(height)


def decode_image_bytes(data: bytes, label: str, fld: str) -> np.ndarray:
    """Decode PNG/JPEG/TIFF bytes keeping bit depth; raise :class:`InputError` if unreadable.

    The header is checked first (format, dimensions, pixel count), so hostile bytes are
    rejected before the decoder allocates anything large.
    """
    if not data:
        raise InputError(label, fld, "empty image file")
    if len(data) > MAX_IMAGE_BYTES:
        raise InputError(label, fld, f"image larger than {MAX_IMAGE_BYTES} bytes")
    _probe(io.BytesIO(data), "image", label, fld, len(data))
    buf = np.frombuffer(data, dtype=np.uint8)
    try:
        img = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    except cv2.error:
        img = None
    if img is None or img.size == 0:
        raise InputError(label, fld, "not a readable PNG, JPEG or TIFF image")
    return check_image_array(img, label, fld)


def check_image_array(img: np.ndarray, label: str, fld: str) -> np.ndarray:
    if img.dtype not in (np.uint8, np.uint16):
        raise InputError(label, fld, f"unsupported pixel type {img.dtype} (8- or 16-bit only)")
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if img.ndim == 3 and img.shape[2] == 4:
        img = img[:, :, :3]
    if img.ndim not in (2, 3) or (img.ndim == 3 and img.shape[2] != 3):
        raise InputError(label, fld, f"unsupported image shape {img.shape}")
    if img.shape[0] < 16 or img.shape[1] < 16:
        raise InputError(label, fld, f"image too small ({img.shape[1]}x{img.shape[0]})")
    if img.shape[0] * img.shape[1] > MAX_FRAME_PIXELS:
        raise InputError(label, fld, f"image has more than {MAX_FRAME_PIXELS} pixels")
    return img


def decode_image_file(path: Path, label: str, fld: str) -> np.ndarray:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(label, fld, f"cannot read {path.name!r} ({exc.strerror})") from None
    return decode_image_bytes(data, label, fld)


def write_bundle(
    out: str | os.PathLike[str],
    frames: Iterable[tuple[np.ndarray, Pose]],
    *,
    carrier: str | None = None,
    context: Mapping[str, str] | None = None,
    image_format: str = "png",
    extra_files: Mapping[str, Any] | None = None,
) -> Path:
    """Write a bundle atomically (the directory appears only when complete).

    ``frames`` may be a generator: each frame is written as soon as it is produced.

    ``extra_files`` maps file names to JSON-serialisable objects written beside the
    manifest (e.g. the simulator's ``ground_truth.json``).
    """
    if image_format not in ("png", "jpg", "tif"):
        raise ValueError(f"image_format must be png, jpg or tif, not {image_format!r}")
    with atomic_directory(out) as tmp:
        entries = []
        for i, (img, pose) in enumerate(frames):
            name = f"frame_{i:03d}.{image_format}"
            params = [cv2.IMWRITE_JPEG_QUALITY, 92] if image_format == "jpg" else []
            if not cv2.imwrite(str(tmp / name), img, params):
                raise OSError(f"could not write {name}")
            entries.append({"file": name, **pose.to_dict()})
        manifest: dict[str, Any] = {"version": 1}
        if carrier is not None:
            manifest["carrier"] = carrier
        if context:
            manifest["context"] = dict(context)
        manifest["frames"] = entries
        write_json_atomic(tmp / MANIFEST, manifest)
        for fname, obj in (extra_files or {}).items():
            write_json_atomic(tmp / fname, obj)
    return Path(out)
