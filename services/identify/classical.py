"""Classical (no learning) identification: edges, lines and arcs in full-resolution crops.

Per crop: noise-normalised gradient -> Canny edge pixels -> a Hough transform in
which every edge pixel votes only near its own gradient direction -> the peak line,
refined by a least-squares fit of its inliers -> grown into a circle when a circle
explains clearly more edge pixels with visible curvature. Up to ``max_per_region``
edges are taken from one crop (the inliers of each are removed before the next), so
a cover-glass edge next to a strong slide edge is not lost. Flanks of marker-pen
strokes (dark bands a few tenths of a millimetre wide, drawn round tissue and often
along or across a cover glass's edge) do not count towards that limit: the search
goes on past them.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import lru_cache

import cv2
import numpy as np

from samplescout.contracts import Region, Structure
from samplescout.geometry import FrameGeometry, fit_circle

_RAYLEIGH_MEDIAN = math.sqrt(2.0 * math.log(2.0))


@dataclass(frozen=True, slots=True)
class _Edge:
    """One edge found in a crop, in crop pixel coordinates."""

    kind: str  # "line" or "circle"
    support: int
    mean_z: float
    points: np.ndarray  # (n, 2) inlier pixel coordinates (x, y)
    line: tuple[float, float, float, float] | None = None  # x0, y0, x1, y1
    circle: tuple[float, float, float] | None = None  # cx, cy, r
    contrast: float = 0.0
    relative: float = 0.0  # contrast / grey level of the brighter side
    marker: bool = False  # a flank of a marker-pen stroke
    crossing: bool = False  # a line across a wall that filled the crop


def full_frame_regions(
    width: int, height: int, *, frame_index: int, geometry: FrameGeometry, tile: int = 256
) -> list[Region]:
    """Tiles covering a whole frame: the input of the classical full-resolution baseline.

    Tiles are ``tile`` x ``tile`` pixels (smaller at the right and bottom borders), in
    row-major order, all with probability 1 so that identification keeps that order.
    """
    regions: list[Region] = []
    for y0 in range(0, height, tile):
        for x0 in range(0, width, tile):
            box = (x0, y0, min(width, x0 + tile), min(height, y0 + tile))
            poly = geometry.box_to_holder(*box)
            regions.append(
                Region(
                    frame_index=frame_index,
                    region_index=len(regions),
                    box_px=box,
                    probability=1.0,
                    polygon_mm=tuple((float(a), float(b)) for a, b in poly),
                )
            )
    return regions


class ClassicalIdentifier:
    """Finds the dominant straight or round edges of each crop.

    Parameters
    ----------
    sigma
        Gaussian smoothing before the gradient, pixels.
    z_low, z_high
        Canny hysteresis thresholds in units of the crop's gradient noise.
    min_support
        Fewest inlier edge pixels for an edge.
    max_per_region
        Most edges reported per crop.
    line_tolerance_px
        Inlier distance to a circle.
    line_half_width_px
        Inlier distance to a line: wide enough to take both flanks of a thin line, whose
        centre is then fitted.
    vote_spread_deg
        Each edge pixel votes for line directions within this many degrees of its
        gradient direction: wide enough for the angle noise of faint edges.
    strong_contrast, strong_relative
        Grey-level step, or step relative to the brighter side's grey level, above
        which an edge counts as ``sample_carrier_edge`` (``round_structure`` for a
        circle): slide and plate edges are bold, cover-glass edges faint. The relative
        test keeps a dim frame's bold edges bold.
    well_max_diameter_mm
        A circle this small that closes over most of its perimeter is a ``well``.
    top_k
        Process at most this many regions (highest selection probability first).
    min_region_probability
        Skip regions the selector scored below this.
    noise_floor
        Lower bound of the gradient noise (grey levels per pixel).
    marker_width_mm
        Widest dark band taken for a marker-pen stroke (see :meth:`_is_marker`): such
        an edge does not count towards ``max_per_region``, so the search in its crop
        goes on (a faint cover-glass edge next to a pen circle), past up to
        ``max_skipped`` strokes.
    max_crossing
        Further straight edges looked for after ``max_per_region`` when the edges
        found are the two sides of one wall (parallel lines ``crossing_wall_mm`` apart:
        as thick as a chamber wall, thicker than the double line of one glass edge) and
        the next is a line across them (within ``crossing_tol_deg`` of perpendicular):
        where a chamber slide's dividers cross, the longer divider's two sides fill the
        crop's quota and the other divider would go unseen. Such lines are reported
        with ``crossing`` set, since label print and the label's edge, and the square
        wells of a 384-well plate, make the same pattern: fusion uses them on chamber
        slides only. 0 by default; 2 on chamber slides and on sessions whose carrier is
        to be recognised (:meth:`for_carrier`).
    report_markers
        Whether pen-stroke edges are reported (by their shape and contrast, with
        ``marker`` set). Fusion builds no glass from them, but a pen ring no glass
        covers tells it a glass lies round it; off, they are left out.
    """

    name = "classical-identify@1"

    def __init__(
        self,
        *,
        sigma: float = 1.2,
        z_low: float = 2.5,
        z_high: float = 4.0,
        min_support: int = 24,
        max_per_region: int = 2,
        line_tolerance_px: float = 1.6,
        line_half_width_px: float = 3.0,
        vote_spread_deg: int = 10,
        strong_contrast: float = 0.12,
        strong_relative: float = 0.4,
        well_max_diameter_mm: float = 9.0,
        top_k: int | None = None,
        min_region_probability: float = 0.0,
        noise_floor: float = 1e-5,
        marker_width_mm: float = 0.8,
        max_skipped: int = 3,
        max_crossing: int = 0,
        crossing_wall_mm: tuple[float, float] = (0.5, 2.5),
        crossing_tol_deg: float = 15.0,
        report_markers: bool = True,
    ) -> None:
        self.sigma = sigma
        self.z_low = z_low
        self.z_high = z_high
        self.min_support = min_support
        self.max_per_region = max_per_region
        self.line_tolerance_px = line_tolerance_px
        self.line_half_width_px = line_half_width_px
        self.vote_spread_deg = vote_spread_deg
        self.strong_contrast = strong_contrast
        self.strong_relative = strong_relative
        self.well_max_diameter_mm = well_max_diameter_mm
        self.top_k = top_k
        self.min_region_probability = min_region_probability
        self.noise_floor = noise_floor
        self.marker_width_mm = marker_width_mm
        self.max_skipped = max_skipped
        self.max_crossing = max_crossing
        self.crossing_wall_mm = crossing_wall_mm
        self.crossing_tol_deg = crossing_tol_deg
        self.report_markers = report_markers
        self._variants: dict[str, ClassicalIdentifier] = {}

    def for_carrier(self, carrier: str) -> ClassicalIdentifier:
        """This identifier as used on ``carrier``'s frames: on chamber slides, and where
        the carrier is still to be recognised (``unknown``), it also looks for a divider
        crossing the wall that fills a crop (``max_crossing`` 2); elsewhere it is used as
        configured."""
        if carrier not in ("chamber_slide", "unknown") or self.max_crossing:
            return self
        cached = self._variants.get("crossing")
        if cached is None:
            cached = copy.copy(self)
            cached.max_crossing = 2
            cached._variants = {}
            self._variants["crossing"] = cached
        return cached

    def identify(
        self, crops: Sequence[tuple[Region, np.ndarray]], geometry: FrameGeometry
    ) -> list[Structure]:
        """Structures of the given crops of one frame (see :class:`Identifier`)."""
        order = sorted(crops, key=lambda rc: (-rc[0].probability, rc[0].region_index))
        order = [rc for rc in order if rc[0].probability >= self.min_region_probability]
        if self.top_k is not None:
            order = order[: self.top_k]
        out: list[Structure] = []
        for region, crop in order:
            out.extend(self.identify_one(region, crop, geometry))
        return out

    def identify_one(
        self, region: Region, crop: np.ndarray, geometry: FrameGeometry
    ) -> list[Structure]:
        """Structures of one crop; ``[no_structure]`` when it holds no edge."""
        if region.kind == "label":
            return [Structure(region=region, shape_class="label", probability=region.probability)]
        edges = self.find_edges(
            np.asarray(crop, dtype=np.float32), pixel_size_mm=geometry.pose.pixel_size_mm
        )
        if not edges:
            return [Structure(region=region, shape_class="no_structure", probability=0.9)]
        origin = np.array(region.box_px[:2], dtype=np.float64)
        return [self._to_structure(region, e, origin, geometry) for e in edges]

    def find_edges(self, crop: np.ndarray, pixel_size_mm: float | None = None) -> list[_Edge]:
        """Up to ``max_per_region`` edges of a grey float crop, strongest first.

        With ``pixel_size_mm``, flanks of marker-pen strokes (:meth:`_is_marker`) do
        not count towards ``max_per_region`` (and are left out unless
        ``report_markers``).
        """
        h, w = crop.shape[:2]
        if h < 8 or w < 8:
            return []
        g = cv2.GaussianBlur(crop, (0, 0), self.sigma)
        gx = cv2.Sobel(g, cv2.CV_32F, 1, 0, ksize=3, scale=0.125)
        gy = cv2.Sobel(g, cv2.CV_32F, 0, 1, ksize=3, scale=0.125)
        mag = cv2.magnitude(gx, gy)
        noise = max(float(np.median(mag)) / _RAYLEIGH_MEDIAN, self.noise_floor)
        scale = 100.0 / noise
        dx = np.clip(gx * scale, -32767, 32767).astype(np.int16)
        dy = np.clip(gy * scale, -32767, 32767).astype(np.int16)
        canny = cv2.Canny(dx, dy, self.z_low * 100.0, self.z_high * 100.0, L2gradient=True)
        ys, xs = np.nonzero(canny)
        if len(xs) < self.min_support:
            return []
        _, chains = cv2.connectedComponents(canny, connectivity=8)
        pts = np.stack([xs, ys], axis=1).astype(np.float64)
        theta = np.arctan2(gy[ys, xs], gx[ys, xs]).astype(np.float64)
        unit = np.stack([np.cos(theta), np.sin(theta)])
        chain = chains[ys, xs]
        z = mag[ys, xs].astype(np.float64) / noise
        edges: list[_Edge] = []
        alive = np.ones(len(pts), dtype=bool)
        taken = skipped = 0
        wall: tuple[float, float] | None = None  # direction of a wall's two sides
        while skipped <= self.max_skipped:
            if taken >= self.max_per_region:
                if wall is None:
                    wall = self._wall(edges, pixel_size_mm)
                if wall is None or taken >= self.max_per_region + self.max_crossing:
                    break
            if alive.sum() < self.min_support:
                break
            edge, used = self._best_edge(pts, theta, unit, z, chain, alive, w, h)
            alive &= ~used
            if edge is None:
                break
            if wall is not None:
                across = self._crosses(edge, wall)
                if across is None:
                    break
                if not across:
                    # Another piece of a wall side (the crossing divider cuts it in two).
                    alive &= ~self._near(edge, pts)
                    skipped += 1
                    continue
            alive &= ~self._near(edge, pts)
            normals = self._normals(edge)
            band = self._is_marker(normals, g, pixel_size_mm) if pixel_size_mm else 0.0
            if band != 0.0:
                # Drop the stroke's other flank too, and look on: the stroke does not
                # count towards ``max_per_region``.
                alive &= ~self._near(edge, pts, offset=band)
                skipped += 1
                if self.report_markers:
                    edges.append(
                        replace(
                            self._with_contrast(edge, normals, g),
                            marker=True,
                            crossing=wall is not None,
                        )
                    )
                continue
            edges.append(replace(self._with_contrast(edge, normals, g), crossing=wall is not None))
            taken += 1
        return edges

    def _wall(self, edges: list[_Edge], pixel_size_mm: float | None) -> tuple[float, float] | None:
        """Unit direction of the wall whose two sides are the last two edges found
        (parallel lines ``crossing_wall_mm`` apart), else None."""
        lines = [e.line for e in edges[-2:] if e.kind == "line" and e.line is not None]
        if self.max_crossing <= 0 or len(lines) < 2 or not pixel_size_mm:
            return None
        da, db = (_direction(line) for line in lines)
        if da is None or db is None or abs(float(da @ db)) < _PARALLEL_COS:
            return None
        (ax0, ay0, _, _), (bx0, by0, bx1, by1) = lines
        normal = np.array([-da[1], da[0]])
        gap = abs(float(normal @ (np.array([(bx0 + bx1) / 2, (by0 + by1) / 2]) - [ax0, ay0])))
        lo, hi = self.crossing_wall_mm
        if not lo <= gap * pixel_size_mm <= hi:
            return None
        return float(da[0]), float(da[1])

    def _crosses(self, edge: _Edge, wall: tuple[float, float]) -> bool | None:
        """True for a line across the wall of direction ``wall``, False for one along
        it (parallel within ``_PARALLEL_DEG``), None for anything else."""
        d = _direction(edge.line) if edge.kind == "line" else None
        if d is None:
            return None
        cos = abs(float(d[0] * wall[0] + d[1] * wall[1]))
        if cos <= math.sin(math.radians(self.crossing_tol_deg)):
            return True
        return False if cos >= _PARALLEL_COS else None

    def _best_edge(
        self,
        pts: np.ndarray,
        theta: np.ndarray,
        unit: np.ndarray,
        z: np.ndarray,
        chain: np.ndarray,
        alive: np.ndarray,
        w: int,
        h: int,
    ) -> tuple[_Edge | None, np.ndarray]:
        """The strongest edge among the ``alive`` edge pixels ``pts``, whose gradient
        directions are ``theta`` (rad) and ``unit`` (their cosines and sines, ``(2, n)``)."""
        idx = np.nonzero(alive)[0]
        p, th = pts[idx], theta[idx]
        # Orientation-constrained Hough, 1 deg x 1 px bins: each pixel votes only within
        # +-vote_spread_deg of its own gradient direction (folded to [0, 180); the angle
        # axis runs past both ends so lines near the fold do not split their votes).
        spread = self.vote_spread_deg
        deg = np.mod(np.degrees(th), 180.0)
        rows = (np.round(deg).astype(np.int64) % 180)[:, None] + np.arange(2 * spread + 1)[None, :]
        cos, sin = _hough_tables(spread)
        rho = p[:, 0:1] * cos[rows] + p[:, 1:2] * sin[rows]
        diag = math.hypot(w, h)
        nr = int(2 * diag) + 3
        ri = np.round(rho + diag + 1).astype(np.int64)
        na = 180 + 2 * spread
        votes = np.bincount((rows * nr + ri).ravel(), minlength=na * nr).reshape(na, nr)
        # Both flanks of a thin bright/dark line vote a few px apart: pool them into one peak.
        # A pooled bin counts each pixel at most once, so 16 bits hold it (and filter fast).
        acc = cv2.boxFilter(
            votes.astype(np.uint16 if len(idx) <= 0xFFFF else np.float32),
            -1,
            (5, 1),
            normalize=False,
        )
        peak = int(np.argmax(acc))
        if acc.flat[peak] < self.min_support:
            return None, np.zeros(len(pts), dtype=bool)
        a = math.radians(peak // nr - spread)
        r = peak % nr - diag - 1
        normal = np.array([math.cos(a), math.sin(a)])
        line = self._fit_line(pts, unit, alive, normal, r)
        if line is None:
            return None, np.zeros(len(pts), dtype=bool)
        normal, r, inl = line
        best, run = self._line_edge(pts, z, inl, normal, r)
        circle = self._grow_circle(pts, unit, chain, alive, run)
        if circle is not None:
            (cx, cy, rad_px), cin = circle
            span = self._chord(pts[cin])
            sagitta = span * span / (8.0 * rad_px)
            if cin.sum() > 1.15 * inl.sum() and sagitta > 2.0:
                best = _Edge(
                    "circle",
                    int(cin.sum()),
                    float(z[cin].mean()),
                    pts[cin],
                    circle=(cx, cy, rad_px),
                )
                run = cin
        if best.support < self.min_support:
            return None, run
        return best, run

    def _fit_line(
        self,
        pts: np.ndarray,
        unit: np.ndarray,
        alive: np.ndarray,
        normal: np.ndarray,
        r: float,
    ) -> tuple[np.ndarray, float, np.ndarray] | None:
        inl = np.zeros(len(pts), dtype=bool)
        for tol in (4.0, self.line_half_width_px):
            dist = pts @ normal - r
            cosang = np.abs(unit[0] * normal[0] + unit[1] * normal[1])
            inl = alive & (np.abs(dist) <= tol) & (cosang >= math.cos(math.radians(25.0)))
            if inl.sum() < 3:
                return None
            q = pts[inl]
            c = q.mean(axis=0)
            _, _, vt = np.linalg.svd(q - c, full_matrices=False)
            normal = vt[1]
            r = float(c @ normal)
        return normal, r, inl

    def _line_edge(
        self, pts: np.ndarray, z: np.ndarray, inl: np.ndarray, normal: np.ndarray, r: float
    ) -> tuple[_Edge, np.ndarray]:
        """The line's longest gap-free run of inliers, and those inliers as a mask."""
        direction = np.array([-normal[1], normal[0]])
        idx = np.nonzero(inl)[0]
        t = pts[idx] @ direction
        order = np.argsort(t)
        t, idx = t[order], idx[order]
        # Keep the longest run without gaps: collinear clutter far along the line is not this edge.
        cuts = np.nonzero(np.diff(t) > 24.0)[0]
        starts = np.concatenate([[0], cuts + 1])
        ends = np.concatenate([cuts + 1, [len(t)]])
        k = int(np.argmax(ends - starts))
        t, idx = t[starts[k] : ends[k]], idx[starts[k] : ends[k]]
        run = np.zeros_like(inl)
        run[idx] = True
        foot = normal * r
        p0, p1 = foot + direction * t[0], foot + direction * t[-1]
        edge = _Edge(
            "line",
            len(idx),
            float(z[idx].mean()),
            pts[idx],
            line=(float(p0[0]), float(p0[1]), float(p1[0]), float(p1[1])),
        )
        return edge, run

    def _grow_circle(
        self,
        pts: np.ndarray,
        unit: np.ndarray,
        chain: np.ndarray,
        alive: np.ndarray,
        seed: np.ndarray,
    ) -> tuple[tuple[float, float, float], np.ndarray] | None:
        # Start from the whole edge chains the line's inliers lie on: an arc's chain runs
        # on where it leaves the line's band, which pins the curvature down.
        inl = alive & (np.bincount(chain[seed], minlength=int(chain.max()) + 1) >= 5)[chain]
        circle: tuple[float, float, float] | None = None
        for tol in (6.0, 3.0, self.line_tolerance_px, self.line_tolerance_px):
            if inl.sum() < 8:
                return None
            circle = fit_circle(pts[inl])
            if circle is None:
                return None
            cx, cy, rad = circle
            d = pts - np.array([cx, cy])
            dist = np.hypot(d[:, 0], d[:, 1])
            radial = np.abs(unit[0] * d[:, 0] + unit[1] * d[:, 1]) / np.maximum(dist, 1e-9)
            inl = alive & (np.abs(dist - rad) <= tol) & (radial >= math.cos(math.radians(20.0)))
        if circle is None or inl.sum() < 8:
            return None
        return circle, inl

    def _near(self, edge: _Edge, pts: np.ndarray, offset: float = 0.0) -> np.ndarray:
        """Edge pixels on ``edge``'s outline (both flanks), to drop before the next search.

        ``offset``: instead, those on the outline moved this many pixels along its
        normal (signed as in :meth:`_normals`), e.g. a stroke's other flank.
        """
        band = self.line_half_width_px + 2.0
        if edge.circle is not None:
            cx, cy, rad = edge.circle
            return np.abs(np.hypot(pts[:, 0] - cx, pts[:, 1] - cy) - (rad + offset)) <= band
        assert edge.line is not None
        x0, y0, x1, y1 = edge.line
        length = max(math.hypot(x1 - x0, y1 - y0), 1e-9)
        d = np.array([x1 - x0, y1 - y0]) / length
        q = pts - np.array([x0, y0])
        t = q @ d
        off = q[:, 0] * d[1] - q[:, 1] * d[0]
        return (np.abs(off + offset) <= band) & (t >= -band) & (t <= length + band)

    @staticmethod
    def _normals(edge: _Edge) -> tuple[np.ndarray, np.ndarray]:
        """Points on ``edge`` (projected from its inliers) and its unit normals there.

        Lines: the normal is ``(-dy, dx)`` of the segment direction; circles: outward.
        """
        p = edge.points
        if edge.line is not None:
            x0, y0, x1, y1 = edge.line
            n = np.array([-(y1 - y0), x1 - x0])
            n = n / max(float(np.hypot(*n)), 1e-9)
            c = p - ((p - np.array([x0, y0])) @ n)[:, None] * n
            return c, np.broadcast_to(n, p.shape)
        assert edge.circle is not None
        cx, cy, rad = edge.circle
        d = p - np.array([cx, cy])
        n = d / np.maximum(np.hypot(d[:, 0:1], d[:, 1:2]), 1e-9)
        return np.array([cx, cy]) + rad * n, n

    def _is_marker(
        self, normals: tuple[np.ndarray, np.ndarray], smooth: np.ndarray, pixel_size_mm: float
    ) -> float:
        """Signed width (px, along the edge's ``normals``, see :meth:`_normals`) of the dark
        band the edge is a flank of, when that band is a marker-pen stroke; 0 otherwise.

        A pen stroke is a dark band (far darker than the glass either side) a few tenths
        of a mm wide, with sharp edges on both sides. A cover-glass edge is a faint
        bright line with a small step; a slide or plate edge has no second flank; a
        chamber wall's shadow fades out instead of ending sharply.
        """
        c, n = normals
        if len(c) > 48:
            c, n = c[:: len(c) // 48 + 1], n[:: len(n) // 48 + 1]
        wmax = max(4, math.ceil(self.marker_width_mm / pixel_size_mm))
        out = wmax + 6
        t = np.arange(-out, out + 1, dtype=np.float64)
        h, w = smooth.shape
        # A profile lies in the crop when both its ends do (the crop is convex).
        ends = c[:, None, :] + t[[0, -1], None] * n[:, None, :]
        inside = (ends >= 0) & (ends <= np.array([w - 1, h - 1]))
        keep = inside.all(axis=(1, 2))
        if keep.sum() < 6:
            return 0.0
        q = c[keep, None, :] + t[None, :, None] * n[keep, None, :]
        ij = np.round(q).astype(np.int64)
        prof = np.median(smooth[ij[..., 1], ij[..., 0]], axis=0)
        mid = out
        for sgn in (1, -1):
            # q(k): the profile k px into the darker side; ``hi`` the other side's level.
            side = prof[mid + sgn * np.arange(0, out + 1)]
            hi = float(np.median(prof[mid - sgn * np.arange(3, 7)]))
            if hi <= 0 or side[3] >= hi:
                continue
            k_min = 1 + int(np.argmin(side[1 : wmax + 1]))
            low = float(side[k_min])
            if low > 0.6 * hi:
                continue
            after = side[k_min:]
            back = np.nonzero(after >= low + 0.8 * (hi - low))[0]
            if len(back) == 0:
                continue
            k_ret = int(back[0])
            # The far flank rises as sharply as the near one falls (not a fading shadow).
            k_half = int(np.nonzero(after >= low + 0.2 * (hi - low))[0][0])
            if k_ret - k_half > 6 or k_min + k_ret > wmax + 4:
                continue
            # Beyond the band, the same glass as before it (a slide edge's gap is not).
            beyond = after[k_ret + 2 : k_ret + 8]
            if len(beyond) < 3 or not 0.85 * hi <= float(np.median(beyond)) <= hi / 0.85:
                continue
            return float(sgn * (k_min + 0.5 * (k_half + k_ret)))
        return 0.0

    @staticmethod
    def _chord(p: np.ndarray) -> float:
        c = p.mean(axis=0)
        _, _, vt = np.linalg.svd(p - c, full_matrices=False)
        t = (p - c) @ vt[0]
        return float(t.max() - t.min())

    @staticmethod
    def _with_contrast(
        edge: _Edge, normals: tuple[np.ndarray, np.ndarray], smooth: np.ndarray
    ) -> _Edge:
        """Grey-level step or line height across the edge (4 px either side of its centre
        along its ``normals``, see :meth:`_normals`)."""
        c, n = normals
        h, w = smooth.shape
        lim = np.array([w - 1, h - 1])

        ij = np.clip(np.round(np.stack([c + 4.0 * n, c - 4.0 * n, c])), 0, lim).astype(np.int64)
        va, vb, vc = smooth[ij[..., 1], ij[..., 0]]
        step, ridge, med_a, med_b = np.median(
            np.stack([va - vb, vc - 0.5 * (va + vb), va, vb]), axis=1
        )
        contrast = max(abs(float(step)), abs(float(ridge)))
        level = max(float(med_a), float(med_b), 1e-3)
        return replace(edge, contrast=contrast, relative=contrast / level)

    def _is_strong(self, edge: _Edge) -> bool:
        return edge.contrast >= self.strong_contrast or edge.relative >= self.strong_relative

    def _to_structure(
        self, region: Region, edge: _Edge, origin: np.ndarray, geometry: FrameGeometry
    ) -> Structure:
        ps = geometry.pose.pixel_size_mm
        strength = 1.0 - math.exp(-max(edge.mean_z - 2.0, 0.0) / 1.5)
        probability = float(strength * (1.0 - math.exp(-edge.support / 40.0)))
        if edge.kind == "circle" and edge.circle is not None:
            cx, cy, rad = edge.circle
            center = geometry.pixel_to_holder(np.array([cx, cy]) + origin)
            pts_mm = geometry.pixel_to_holder(edge.points + origin)
            a0, a1 = _arc_span(pts_mm - center)
            diameter = 2.0 * rad * ps
            closed = (a1 - a0) > 240.0
            if diameter <= self.well_max_diameter_mm and closed:
                cls = "well"
            elif not self._is_strong(edge):
                cls = "round_cover_glass_edge"
            else:
                cls = "round_structure"
            return Structure(
                region=region,
                shape_class=cls,
                probability=probability,
                arc_mm=(float(center[0]), float(center[1]), float(rad * ps), a0, a1),
                contrast=edge.contrast,
                marker=edge.marker,
                crossing=edge.crossing,
            )
        assert edge.line is not None
        x0, y0, x1, y1 = edge.line
        ends = geometry.pixel_to_holder(np.array([[x0, y0], [x1, y1]]) + origin)
        cls = "sample_carrier_edge" if self._is_strong(edge) else "straight_cover_glass_edge"
        return Structure(
            region=region,
            shape_class=cls,
            probability=probability,
            segment_mm=(
                (float(ends[0, 0]), float(ends[0, 1])),
                (float(ends[1, 0]), float(ends[1, 1])),
            ),
            contrast=edge.contrast,
            marker=edge.marker,
            crossing=edge.crossing,
        )


#: Two lines within this many degrees are parallel (the sides of one wall).
_PARALLEL_DEG = 3.0
_PARALLEL_COS = math.cos(math.radians(_PARALLEL_DEG))


def _direction(line: tuple[float, float, float, float] | None) -> np.ndarray | None:
    """Unit vector from a line's first end to its second (None for no or a zero line)."""
    if line is None:
        return None
    x0, y0, x1, y1 = line
    d = np.array([x1 - x0, y1 - y0], dtype=np.float64)
    n = float(np.hypot(*d))
    return d / n if n > 0 else None


@lru_cache(maxsize=4)
def _hough_tables(spread: int) -> tuple[np.ndarray, np.ndarray]:
    """Cosine and sine of the Hough angle rows, ``-spread`` to ``180 + spread`` degrees."""
    rad = np.radians(np.arange(-spread, 180 + spread, dtype=np.float64))
    return np.cos(rad), np.sin(rad)


def _arc_span(d: np.ndarray) -> tuple[float, float]:
    """Smallest angular interval ``[a0, a1]`` (deg, a0 in [0, 360)) holding all directions ``d``."""
    ang = np.sort(np.mod(np.degrees(np.arctan2(d[:, 1], d[:, 0])), 360.0))
    gaps = np.diff(np.concatenate([ang, [ang[0] + 360.0]]))
    k = int(np.argmax(gaps))
    a0 = float(ang[(k + 1) % len(ang)])
    return a0, a0 + 360.0 - float(gaps[k])
