"""Scan plan: from a localization result to the acquisition a user runs next.

For every sample (cover glass, chamber, dish glass) the plan holds a grid of stage
positions whose field of view (``fov_mm``, square or ``(w, h)``, axis-aligned in
holder coordinates) tiles the sample's outline with the requested ``overlap``: every
position lies inside the sample, and together the fields cover all of it. For a
multiwell plate it holds the selected wells (default all, or ``occupied``) with their
centres and positions, plus a useq-schema ``WellPlatePlan`` (stage µm, y up, as
useq expects) built with useq-schema when it is installed and as the same JSON
otherwise.

Everything is in holder mm (SPEC section 1). With a calibration (a 2x3 affine from
holder mm to stage µm, ``stage = A @ [x, y, 1]``) every position also comes in stage
µm. Without one, the useq plan uses holder µm with y pointing up (``x*1000, -y*1000``).

:func:`execute_plan` runs a plan on any :class:`~samplescout.microscope.Microscope`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import cv2
import numpy as np
from numpy.typing import ArrayLike, NDArray

from samplescout.errors import InputError
from samplescout.geometry import Pose, rotation_matrix
from samplescout.microscope import Microscope

FloatArray = NDArray[np.float64]
PLAN_VERSION = 1
#: Holder mm -> holder µm with y up: what the useq plan uses without a calibration.
HOLDER_UM_Y_UP: tuple[tuple[float, float, float], tuple[float, float, float]] = (
    (1000.0, 0.0, 0.0),
    (0.0, -1000.0, 0.0),
)


def scan_plan(
    result: Mapping[str, Any],
    *,
    fov_mm: float | tuple[float, float] = 0.5,
    overlap: float = 0.1,
    wells: Sequence[str] | str | None = None,
    calibration: ArrayLike | None = None,
) -> dict[str, Any]:
    """The acquisition plan for a SPEC section 3 result.

    Parameters
    ----------
    result
        A localization result document.
    fov_mm
        Field of view of the acquisition objective in mm (a square, or ``(w, h)``).
    overlap
        Fraction of the field shared by neighbouring positions, in [0, 1).
    wells
        Plates only: well names (``["A1", "B2"]`` or ``"A1,B2"``), ``"occupied"``
        (wells whose ``occupied`` >= 0.5) or ``None`` for all wells.
    calibration
        2x3 affine from holder mm to stage µm (6 numbers, row-major), optional.

    Returns
    -------
    dict
        ``{"version", "carrier", "fov_mm", "overlap", "calibration", "regions": [...],
        "plate": {...} | None, "positions": N}``; each region has ``label``,
        ``element``, ``shape``, ``polygon_mm``, ``positions_mm`` (and
        ``positions_um`` with a calibration).

    Raises
    ------
    InputError
        For a non-positive field of view, an overlap outside [0, 1), a bad
        calibration, an unknown well or a result without samples list.
    """
    fov = _fov(fov_mm)
    if not 0.0 <= overlap < 1.0 or not math.isfinite(overlap):
        raise InputError("plan", "overlap", "must be in [0, 1)")
    affine = _affine(calibration)
    samples = result.get("samples")
    if not isinstance(samples, list):
        raise InputError("plan", "samples", "the result has no samples list")
    plate = result.get("plate") if isinstance(result.get("plate"), Mapping) else None
    selected = _select_wells(samples, plate, wells)
    regions: list[dict[str, Any]] = []
    for k, s in enumerate(samples):
        if not isinstance(s, Mapping) or not s.get("polygon_mm"):
            raise InputError("plan", f"samples[{k}].polygon_mm", "missing")
        if s.get("element") == "well" and s.get("label") not in selected:
            continue
        poly = np.asarray(s["polygon_mm"], dtype=np.float64).reshape(-1, 2)
        positions = tile_polygon(poly, fov, overlap, shape=str(s.get("shape", "")))
        region: dict[str, Any] = {
            "label": str(s.get("label", k + 1)),
            "element": s.get("element"),
            "shape": s.get("shape"),
            "center_mm": [float(v) for v in s.get("center_mm", poly.mean(axis=0))],
            "polygon_mm": _pts(poly),
            "positions_mm": _pts(positions),
        }
        if affine is not None:
            region["positions_um"] = _pts(apply_affine(affine, positions))
        regions.append(region)
    plate_plan = _plate_plan(plate, samples, selected, fov, overlap, affine) if plate else None
    return {
        "version": PLAN_VERSION,
        "carrier": result.get("carrier", "unknown"),
        "fov_mm": [fov[0], fov[1]],
        "overlap": float(overlap),
        "calibration": None if affine is None else [list(map(float, r)) for r in affine],
        "regions": regions,
        "plate": plate_plan,
        "positions": sum(len(r["positions_mm"]) for r in regions),
    }


def tile_polygon(
    polygon: ArrayLike, fov: tuple[float, float], overlap: float, *, shape: str = ""
) -> FloatArray:
    """Field centres inside a convex ``polygon`` whose axis-aligned fields cover it.

    A rectangle is tiled along its own axes (fields shrunk so that a turned field
    still fits); anything else (circles) row by row, each field moved as little as
    needed to lie inside while still covering its piece of the outline, and split in
    four where no such centre exists. Rows go top to bottom, serpentine.
    """
    poly = np.asarray(polygon, dtype=np.float64).reshape(-1, 2)
    if shape == "rectangle" and len(poly) == 4:
        return _tile_rectangle(poly, fov, overlap)
    return _tile_convex(poly, fov, overlap)


def _tile_rectangle(poly: FloatArray, fov: tuple[float, float], overlap: float) -> FloatArray:
    e0, e1 = poly[1] - poly[0], poly[3] - poly[0]
    w, h = float(np.linalg.norm(e0)), float(np.linalg.norm(e1))
    u, v = e0 / w, e1 / h
    a = math.atan2(u[1], u[0])
    c, s = abs(math.cos(a)), abs(math.sin(a))
    # the largest rectangle of the field's aspect, turned by a, inside the field
    k = min(fov[0] / (fov[0] * c + fov[1] * s), fov[1] / (fov[0] * s + fov[1] * c))
    fu, fv = fov[0] * k, fov[1] * k
    if abs(u[0]) < abs(u[1]):  # the rectangle's first side runs along y: swap the field
        fu, fv = fv, fu
    us, vs = _axis(w, fu, overlap), _axis(h, fv, overlap)
    centre = poly.mean(axis=0)
    rows = []
    for i, dv in enumerate(vs):
        line = [centre + du * u + dv * v for du in (us if i % 2 == 0 else us[::-1])]
        rows.extend(line)
    return np.asarray(rows, dtype=np.float64)


def _axis(length: float, field: float, overlap: float) -> list[float]:
    """Offsets from the middle of ``length`` of fields of size ``field`` covering it."""
    if length <= field:
        return [0.0]
    step = field * (1.0 - overlap)
    n = math.ceil((length - field) / step - 1e-9) + 1
    first = -length / 2 + field / 2
    return [first + (length - field) * j / (n - 1) for j in range(n)]


def _tile_convex(poly: FloatArray, fov: tuple[float, float], overlap: float) -> FloatArray:
    fw, fh = fov
    lo, hi = poly.min(axis=0), poly.max(axis=0)
    out: list[FloatArray] = []
    ys = [(lo[1] + hi[1]) / 2 + d for d in _axis(float(hi[1] - lo[1]), fh, overlap)]
    for i, y in enumerate(ys):
        band = _clip(poly, np.array([[lo[0] - 1, y - fh / 2], [hi[0] + 1, y + fh / 2]]))
        if band is None:
            continue
        x0, x1 = float(band[:, 0].min()), float(band[:, 0].max())
        xs = [(x0 + x1) / 2 + d for d in _axis(x1 - x0, fw, overlap)]
        row: list[FloatArray] = []
        for x in xs:
            row.extend(_place(poly, np.array([x, y]), fw, fh, depth=0))
        out.extend(row if i % 2 == 0 else row[::-1])
    return np.asarray(out, dtype=np.float64).reshape(-1, 2)


def _place(poly: FloatArray, c: FloatArray, fw: float, fh: float, depth: int) -> list[FloatArray]:
    """A centre inside ``poly`` whose field covers ``poly`` within the field at ``c``."""
    half = np.array([fw / 2, fh / 2])
    piece = _clip(poly, np.array([c - half, c + half]))
    if piece is None or _area(piece) < 1e-12:
        return []
    if _inside(poly, c):
        return [c]
    pl, ph = piece.min(axis=0), piece.max(axis=0)
    valid = np.array([ph - half, pl + half])  # the centres whose field covers the piece
    region = _clip(poly, valid)
    if region is not None and _area(region) > 1e-12:
        best = region.mean(axis=0)
        if _inside(poly, best):
            return [best]
    if depth >= 4:
        return [piece.mean(axis=0)]
    quarters = []
    for dx in (-fw / 4, fw / 4):
        for dy in (-fh / 4, fh / 4):
            q = c + np.array([dx, dy])
            sub = _clip(piece, np.array([q - half / 2, q + half / 2]))
            if sub is not None and _area(sub) > 1e-12:
                quarters.extend(_place(sub, sub.mean(axis=0), fw, fh, depth + 1))
    return quarters


def _clip(poly: FloatArray, box: FloatArray) -> FloatArray | None:
    """``poly`` clipped to the axis-aligned ``box = [[x0, y0], [x1, y1]]`` (Sutherland-Hodgman)."""
    pts = [tuple(p) for p in poly]
    for axis, bound, keep_ge in (
        (0, box[0, 0], True),
        (0, box[1, 0], False),
        (1, box[0, 1], True),
        (1, box[1, 1], False),
    ):
        if not pts:
            return None
        out = []
        for k, cur in enumerate(pts):
            prev = pts[k - 1]
            cin = cur[axis] >= bound if keep_ge else cur[axis] <= bound
            pin = prev[axis] >= bound if keep_ge else prev[axis] <= bound
            if cin != pin:
                t = (bound - prev[axis]) / (cur[axis] - prev[axis])
                out.append((prev[0] + t * (cur[0] - prev[0]), prev[1] + t * (cur[1] - prev[1])))
            if cin:
                out.append(cur)
        pts = out
    return np.asarray(pts, dtype=np.float64) if len(pts) >= 3 else None


def _area(p: FloatArray) -> float:
    x, y = p[:, 0], p[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


def _inside(poly: FloatArray, p: FloatArray, tol: float = 1e-9) -> bool:
    ring = poly.astype(np.float64)
    d = cv2.pointPolygonTest(
        ring.astype(np.float32).reshape(-1, 1, 2), (float(p[0]), float(p[1])), True
    )
    return bool(d >= -1e-4 - tol)


def coverage(
    polygon: ArrayLike, positions: ArrayLike, fov: tuple[float, float], cell_mm: float = 0.01
) -> float:
    """Share of the polygon's raster cells that some field covers (a check for tests)."""
    poly = np.asarray(polygon, dtype=np.float64).reshape(-1, 2)
    pos = np.asarray(positions, dtype=np.float64).reshape(-1, 2)
    lo = poly.min(axis=0)
    size = np.ceil((poly.max(axis=0) - lo) / cell_mm).astype(int) + 1
    mask = np.zeros((size[1], size[0]), np.uint8)
    pts = np.round((poly - lo) / cell_mm * 16).astype(np.int32)
    cv2.fillPoly(mask, [pts.reshape(-1, 1, 2)], 1, shift=4)
    # keep cells whose centre lies inside (the raster's outline cells may poke out)
    cover = np.zeros_like(mask)
    eps = 1e-6  # cell i has its centre at lo + i * cell_mm
    for x, y in pos:
        j0 = max(0, math.ceil((x - fov[0] / 2 - lo[0]) / cell_mm - eps))
        j1 = min(size[0], math.floor((x + fov[0] / 2 - lo[0]) / cell_mm + eps) + 1)
        i0 = max(0, math.ceil((y - fov[1] / 2 - lo[1]) / cell_mm - eps))
        i1 = min(size[1], math.floor((y + fov[1] / 2 - lo[1]) / cell_mm + eps) + 1)
        cover[i0:i1, j0:j1] = 1
    inner = cv2.erode(mask, np.ones((3, 3), np.uint8))  # outline cells: rounding noise
    return float((cover[inner > 0] > 0).mean()) if inner.any() else 1.0


