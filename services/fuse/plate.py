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

import cv2
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
    min_phase_coherence: float = 0.5


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
        grids = []
        if not fmt.circular:
            # Square wells show as short straight sides: the grid follows from them alone.
            square = _square_grid(fmt, segments, edge_lines, body, cfg)
            if square is not None:
                grids.append(square)
        placed = _place_grid(fmt, arcs, body, edge_lines, cfg)
        if placed is not None:
            grids.append((_refine(fmt, placed[0], placed[1], arcs), placed[1]))
        for a1, angle in grids:
            fit = _score_grid(fmt, a1, angle, pts, w, cfg)
            if fit is not None and (best is None or fit.score > best.score + 1e-9):
                best = fit
    if best is None or best.score < cfg.min_score:
        return None
    return best


def _body_a1(fmt: PlateFormat, body: PlateBody) -> np.ndarray:
    """Where a standard plate of ``fmt`` on this footprint has its A1 centre."""
    off = np.array(fmt.a1_offset) - np.array(SBS_SIZE_MM) / 2
    return np.asarray(body.center) + rotation_matrix(body.angle_deg) @ off


def _place_grid(
    fmt: PlateFormat,
    arcs: Sequence[Arc],
    body: PlateBody | None,
    edge_lines: Sequence[tuple[np.ndarray, np.ndarray, float]],
    cfg: PlateConfig,
) -> tuple[np.ndarray, float] | None:
    """A1 centre and rotation of ``fmt``'s grid, from the body or from the wells."""
    half = fmt.well_size / 2
    good = [a for a in arcs if abs(a.radius - half) <= cfg.radius_tol * half + 0.2]
    if body is not None:
        a1 = _body_a1(fmt, body)
        rot = rotation_matrix(body.angle_deg)
        return a1 + rot @ _well_phase(fmt, good, a1, body.angle_deg, cfg), body.angle_deg
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


def _well_phase(
    fmt: PlateFormat, arcs: Sequence[Arc], a1: np.ndarray, angle: float, cfg: PlateConfig
) -> np.ndarray:
    """Shift (grid axes, within half a pitch) that puts the wells' centres on the grid
    whose A1 the plate body gave.

    The body fixes which well is A1, but a wrong edge in its fit (a skirt's step, a
    lid's rim) can move it by a millimetre or two, more than the fine fit corrects. The
    wells' own positions modulo the pitch do not depend on the body: where they agree
    (resultant length at least ``cfg.min_phase_coherence``), they set the sub-pitch
    position.
    """
    if len(arcs) < 2:
        return np.zeros(2)
    c = np.array([a.center for a in arcs]) - a1
    w = np.array([a.weight * max(a.a1 - a.a0, 1.0) for a in arcs])
    q = c @ rotation_matrix(angle)
    out = np.zeros(2)
    for k in (0, 1):
        z = np.sum(w * np.exp(2j * math.pi * q[:, k] / fmt.pitch))
        if abs(z) < cfg.min_phase_coherence * float(w.sum()):
            return np.zeros(2)
        out[k] = fmt.pitch / (2 * math.pi) * float(np.angle(z))
    return out


