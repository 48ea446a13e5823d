"""The localization result document (SPEC section 3)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import samplescout

RESULT_VERSION = 1
SAMPLE_ELEMENTS = ("cover_glass", "well", "chamber", "dish_glass")


def assemble_result(
    fused: Mapping[str, Any],
    *,
    models: Mapping[str, str],
    context: Mapping[str, str],
    stats: Mapping[str, Any],
) -> dict[str, Any]:
    """Put fusion output, provenance and stats together in SPEC key order."""
    return {
        "version": RESULT_VERSION,
        "carrier": fused.get("carrier") or "unknown",
        "samples": list(fused.get("samples", [])),
        "plate": fused.get("plate"),
        "structures": list(fused.get("structures", [])),
        "barcodes": list(fused.get("barcodes", [])),
        "provenance": {
            "samplescout": samplescout.__version__,
            "models": dict(models),
            "context": dict(context),
        },
        "stats": dict(stats),
    }


def validate_result(doc: Any) -> list[str]:
    """Problems that make ``doc`` not a SPEC section 3 result (empty list: valid)."""
    problems: list[str] = []
    if not isinstance(doc, Mapping):
        return ["result is not an object"]
    if doc.get("version") != RESULT_VERSION:
        problems.append("version must be 1")
    for key in ("carrier", "samples", "structures", "barcodes", "provenance", "stats"):
        if key not in doc:
            problems.append(f"missing {key}")
    for i, s in enumerate(doc.get("samples") or []):
        where = f"samples[{i}]"
        if s.get("element") not in SAMPLE_ELEMENTS:
            problems.append(f"{where}.element: {s.get('element')!r}")
        shape = s.get("shape")
        poly = s.get("polygon_mm") or []
        size = s.get("size_mm") or []
        if shape == "rectangle":
            if len(poly) != 4 or len(size) != 2:
                problems.append(f"{where}: rectangle needs 4 vertices and [w, h]")
            angle = s.get("angle_deg", 0.0)
            if not -90.0 < angle <= 90.0:
                problems.append(f"{where}.angle_deg: {angle} not in (-90, 90]")
        elif shape == "circle":
            if len(poly) < 32 or len(size) != 1:
                problems.append(f"{where}: circle needs >= 32 vertices and [diameter]")
        else:
            problems.append(f"{where}.shape: {shape!r}")
        nums = [*s.get("center_mm", []), *size, *(c for p in poly for c in p)]
        if not all(isinstance(v, int | float) and math.isfinite(v) for v in nums):
            problems.append(f"{where}: non-finite numbers")
        conf = s.get("confidence")
        if not isinstance(conf, int | float) or not 0.0 <= conf <= 1.0:
            problems.append(f"{where}.confidence: {conf!r}")
    return problems