# -- plates -----------------------------------------------------------------------------


_WELL = re.compile(r"^([A-Z]+)(\d+)$")


def parse_well(name: str) -> tuple[int, int]:
    """``"B3"`` -> ``(1, 2)``; rows beyond Z continue as ``AA``, ``AB``..."""
    m = _WELL.match(name.strip().upper())
    if not m:
        raise InputError("plan", "wells", f"{name!r} is not a well name like A1")
    row = 0
    for ch in m.group(1):
        row = row * 26 + (ord(ch) - ord("A") + 1)
    return row - 1, int(m.group(2)) - 1


def _select_wells(
    samples: Sequence[Any], plate: Mapping[str, Any] | None, wells: Sequence[str] | str | None
) -> set[str]:
    names = [
        str(s.get("label"))
        for s in samples
        if isinstance(s, Mapping) and s.get("element") == "well"
    ]
    if wells is None or wells == "" or plate is None:
        return set(names)
    if isinstance(wells, str):
        if wells.strip().lower() == "occupied":
            return {
                str(s.get("label"))
                for s in samples
                if s.get("element") == "well" and float(s.get("occupied") or 0.0) >= 0.5
            }
        wells = [w for w in wells.split(",") if w.strip()]
    chosen = set()
    for w in wells:
        r, c = parse_well(w)
        name = w.strip().upper()
        if not (0 <= r < int(plate["rows"]) and 0 <= c < int(plate["cols"])):
            raise InputError(
                "plan", "wells", f"{name} is not on a {plate['rows']}x{plate['cols']} plate"
            )
        chosen.add(name)
    return chosen