def _square_grid(
    fmt: PlateFormat,
    segments: Sequence[tuple[np.ndarray, np.ndarray, float]],
    edge_lines: Sequence[tuple[np.ndarray, np.ndarray, float]],
    body: PlateBody | None,
    cfg: PlateConfig,
) -> tuple[np.ndarray, float] | None:
    """A1 centre and rotation of a square-well grid from the wells' short straight sides.

    The sides' directions give the rotation (modulo 90 degrees); along each grid axis,
    the midpoints of the sides running along it lie on the well centres and the sides
    running across it a half well from them, which gives the grid's phase (a circular
    mean modulo the pitch). Which observed well is A1 is then chosen per axis: the
    ``rows``/``cols`` window holding the most side evidence, then the one whose implied
    plate edges are seen (``edge_lines``; or the ``body``), then the first.
    """
    if not segments:
        return None
    p0 = np.array([s[0] for s in segments], dtype=np.float64)
    p1 = np.array([s[1] for s in segments], dtype=np.float64)
    d = p1 - p0
    length = np.hypot(d[:, 0], d[:, 1])
    ok = (length <= fmt.well_size + 0.6) & (length >= 0.3)
    if ok.sum() < cfg.min_points:
        return None
    p0, p1, d, length = p0[ok], p1[ok], d[ok], length[ok]
    wl = np.array([s[2] for s in segments], dtype=np.float64)[ok] * length
    z4 = np.sum(wl * np.exp(4j * np.arctan2(d[:, 1], d[:, 0])))
    if abs(z4) < 0.5 * wl.sum():
        return None  # no dominant pair of perpendicular directions
    angle = float(math.degrees(np.angle(z4) / 4.0))
    rot = rotation_matrix(angle)
    mid = 0.5 * (p0 + p1) @ rot  # grid axes
    dq = d @ rot
    a = np.degrees(np.arctan2(dq[:, 1], dq[:, 0])) % 180.0
    runs = [np.minimum(a, 180.0 - a) <= 10.0, np.abs(a - 90.0) <= 10.0]  # along x, along y
    pitch, half = fmt.pitch, fmt.well_size / 2
    sgn = 1.0 if math.cos(math.pi * fmt.well_size / pitch) >= 0 else -1.0
    phase = np.zeros(2)
    for k in (0, 1):
        # Sides across the axis pin the phase down (they sit a half well either side of
        # the centres: their mean is the centre or the wall between, which the sign of
        # cos(pi size / pitch) tells); the midpoints of partly seen sides along it are
        # noisier but say which of the two it is.
        e = np.exp(2j * math.pi * mid[:, k] / pitch)
        z_mid = np.sum((wl * e)[runs[k]])
        z_side = sgn * np.sum((wl * e)[runs[1 - k]])
        total = float(wl[runs[0] | runs[1]].sum())
        if total <= 0 or abs(z_mid + z_side) < 0.25 * total:
            return None
        if abs(z_side) >= 0.25 * float(wl[runs[1 - k]].sum()) > 0:
            if (z_side * np.conj(z_mid)).real < 0:
                z_side = -z_side  # the other half-pitch choice
            z = z_side
        else:
            z = z_mid + z_side
        phase[k] = _side_phase(
            pitch / (2 * math.pi) * float(np.angle(z)),
            mid[runs[1 - k], k],
            wl[runs[1 - k]],
            pitch,
            half,
        )
    idx = np.rint((mid - phase) / pitch)
    res = mid - phase - idx * pitch
    tol = cfg.outline_tol_mm + 0.1
    on = np.zeros(len(mid), dtype=bool)
    for k in (0, 1):  # sides running along axis k: centred on a well along k, a side across
        on |= (
            runs[k]
            & (np.abs(res[:, k]) <= half + 0.3)
            & (np.abs(np.abs(res[:, 1 - k]) - half) <= tol)
        )
    if on.sum() < cfg.min_points:
        return None
    size = (fmt.cols, fmt.rows)
    first = np.zeros(2)
    for k in (0, 1):
        ik = idx[on, k].astype(np.int64)
        lo, hi = int(ik.min()), int(ik.max())
        hist = np.bincount(ik - lo, weights=wl[on], minlength=hi - lo + 1)
        cum = np.concatenate([[0.0], np.cumsum(hist)])
        options: list[tuple[float, float, int, int]] = []
        last = hi - size[k] + 1  # windows of size[k] holding all the evidence, or within it
        for o in range(min(lo, last), max(lo, last) + 1):
            a_lo, a_hi = max(o, lo) - lo, min(o + size[k] - 1, hi) - lo + 1
            inside = float(cum[a_hi] - cum[a_lo])
            a1k = phase[k] + o * pitch
            support = _edge_support_1d(
                a1k - fmt.a1_offset[k], SBS_SIZE_MM[k], k, edge_lines, rot, body, fmt
            )
            options.append((inside, support, abs(o - lo), o))
        top = max(t[0] for t in options)
        options = [t for t in options if t[0] >= 0.98 * top]
        options.sort(key=lambda t: (-round(t[1], 6), t[2], t[3]))
        first[k] = phase[k] + options[0][3] * pitch
    return rot @ first, angle


def _side_phase(
    phase: float, sides: np.ndarray, weights: np.ndarray, pitch: float, half: float
) -> float:
    """``phase`` (a well centre modulo ``pitch``) moved to midway between the sides seen
    either side of the centres: the weighted medians of the two groups, so that one
    side seen more than the other, or sides seen a little wider apart than the model
    (a black plate's walls), do not pull it."""
    for _ in range(3):
        r = (sides - phase + pitch / 2) % pitch - pitch / 2
        plus, minus = r > 0, r < 0
        if weights[plus].sum() <= 0 and weights[minus].sum() <= 0:
            return phase
        if weights[plus].sum() <= 0 or weights[minus].sum() <= 0:
            step = (
                _weighted_median(r[plus], weights[plus]) - half
                if weights[plus].sum() > 0
                else _weighted_median(r[minus], weights[minus]) + half
            )
        else:
            m_plus = _weighted_median(r[plus], weights[plus])
            m_minus = _weighted_median(r[minus], weights[minus])
            step = 0.5 * (m_plus + m_minus)
        phase += step
        if abs(step) < 1e-4:
            break
    return phase


