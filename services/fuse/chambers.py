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
import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from samplescout.fuse.outline import step_canvas
from samplescout.geometry import FrameGeometry, rotation_matrix

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
    border_mm: float = 0.35
    wall_match_mm: float = 0.2
    #: Least share of the slide's length and width that the chamber block spans.
    min_block_share: tuple[float, float] = (0.5, 0.8)
    #: Largest share of them: the label end of a chamber slide stays free of the block.
    max_block_share: tuple[float, float] = (0.8, 1.0)
    #: The block usually ends this close to the slide's other end (its outer wall's
    #: outside); a block ending farther from both ends has its score scaled by
    #: ``far_end_factor``.
    max_end_gap_mm: float = 5.0
    far_end_factor: float = 0.85
    min_line_mm: float = 2.0
    inner_walls_mm: tuple[float, ...] = tuple(float(v) for v in np.arange(0.7, 1.61, 0.1))
    outer_walls_mm: tuple[float, ...] = tuple(float(v) for v in np.arange(1.2, 2.11, 0.15))
    min_cell_mm: float = 5.0
    #: Least share of the cells' own edges (not the outer wall's outsides) that a fit
    #: must see, on each axis; above 0 the one-row guess from outer walls alone is off.
    #: Edges read off the coarse data (:func:`wall_lines`) include the slide's own
    #: outline, which alone looks like the outsides of a one-chamber block.
    min_cell_edges_seen: float = 0.0
    #: Hypotheses are anchored on pairs of the heaviest this many edge positions per
    #: axis (all of them still count as evidence); None: every position.
    max_anchor_edges: int | None = None


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
    # Positions across each axis (x, then y), their weight and where along the other
    # axis the edge's middle lies.
    across: list[list[tuple[float, float, float]]] = [[], []]
    for ends, weight in lines:
        q = (np.asarray(ends) - np.asarray(slide_center)) @ rot
        d = q[1] - q[0]
        length = float(np.hypot(*d))
        mid = q.mean(axis=0)
        # On the slide, off its edges: the middle by the border, the ends (a slightly
        # tilted fit of an outer wall next to the slide edge) by half of it.
        if (
            length < cfg.min_line_mm
            or np.any(np.abs(mid) > half + 1e-9)
            or np.any(np.abs(q) > half + cfg.border_mm / 2 + 1e-9)
        ):
            continue
        ang = abs(float(np.degrees(np.arctan2(d[1], d[0])))) % 180.0
        if min(ang, 180.0 - ang) <= cfg.parallel_tol_deg:  # runs along x: a y position
            across[1].append((float(mid[1]), weight, float(mid[0])))
        elif abs(ang - 90.0) <= cfg.parallel_tol_deg:
            across[0].append((float(mid[0]), weight, float(mid[1])))
    limits = np.asarray(slide_size) / 2 + cfg.position_tol_mm
    ax = [np.array(a, dtype=np.float64).reshape(-1, 3) for a in across]
    x_args = (
        cfg,
        float(limits[0]),
        cfg.min_block_share[0] * slide_size[0],
        cfg.max_block_share[0] * slide_size[0],
    )
    fit_x = _fit_axis(
        ax[0][:, :2], *x_args, end_gap=cfg.max_end_gap_mm, far_factor=cfg.far_end_factor
    )
    # Edges along the slide count for the rows only where the block is (by the best
    # column fit): the label's print beside the block is no wall.
    ys_in = ax[1]
    best_x = max(
        ((sc, cells, ow) for per in fit_x.values() for (_, ow), (sc, cells) in per.items()),
        key=lambda t: t[0],
        default=None,
    )
    if best_x is not None:
        _, cells, ow = best_x
        lo_x = cells[0][0] - ow - 1.0
        hi_x = cells[-1][1] + ow + 1.0
        inside = (ys_in[:, 2] >= lo_x) & (ys_in[:, 2] <= hi_x)
        if inside.any():
            ys_in = ys_in[inside]
    y_args = (
        cfg,
        float(limits[1]),
        cfg.min_block_share[1] * slide_size[1],
        cfg.max_block_share[1] * slide_size[1],
    )
    fit_y = _fit_axis(ys_in[:, :2], *y_args)
    if not fit_y and best_x is not None and cfg.min_cell_edges_seen <= 0.0:
        # No cell edge seen across the slide: one row, the block centred on the slide's
        # width (as chamber blocks are made), its outer walls where seen.
        fit_y = _centred_row(ys_in[:, :2], float(slide_size[1]), best_x[2], cfg)
    if not fit_y and len(ys_in) < len(ax[1]):
        fit_y = _fit_axis(ax[1][:, :2], *y_args)  # too little seen on the block alone
    fits = [fit_x, fit_y]
    best: ChamberFit | None = None
    for rows, cols in CHAMBER_LAYOUTS:
        # One chamber block: the same outer (and, with inner walls on both axes, inner)
        # wall thickness along both axes.
        for (iwx, owx), (sx, xs) in fits[0].get(cols, {}).items():
            for (iwy, owy), (sy, ys) in fits[1].get(rows, {}).items():
                if abs(owx - owy) > cfg.wall_match_mm + 1e-9:
                    continue
                if cols > 1 and rows > 1 and abs(iwx - iwy) > cfg.wall_match_mm + 1e-9:
                    continue
                score = sx * sy
                if best is None or score > best.score + 1e-9:
                    best = ChamberFit(
                        center=(float(slide_center[0]), float(slide_center[1])),
                        angle_deg=float(slide_angle_deg),
                        xs=xs,
                        ys=ys,
                        score=score,
                    )
    return best