def _plate_plan(
    plate: Mapping[str, Any],
    samples: Sequence[Any],
    selected: set[str],
    fov: tuple[float, float],
    overlap: float,
    affine: FloatArray | None,
) -> dict[str, Any]:
    rows, cols = int(plate["rows"]), int(plate["cols"])
    a1 = np.asarray(plate["a1_center_mm"], dtype=np.float64)
    angle = float(plate.get("rotation_deg", 0.0))
    spacing = [float(v) for v in plate["well_spacing_mm"]]
    order = sorted(selected, key=lambda n: (parse_well(n)[0], parse_well(n)[1]))
    idx = [parse_well(n) for n in order]
    rot = rotation_matrix(angle)
    centres = np.array(
        [a1 + rot @ np.array([c * spacing[0], r * spacing[1]]) for r, c in idx], dtype=np.float64
    ).reshape(-1, 2)
    to_um = affine if affine is not None else np.asarray(HOLDER_UM_Y_UP, dtype=np.float64)
    useq_plan, used = useq_well_plate_plan(plate, idx, to_um, fov, overlap)
    out: dict[str, Any] = {
        "rows": rows,
        "cols": cols,
        "wells": int(plate.get("wells", rows * cols)),
        "a1_center_mm": [float(a1[0]), float(a1[1])],
        "rotation_deg": angle,
        "well_spacing_mm": spacing,
        "well_size_mm": float(plate["well_size_mm"]),
        "circular_wells": bool(plate.get("circular_wells", True)),
        "selected_wells": order,
        "well_centers_mm": {
            n: [float(x), float(y)] for n, (x, y) in zip(order, centres, strict=True)
        },
        "stage_frame": "calibrated stage µm" if affine is not None else "holder µm, y up",
        "well_centers_um": {
            n: [float(x), float(y)]
            for n, (x, y) in zip(order, apply_affine(to_um, centres), strict=True)
        },
        "useq_well_plate_plan": useq_plan,
        "useq_schema": used,
    }
    return out


