"""Adaptive overview path: choose the next overview frame from the localization so far.

A full raster covers the whole holder opening. The :class:`AdaptivePlanner` instead
works in holder millimetres on a small occupancy grid and, after every frame, scores
candidate frame centres (a lattice at a quarter of the field of view over the stage
range) by what they would still teach us:

- **discovery**: where a sample of the carrier's smallest size could still hide,
  i.e. centres at least ``r`` inside the region that can hold samples and farther
  than ``r - detect_depth`` from everything observed (any sample reaching that deep
  into a frame would have shown an edge). Weighted by a carrier prior (slides: the
  two ends may be the label, so they count half until a label is seen; a seen label
  and the area outside the holder count nothing);
- **open edges**: sample edges (cover-glass, chamber, well, round edges) that leave
  the observed area are followed beyond their open end;
- **unclosed samples**: sides of a found sample that are not observed yet and are
  needed to make it unique (for cover glasses the standard sizes make one side of a
  pair enough once the other dimension is measured);
- **plate corners**: on a multiwell plate the corners of the holder, then the corner
  wells of the fitted grid, until all four are observed with well evidence of their
  own and the grid is trusted (a standard layout, centred in the holder);
- **cover carrier**: where partial views mislead the localizer (chamber slides; plates
  whose grid is not trusted) the opening is covered tile by tile, flush, with the
  fewest frames (chamber slides: overlapping across the slide, so that its long
  midline lies well inside a frame).

The best candidate is taken (ties: shorter travel, then closer to the carrier's start
point, then lattice order, so the path is deterministic). The planner stops when the
localization is unambiguous (every sample closed, nothing can hide, no open edge; the
plate grid determined; the dish glass closed) or when no candidate gains at least
``min_gain_mm2``, and never takes more frames than the full raster would.

The planner knows nothing about drivers or the pipeline: feed it frames with
:meth:`AdaptivePlanner.record` and result documents (SPEC section 3) with
:meth:`AdaptivePlanner.next`.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
from numpy.typing import ArrayLike, NDArray

from samplescout.geometry import FrameGeometry, Pose
from samplescout.microscope import MicroscopeInfo
from samplescout.standards import COVER_GLASS_SIZES, PLATE_FORMATS, SBS_SIZE_MM

FloatArray = NDArray[np.float64]

#: The edge classes an adaptive path follows, per carrier.
FOLLOW_CLASSES: dict[str, frozenset[str]] = {
    "slide": frozenset(
        {"straight_cover_glass_edge", "round_cover_glass_edge", "polygonal_cover_glass_edge"}
    ),
    "chamber_slide": frozenset({"sample_chamber_edge", "sample_chamber"}),
    "multiwell": frozenset({"well", "plate_edge"}),
    "petri_dish": frozenset(
        {"round_structure", "round_cover_glass_edge", "straight_cover_glass_edge"}
    ),
}
FOLLOW_CLASSES["unknown"] = frozenset().union(*FOLLOW_CLASSES.values())
#: Radius (mm) of the smallest sample of each carrier: it cannot hide in a gap narrower
#: than twice this.
SMALLEST_SAMPLE_RADIUS_MM: dict[str, float] = {
    "slide": 5.0,  # 10 mm round cover glass
    "chamber_slide": 2.5,  # the chamber walls need the whole module outline
    "petri_dish": 5.0,
    "unknown": 5.0,
}
#: Multiwell plates without a grid yet: gaps narrower than twice this are not searched.
PLATE_SEARCH_RADIUS_MM = 8.0
#: A holder opening within this of the SBS footprint (mm) holds the plate centred.
PLATE_HOLDER_SLACK_MM = 10.0
#: How far (mm) a fitted grid's centre may lie from the opening's centre.
PLATE_CENTRE_TOL_MM = 3.0
#: A well has evidence of its own when its confidence is this share of the best well's.
WELL_EVIDENCE_SHARE = 0.75
#: Carriers whose fallback is to cover the whole opening.
COVER_CARRIERS = frozenset({"multiwell", "chamber_slide"})
#: Margin (mm) of the full raster beyond the stage range.
RASTER_MARGIN_MM = 0.5
#: Unobserved slivers narrower than twice this (mm) need no covering frame.
COVER_GAP_MM = 0.5
#: Length of a slide's label end (mm) and the usual slide size.
LABEL_END_MM = 20.0
SLIDE_MM = (75.0, 25.0)


@dataclass(frozen=True, slots=True)
class AdaptiveConfig:
    """Tuning of the adaptive path (lengths in mm, areas in mm²).

    Parameters
    ----------
    lattice_step
        Candidate frame centres are spaced by this fraction of the field of view.
    cell_mm
        Resolution of the planning grid (default: the stage range / 400, >= 0.2 mm).
    detect_depth_mm
        How far a sample must reach into a frame for its edge to be seen.
    edge_min_length_mm, edge_min_probability
        Fused edges shorter or less probable than this are not followed.
    follow_mm
        How far beyond an open end an edge is followed in one step (default: three
        quarters of the longer side of the field of view).
    band_mm
        Half width of the band around an edge or a sample side that a frame must see.
    open_margin_mm
        An edge end this close to the border of the observed area counts as open.
    side_seen_fraction, side_full_fraction
        A sample side counts as seen when this share of it is observed; as seen whole
        (its length measured) when ``side_full_fraction`` is.
    circle_seen_fraction
        A round sample is closed when this share of its outline is observed.
    min_gain_mm2
        Stop when no candidate frame is worth at least this much.
    cover_weight
        Value per mm² of an unobserved tile in the cover fallback.
    cover_clear_mm
        Chamber slides: the tiles overlap across the slide (the short axis of the
        opening) so that every point lies this far inside a tile along that axis: the
        middle wall of a two-row chamber module runs along the slide's long midline,
        where flush tiles would put their border (a wall on a border is not seen).
    follow_arcs
        Slides: follow groups of unexplained arcs (a round glass not fitted yet) and
        see a rectangle whole when arcs lie inside it. Off by default: against the
        current localizer it cost 20 frames on the measured slides (seeds 0-9) without
        a net gain in recall (docs/control.md).
    piece_min_mm, explained_mm, arc_link_mm, arc_turn_deg, unexplained_radius_mm
        Arc groups: pieces at least this long, not within ``explained_mm`` of a found
        sample, linked within ``arc_link_mm`` to a piece turned by ``arc_turn_deg``;
        the area out to ``unexplained_radius_mm`` beyond them must be seen.
    check_empty_sides
        Slides: a side of a found rectangular glass that frames have seen without an
        edge on it does not close the glass while a longer standard glass of the same
        width could continue there (the localizer may have placed a 24 x 24 mm glass on
        the near part of a 24 x 50 mm one): its two long sides are followed past it.
    max_frames
        Hard limit (default: the frames of the full raster).
    discovery_weight, edge_weight, side_weight, target_weight
        Relative value per mm² of each kind of evidence.
    """

    lattice_step: float = 0.25
    cell_mm: float | None = None
    detect_depth_mm: float = 2.0
    edge_min_length_mm: float = 2.0
    edge_min_probability: float = 0.5
    follow_mm: float | None = None
    band_mm: float = 1.0
    open_margin_mm: float = 1.0
    side_seen_fraction: float = 0.3
    side_full_fraction: float = 0.95
    circle_seen_fraction: float = 0.7
    min_gain_mm2: float = 4.0
    max_frames: int | None = None
    discovery_weight: float = 1.0
    edge_weight: float = 4.0
    side_weight: float = 4.0
    target_weight: float = 4.0
    cover_weight: float = 0.5
    cover_clear_mm: float = 2.0
    follow_arcs: bool = False
    piece_min_mm: float = 1.5
    explained_mm: float = 1.5
    arc_link_mm: float = 12.0
    arc_turn_deg: float = 20.0
    unexplained_radius_mm: float = 5.0
    check_empty_sides: bool = True


@dataclass(frozen=True, slots=True)
class Step:
    """The planner's decision: the next frame centre (holder mm), or ``None`` to stop.

    ``reason`` says why (``discover``, ``follow edge``, ``close sample``,
    ``carrier outline``, ``plate corner``, ``cover carrier``; when stopping
    ``closed``, ``nothing useful left`` or ``frame limit``); ``gain`` is the
    candidate's value in weighted mm².
    """

    center_mm: tuple[float, float] | None
    reason: str
    gain: float = 0.0

    @property
    def stop(self) -> bool:
        return self.center_mm is None


@dataclass(slots=True)
class _Grid:
    """Planning raster over the stage range: cell ``(i, j)`` is row ``i``, column ``j``."""

    origin: FloatArray
    cell: float
    shape: tuple[int, int]

    def to_cells(self, xy: ArrayLike) -> FloatArray:
        return (np.asarray(xy, dtype=np.float64) - self.origin) / self.cell - 0.5

    def centres(self) -> tuple[FloatArray, FloatArray]:
        ny, nx = self.shape
        xs = self.origin[0] + (np.arange(nx) + 0.5) * self.cell
        ys = self.origin[1] + (np.arange(ny) + 0.5) * self.cell
        return xs, ys

    def fill(self, mask: NDArray[np.uint8], polygon: ArrayLike, value: int = 1) -> None:
        pts = np.round(self.to_cells(np.asarray(polygon, dtype=np.float64)) * 16).astype(np.int32)
        cv2.fillPoly(mask, [pts.reshape(-1, 1, 2)], value, lineType=cv2.LINE_8, shift=4)

    def line(self, img: NDArray[np.float32], a: ArrayLike, b: ArrayLike, half_mm: float) -> None:
        pa = np.round(self.to_cells(a) * 16).astype(np.int64)
        pb = np.round(self.to_cells(b) * 16).astype(np.int64)
        thick = max(1, round(2 * half_mm / self.cell))
        cv2.line(
            img,
            (int(pa[0]), int(pa[1])),
            (int(pb[0]), int(pb[1])),
            1.0,
            thick,
            cv2.LINE_8,
            shift=4,
        )

    def lookup(self, img: NDArray[Any], xy: ArrayLike) -> NDArray[Any]:
        c = np.round(self.to_cells(np.atleast_2d(np.asarray(xy, dtype=np.float64)))).astype(int)
        j = np.clip(c[:, 0], 0, self.shape[1] - 1)
        i = np.clip(c[:, 1], 0, self.shape[0] - 1)
        out = img[i, j]
        inside = (c[:, 0] >= 0) & (c[:, 0] < self.shape[1]) & (c[:, 1] >= 0)
        inside &= c[:, 1] < self.shape[0]
        return np.where(inside, out, 0)


def raster_frame_count(info: MicroscopeInfo, overlap: float = 0.15, margin_mm: float = 0.5) -> int:
    """Frames of the full serpentine raster over the stage range (the baseline path)."""
    fw, fh = _effective_field(info)
    span = np.subtract(info.stage_max_mm, info.stage_min_mm)
    field_w = info.camera_width * info.pixel_size_mm
    field_h = info.camera_height * info.pixel_size_mm
    if field_w >= span[0] + 2 * margin_mm and field_h >= span[1] + 2 * margin_mm:
        return 1

    def n(length: float, f: float) -> int:
        s = length + 2 * margin_mm
        return 1 if s <= f else math.ceil((s - f) / (f * (1 - overlap))) + 1

    return n(float(span[0]), fw) * n(float(span[1]), fh)


def _effective_field(info: MicroscopeInfo) -> tuple[float, float]:
    """Field of view (mm) shrunk so that a turned camera still covers the rectangle."""
    fw = info.camera_width * info.pixel_size_mm
    fh = info.camera_height * info.pixel_size_mm
    a = math.radians(abs(info.rotation_deg))
    return fw * math.cos(a) - fh * math.sin(a), fh * math.cos(a) - fw * math.sin(a)


class AdaptivePlanner:
    """Chooses overview frames one at a time from the localization so far.

    Parameters
    ----------
    info
        The microscope's :class:`~samplescout.microscope.MicroscopeInfo` (field of
        view, stage range = holder opening in holder mm).
    carrier
        ``slide``, ``multiwell``, ``chamber_slide``, ``petri_dish`` (default: the
        microscope's, else the one the localization recognises, else ``unknown``).
    config
        Tuning, see :class:`AdaptiveConfig`.

    Notes
    -----
    Call :meth:`next` with the latest result document (or ``None`` before the first
    frame), move there, snap, and :meth:`record` the frame; repeat until
    ``next(...).stop``. The same inputs give the same path.
    """

    def __init__(
        self,
        info: MicroscopeInfo,
        *,
        carrier: str | None = None,
        config: AdaptiveConfig | None = None,
    ) -> None:
        self.info = info
        self.config = cfg = config or AdaptiveConfig()
        self._carrier = carrier if carrier not in (None, "unknown") else info.carrier
        lo = np.asarray(info.stage_min_mm, dtype=np.float64)
        hi = np.asarray(info.stage_max_mm, dtype=np.float64)
        self.stage = (lo, hi)
        span = hi - lo
        cell = cfg.cell_mm or max(0.2, float(span.max()) / 400.0)
        pad = 2.0
        shape = (math.ceil((span[1] + 2 * pad) / cell), math.ceil((span[0] + 2 * pad) / cell))
        self._grid = _Grid(lo - pad, cell, shape)
        self.field_mm = _effective_field(info)
        self.candidates = self._lattice()
        # the tiles among the candidates: the fallback covers the opening with these only
        tx, ty = self._tile_axes()
        self._tiles = np.zeros(len(self.candidates), bool)
        for x, y in itertools.product(tx, ty):
            d = np.hypot(*(self.candidates - (x, y)).T)
            if float(d.min()) < 1e-6:
                self._tiles[int(np.argmin(d))] = True
        self.footprints: list[FloatArray] = []
        self.steps: list[Step] = []
        self._observed = np.zeros(shape, np.uint8)
        self._position = np.asarray((lo + hi) / 2)
        self.max_frames = cfg.max_frames or raster_frame_count(info)

    # -- public ---------------------------------------------------------------------

    @property
    def carrier(self) -> str:
        return self._carrier or "unknown"

    @property
    def needs_localization(self) -> bool:
        """Whether the next decisions read the localization. A chamber slide is covered
        whole whatever it shows, so its session need not localize after every frame
        (the chamber fit is the costly part of fusion)."""
        return self.carrier != "chamber_slide"

    def record(self, footprint_mm: ArrayLike) -> None:
        """Add a frame's outline (4 corners, holder mm) to the observed area."""
        poly = np.asarray(footprint_mm, dtype=np.float64).reshape(-1, 2)
        self.footprints.append(poly)
        self._grid.fill(self._observed, poly)
        self._position = poly.mean(axis=0)

    def record_frame(self, pose: Pose, width: int, height: int) -> None:
        """Add a frame by its pose and size in pixels."""
        self.record(FrameGeometry(pose, width, height).footprint_mm())

    def next(self, localization: Mapping[str, Any] | None) -> Step:
        """The next frame centre, or a stop, given the latest result document."""
        step = self._decide(localization)
        self.steps.append(step)
        return step

    def closed(self, localization: Mapping[str, Any] | None) -> bool:
        """Whether the localization is unambiguous with the frames taken so far."""
        return self._maps(localization or {}).closed

    # -- decision ---------------------------------------------------------------------

    def _decide(self, loc: Mapping[str, Any] | None) -> Step:
        cfg = self.config
        if len(self.footprints) >= self.max_frames:
            return Step(None, "frame limit")
        maps = self._maps(loc or {})
        if maps.closed and self.footprints:
            return Step(None, "closed")
        gains = self._gains(maps)
        total: FloatArray = np.sum(list(gains.values()), axis=0)
        here = self._position if self.footprints else maps.start
        # ties: shorter travel, then closeness to the carrier's start point, lattice order
        order = np.lexsort(
            (
                np.arange(len(self.candidates)),
                np.round(np.hypot(*(self.candidates - maps.start).T), 6),
                np.round(np.hypot(*(self.candidates - here).T), 6),
                -np.round(total, 6),
            )
        )
        best = int(order[0])
        if total[best] < cfg.min_gain_mm2:
            return Step(None, "nothing useful left")
        reason = max(gains, key=lambda k: (float(gains[k][best]), k))
        x, y = self.candidates[best]
        return Step((float(x), float(y)), reason, float(total[best]))

    def _lattice(self) -> FloatArray:
        """Candidate centres at about ``lattice_step`` fields apart. Carriers that may be
        covered whole (plates, chamber slides) get a lattice flush with the stage range
        that holds the positions of the tiles (:meth:`_tile_axes`)."""
        lo, hi = self.stage
        tile = self.carrier in COVER_CARRIERS
        if tile:
            fw = self.info.camera_width * self.info.pixel_size_mm
            fh = self.info.camera_height * self.info.pixel_size_mm
        else:
            fw, fh = self.field_mm
        axes = []
        for k, f in enumerate((fw, fh)):
            margin = 0.0 if tile else RASTER_MARGIN_MM
            a, b = lo[k] - margin + f / 2, hi[k] + margin - f / 2
            if b <= a:
                axes.append(np.array([(lo[k] + hi[k]) / 2]))
                continue
            if not tile:
                n = math.ceil((b - a) / (f * self.config.lattice_step)) + 1
                axes.append(np.linspace(a, b, n))
                continue
            tiles = len(self._tile_axes()[k])  # frames that tile the range
            per = max(1, math.ceil((b - a) / (tiles - 1) / (f * self.config.lattice_step)))
            axes.append(np.linspace(a, b, (tiles - 1) * per + 1))
        xx, yy = np.meshgrid(axes[0], axes[1])
        return np.stack([xx.ravel(), yy.ravel()], axis=1)

    def _gains(self, maps: _Maps) -> dict[str, FloatArray]:
        """Weighted mm² each candidate would newly observe, per kind of evidence."""
        g = self._grid
        unobserved = self._observed == 0
        # sides and edges need a clear view: cells near a frame border count as unseen
        inside = cv2.distanceTransform((~unobserved).astype(np.uint8), cv2.DIST_L2, 5) * g.cell
        weak = inside < self.config.open_margin_mm
        fw, fh = self.field_mm
        clear = -self.config.open_margin_mm  # a frame sees an edge clearly this far inside
        out: dict[str, FloatArray] = {}
        for name, value, grow in (
            ("discover", maps.hidden, max(0.0, maps.radius - self.config.detect_depth_mm)),
            ("follow edge", maps.edges * weak, clear),
            ("close sample", maps.sides * weak, clear),
            (maps.target_reason, maps.targets * unobserved, 0.0),
            ("cover carrier", maps.cover, 0.0),
        ):
            if not value.any():
                out[name] = np.zeros(len(self.candidates))
                continue
            if name == "cover carrier" and not self._tiles.any():
                out[name] = np.zeros(len(self.candidates))  # nothing tiles: no fallback
                continue
            sat = cv2.integral(value.astype(np.float64))
            half = np.array([fw / 2 + grow, fh / 2 + grow])
            c0 = g.to_cells(self.candidates - half) + 0.5
            c1 = g.to_cells(self.candidates + half) + 0.5
            j0 = np.clip(np.round(c0[:, 0]).astype(int), 0, g.shape[1])
            j1 = np.clip(np.round(c1[:, 0]).astype(int), 0, g.shape[1])
            i0 = np.clip(np.round(c0[:, 1]).astype(int), 0, g.shape[0])
            i1 = np.clip(np.round(c1[:, 1]).astype(int), 0, g.shape[0])
            s = sat[i1, j1] - sat[i0, j1] - sat[i1, j0] + sat[i0, j0]
            if name == "cover carrier":
                s = np.where(self._tiles, s, 0.0)  # covering goes tile by tile
            out[name] = s * g.cell * g.cell
        return out

    # -- value maps -------------------------------------------------------------------

    def _maps(self, loc: Mapping[str, Any]) -> _Maps:
        cfg = self.config
        g = self._grid
        carrier = self._carrier or str(loc.get("carrier") or "unknown")
        if carrier not in FOLLOW_CLASSES:
            carrier = "unknown"
        lo, hi = self.stage
        observed = self._observed > 0
        # distance (mm) from each cell to the nearest unobserved / observed cell
        inside_obs = cv2.distanceTransform(observed.astype(np.uint8), cv2.DIST_L2, 5) * g.cell
        to_obs = (
            cv2.distanceTransform((~observed).astype(np.uint8), cv2.DIST_L2, 5) * g.cell
            if observed.any()
            else np.full(g.shape, np.inf, np.float32)
        )
        maps = _Maps(
            hidden=np.zeros(g.shape, np.float32),
            edges=np.zeros(g.shape, np.float32),
            sides=np.zeros(g.shape, np.float32),
            targets=np.zeros(g.shape, np.float32),
            cover=np.zeros(g.shape, np.float32),
            radius=SMALLEST_SAMPLE_RADIUS_MM.get(carrier, 5.0),
            start=(lo + hi) / 2,
        )
        samples = [s for s in loc.get("samples") or [] if isinstance(s, Mapping)]
        excluded = self._excluded(loc, carrier)
        closed_polys: list[FloatArray] = []
        all_closed = True
        if carrier == "multiwell":
            maps.start = lo + np.array(self.field_mm) / 2
            maps.target_reason = "plate corner"
            plate_done, trusted = self._plate(loc.get("plate"), samples, maps, inside_obs)
            maps.closed = plate_done
            if not plate_done:
                self._follow_edges(loc, carrier, maps, inside_obs, excluded, [])
                if not isinstance(loc.get("plate"), Mapping):
                    # no grid from the corners yet: look for wells anywhere, at low weight
                    maps.radius = PLATE_SEARCH_RADIUS_MM
                    self._discovery("unknown", maps, to_obs, excluded, [])
                    maps.hidden *= 0.25
                if not trusted:  # the fallback: the whole plate, tile by tile
                    self._cover(carrier, maps, excluded)
            return maps
        if carrier == "chamber_slide":
            # The chamber layout is fitted to the walls of the whole module on a found
            # slide (all four sides, the label end's too): partial views give wrong
            # layouts. Cover the whole opening, tiled (flush along the slide, overlapping
            # across it so that a two-row module's middle wall is seen), from the tile
            # nearest the middle.
            maps.start = self._middle_tile()
            left = self._cover(carrier, maps, np.zeros_like(excluded))
            maps.closed = left < cfg.min_gain_mm2 and bool(observed.any())
            return maps
        if carrier == "slide":
            self._slide_ends(maps, excluded)
        pieces = (np.zeros((0, 2)), np.zeros(0))
        if cfg.follow_arcs and carrier in ("slide", "unknown"):
            pieces = self._pieces(loc, carrier, excluded)
        # arcs inside a found rectangle that are not on its outline: the rectangle may
        # have swallowed a round glass, so it must be seen whole
        arcs = [m.mean(axis=0) for m in self._curved_groups(*pieces)]
        for s in samples:
            poly = np.asarray(s.get("polygon_mm") or [], dtype=np.float64).reshape(-1, 2)
            if len(poly) < 3:
                continue
            done = self._sample(s, poly, carrier, maps, inside_obs, arcs, loc, excluded)
            all_closed &= done
            if done:
                closed_polys.append(poly)
        if carrier == "petri_dish" and samples and all_closed:
            maps.closed = True  # one glass bottom per dish: nothing else to look for
            return maps
        open_edges = self._follow_edges(loc, carrier, maps, inside_obs, excluded, closed_polys)
        if len(pieces[0]):
            open_edges += self._unexplained(pieces, maps, inside_obs, excluded, samples)
        self._discovery(carrier, maps, to_obs, excluded, samples)
        maps.closed = (
            all_closed
            and not open_edges
            and float(maps.hidden.sum()) * g.cell * g.cell < cfg.min_gain_mm2
            and bool(samples or observed.any())
        )
        return maps

    def _tile_axes(self) -> list[FloatArray]:
        """Per axis, the centres of the fewest frames that tile the stage range (on a
        chamber slide's :meth:`_clear_axis`, overlapping by twice ``cover_clear_mm``)."""
        lo, hi = self.stage
        clear_axis = self._clear_axis()
        out = []
        for k, f in enumerate(
            (
                self.info.camera_width * self.info.pixel_size_mm,
                self.info.camera_height * self.info.pixel_size_mm,
            )
        ):
            span = float(hi[k] - lo[k])
            tiles = max(1, math.ceil(span / f - 1e-6))
            if tiles == 1 or span <= f:
                out.append(np.array([(lo[k] + hi[k]) / 2]))
                continue
            pitch = f - 2 * self.config.cover_clear_mm
            if k == clear_axis and pitch > 0:
                tiles = max(tiles, math.ceil((span - f) / pitch - 1e-6) + 1)
            out.append(np.linspace(lo[k] + f / 2, hi[k] - f / 2, tiles))
        return out

    def _clear_axis(self) -> int | None:
        """The axis along which cover tiles must overlap: across a chamber slide (the
        short axis of the opening), where a two-row module has its middle wall."""
        if self.carrier != "chamber_slide" or self.config.cover_clear_mm <= 0:
            return None
        lo, hi = self.stage
        return int(np.argmin(hi - lo))

    def _middle_tile(self) -> FloatArray:
        """Centre of the tile nearest the middle of the stage range."""
        lo, hi = self.stage
        mid = (lo + hi) / 2
        return np.array(
            [float(a[np.argmin(np.abs(a - mid[k]))]) for k, a in enumerate(self._tile_axes())]
        )

    def _cover(self, carrier: str, maps: _Maps, excluded: NDArray[np.uint8]) -> float:
        """Paint every unobserved cell of the stage range (the holder opening) outside
        ``excluded`` as worth covering; returns the unobserved area left (mm²)."""
        g = self._grid
        lo, hi = self.stage
        region = np.zeros(g.shape, np.uint8)
        g.fill(region, [[lo[0], lo[1]], [hi[0], lo[1]], [hi[0], hi[1]], [lo[0], hi[1]]])
        region[excluded > 0] = 0
        # slivers between frames that tile the range (turned cameras) need no frame
        observed = (self._observed > 0).astype(np.uint8)
        far = cv2.distanceTransform(1 - observed, cv2.DIST_L2, 5) * g.cell > COVER_GAP_MM
        if not observed.any():
            far[:] = True
        axis = self._clear_axis()
        if axis is not None and observed.any():
            # observed, but in no frame cover_clear_mm inside its border along the clear
            # axis (the opening's own border and slivers do not count): a wall there is
            # not seen
            opening = np.zeros(g.shape, np.uint8)
            g.fill(opening, [[lo[0], lo[1]], [hi[0], lo[1]], [hi[0], hi[1]], [lo[0], hi[1]]])
            beyond = np.maximum(1 - opening, ((observed == 0) & ~far).astype(np.uint8))
            k = 2 * max(1, round(self.config.cover_clear_mm / g.cell)) + 1
            kernel = np.ones((k, 1) if axis == 1 else (1, k), np.uint8)
            clear = np.zeros(g.shape, np.uint8)
            for poly in self.footprints:
                frame = np.zeros(g.shape, np.uint8)
                g.fill(frame, poly)
                clear |= (cv2.erode(np.maximum(frame, beyond), kernel) > 0).astype(np.uint8) & frame
            far |= (observed > 0) & (clear == 0)
        prior = self._sample_region(carrier)[1]
        value = np.where((region > 0) & far, prior, 0.0).astype(np.float32)
        maps.cover = value * self.config.cover_weight
        return float((value > 0).sum()) * g.cell * g.cell

    def _edge_segments(
        self, loc: Mapping[str, Any], carrier: str
    ) -> Iterator[tuple[FloatArray, FloatArray]]:
        """Centre lines of the result's straight structures of the carrier's sample-edge
        classes with p >= ``edge_min_probability`` (fitted circles are samples, handled
        as such)."""
        classes = FOLLOW_CLASSES.get(carrier, FOLLOW_CLASSES["unknown"])
        for s in loc.get("structures") or []:
            if (
                s.get("class") not in classes
                or float(s.get("probability", 0)) < self.config.edge_min_probability
            ):
                continue
            poly = np.asarray(s.get("polygon_mm") or [], dtype=np.float64).reshape(-1, 2)
            if len(poly) == 4:
                yield _segment_of(poly)

    def _pieces(
        self, loc: Mapping[str, Any], carrier: str, excluded: NDArray[np.uint8]
    ) -> tuple[FloatArray, FloatArray]:
        """Midpoints and directions (degrees, mod 180) of the sample edge pieces on the
        carrier (p >= ``edge_min_probability``, at least ``piece_min_mm`` long)."""
        cfg = self.config
        g = self._grid
        region = self._sample_region(carrier)[0]
        mids: list[FloatArray] = []
        angles: list[float] = []
        for a, b in self._edge_segments(loc, carrier):
            if float(np.linalg.norm(b - a)) < cfg.piece_min_mm:
                continue
            mid = (a + b) / 2
            if g.lookup(excluded, mid)[0] or not g.lookup(region, mid)[0]:
                continue
            mids.append(mid)
            angles.append(math.degrees(math.atan2(b[1] - a[1], b[0] - a[0])) % 180.0)
        return np.array(mids, dtype=np.float64).reshape(-1, 2), np.array(angles, np.float64)

    def _curved_groups(self, pts: FloatArray, ang: FloatArray) -> list[FloatArray]:
        """Groups of pieces that look like arcs: each within ``arc_link_mm`` of another
        piece whose direction differs by ``arc_turn_deg`` or more (a straight edge seen
        in parts keeps its direction). Returns the members' midpoints per group."""
        cfg = self.config
        if len(pts) < 2:
            return []
        near = np.hypot(*(pts[:, None, :] - pts[None, :, :]).transpose(2, 0, 1)) <= cfg.arc_link_mm
        turn = np.abs(ang[:, None] - ang[None, :])
        turn = np.minimum(turn, 180.0 - turn)
        curved = (near & (turn >= cfg.arc_turn_deg)).any(axis=1)
        link = near & curved[:, None] & curved[None, :]
        groups: list[FloatArray] = []
        seen: set[int] = set()
        for i in np.flatnonzero(curved):
            if int(i) in seen:
                continue
            group, todo = {int(i)}, [int(i)]
            while todo:  # connected component of linked curved pieces
                k = todo.pop()
                for j in np.flatnonzero(link[k]):
                    if int(j) not in group:
                        group.add(int(j))
                        todo.append(int(j))
            seen |= group
            groups.append(pts[sorted(group)])
        return groups

    def _unexplained(
        self,
        pieces: tuple[FloatArray, FloatArray],
        maps: _Maps,
        inside_obs: NDArray[np.float32],
        excluded: NDArray[np.uint8],
        samples: Sequence[Mapping[str, Any]],
    ) -> int:
        """Curved edge evidence that no found sample explains: the arcs of a round
        cover glass that fusion has not turned into a circle yet show as short edge
        pieces whose directions disagree. Around each such group the area out to
        ``unexplained_radius_mm`` beyond its pieces must be seen clearly; it is painted
        into ``maps.edges``. Returns how many groups are still open."""
        cfg = self.config
        g = self._grid
        rings = [
            np.vstack([p, p[:1]]).astype(np.float32).reshape(-1, 1, 2)
            for p in (
                np.asarray(s.get("polygon_mm") or [], dtype=np.float64).reshape(-1, 2)
                for s in samples
            )
            if len(p) >= 3
        ]
        pts, ang = pieces
        keep = [
            not any(
                cv2.pointPolygonTest(r, (float(m[0]), float(m[1])), True) >= -cfg.explained_mm
                for r in rings
            )
            for m in pts
        ]  # pieces inside a found sample or on its outline are explained
        weak = inside_obs < cfg.open_margin_mm
        paint = np.zeros(g.shape, np.float32)
        count = 0
        for members in self._curved_groups(pts[keep], ang[keep]):
            centre = members.mean(axis=0)
            radius = float(np.hypot(*(members - centre).T).max()) + cfg.unexplained_radius_mm
            disc = np.zeros(g.shape, np.float32)
            self._disc(disc, centre, radius, 1.0)
            disc[excluded > 0] = 0
            if float((disc * weak).sum()) * g.cell * g.cell >= cfg.min_gain_mm2:
                count += 1
                paint = np.maximum(paint, disc)
        maps.edges = np.maximum(maps.edges, paint * cfg.edge_weight)
        return count

    def _excluded(self, loc: Mapping[str, Any], carrier: str) -> NDArray[np.uint8]:
        """Cells that cannot hold a sample: a seen label (slides: its whole end) and codes."""
        g = self._grid
        mask = np.zeros(g.shape, np.uint8)
        labels = [
            s
            for s in loc.get("structures") or []
            if s.get("class") == "label" and s.get("polygon_mm")
        ]
        codes = [b for b in loc.get("barcodes") or [] if b.get("polygon_mm")]
        polys = [
            np.asarray(x["polygon_mm"], dtype=np.float64).reshape(-1, 2) for x in labels + codes
        ]
        weights = [float(x.get("probability", 1.0)) for x in labels] + [1.0] * len(codes)
        lo, hi = self.stage
        if carrier not in ("slide", "chamber_slide"):
            for p in polys:
                if len(p) >= 3:
                    g.fill(mask, p)
            return mask
        # A slide has one label, at one end: only evidence within that end counts, and
        # with evidence at both ends the stronger end (probability x area) wins.
        reach = LABEL_END_MM + 5.0
        ends: dict[str, float] = {}
        for p, weight in zip(polys, weights, strict=True):
            if len(p) < 3:
                continue
            if p[:, 0].max() <= lo[0] + reach:
                ends["left"] = ends.get("left", 0.0) + weight * _polygon_area(p)
            elif p[:, 0].min() >= hi[0] - reach:
                ends["right"] = ends.get("right", 0.0) + weight * _polygon_area(p)
        if not ends:
            return mask
        side = max(ends, key=lambda k: (ends[k], k))
        x0, x1 = (
            (lo[0] - 5.0, lo[0] + LABEL_END_MM)
            if side == "left"
            else (hi[0] - LABEL_END_MM, hi[0] + 5.0)
        )
        g.fill(mask, [[x0, lo[1] - 5], [x1, lo[1] - 5], [x1, hi[1] + 5], [x0, hi[1] + 5]])
        return mask

    def _sample_region(self, carrier: str) -> tuple[NDArray[np.uint8], NDArray[np.float32]]:
        """Where samples can be (mask) and how likely (prior weight per cell)."""
        g = self._grid
        lo, hi = self.stage
        region = np.zeros(g.shape, np.uint8)
        prior = np.ones(g.shape, np.float32)
        centre = (lo + hi) / 2
        if carrier == "petri_dish":
            r = min(16.0, float(min(hi - lo)) / 2)
            cv2.circle(
                region,
                tuple(int(v) for v in np.round(g.to_cells(centre) * 16)),
                round(r / g.cell * 16),
                1,
                -1,
                cv2.LINE_8,
                shift=4,
            )
            return region, prior
        inset = 1.0
        g.fill(
            region,
            [
                [lo[0] + inset, lo[1] + inset],
                [hi[0] - inset, lo[1] + inset],
                [hi[0] - inset, hi[1] - inset],
                [lo[0] + inset, hi[1] - inset],
            ],
        )
        if carrier in ("slide", "chamber_slide"):
            # either end of the slide may be the label: half as likely until known
            xs, _ = g.centres()
            ends = (xs < lo[0] + LABEL_END_MM) | (xs > hi[0] - LABEL_END_MM)
            prior[:, ends] = 0.5
        return region, prior

    def _discovery(
        self,
        carrier: str,
        maps: _Maps,
        to_obs: NDArray[np.float32],
        excluded: NDArray[np.uint8],
        samples: Sequence[Mapping[str, Any]],
    ) -> None:
        g = self._grid
        region, prior = self._sample_region(carrier)
        region[excluded > 0] = 0
        for s in samples:  # a found sample leaves no room for another one there
            g.fill(region, np.asarray(s["polygon_mm"], dtype=np.float64).reshape(-1, 2), 0)
        depth = cv2.distanceTransform(region, cv2.DIST_L2, 5) * g.cell
        reach = max(0.0, maps.radius - self.config.detect_depth_mm)
        hidden = (depth >= maps.radius) & (to_obs > reach)
        if carrier == "slide" and excluded.any():
            prior = np.where(prior < 1.0, 1.0, prior).astype(np.float32)  # label side known
        maps.hidden = np.where(hidden, prior, 0.0).astype(np.float32) * self.config.discovery_weight

    def _sample(
        self,
        s: Mapping[str, Any],
        poly: FloatArray,
        carrier: str,
        maps: _Maps,
        inside_obs: NDArray[np.float32],
        arcs: Sequence[FloatArray] = (),
        loc: Mapping[str, Any] | None = None,
        excluded: NDArray[np.uint8] | None = None,
    ) -> bool:
        """Whether sample ``s`` is closed; paints the sides it still needs."""
        cfg = self.config
        margin = 0.5
        if s.get("shape") == "circle" or len(poly) > 8:
            pts = _densify(np.vstack([poly, poly[:1]]), 0.25)
            arc_seen = self._grid.lookup(inside_obs, pts) >= margin
            if arc_seen.mean() >= cfg.circle_seen_fraction:
                return True
            side = np.zeros(self._grid.shape, np.float32)
            for a, b, ok in zip(pts[:-1], pts[1:], arc_seen[:-1], strict=True):
                if not ok:
                    self._grid.line(side, a, b, cfg.band_mm)
            maps.sides = np.maximum(maps.sides, side * cfg.side_weight)
            return False
        if len(poly) != 4:
            return True
        fracs = []
        for k in range(4):
            pts = _densify(poly[[k, (k + 1) % 4]], 0.25)
            fracs.append(float((self._grid.lookup(inside_obs, pts) >= margin).mean()))
        seen = [f >= cfg.side_seen_fraction for f in fracs]
        full = [f >= cfg.side_full_fraction for f in fracs]
        a = float(np.linalg.norm(poly[1] - poly[0]))  # length of sides 0 and 2
        b = float(np.linalg.norm(poly[2] - poly[1]))  # length of sides 1 and 3
        standard = carrier in ("slide", "unknown") and s.get("element") == "cover_glass"
        if standard and cfg.check_empty_sides and loc is not None:
            beyond = self._beyond_empty_sides(poly, seen, loc, carrier, inside_obs, excluded)
            if beyond is not None:
                maps.sides = np.maximum(maps.sides, beyond * cfg.side_weight)
                return False
        # sides 1/3 are pinned (position along side 0) by both seen, a whole side 0 or 2,
        # or one of them plus a unique partner of the measured other dimension
        a_known = standard and seen[0] and seen[2] and _unique_partner(b) is not None
        b_known = standard and seen[1] and seen[3] and _unique_partner(a) is not None
        pin_a = (seen[1] and seen[3]) or full[0] or full[2] or ((seen[1] or seen[3]) and a_known)
        pin_b = (seen[0] and seen[2]) or full[1] or full[3] or ((seen[0] or seen[2]) and b_known)
        ring = np.vstack([poly, poly[:1]]).astype(np.float32).reshape(-1, 1, 2)
        suspect = any(
            cv2.pointPolygonTest(ring, (float(c[0]), float(c[1])), True) > 2 * cfg.explained_mm
            for c in arcs
        )
        if suspect:  # arcs inside: every side must be seen whole
            need = [k for k in range(4) if not full[k]]
            if not need:
                return True
        elif pin_a and pin_b:
            return True
        else:
            need = ([1, 3] if not pin_a else []) + ([0, 2] if not pin_b else [])
        side = np.zeros(self._grid.shape, np.float32)
        for k in need:
            self._grid.line(side, poly[k], poly[(k + 1) % 4], cfg.band_mm)
        maps.sides = np.maximum(maps.sides, side * cfg.side_weight)
        return False

    def _beyond_empty_sides(
        self,
        poly: FloatArray,
        seen: Sequence[bool],
        loc: Mapping[str, Any],
        carrier: str,
        inside_obs: NDArray[np.float32],
        excluded: NDArray[np.uint8] | None,
    ) -> NDArray[np.float32] | None:
        """Where a rectangular cover glass may still continue: a side that frames have
        seen but on which no edge lies does not end the glass when a longer standard
        glass has the same width (24 mm: 24 to 60 mm long). Returns the bands along the
        two sides that meet it, out to the longest such glass, where they are not yet
        seen clearly; ``None`` when nothing is left to look at."""
        cfg = self.config
        g = self._grid
        segments = []
        for st in loc.get("structures") or []:
            q = np.asarray(st.get("polygon_mm") or [], dtype=np.float64).reshape(-1, 2)
            if len(q) == 4 and st.get("class") != "label":
                segments.append(_segment_of(q))
        region = self._sample_region(carrier)[0].astype(np.float32)
        if excluded is not None:
            region[excluded > 0] = 0
        weak = (inside_obs < cfg.open_margin_mm).astype(np.float32)
        paint = np.zeros(g.shape, np.float32)
        for k in range(4):
            a, b = poly[k], poly[(k + 1) % 4]
            if not seen[k] or _side_support(a, b, segments, cfg.band_mm) >= cfg.side_seen_fraction:
                continue
            width = float(np.linalg.norm(b - a))
            length = float(np.linalg.norm(poly[(k + 2) % 4] - b))
            longer = [
                y if abs(x - width) <= 0.6 else x
                for x, y in COVER_GLASS_SIZES
                if abs(x - width) <= 0.6 or abs(y - width) <= 0.6
            ]
            reach = max((v for v in longer if v > length + 1.0), default=0.0) - length
            if reach <= 0:
                continue
            out = (b - poly[(k + 2) % 4]) / length  # away from the glass, across side k
            for corner in (a, b):
                g.line(paint, corner, corner + out * reach, cfg.band_mm)
        paint *= weak * region
        if float(paint.sum()) * g.cell * g.cell < cfg.min_gain_mm2:
            return None
        return paint

    def _follow_edges(
        self,
        loc: Mapping[str, Any],
        carrier: str,
        maps: _Maps,
        inside_obs: NDArray[np.float32],
        excluded: NDArray[np.uint8],
        closed: Sequence[FloatArray],
    ) -> int:
        """Paint the continuation of every open sample edge; returns how many are open."""
        cfg = self.config
        g = self._grid
        region = self._sample_region(carrier)[0]
        rows, cols = np.nonzero(region)
        xs, ys = g.centres()
        box_lo = np.array([xs[cols.min()], ys[rows.min()]]) if len(rows) else self.stage[0]
        box_hi = np.array([xs[cols.max()], ys[rows.max()]]) if len(rows) else self.stage[1]
        follow = cfg.follow_mm or 0.75 * max(self.field_mm)
        paint = np.zeros(g.shape, np.float32)
        count = 0
        for a, b in self._edge_segments(loc, carrier):
            length = float(np.linalg.norm(b - a))
            if length < cfg.edge_min_length_mm:
                continue
            mid = (a + b) / 2
            if any(_distance_to_outline(mid, p) <= cfg.band_mm for p in closed):
                continue
            if g.lookup(excluded, mid)[0] or not g.lookup(region, mid)[0]:
                continue  # on the label or off the carrier (holder frame, clips)
            u = (b - a) / length
            for end, direction in ((a, -u), (b, u)):
                if g.lookup(inside_obs, end)[0] > cfg.open_margin_mm:
                    continue  # the edge ends inside a frame: that end is closed
                tip = np.clip(end + direction * follow, box_lo, box_hi)
                if np.linalg.norm(tip - end) < cfg.band_mm:
                    continue  # runs out of the holder
                count += 1
                g.line(paint, end, tip, cfg.band_mm)
        paint[excluded > 0] = 0
        maps.edges = paint * cfg.edge_weight
        return count

    def _plate(
        self,
        plate: Any,
        samples: Sequence[Mapping[str, Any]],
        maps: _Maps,
        inside_obs: NDArray[np.float32],
    ) -> tuple[bool, bool]:
        """Plate grid determined? Paints the corners still to look at.

        The fitted grid counts as determined only when it is corroborated: a standard
        SBS layout (rows, columns, pitch), inside the holder and, when the holder
        opening is a plate footprint, centred in it (SBS grids are centred on the
        plate), and its four corner wells seen whole with well evidence of their own.

        Returns ``(determined, trusted)``: ``trusted`` is False when there is no grid,
        it disagrees with the holder, or a seen corner well shows no well; the planner
        then covers the whole plate as the raster would.
        """
        g = self._grid
        lo, hi = self.stage
        targets = np.zeros(g.shape, np.float32)
        fw, fh = self.field_mm
        holder_corners = [
            np.array([x, y])
            for x in (lo[0] + fw / 2, hi[0] - fw / 2)
            for y in (lo[1] + fh / 2, hi[1] - fh / 2)
        ]
        grid = _plate_grid(plate)
        if grid is None:
            # no grid yet: the plate's corners, flush with the holder corners
            for corner in holder_corners:
                self._disc(targets, corner, min(fw, fh) / 3, 1.0)
            maps.targets = targets * self.config.target_weight
            return False, False
        rows, cols, corners, radius = grid
        seen = {k: self._disc_seen(v, radius, inside_obs) for k, v in corners.items()}
        evidence = _well_evidence(samples)
        consistent = self._plate_consistent(plate, rows, cols, corners)
        if consistent and all(seen[k] and evidence.get(k, False) for k in corners):
            return True, True  # all four corners: the pitch and the turn are measured too
        contradicted = any(seen[k] and not evidence.get(k, False) for k in corners)
        for (r, c), centre in corners.items():
            if not (np.all(centre >= lo) and np.all(centre <= hi)):
                continue  # a grid that reaches out of the holder is wrong there
            partner = (rows - 1 - r, cols - 1 - c)
            weight = 2.0 if seen[partner] else 1.0
            if not seen[(r, c)]:
                self._disc(targets, centre, radius, weight)
        if not consistent:
            for corner in holder_corners:  # the plate's own corners: where the true grid ends
                self._disc(targets, corner, min(fw, fh) / 3, 1.0)
        maps.targets = targets * self.config.target_weight
        return False, consistent and not contradicted

    def _plate_consistent(
        self,
        plate: Mapping[str, Any],
        rows: int,
        cols: int,
        corners: Mapping[tuple[int, int], FloatArray],
    ) -> bool:
        """Whether a fitted grid is a standard layout that fits the holder."""
        lo, hi = self.stage
        pitch = [float(v) for v in plate.get("well_spacing_mm", [0.0, 0.0])]
        standard = any(
            f.rows == rows and f.cols == cols and all(abs(p - f.pitch) <= 0.5 for p in pitch)
            for f in PLATE_FORMATS
        )
        if not standard:
            return False
        pts = np.array(list(corners.values()))
        if np.any(pts < lo - 1.0) or np.any(pts > hi + 1.0):
            return False
        span = hi - lo
        if np.all(np.abs(span - np.asarray(SBS_SIZE_MM)) <= PLATE_HOLDER_SLACK_MM):
            # the plate fills the opening, and SBS grids are centred on the plate
            centre = pts.mean(axis=0)
            if float(np.abs(centre - (lo + hi) / 2).max()) > PLATE_CENTRE_TOL_MM:
                return False
        return True

    def _slide_ends(self, maps: _Maps, excluded: NDArray[np.uint8]) -> None:
        """Both short ends of the slide: without its whole outline the slide is not found,
        and cover glasses are placed on the slide."""
        lo, hi = self.stage
        slack = max(0.0, (float(hi[0] - lo[0]) - SLIDE_MM[0]) / 2)
        mid = float(lo[1] + hi[1]) / 2
        ends = np.zeros(self._grid.shape, np.float32)
        for x0, x1 in ((lo[0], lo[0] + 2 * slack), (hi[0] - 2 * slack, hi[0])):
            self._grid.line(ends, (x0, mid), (x1, mid), self.config.band_mm)
        ends[excluded > 0] = 0  # the label's end needs no look
        maps.targets = np.maximum(maps.targets, ends * self.config.target_weight)

    def _disc_seen(
        self, centre: FloatArray, radius: float, inside_obs: NDArray[np.float32]
    ) -> bool:
        t = np.linspace(0, 2 * math.pi, 24, endpoint=False)
        pts = centre + radius * np.stack([np.cos(t), np.sin(t)], axis=1)
        return bool((self._grid.lookup(inside_obs, np.vstack([pts, centre])) > 0).all())

    def _disc(self, img: NDArray[np.float32], centre: FloatArray, radius: float, w: float) -> None:
        c = np.round(self._grid.to_cells(centre) * 16).astype(int)
        r = round(radius / self._grid.cell * 16)
        cv2.circle(img, (int(c[0]), int(c[1])), r, float(w), -1, cv2.LINE_8, shift=4)


def _plate_grid(
    plate: Any,
) -> tuple[int, int, dict[tuple[int, int], FloatArray], float] | None:
    """Rows, columns, corner well centres and look radius of a plate document."""
    if not (isinstance(plate, Mapping) and plate.get("rows") and plate.get("cols")):
        return None
    rows, cols = int(plate["rows"]), int(plate["cols"])
    a1 = np.asarray(plate["a1_center_mm"], dtype=np.float64)
    ang = math.radians(float(plate.get("rotation_deg", 0.0)))
    rot = np.array([[math.cos(ang), -math.sin(ang)], [math.sin(ang), math.cos(ang)]])
    sx, sy = (float(v) for v in plate.get("well_spacing_mm", [9.0, 9.0]))
    radius = float(plate.get("well_size_mm", 6.0)) / 2 + 1.0
    corners = {
        (r, c): a1 + rot @ np.array([c * sx, r * sy]) for r in (0, rows - 1) for c in (0, cols - 1)
    }
    return rows, cols, corners, radius


def _well_evidence(samples: Sequence[Mapping[str, Any]]) -> dict[tuple[int, int], bool]:
    """Per well ``(row, col)``: whether its confidence says it was seen with evidence
    (fusion lowers the confidence of wells placed by the grid alone)."""
    wells = [s for s in samples if s.get("element") == "well" and s.get("label")]
    if not wells:
        return {}
    best = max(float(s.get("confidence", 0.0)) for s in wells)
    out: dict[tuple[int, int], bool] = {}
    for s in wells:
        rc = _parse_well(str(s["label"]))
        if rc is not None:
            out[rc] = float(s.get("confidence", 0.0)) >= WELL_EVIDENCE_SHARE * best > 0
    return out


def _parse_well(name: str) -> tuple[int, int] | None:
    """``"B3"`` -> ``(1, 2)``; rows beyond Z as ``AA``, ``AB``..."""
    letters = "".join(itertools.takewhile(str.isalpha, name.upper()))
    digits = name[len(letters) :]
    if not letters or not digits.isdigit():
        return None
    row = 0
    for ch in letters:
        row = row * 26 + (ord(ch) - ord("A") + 1)
    return row - 1, int(digits) - 1


@dataclass(slots=True)
class _Maps:
    hidden: NDArray[np.float32]
    edges: NDArray[np.float32]
    sides: NDArray[np.float32]
    targets: NDArray[np.float32]
    cover: NDArray[np.float32]
    radius: float
    start: FloatArray
    closed: bool = False
    target_reason: str = "carrier outline"


def _unique_partner(dim: float, tol: float = 0.6) -> float | None:
    """The other side of the only standard cover glass with a side ``dim`` (else None)."""
    partners = {
        b if abs(a - dim) <= tol else a
        for a, b in COVER_GLASS_SIZES
        if abs(a - dim) <= tol or abs(b - dim) <= tol
    }
    return partners.pop() if len(partners) == 1 else None


def _polygon_area(p: FloatArray) -> float:
    x, y = p[:, 0], p[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


def _densify(points: FloatArray, step: float) -> FloatArray:
    out = [points[:1]]
    for a, b in itertools.pairwise(points):
        n = max(1, math.ceil(float(np.linalg.norm(b - a)) / step))
        t = np.arange(1, n + 1)[:, None] / n
        out.append(a + (b - a) * t)
    return np.vstack(out)


def _segment_of(poly: FloatArray) -> tuple[FloatArray, FloatArray]:
    """The centre line of a thin structure rectangle (its two short sides' midpoints)."""
    e0 = float(np.linalg.norm(poly[1] - poly[0]))
    e1 = float(np.linalg.norm(poly[2] - poly[1]))
    if e0 >= e1:
        return (poly[0] + poly[3]) / 2, (poly[1] + poly[2]) / 2
    return (poly[0] + poly[1]) / 2, (poly[2] + poly[3]) / 2


def _side_support(
    a: FloatArray, b: FloatArray, segments: Sequence[tuple[FloatArray, FloatArray]], near: float
) -> float:
    """Share of the side a-b that edge segments run along (parallel within 5 degrees,
    within ``near`` mm of it)."""
    length = float(np.linalg.norm(b - a))
    if length <= 0:
        return 0.0
    u = (b - a) / length
    nv = np.array([-u[1], u[0]])
    covered = np.zeros(max(1, math.ceil(length * 4)), bool)
    for p, q in segments:
        d = q - p
        n = float(np.linalg.norm(d))
        if n <= 0 or abs(float(d @ nv)) / n > math.sin(math.radians(5.0)):
            continue
        if max(abs(float((p - a) @ nv)), abs(float((q - a) @ nv))) > near:
            continue
        t0, t1 = sorted((float((p - a) @ u), float((q - a) @ u)))
        i0, i1 = max(0, math.floor(t0 * 4)), min(len(covered), math.ceil(t1 * 4))
        if i1 > i0:
            covered[i0:i1] = True
    return float(covered.mean())


def _distance_to_outline(p: FloatArray, poly: FloatArray) -> float:
    ring = np.vstack([poly, poly[:1]]).astype(np.float32)
    return abs(
        float(cv2.pointPolygonTest(ring.reshape(-1, 1, 2), (float(p[0]), float(p[1])), True))
    )


def path_length_mm(centres: Iterable[Sequence[float]]) -> float:
    """Total stage travel (mm) along a sequence of frame centres."""
    pts = np.asarray(list(centres), dtype=np.float64).reshape(-1, 2)
    return float(np.hypot(*np.diff(pts, axis=0).T).sum()) if len(pts) > 1 else 0.0
