"""Chamber slides: the chamber rectangles from the walls' edges on a found slide.

In the slide's own frame the chamber block is a grid: along each axis, ``n`` cells of
equal width separated by inner walls and framed by the outer wall, so every wall
shows as a pair of parallel edges about a millimetre apart. Each axis is fitted on
its own, in one dimension: the positions of the straight edges across that axis
(weighted by their seen length) are explained by ``n`` equal cells between a first
and a last cell edge, for ``n`` and the inner wall width that explain the most edge
evidence while leaving the least unexplained. The layouts of real chamber slides
(1, 2, 4 or 8 chambers: 1x1, 1x2, 1x4, 2x2, 2x4) combine the two axes.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from samplescout.geometry import rotation_matrix

#: (rows, cols) of the usual chamber slides.
CHAMBER_LAYOUTS: tuple[tuple[int, int], ...] = ((1, 1), (1, 2), (1, 4), (2, 2), (2, 4))


@dataclass(frozen=True)
class ChamberFit:
    """Chamber cells in slide-local mm (x along the slide's ``size[0]``), and the slide pose."""

    center: tuple[float, float]
    angle_deg: float
    xs: tuple[tuple[float, float], ...]
    ys: tuple[tuple[float, float], ...]
    score: float

    def rects(self) -> list[tuple[tuple[float, float], tuple[float, float], float]]:
        """``(centre, (w, h), angle_deg)`` of every chamber in holder mm."""
        rot = rotation_matrix(self.angle_deg)
        out = []
        for (y0, y1), (x0, x1) in itertools.product(self.ys, self.xs):
            c = np.asarray(self.center) + rot @ np.array([(x0 + x1) / 2, (y0 + y1) / 2])
            out.append(((float(c[0]), float(c[1])), (x1 - x0, y1 - y0), self.angle_deg))
        return out


@dataclass(frozen=True)
class ChamberConfig:
    """Tolerances (mm, degrees) of the chamber fit."""

    parallel_tol_deg: float = 2.0
    position_tol_mm: float = 0.25
    border_mm: float = 0.6
    min_line_mm: float = 2.0
    inner_walls_mm: tuple[float, ...] = tuple(float(v) for v in np.arange(0.7, 1.61, 0.05))
    outer_walls_mm: tuple[float, ...] = tuple(float(v) for v in np.arange(1.0, 2.21, 0.1))
    min_cell_mm: float = 5.0


def fit_chambers(
    lines: Sequence[tuple[np.ndarray, float]],
    slide_center: tuple[float, float],
    slide_size: tuple[float, float],
    slide_angle_deg: float,
    config: ChamberConfig | None = None,
) -> ChamberFit | None:
    """The chamber grid on a slide, or None.

    Parameters
    ----------
    lines
        Fused straight edges ``(endpoints (2, 2) holder mm, weight)`` other than the
        slide's own edges; the weight is their seen length times probability.
    slide_center, slide_size, slide_angle_deg
        The slide rectangle.
    """
    cfg = config or ChamberConfig()
    rot = rotation_matrix(slide_angle_deg)
    half = np.asarray(slide_size) / 2 - cfg.border_mm
    across: list[list[tuple[float, float]]] = [[], []]  # positions along x, along y
    for ends, weight in lines:
        q = (np.asarray(ends) - np.asarray(slide_center)) @ rot
        d = q[1] - q[0]
        length = float(np.hypot(*d))
        if length < cfg.min_line_mm or np.any(np.abs(q) > half + 1e-9):
            continue
        ang = abs(float(np.degrees(np.arctan2(d[1], d[0])))) % 180.0
        if min(ang, 180.0 - ang) <= cfg.parallel_tol_deg:  # runs along x: a y position
            across[1].append((float(q[:, 1].mean()), weight))
        elif abs(ang - 90.0) <= cfg.parallel_tol_deg:
            across[0].append((float(q[:, 0].mean()), weight))
    fits = [_fit_axis(np.array(a).reshape(-1, 2), cfg) for a in across]
    best: ChamberFit | None = None
    for rows, cols in CHAMBER_LAYOUTS:
        fx, fy = fits[0].get(cols), fits[1].get(rows)
        if fx is None or fy is None:
            continue
        score = fx[0] * fy[0]
        if best is None or score > best.score + 1e-9:
            best = ChamberFit(
                center=(float(slide_center[0]), float(slide_center[1])),
                angle_deg=float(slide_angle_deg),
                xs=fx[1],
                ys=fy[1],
                score=score,
            )
    return best


def _fit_axis(
    pos: np.ndarray, cfg: ChamberConfig
) -> dict[int, tuple[float, tuple[tuple[float, float], ...]]]:
    """Per cell count ``n``: the best ``(score, cells)`` along one axis."""
    if len(pos) < 2:
        return {}
    order = np.lexsort((pos[:, 1], pos[:, 0]))
    p, w = pos[order, 0], pos[order, 1]
    cands = _clusters(p, w, cfg.position_tol_mm)
    tol = cfg.position_tol_mm
    out: dict[int, tuple[float, tuple[tuple[float, float], ...]]] = {}
    total_w = float(w.sum())

    def support(x: float) -> float:
        return float(w[np.abs(p - x) <= tol].sum())

    ref = max(float(np.median([c[1] for c in cands])), 1e-9)
    for (left, _), (right, _) in itertools.combinations(cands, 2):
        if right - left < cfg.min_cell_mm:
            continue
        outer = max(support(left - o) for o in cfg.outer_walls_mm) + max(
            support(right + o) for o in cfg.outer_walls_mm
        )
        span_w = float(w[(p >= left - 2.5) & (p <= right + 2.5)].sum())
        for n in (1, 2, 4):
            walls: tuple[float, ...] = (0.0,) if n == 1 else cfg.inner_walls_mm
            for iw in walls:
                cw = (right - left - (n - 1) * iw) / n
                if cw < cfg.min_cell_mm:
                    continue
                cells = tuple((left + k * (cw + iw), left + k * (cw + iw) + cw) for k in range(n))
                edges = [v for c in cells for v in c]
                sup = [support(v) for v in edges]
                seen = float(np.mean([min(1.0, s / ref) for s in sup]))
                explained = min(sum(sup) + outer, span_w) / max(span_w, 1e-9)
                score = seen * explained * min(1.0, span_w / max(total_w, 1e-9) + 0.5)
                key = (round(score, 9), -n)
                if n not in out or key > (round(out[n][0], 9), -n):
                    out[n] = (score, cells)
    return out


def _clusters(p: np.ndarray, w: np.ndarray, tol: float) -> list[tuple[float, float]]:
    """Weighted means and total weights of runs of sorted positions closer than ``tol``."""
    out: list[tuple[float, float]] = []
    start = 0
    for k in range(1, len(p) + 1):
        if k == len(p) or p[k] - p[k - 1] > tol:
            ww = w[start:k]
            out.append((float(np.average(p[start:k], weights=ww + 1e-12)), float(ww.sum())))
            start = k
    return out