def useq_well_plate_plan(
    plate: Mapping[str, Any],
    wells: Sequence[tuple[int, int]],
    to_um: ArrayLike,
    fov: tuple[float, float],
    overlap: float,
) -> tuple[dict[str, Any] | None, bool]:
    """A useq-schema ``WellPlatePlan`` (as JSON) for the plate pose mapped by ``to_um``.

    useq places wells at ``a1 + R(rotation) (col * dx, -row * dy)`` in stage µm with y
    up and anticlockwise rotation, so the map must flip handedness (like
    :data:`HOLDER_UM_Y_UP`) and be a similarity; otherwise ``(None, False)``.
    Returns the plan and whether useq-schema built it (else the same JSON by hand).
    """
    m = np.asarray(to_um, dtype=np.float64).reshape(2, 3)
    lin = m[:, :2]
    det = float(np.linalg.det(lin))
    scale = math.sqrt(abs(det))
    ortho = lin / scale if scale > 0 else lin
    if det >= 0 or not np.allclose(ortho @ ortho.T, np.eye(2), atol=1e-6):
        return None, False
    a1 = np.asarray(plate["a1_center_mm"], dtype=np.float64)
    a1_um = apply_affine(m, a1[None, :])[0]
    d = lin @ rotation_matrix(float(plate.get("rotation_deg", 0.0)))[:, 0]
    rotation = math.degrees(math.atan2(d[1], d[0]))
    k = scale / 1000.0  # stage µm per holder µm
    spacing = [float(v) * k for v in plate["well_spacing_mm"]]
    size = float(plate["well_size_mm"]) * k
    fov_um = (fov[0] * scale, fov[1] * scale)
    n = [
        max(1, math.ceil((size * 1000 - f) / (f * (1 - overlap))) + 1) if size * 1000 > f else 1
        for f in fov_um
    ]
    points: dict[str, Any] = (
        {
            "rows": n[1],
            "columns": n[0],
            "overlap": [overlap * 100, overlap * 100],
            "fov_width": fov_um[0],
            "fov_height": fov_um[1],
            "mode": "row_wise_snake",
            "relative_to": "center",
        }
        if n[0] * n[1] > 1
        else {"x": 0.0, "y": 0.0}
    )
    doc: dict[str, Any] = {
        "plate": {
            "rows": int(plate["rows"]),
            "columns": int(plate["cols"]),
            "well_spacing": spacing,
            "well_size": [size, size],
            "circular_wells": bool(plate.get("circular_wells", True)),
        },
        "a1_center_xy": [float(a1_um[0]), float(a1_um[1])],
        "rotation": rotation,
        "selected_wells": [[r for r, _ in wells], [c for _, c in wells]],
        "well_points_plan": points,
    }
    try:
        import useq
    except ImportError:
        return doc, False
    plan = useq.WellPlatePlan(**doc)
    return plan.model_dump(mode="json", exclude_unset=True), True