@dataclass(frozen=True)
class WallConfig:
    """Straight edges read from the coarse data on a slide (see :func:`wall_lines`).

    ``resolution_mm`` is the canvas pixel; a run is a stretch of at least
    ``min_run_mm`` along which the step across it keeps one sign and at least
    ``min_step`` noise levels (gaps of ``max_gap_px`` bridged).
    """

    resolution_mm: float = 0.25
    min_step: float = 2.0
    min_run_mm: float = 3.0
    max_gap_px: int = 1
    #: High: the non-maximum suppression needs the steps' peaks, not a clipped plateau.
    clip: float = 1000.0


def wall_lines(
    views: Sequence[tuple[np.ndarray, FrameGeometry]],
    slide_center: tuple[float, float],
    slide_size: tuple[float, float],
    slide_angle_deg: float,
    config: WallConfig | None = None,
) -> list[tuple[np.ndarray, float]]:
    """Edges along and across a slide from its coarse data: ``(endpoints (2, 2) holder
    mm, weight)`` in :func:`fit_chambers`'s form, the weight their length.

    A chamber block's walls are plain steps in brightness all along the block, but
    identification sometimes classes them as carrier edges or misses them where the
    selector's background level (raised by the walls' own energy) hides them. The
    canvas along the slide sees every step: a run is kept where the step is the largest
    across it (non-maximum suppression) and stays above ``min_step`` noise levels.
    """
    cfg = config or WallConfig()
    res = cfg.resolution_mm
    gx, gy = step_canvas(views, slide_center, slide_angle_deg, res, slide_size, cfg.clip)
    h, w = gx.shape
    rot = rotation_matrix(slide_angle_deg)
    out: list[tuple[np.ndarray, float]] = []
    # gy's steps run along x: transposed, both become runs down the columns
    for g, along_x in ((gx, False), (gy.T, True)):
        a = np.abs(g)
        peak = np.zeros(g.shape, bool)
        peak[:, 1:-1] = (a[:, 1:-1] >= a[:, :-2]) & (a[:, 1:-1] >= a[:, 2:])
        for sign in (1.0, -1.0):
            on = peak & (sign * g >= cfg.min_step)
            # a wall a little off the canvas axis steps between neighbouring columns
            on = cv2.dilate(on.astype(np.uint8), np.ones((1, 3), np.uint8)) > 0
            if cfg.max_gap_px:
                k = np.ones((2 * cfg.max_gap_px + 1, 1), np.uint8)
                on = cv2.morphologyEx(on.astype(np.uint8), cv2.MORPH_CLOSE, k) > 0
            out.extend(_column_runs(on, cfg, along_x, res, rot, slide_center, (w, h)))
    return out


def _column_runs(
    on: np.ndarray,
    cfg: WallConfig,
    along_x: bool,
    res: float,
    rot: np.ndarray,
    center: tuple[float, float],
    canvas_wh: tuple[int, int],
) -> list[tuple[np.ndarray, float]]:
    """The runs of ``on`` down its columns of at least ``min_run_mm``, the longest of
    neighbouring columns only, as holder-mm segments."""
    n_min = max(2, math.ceil(cfg.min_run_mm / res))
    pad = np.zeros((on.shape[0] + 2, on.shape[1]), np.int8)
    pad[1:-1] = on
    d = np.diff(pad, axis=0)
    runs: list[tuple[int, int, int]] = []  # (length, column, start)
    for col in range(on.shape[1]):
        starts = np.flatnonzero(d[:, col] == 1)
        ends = np.flatnonzero(d[:, col] == -1)
        runs += [
            (int(e - s), col, int(s)) for s, e in zip(starts, ends, strict=True) if e - s >= n_min
        ]
    runs.sort(key=lambda r: (-r[0], r[1], r[2]))
    kept: list[tuple[int, int, int]] = []
    for n, col, start in runs:
        if any(
            abs(col - c) <= 1 and min(start + n, s + m) - max(start, s) >= 0.5 * n
            for m, c, s in kept
        ):
            continue
        kept.append((n, col, start))
    w, h = canvas_wh
    out = []
    for n, col, start in kept:
        if along_x:  # a transposed column: the edge runs along x at canvas row ``col``
            ends = np.array([[start, col], [start + n - 1, col]], np.float64)
        else:
            ends = np.array([[col, start], [col, start + n - 1]], np.float64)
        local = (ends - np.array([(w - 1) / 2.0, (h - 1) / 2.0])) * res
        out.append((local @ rot.T + np.asarray(center, np.float64), n * res))
    return out


