"""Multiwell plates: the SBS format and the whole well grid from plate edges and wells.

A plate is a rigid grid: rotation, translation and one of the SBS formats (6 ... 384
wells) with its pitch and well size. The grid is centred on the SBS footprint
(127.76 x 85.48 mm), so a found plate body fixes it completely once the format is
known; without a body, the wells themselves give the rotation (directions between
neighbouring wells), the translation (their positions modulo the pitch) and, with
the plate edges that are seen, which well is A1.

The format is chosen by evidence: every round edge piece (arc) is sampled to points,
and each format scores the share of those points lying on its predicted well
outlines, less the share that would land there by chance (the band around the
outlines covers a different share of a cell for every format).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from samplescout.geometry import rotation_matrix
from samplescout.standards import PLATE_FORMATS, SBS_SIZE_MM, PlateFormat


@dataclass(frozen=True)
class PlateBody:
    """The plate footprint found from its edges: centre, angle (deg), score 0..1."""

    center: tuple[float, float]
    angle_deg: float
    score: float


@dataclass(frozen=True)
class PlateFit:
    """A fitted well grid in holder mm."""

    fmt: PlateFormat
    a1_center: tuple[float, float]
    angle_deg: float
    score: float
    support: tuple[int, ...]  # per well (row-major): evidence points on its outline

    def well_center(self, row: int, col: int) -> np.ndarray:
        r = rotation_matrix(self.angle_deg)
        return np.asarray(self.a1_center) + r @ np.array(
            [col * self.fmt.pitch, row * self.fmt.pitch]
        )

    def centers(self) -> np.ndarray:
        """All well centres ``(rows * cols, 2)``, row-major (A1, A2, ...)."""
        jj, ii = np.mgrid[0 : self.fmt.rows, 0 : self.fmt.cols]
        local = np.stack([ii.ravel(), jj.ravel()], axis=1) * self.fmt.pitch
        return local @ rotation_matrix(self.angle_deg).T + np.asarray(self.a1_center)


@dataclass(frozen=True)
class Arc:
    """A round edge piece: centre, radius, angular span (deg), weight."""

    center: tuple[float, float]
    radius: float
    a0: float
    a1: float
    weight: float


def arcs_of(entries: Sequence[dict[str, Any]]) -> list[Arc]:
    """The round edge pieces of fused-state entries (sorted entries give a sorted list)."""
    out = []
    for e in entries:
        if e["arc"] is None:
            continue
        cx, cy, r, a0, a1 = e["arc"]
        out.append(Arc((cx, cy), r, a0, a1, float(e["p"])))
    return out


def _arc_points(arcs: Sequence[Arc], step_mm: float = 0.4) -> tuple[np.ndarray, np.ndarray]:
    pts: list[np.ndarray] = []
    wts: list[np.ndarray] = []
    for a in arcs:
        n = max(2, math.ceil(math.radians(a.a1 - a.a0) * a.radius / step_mm))
        t = np.radians(np.linspace(a.a0, a.a1, n))
        pts.append(
            np.stack([a.center[0] + a.radius * np.cos(t), a.center[1] + a.radius * np.sin(t)], 1)
        )
        wts.append(np.full(n, a.weight * step_mm))
    if not pts:
        return np.zeros((0, 2)), np.zeros(0)
    return np.concatenate(pts), np.concatenate(wts)


def _segment_points(
    segments: Sequence[tuple[np.ndarray, np.ndarray, float]], step_mm: float = 0.4
) -> tuple[np.ndarray, np.ndarray]:
    pts: list[np.ndarray] = []
    wts: list[np.ndarray] = []
    for p0, p1, w in segments:
        n = max(2, math.ceil(float(np.linalg.norm(p1 - p0)) / step_mm))
        t = np.linspace(0.0, 1.0, n)[:, None]
        pts.append(p0 + t * (p1 - p0))
        wts.append(np.full(n, w * step_mm))
    if not pts:
        return np.zeros((0, 2)), np.zeros(0)
    return np.concatenate(pts), np.concatenate(wts)


def _grid_angle(centers: np.ndarray, weights: np.ndarray, pitch: float) -> float | None:
    """Grid rotation (deg, in (-45, 45]) from the directions between neighbouring centres."""
    if len(centers) < 2:
        return None
    d = centers[None, :, :] - centers[:, None, :]
    dist = np.hypot(d[..., 0], d[..., 1])
    near = np.triu(np.abs(dist - pitch) <= 0.15 * pitch, 1)
    if not near.any():
        return None
    ang = np.arctan2(d[..., 1][near], d[..., 0][near])
    w = (weights[:, None] * weights[None, :])[near]
    z = np.sum(w * np.exp(4j * ang))
    if abs(z) < 1e-12:
        return None
    return float(math.degrees(np.angle(z) / 4.0))


def _outline_distance(local: np.ndarray, fmt: PlateFormat) -> tuple[np.ndarray, np.ndarray]:
    """Distance of grid-local points (A1 at the origin) to the nearest predicted well outline,
    and the row-major index of that well."""
    i = np.clip(np.rint(local[:, 0] / fmt.pitch), 0, fmt.cols - 1)
    j = np.clip(np.rint(local[:, 1] / fmt.pitch), 0, fmt.rows - 1)
    dx = local[:, 0] - i * fmt.pitch
    dy = local[:, 1] - j * fmt.pitch
    half = fmt.well_size / 2
    if fmt.circular:
        dist = np.abs(np.hypot(dx, dy) - half)
    else:
        ax, ay = np.abs(dx) - half, np.abs(dy) - half
        outside = np.hypot(np.maximum(ax, 0), np.maximum(ay, 0))
        dist = np.abs(np.where((ax > 0) | (ay > 0), outside, np.maximum(ax, ay)))
    return dist, (j * fmt.cols + i).astype(np.int64)


def _chance(fmt: PlateFormat, tol: float) -> float:
    """Share of a grid cell within ``tol`` of the well outline (random points hit it)."""
    length = math.pi * fmt.well_size if fmt.circular else 4 * fmt.well_size
    return min(0.9, 2 * tol * length / fmt.pitch**2)


def _to_local(points: np.ndarray, a1: np.ndarray, angle_deg: float) -> np.ndarray:
    return (points - a1) @ rotation_matrix(angle_deg)


@dataclass(frozen=True)
class PlateConfig:
    """Tolerances of the grid fit (mm)."""

    outline_tol_mm: float = 0.5
    radius_tol: float = 0.12
    min_score: float = 0.15
    min_points: int = 20


def fit_plate(
    arcs: Sequence[Arc],
    segments: Sequence[tuple[np.ndarray, np.ndarray, float]],
    body: PlateBody | None,
    edge_lines: Sequence[tuple[np.ndarray, np.ndarray, float]] = (),
    config: PlateConfig | None = None,
) -> PlateFit | None:
    """The best-supported SBS grid, or None when no format explains the round edges.

    Parameters
    ----------
    arcs
        Round edge pieces (wells' outlines).
    segments
        Straight pieces that may be sides of square (384) wells ``(p0, p1, weight)``.
    body
        The plate footprint when its edges were found: fixes rotation and translation.
    edge_lines
        Long straight edges ``(p0, p1, weight)`` that may be plate edges: without a body
        they choose which observed well is A1.
    """
    cfg = config or PlateConfig()
    apts, aw = _arc_points(arcs)
    spts, sw = _segment_points(segments)
    best: PlateFit | None = None
    pts, w = np.concatenate([apts, spts]), np.concatenate([aw, sw])
    for fmt in PLATE_FORMATS:
        if len(pts) < cfg.min_points:
            continue
        grid = _place_grid(fmt, arcs, body, edge_lines, cfg)
        if grid is None:
            continue
        a1, angle = grid
        a1 = _refine(fmt, a1, angle, arcs)
        fit = _score_grid(fmt, a1, angle, pts, w, cfg)
        if fit is not None and (best is None or fit.score > best.score + 1e-9):
            best = fit
    if best is None or best.score < cfg.min_score:
        return None
    return best


def _place_grid(
    fmt: PlateFormat,
    arcs: Sequence[Arc],
    body: PlateBody | None,
    edge_lines: Sequence[tuple[np.ndarray, np.ndarray, float]],
    cfg: PlateConfig,
) -> tuple[np.ndarray, float] | None:
    """A1 centre and rotation of ``fmt``'s grid, from the body or from the wells."""
    if body is not None:
        off = np.array(fmt.a1_offset) - np.array(SBS_SIZE_MM) / 2
        a1 = np.asarray(body.center) + rotation_matrix(body.angle_deg) @ off
        return a1, body.angle_deg
    half = fmt.well_size / 2
    good = [a for a in arcs if abs(a.radius - half) <= cfg.radius_tol * half + 0.2]
    if len(good) < 2:
        return None
    c = np.array([a.center for a in good])
    w = np.array([a.weight * max(a.a1 - a.a0, 1.0) for a in good])
    angle = _grid_angle(c, w, fmt.pitch)
    if angle is None:
        return None
    q = c @ rotation_matrix(angle)  # grid axes
    phase = np.array(
        [
            fmt.pitch
            / (2 * math.pi)
            * np.angle(np.sum(w * np.exp(2j * math.pi * q[:, k] / fmt.pitch)))
            for k in (0, 1)
        ]
    )
    idx = np.rint((q - phase) / fmt.pitch)
    lo, hi = idx.min(axis=0), idx.max(axis=0)
    span = hi - lo + 1
    if span[0] > fmt.cols or span[1] > fmt.rows:
        return None
    # Which observed well is A1: the offsets that keep every observed well on the plate,
    # scored by how well the implied plate edges are seen (ties: the top-left choice).
    options: list[tuple[float, int, int, np.ndarray]] = []
    for ox in range(int(fmt.cols - span[0]) + 1):
        for oy in range(int(fmt.rows - span[1]) + 1):
            first = phase + (lo - np.array([ox, oy])) * fmt.pitch  # A1 in grid axes
            support = _body_support(fmt, first, angle, edge_lines)
            options.append((-support, ox, oy, first))
    options.sort(key=lambda t: (round(t[0], 9), t[1], t[2]))
    first = options[0][3]
    return rotation_matrix(angle) @ first, angle


def _body_support(
    fmt: PlateFormat,
    a1_grid: np.ndarray,
    angle: float,
    edge_lines: Sequence[tuple[np.ndarray, np.ndarray, float]],
    tol: float = 0.5,
) -> float:
    """Length of ``edge_lines`` lying on the plate outline implied by a grid placement."""
    if not edge_lines:
        return 0.0
    x0, y0 = a1_grid - np.array(fmt.a1_offset)
    x1, y1 = x0 + SBS_SIZE_MM[0], y0 + SBS_SIZE_MM[1]
    total = 0.0
    rot = rotation_matrix(angle)
    for p0, p1, w in edge_lines:
        q0, q1 = p0 @ rot, p1 @ rot
        for k, (lo, hi) in ((0, (x0, x1)), (1, (y0, y1))):
            for v in (lo, hi):
                if abs(q0[k] - v) <= tol and abs(q1[k] - v) <= tol:
                    total += w * float(np.linalg.norm(q1 - q0))
    return total


def _score_grid(
    fmt: PlateFormat,
    a1: np.ndarray,
    angle: float,
    pts: np.ndarray,
    w: np.ndarray,
    cfg: PlateConfig,
) -> PlateFit | None:
    local = _to_local(pts, a1, angle)
    half_cell = fmt.pitch / 2
    inside = (
        (local[:, 0] >= -half_cell)
        & (local[:, 0] <= (fmt.cols - 1) * fmt.pitch + half_cell)
        & (local[:, 1] >= -half_cell)
        & (local[:, 1] <= (fmt.rows - 1) * fmt.pitch + half_cell)
    )
    if inside.sum() < cfg.min_points:
        return None
    dist, well = _outline_distance(local[inside], fmt)
    wi = w[inside]
    hit = dist <= cfg.outline_tol_mm
    chance = _chance(fmt, cfg.outline_tol_mm)
    share = float(wi[hit].sum() / wi.sum())
    score = (share - chance) / (1.0 - chance)
    support = np.bincount(well[hit], minlength=fmt.rows * fmt.cols)
    return PlateFit(
        fmt=fmt,
        a1_center=(float(a1[0]), float(a1[1])),
        angle_deg=float(angle),
        score=score,
        support=tuple(int(v) for v in support),
    )


def _refine(fmt: PlateFormat, a1: np.ndarray, angle: float, arcs: Sequence[Arc]) -> np.ndarray:
    """A1 moved onto the centres of the arcs that fit the grid's wells (circular wells):
    the weighted median offset of those centres from their nearest predicted well."""
    if not fmt.circular:
        return a1
    half = fmt.well_size / 2
    jj, ii = np.mgrid[0 : fmt.rows, 0 : fmt.cols]
    local = np.stack([ii.ravel(), jj.ravel()], axis=1) * fmt.pitch
    centers = local @ rotation_matrix(angle).T + a1
    res: list[np.ndarray] = []
    wts: list[float] = []
    for a in arcs:
        if abs(a.radius - half) > 0.1 * half + 0.2 or a.a1 - a.a0 < 45.0:
            continue
        d = np.asarray(a.center) - centers
        k = int(np.argmin(np.hypot(d[:, 0], d[:, 1])))
        if float(np.hypot(*d[k])) <= 0.15 * fmt.pitch:
            res.append(d[k])
            wts.append(a.weight * (a.a1 - a.a0))
    if len(res) < 3:
        return a1
    r, wt = np.array(res), np.array(wts)
    shift = np.array([_weighted_median(r[:, k], wt) for k in (0, 1)])
    return a1 + shift


def _weighted_median(values: np.ndarray, weights: np.ndarray) -> float:
    order = np.argsort(values, kind="stable")
    cum = np.cumsum(weights[order])
    return float(values[order][int(np.searchsorted(cum, 0.5 * cum[-1]))])