def _edge_support_1d(
    start: float,
    extent: float,
    axis: int,
    edge_lines: Sequence[tuple[np.ndarray, np.ndarray, float]],
    rot: np.ndarray,
    body: PlateBody | None,
    fmt: PlateFormat,
    tol: float = 0.4,
) -> float:
    """Seen length of the plate edges across grid axis ``axis`` at ``start`` and
    ``start + extent`` (grid-axis coordinates), plus a body's vote for that placement."""
    total = 0.0
    for p0, p1, w in edge_lines:
        q0, q1 = np.asarray(p0) @ rot, np.asarray(p1) @ rot
        dq = q1 - q0
        length = float(np.hypot(*dq))
        if length <= 0 or abs(dq[axis]) > 0.035 * length:
            continue  # not across this axis
        c = 0.5 * (q0[axis] + q1[axis])
        if min(abs(c - start), abs(c - start - extent)) <= tol:
            total += w * length
    if body is not None:
        centre = (np.asarray(body.center) @ rot)[axis]
        if abs(centre - (start + extent / 2)) <= fmt.pitch / 2:
            total += body.score * extent
    return total


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
    """A1 moved onto the arcs that fit the grid's wells (circular wells).

    First the weighted median offset of the centres of the longer arcs from their
    nearest predicted well; then a least-squares fit of one shift and one radius
    change to the arcs' points (robust: shrinking inlier bands), so that short pieces
    of large wells, and the two rims of a black plate's well walls, place the grid too.
    """
    if not fmt.circular:
        return a1
    half = fmt.well_size / 2
    jj, ii = np.mgrid[0 : fmt.rows, 0 : fmt.cols]
    local = np.stack([ii.ravel(), jj.ravel()], axis=1) * fmt.pitch
    centers = local @ rotation_matrix(angle).T + a1
    res: list[np.ndarray] = []
    wts: list[float] = []
    good = [a for a in arcs if abs(a.radius - half) <= 0.1 * half + 0.2]
    for a in good:
        if a.a1 - a.a0 < 45.0:
            continue
        d = np.asarray(a.center) - centers
        k = int(np.argmin(np.hypot(d[:, 0], d[:, 1])))
        if float(np.hypot(*d[k])) <= 0.15 * fmt.pitch:
            res.append(d[k])
            wts.append(a.weight * (a.a1 - a.a0))
    if len(res) >= 3:
        r, wt = np.array(res), np.array(wts)
        a1 = a1 + np.array([_weighted_median(r[:, k], wt) for k in (0, 1)])
        centers = local @ rotation_matrix(angle).T + a1
    pts, w = _arc_points(good)
    if len(pts) < 12:
        return a1
    shift, dr = np.zeros(2), 0.0
    for tol in (min(3.0, 0.3 * half), 1.0, 0.6):
        c = centers + shift
        d = pts[:, None, :] - c[None, :, :]
        dist = np.hypot(d[..., 0], d[..., 1])
        k = np.argmin(dist, axis=1)
        v = d[np.arange(len(pts)), k]
        rr = np.maximum(dist[np.arange(len(pts)), k], 1e-9)
        resid = rr - half - dr
        inl = np.abs(resid) <= tol
        if inl.sum() < 12:
            return a1 + shift if tol < 1.0 else a1
        u = v[inl] / rr[inl, None]
        design = np.concatenate([u, np.ones((int(inl.sum()), 1))], axis=1)
        sw = np.sqrt(w[inl])
        sol, *_ = np.linalg.lstsq(design * sw[:, None], resid[inl] * sw, rcond=None)
        if not np.all(np.isfinite(sol)):
            return a1
        shift = shift + sol[:2]
        dr = float(np.clip(dr + sol[2], -0.1 * half - 0.3, 0.1 * half + 0.3))
        if float(np.hypot(*shift)) > 0.2 * fmt.pitch:
            return a1
    return a1 + shift


def _weighted_median(values: np.ndarray, weights: np.ndarray) -> float:
    order = np.argsort(values, kind="stable")
    cum = np.cumsum(weights[order])
    return float(values[order][int(np.searchsorted(cum, 0.5 * cum[-1]))])


def _diff_noise(coarse: np.ndarray) -> float:
    """White-noise sigma of an image from neighbour differences (robust: edges are few)."""
    img = np.asarray(coarse, dtype=np.float32)
    diff = (img[:, 1:] - img[:, :-1])[::2, ::2]
    return 1.4826 * float(np.median(np.abs(diff - np.median(diff)))) / math.sqrt(2.0)