def _fit_axis(
    pos: np.ndarray,
    cfg: ChamberConfig,
    limit: float = math.inf,
    min_extent: float = 0.0,
    max_extent: float = math.inf,
    end_gap: float = math.inf,
    far_factor: float = 1.0,
) -> dict[int, dict[tuple[float, float], tuple[float, tuple[tuple[float, float], ...]]]]:
    """Per cell count ``n`` and wall thicknesses ``(inner, outer)``: the best
    ``(score, cells)`` along one axis, with every edge within ``+-limit`` and the block
    (outer edge to outer edge) between ``min_extent`` and ``max_extent`` long; a block
    with neither end within ``end_gap`` of ``+-limit`` scores ``far_factor`` times less.

    The edges across the axis are, in order, the outer wall's outside, then the two
    edges of each of ``n`` cells of width ``cw`` separated by inner walls ``iw``, then
    the outer wall's outside again (outer wall ``ow``): edge ``e`` lies at
    ``L + A[e] cw + B[e] iw + C[e] ow``. Every pair of observed edge positions, taken
    as every pair of model edges, fixes ``L`` and ``cw`` for each ``iw`` and ``ow``; a
    hypothesis scores the share of its edges seen times the share of the evidence
    on the axis that it explains.
    """
    if len(pos) < 2:
        return {}
    order = np.lexsort((pos[:, 1], pos[:, 0]))
    p, w = pos[order, 0], pos[order, 1]
    clusters = np.array(_clusters(p, w, cfg.position_tol_mm))
    strong = clusters[clusters[:, 1] >= 0.1 * clusters[:, 1].max()]
    ref = max(float(np.median(strong[:, 1])), 1e-9)
    # support profile: evidence within the tolerance of every 0.05 mm step
    step = 0.05
    lo, hi = float(p.min()) - 5.0, float(p.max()) + 5.0
    grid = np.arange(lo, hi + step, step)
    cum = np.concatenate([[0.0], np.cumsum(w)])
    left = np.searchsorted(p, grid - cfg.position_tol_mm, side="left")
    right = np.searchsorted(p, grid + cfg.position_tol_mm, side="right")
    profile = cum[right] - cum[left]

    def support(x: np.ndarray) -> np.ndarray:
        k = np.clip(np.rint((x - lo) / step).astype(np.int64), 0, len(grid) - 1)
        inside = (x >= lo) & (x <= hi)
        return np.where(inside, profile[k], 0.0)

    total = max(float(w.sum()), 1e-9)
    anchors = clusters
    if cfg.max_anchor_edges is not None and len(clusters) > cfg.max_anchor_edges:
        heaviest = np.argsort(-clusters[:, 1], kind="stable")[: cfg.max_anchor_edges]
        anchors = clusters[np.sort(heaviest)]
    ii, jj = np.triu_indices(len(anchors), 1)
    xa, xb = anchors[ii, 0], anchors[jj, 0]
    out: dict[int, dict[tuple[float, float], tuple[float, tuple[tuple[float, float], ...]]]] = {}
    for n in (1, 2, 4):
        coef = _edge_coefficients(n)
        walls: tuple[float, ...] = (0.0,) if n == 1 else cfg.inner_walls_mm
        # Every (inner, outer) wall pair at once: rows of the arrays below.
        iw_all = np.repeat(np.asarray(walls, dtype=np.float64), len(cfg.outer_walls_mm))
        ow_all = np.tile(np.asarray(cfg.outer_walls_mm, dtype=np.float64), len(walls))
        keys = [
            (round(float(i), 3), round(float(o), 3)) for i, o in zip(iw_all, ow_all, strict=True)
        ]
        per_wall: dict[tuple[float, float], tuple[float, tuple[tuple[float, float], ...]]] = {}
        for a, b in itertools.combinations(range(len(coef)), 2):
            da = coef[b] - coef[a]
            if da[0] == 0:
                continue
            iw, ow = iw_all[:, None], ow_all[:, None]
            cw = (xb[None, :] - xa[None, :] - da[1] * iw - da[2] * ow) / da[0]
            ok = cw >= cfg.min_cell_mm
            if not ok.any():
                continue
            base = xa[None, :] - coef[a, 0] * cw - coef[a, 1] * iw - coef[a, 2] * ow
            edges = (
                base[:, :, None]
                + coef[None, None, :, 0] * cw[:, :, None]
                + coef[None, None, :, 1] * iw[:, :, None]
                + coef[None, None, :, 2] * ow[:, :, None]
            )
            sup = support(edges)
            frac = np.minimum(1.0, sup / ref)
            seen = (frac[..., 1:-1].sum(axis=-1) + 0.5 * (frac[..., 0] + frac[..., -1])) / (
                2 * n + 1
            )
            explained = np.minimum(1.0, sup.sum(axis=-1) / total)
            extent = edges[..., -1] - edges[..., 0]
            fits = (
                (frac[..., 1:-1].mean(axis=-1) >= cfg.min_cell_edges_seen)
                & (np.abs(edges).max(axis=-1) <= limit)
                & (extent >= min_extent)
                & (extent <= max_extent + 1e-9)
            )
            at_end = (edges[..., 0] <= end_gap - limit) | (edges[..., -1] >= limit - end_gap)
            prior = np.where(at_end, 1.0, far_factor)
            # -2 below the -1 of a misfit: a cell too narrow is never picked
            score = np.where(ok, np.where(fits, seen * explained * prior, -1.0), -2.0)
            best_k = np.argmax(score, axis=1)
            best_s = score[np.arange(len(keys)), best_k]
            for r in np.flatnonzero(best_s >= 0):
                key = keys[r]
                if best_s[r] > per_wall.get(key, (-1.0, ()))[0] + 1e-9:
                    e = _snap(edges[r, best_k[r], 1:-1], clusters[:, 0], cfg.position_tol_mm)
                    cells = tuple((float(e[2 * c]), float(e[2 * c + 1])) for c in range(n))
                    per_wall[key] = (float(best_s[r]), cells)
        if per_wall:
            out[n] = per_wall
    return out