# -- calibration and execution ------------------------------------------------------------


def _fov(fov_mm: float | Sequence[float]) -> tuple[float, float]:
    vals = [float(fov_mm)] * 2 if isinstance(fov_mm, int | float) else [float(v) for v in fov_mm]
    if len(vals) != 2 or not all(math.isfinite(v) and v > 0 for v in vals):
        raise InputError("plan", "fov_mm", "must be > 0")
    return vals[0], vals[1]


def _affine(calibration: ArrayLike | None) -> FloatArray | None:
    if calibration is None:
        return None
    m = np.asarray(calibration, dtype=np.float64)
    if m.size != 6 or not np.all(np.isfinite(m)):
        raise InputError("plan", "calibration", "must be 6 finite numbers (a 2x3 affine)")
    m = m.reshape(2, 3)
    if abs(float(np.linalg.det(m[:, :2]))) < 1e-12:
        raise InputError("plan", "calibration", "is singular")
    return m


def apply_affine(affine: ArrayLike, points: ArrayLike) -> FloatArray:
    """``A @ [x, y, 1]`` for each point: holder mm to stage µm."""
    m = np.asarray(affine, dtype=np.float64).reshape(2, 3)
    p = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    return p @ m[:, :2].T + m[:, 2]


def _pts(p: ArrayLike) -> list[list[float]]:
    return [[round(float(x), 6), round(float(y), 6)] for x, y in np.asarray(p).reshape(-1, 2)]


def plan_positions(plan: Mapping[str, Any]) -> Iterable[tuple[str, int, tuple[float, float]]]:
    """``(region label, index, holder mm)`` of every position of a plan, in order."""
    for region in plan.get("regions", []):
        for i, (x, y) in enumerate(region.get("positions_mm", [])):
            yield str(region.get("label", "")), i, (float(x), float(y))


def execute_plan(
    plan: Mapping[str, Any],
    microscope: Microscope,
    *,
    on_frame: Callable[[str, int, np.ndarray, Pose], None] | None = None,
    limit: int | None = None,
) -> int:
    """Move to every position of ``plan`` (holder mm) and snap; returns frames taken.

    ``on_frame(region_label, index, image, pose)`` receives each frame; ``limit``
    stops after that many.
    """
    taken = 0
    for label, index, centre in plan_positions(plan):
        if limit is not None and taken >= limit:
            break
        microscope.move_to(centre)
        image, pose = microscope.snap()
        taken += 1
        if on_frame is not None:
            on_frame(label, index, image, pose)
    return taken