def rim_step(
    views: Sequence[tuple[np.ndarray, Any]],
    centers: np.ndarray,
    diameter: float,
    delta_mm: float | None = None,
    samples: int = 24,
    noises: Sequence[float] | None = None,
) -> float:
    """Median over the wells at ``centers`` of the radial step across their rim on the
    coarse data (outside minus inside, ``delta_mm`` either side of the rim, default half
    a coarse pixel; bilinear; in noise levels of the frame), as an absolute value; 0
    when no frame holds a well. A wide ``delta_mm`` still sees rims a grid misses by
    less than that; the narrow default peaks where the grid sits on them. ``noises``:
    the views' noise levels when the caller has them already."""
    t = np.linspace(0.0, 2.0 * math.pi, samples, endpoint=False)
    ring = np.stack([np.cos(t), np.sin(t)], axis=1)
    centers = np.asarray(centers, dtype=np.float64).reshape(-1, 2)
    steps: list[np.ndarray] = []
    for k, (coarse, geometry) in enumerate(views):
        img = np.ascontiguousarray(coarse, dtype=np.float32)
        noise = noises[k] if noises is not None else _diff_noise(img)
        delta = delta_mm if delta_mm is not None else max(0.5 * geometry.pose.pixel_size_mm, 0.1)
        values = []
        for rad in (diameter / 2.0 - delta, diameter / 2.0 + delta):
            pts = centers[:, None, :] + rad * ring[None]
            uv = geometry.holder_to_pixel(pts.reshape(-1, 2)).astype(np.float32)
            uv = uv.reshape(len(centers), samples, 2)
            values.append(
                cv2.remap(img, uv[..., 0], uv[..., 1], cv2.INTER_LINEAR, borderValue=np.nan)
            )
        inside = np.isfinite(values[0]).all(axis=1) & np.isfinite(values[1]).all(axis=1)
        if inside.any():
            step = (values[1][inside] - values[0][inside]).mean(axis=1)
            steps.append(step / max(noise, 1e-9))
    if not steps:
        return 0.0
    return abs(float(np.median(np.concatenate(steps))))


#: The score of a grid placed from the plate's footprint and its wells' rims alone.
BODY_GRID_SCORE = 0.3


def grid_from_body(
    body: PlateBody,
    views: Sequence[tuple[np.ndarray, Any]],
    min_step: float = 3.0,
    margin: float = 1.5,
    search_mm: float = 1.5,
) -> PlateFit | None:
    """The SBS grid a plate's footprint implies, when no well was identified.

    A standard plate's wells sit at fixed offsets from its corner, so the footprint
    fixes every format's grid; the format is the one whose wells show a rim on the
    coarse data (:func:`rim_step`, 1 mm either side of the rims, at least ``min_step``
    noise levels and ``margin`` times the next format's), and its grid is then moved by
    up to ``search_mm`` to where the rims are strongest. Its score is low
    (:data:`BODY_GRID_SCORE`): nothing but the body and the rims placed it.
    """
    noises = [_diff_noise(coarse) for coarse, _ in views]
    scored = []
    for fmt in PLATE_FORMATS:
        a1 = _body_a1(fmt, body)
        fit = PlateFit(
            fmt, (float(a1[0]), float(a1[1])), body.angle_deg, BODY_GRID_SCORE, (0,) * fmt.wells
        )
        wide = min(1.0, 0.25 * fmt.well_size)
        step = rim_step(views, fit.centers(), fmt.well_size, wide, noises=noises)
        scored.append((step, fmt.wells, fit))
    scored.sort(key=lambda s: (-s[0], s[1]))
    best, runner_up = scored[0][0], scored[1][0] if len(scored) > 1 else 0.0
    if best < min_step or best < margin * runner_up:
        return None
    # The footprint's edges place it to a few tenths of a millimetre (more where a side
    # is seen only in part); the rims themselves say where the grid is.
    fit = scored[0][2]
    a1 = np.asarray(fit.a1_center)
    grid = fit.centers() - a1  # well centres relative to A1
    for span, pitch in ((search_mm, 0.25), (0.25, 0.05)):
        offsets = np.arange(-span, span + 1e-9, pitch)
        candidates = [a1 + np.array((dx, dy)) for dx in offsets for dy in offsets]
        a1 = max(
            candidates,
            key=lambda c: (
                rim_step(views, grid + c, fit.fmt.well_size, noises=noises),
                -float(np.hypot(*(c - a1))),
            ),
        )
    return PlateFit(fit.fmt, (float(a1[0]), float(a1[1])), fit.angle_deg, fit.score, fit.support)