def _centred_row(
    pos: np.ndarray, width: float, wall_x: float, cfg: ChamberConfig
) -> dict[int, dict[tuple[float, float], tuple[float, tuple[tuple[float, float], ...]]]]:
    """One row of cells across the slide's ``width`` from its outer wall's outside edges
    alone (the strongest edge position near either long side; one seen is mirrored about
    the slide's axis), in :func:`_fit_axis`'s form. Scores are low (this is a guess from
    the usual make of chamber slides) and prefer outer walls as thick as ``wall_x``
    (the other axis's)."""
    if len(pos) == 0:
        return {}
    near = np.abs(pos[:, 0]) >= 0.4 * width
    sides: list[float | None] = []
    for sgn in (-1.0, 1.0):
        k = np.nonzero(near & (np.sign(pos[:, 0]) == sgn))[0]
        sides.append(float(pos[k[np.argmax(pos[k, 1])], 0]) if len(k) else None)
    lo, hi = sides
    if lo is None and hi is None:
        return {}
    lo = -hi if lo is None else lo  # type: ignore[operator]
    hi = -lo if hi is None else hi
    seen = sum(v is not None for v in sides) / 2.0
    out: dict[tuple[float, float], tuple[float, tuple[tuple[float, float], ...]]] = {}
    for ow in cfg.outer_walls_mm:
        if hi - lo - 2 * ow < cfg.min_cell_mm:
            continue
        score = 0.05 * seen - 1e-3 * abs(ow - wall_x)
        out[(0.0, round(float(ow), 3))] = (score, ((float(lo + ow), float(hi - ow)),))
    return {1: out} if out else {}


def _snap(edges: np.ndarray, observed: np.ndarray, tol: float) -> np.ndarray:
    """Each model edge moved onto the nearest observed edge position within ``tol``."""
    d = np.abs(edges[:, None] - observed[None, :])
    k = np.argmin(d, axis=1)
    near = d[np.arange(len(edges)), k] <= tol
    return np.where(near, observed[k], edges)


def _edge_coefficients(n: int) -> np.ndarray:
    """Rows ``(A, B, C)`` of the model edges of :func:`_fit_axis`, outside-left first."""
    rows = [(0.0, 0.0, -1.0)]
    for k in range(n):
        rows += [(float(k), float(k), 0.0), (float(k + 1), float(k), 0.0)]
    rows.append((float(n), float(n - 1), 1.0))
    return np.array(rows)


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
