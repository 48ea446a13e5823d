"""Hostile-input checks for the parsers and decoders, shared by the tests and the fuzz run.

Each ``check_*`` function feeds one input to a public entry point and asserts the
contract for untrusted data: the result is valid, or an :class:`InputError` naming a
field is raised — never any other exception, never a crash.
"""

from __future__ import annotations

import io
import json
import struct
import zlib
from typing import Any

import numpy as np

from samplescout.bundle import decode_image_bytes, parse_manifest
from samplescout.errors import InputError


def check_manifest(doc: Any) -> None:
    try:
        manifest = parse_manifest(doc, "fuzz/")
    except InputError as exc:
        assert exc.field or exc.message, "an input error must say what is wrong"
        return
    assert manifest.frames, "a valid manifest has frames"
    for spec in manifest.frames:
        assert spec.pose.pixel_size_mm > 0
        assert all(np.isfinite(v) for v in (*spec.pose.center_mm, spec.pose.rotation_deg))


def check_manifest_text(text: str) -> None:
    try:
        doc = json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        return
    check_manifest(doc)


def check_image_bytes(data: bytes) -> None:
    try:
        image = decode_image_bytes(data, "fuzz", "image")
    except InputError as exc:
        assert exc.field == "image"
        return
    assert image.dtype in (np.uint8, np.uint16)
    assert image.ndim in (2, 3)


def png_bytes(width: int, height: int, depth: int = 8) -> bytes:
    """A small valid PNG, the seed that mutations start from."""
    import cv2

    values = np.arange(width * height).reshape(height, width) % 251
    image = values.astype(np.uint8) if depth == 8 else values.astype(np.uint16)
    ok, data = cv2.imencode(".png", image)
    assert ok
    return data.tobytes()


def png_with_header(width: int, height: int) -> bytes:
    """A PNG whose IHDR claims ``width`` x ``height`` with almost no pixel data."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    out = io.BytesIO()
    out.write(b"\x89PNG\r\n\x1a\n")
    out.write(struct.pack(">I", len(ihdr)) + chunk + struct.pack(">I", zlib.crc32(chunk)))
    idat = b"IDAT" + zlib.compress(b"\x00" * 16)
    out.write(struct.pack(">I", len(idat) - 4) + idat + struct.pack(">I", zlib.crc32(idat)))
    end = b"IEND"
    out.write(struct.pack(">I", 0) + end + struct.pack(">I", zlib.crc32(end)))
    return out.getvalue()


def run(
    *, seconds: float | None = None, iterations: int | None = None, seed: int = 0
) -> dict[str, int]:
    """Mutate seeds for ``seconds`` or ``iterations`` and check every entry point.

    Returns how many images and manifests were tried; any contract violation raises.
    """
    import time

    rng = np.random.default_rng(seed)
    seeds = [png_bytes(32, 24), png_bytes(40, 20, 16), png_with_header(100_000, 100_000)]
    manifest = json.dumps(
        {"version": 1, "frames": [{"file": "a.png", "center_mm": [1, 2], "pixel_size_mm": 0.1}]}
    )
    counts = {"images": 0, "manifests": 0}
    deadline = time.monotonic() + (seconds if seconds is not None else float("inf"))
    while time.monotonic() < deadline and (iterations is None or counts["images"] < iterations):
        data = bytearray(seeds[int(rng.integers(len(seeds)))])
        for _ in range(int(rng.integers(1, 8))):
            pos = int(rng.integers(len(data)))
            data[pos] = int(rng.integers(256))
        if rng.random() < 0.2:
            data = data[: int(rng.integers(1, len(data)))]
        check_image_bytes(bytes(data))
        counts["images"] += 1
        text = list(manifest)
        for _ in range(int(rng.integers(1, 4))):
            text[int(rng.integers(len(text)))] = chr(int(rng.integers(32, 127)))
        check_manifest_text("".join(text))
        counts["manifests"] += 1
    return counts
