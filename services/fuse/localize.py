"""Localization: from fused edges to slides, cover glasses and the SPEC section 3 result.

Rectangles are proposed from pairs of parallel fused lines whose spacing is a standard
dimension, placed along their length by perpendicular lines or by the pair's extent,
and scored by how much of their four sides fused edges cover. The standard sizes make
a rectangle from partial evidence unambiguous where they can, and scoring decides
where they cannot (a 24 mm pair: 24 x 24 ... 24 x 60). Every greedy step runs over
candidates sorted by score and then by geometry, so the answer never depends on the
order structures arrived in.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import cv2
import numpy as np

from samplescout.fuse.chambers import ChamberConfig, ChamberFit, fit_chambers, wall_lines
from samplescout.fuse.label import label_span
from samplescout.fuse.occupancy import well_occupancy
from samplescout.fuse.outline import (
    CoarseViews,
    OutlineConfig,
    OutlineHit,
    circle_outlines,
    flat_fielded,
    rectangle_outlines,
)
from samplescout.fuse.plate import (
    BODY_GRID_SCORE,
    PlateBody,
    PlateFit,
    arcs_of,
    fit_plate,
    grid_from_body,
)
from samplescout.fuse.state import (
    CircleSource,
    FuseState,
    LineSource,
    connected_groups,
    fuse_lines,
    merge_barcodes,
)
from samplescout.geometry import (
    FrameGeometry,
    circle_polygon,
    covered_share,
    fit_circle,
    normalize_angle_deg,
    polygon_iou,
    rectangle_polygon,
    rotation_matrix,
)
from samplescout.standards import (
    COVER_GLASS_DIAMETERS,
    COVER_GLASS_SIZES,
    SBS_SIZE_MM,
    well_name,
)

SLIDE_SIZES: tuple[tuple[float, float], ...] = ((25.0, 75.0), (26.0, 76.0))
#: Outer rings of dishes (a 35 mm dish) and the glass-bottom diameters searched (mm).
DISH_RING_DIAMETERS: tuple[float, float] = (31.0, 40.0)
DISH_GLASS_DIAMETERS: tuple[float, float] = (9.5, 28.0)
DISH_GLASS_STANDARD_MM: tuple[float, ...] = (10.0, 12.0, 14.0, 16.0, 18.0, 20.0, 22.0, 25.0)

#: The chamber fit on edges read off the coarse data: the cells' own edges must show,
#: and the many short steps of print, pen and tissue anchor no hypothesis.
WALLS_CHAMBER_CONFIG = ChamberConfig(min_cell_edges_seen=0.5, max_anchor_edges=16)

COVER_GLASS_EDGE_CLASSES = (
    "straight_cover_glass_edge",
    "round_cover_glass_edge",
    "polygonal_cover_glass_edge",
)
EDGE_CLASSES = (
    "straight_structure",
    "straight_cover_glass_edge",
    "sample_carrier_edge",
    "plate_edge",
    "sample_chamber_edge",
    "holding_frame",
    "spacer",
    "polygonal_structure",
    "polygonal_cover_glass_edge",
)


@dataclass
class Rect:
    """A rectangle hypothesis: centre, ``size = (w, h)``, angle in (-45, 45], score."""

    center: tuple[float, float]
    size: tuple[float, float]
    angle_deg: float
    score: float = 0.0
    sides_seen: int = 0
    lines: list[int] = field(default_factory=list)
    #: Per side (the order of :meth:`polygon`'s sides), whether fused edges cover it.
    seen: tuple[bool, ...] = ()

    def polygon(self) -> np.ndarray:
        return rectangle_polygon(self.center, self.size, self.angle_deg)

    @property
    def long_axis(self) -> int:
        """0 when the long sides run along the rectangle's own x axis, else 1."""
        return 0 if self.size[0] >= self.size[1] else 1

    def key(self) -> tuple[float, ...]:
        return (
            -round(self.score, 9),
            round(self.center[0], 6),
            round(self.center[1], 6),
            self.size[0],
            self.size[1],
        )


@dataclass(frozen=True)
class LocalizeConfig:
    """Tolerances of the rectangle and circle search (mm, degrees) and fusion options.

    ``vote`` is ``"majority"`` (length x probability weighted vote over the members'
    classes) or ``"probabilistic"`` (naive-Bayes product of their class distributions),
    see :func:`~samplescout.fuse.state.fuse_lines`.
    """

    parallel_tol_deg: float = 2.5
    dim_tol_mm: float = 0.6
    side_tol_mm: float = 0.3
    min_line_mm: float = 0.8
    min_slide_score: float = 0.35
    min_cover_score: float = 0.3
    max_overlap_iou: float = 0.05
    min_circle_span_deg: float = 100.0
    circle_bin_mm: float = 0.2
    circle_end_tol_mm: float = 0.1
    tangent_tol_deg: float = 12.0
    max_circles: int = 12
    diameter_snap_mm: float = 0.4
    min_pair_coverage_mm: float = 1.5
    two_sided_score: float = 0.45
    min_pair_probability: float = 0.25
    vote: str = "majority"
    min_ring_span_deg: float = 150.0
    ring_end_tol_mm: float = 0.4
    #: Largest offset of a dish's glass bottom found by its outline from the wall's centre,
    #: and the least outline score (weakest sixth, noise levels) it needs.
    dish_glass_offset_mm: float = 1.0
    dish_glass_min_z: float = 3.0
    #: A glass placed round a marker loop: its least size as a share of the loop's
    #: extent (a loop may run a little over the glass's edges) and its confidence.
    loop_glass_share: float = 0.95
    #: A round glass for a loop when it is at most this share of the rectangle's side.
    small_loop_share: float = 0.85
    ring_glass_confidence: float = 0.2
    #: How far a glass placed round a pen loop may be moved to lie on the slide.
    loop_shift_mm: float = 2.0
    #: A circle this close to a marker loop (centre, and radius to its extent) is the loop.
    loop_circle_tol_mm: float = 0.5
    #: Marker-pen chords this close belong to one stroke; strokes on one ellipse (rms
    #: distance) are one loop round a sample when seen round this many degrees and
    #: this wide (see ``_pen_loops``).
    pen_link_mm: float = 3.0
    pen_fit_mm: float = 0.5
    min_loop_cover_deg: float = 100.0
    closed_loop_cover_deg: float = 270.0
    min_loop_mm: float = 5.0
    max_loop_mm: float = 65.0
    dish_concentric_mm: float = 3.0
    min_chamber_line_p: float = 0.3
    min_chamber_score: float = 0.35
    min_faint_chamber_score: float = 0.3
    #: Least score of a chamber grid from the coarse data's steps alone
    #: (:func:`~samplescout.fuse.chambers.wall_lines`) that makes a slide a chamber slide.
    min_wall_chamber_score: float = 0.1
    min_plate_score_alone: float = 0.3
    min_body_score: float = 0.55
    min_ring_score: float = 0.3
    single_edge_tol_mm: float = 0.5
    single_edge_margin_mm: float = 1.0
    single_edge_confidence: float = 0.4
    slide_margin_mm: float = 0.5
    ring_inside_mm: float = 0.5
    max_slide_alternatives: int = 4
    #: A glass covering this share of a label region or a code read is the label's.
    max_label_share: float = 0.25
    chamber_fit_trusted: float = 0.5
    #: A chamber grid from identified edges scoring below this is a guess (rows centred
    #: on the slide from its outer walls): the walls' steps decide instead.
    chamber_guess_score: float = 0.1
    slide_alternative_share: float = 0.7
    #: Lines across the slide this close to the label's inner edge are that edge.
    label_edge_tol_mm: float = 1.0
    whole_slide_share: float = 0.9
    outline: OutlineConfig = field(default_factory=OutlineConfig)
    outline_slide_margin_mm: float = -0.3
    outline_half_confidence_z: float = 4.0
    outline_override_z: float = 5.0
    outline_ends_z: float = 5.0
    #: A round glass proposed by one arc of its edge (:func:`_arc_glasses`): how far its
    #: diameter and centre may lie from the arc's, and the least outline score it needs.
    arc_diameter_tol_mm: float = 1.0
    arc_glass_min_z: float = 3.0


def localize(
    state: FuseState,
    carrier: str | None,
    config: LocalizeConfig | None = None,
    *,
    views: CoarseViews | None = None,
) -> dict[str, Any]:
    """The SPEC section 3 parts ``carrier``, ``samples``, ``plate``, ``structures``, ``barcodes``.

    ``carrier`` as given by the bundle (``None`` or ``"unknown"``: recognised from the
    evidence, see :func:`recognise_carrier`). With the frames' coarse data (``views``),
    cover glasses whose edges identification missed are also searched for by their
    whole outline (:mod:`samplescout.fuse.outline`).
    """
    cfg = config or LocalizeConfig()
    every = state.sorted_structures()

    def evidence(crossing: bool) -> _Evidence:
        # Lines across a wall that filled its crop are dividers only on chamber slides.
        entries = every if crossing else [e for e in every if not e.get("crossing")]
        line_entries = [e for e in entries if e["segment"] is not None]
        lines = fuse_lines(line_entries, method=cfg.vote)
        lines = [ln for ln in lines if ln.length >= cfg.min_line_mm]
        return _Evidence(state, entries, line_entries, lines, cfg, views)

    crossings = any(e.get("crossing") for e in every)
    ev = evidence(crossing=carrier == "chamber_slide")
    if carrier in (None, "unknown"):
        carrier = recognise_carrier(ev)
        if carrier in ("slide", "chamber_slide") and crossings:
            # A chamber slide's crossing dividers may be what its grid was missing.
            with_crossings = evidence(crossing=True)
            if recognise_carrier(with_crossings) == "chamber_slide":
                carrier, ev = "chamber_slide", with_crossings
    if carrier == "multiwell":
        part = _plate_part(ev)
    elif carrier == "chamber_slide":
        part = _chamber_part(ev)
    elif carrier == "petri_dish":
        part = _dish_part(ev)
    elif carrier == "slide":
        part = ev.slide_part
    else:
        part = _Part([], None, {}, [])
    return {
        "carrier": carrier,
        "samples": part.samples,
        "plate": part.plate,
        "structures": _structures(ev.lines, part.circles, part.roles, ev.entries),
        "barcodes": merge_barcodes(state.barcodes),
    }


@dataclass
class _Part:
    """What one carrier's localization found."""

    samples: list[dict[str, Any]]
    plate: dict[str, Any] | None
    roles: dict[int, str]
    circles: list[CircleSource]


class _Evidence:
    """The fused evidence of a session, with the carrier-level findings computed once."""

    def __init__(
        self,
        state: FuseState,
        entries: list[dict[str, Any]],
        line_entries: list[dict[str, Any]],
        lines: list[LineSource],
        cfg: LocalizeConfig,
        views: CoarseViews | None = None,
    ) -> None:
        self.state = state
        self.entries = entries
        self.line_entries = line_entries
        self.lines = lines
        self.cfg = cfg
        self.views = views
        self._cache: dict[str, Any] = {}

    def _get(self, key: str, make: Any) -> Any:
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]

    @property
    def coarse_views(self) -> list[tuple[np.ndarray, FrameGeometry]]:
        """The frames' coarse data for the outline searches, vignetting divided out
        (:func:`~samplescout.fuse.outline.flat_fielded`; empty without any)."""
        return self._get(
            "coarse_views",
            lambda: flat_fielded(self.views.views()) if self.views is not None else [],
        )

    @property
    def label_span(self) -> tuple[float, float] | None:
        """The best slide's paper label (or frosted end), seen on the coarse data as a
        bright run across the slide at one end (:func:`~samplescout.fuse.label.label_span`):
        its extent along the slide, slide-local mm; None without a slide, coarse data or
        such an end."""

        def make() -> tuple[float, float] | None:
            if not self.slides or not self.coarse_views:
                return None
            s = self.slides[0]
            return label_span(self.coarse_views, s.center, s.size, s.angle_deg)

        return self._get("label_span", make)

    @property
    def label_end(self) -> np.ndarray | None:
        """:attr:`label_span` as a polygon in holder mm."""
        span = self.label_span
        if span is None:
            return None
        s = self.slides[0]
        long = s.long_axis
        mid = np.zeros(2)
        mid[long] = 0.5 * (span[0] + span[1])
        length = span[1] - span[0]
        size = (length, s.size[1]) if long == 0 else (s.size[0], length)
        center = np.asarray(s.center) + rotation_matrix(s.angle_deg) @ mid
        return rectangle_polygon((float(center[0]), float(center[1])), size, s.angle_deg)

    def on_label_edge(self, line: LineSource) -> bool:
        """Whether ``line`` runs along the label's inner edge (across the slide, within
        ``label_edge_tol_mm`` of it): the label's border, not a cover glass's side."""
        span = self.label_span
        if span is None:
            return False
        s = self.slides[0]
        long = s.long_axis
        inner = span[1] if span[0] <= -s.size[long] / 2.0 + 1e-6 else span[0]
        across = s.angle_deg + (90.0 if long == 0 else 0.0)
        d = abs(line.angle_deg - across) % 180.0
        if min(d, 180.0 - d) > self.cfg.parallel_tol_deg:
            return False
        mid = (line.endpoints.mean(axis=0) - np.asarray(s.center)) @ rotation_matrix(s.angle_deg)
        return abs(float(mid[long]) - inner) <= self.cfg.label_edge_tol_mm

    @property
    def slide_part(self) -> _Part:
        """The slide localization (recognition may need it before localization does)."""
        return self._get("slide_part", lambda: _slide_part(self))

    @property
    def slide_rects(self) -> list[Rect]:
        """Slide rectangles scoring at least ``min_slide_score``, however many of their
        sides were seen, best first (overlapping): a slide that fills the holder's
        opening has two sides on the holder's edges."""
        return self._get(
            "slide_rects",
            lambda: _scored_rects(
                self.lines, SLIDE_SIZES, self.cfg, self.cfg.min_slide_score, within=None
            ),
        )

    @property
    def slide_candidates(self) -> list[Rect]:
        """Slide rectangles with enough evidence, best first (overlapping)."""
        return self._get("slide_candidates", lambda: _seen_enough(self.slide_rects, self.cfg))

    @property
    def slides(self) -> list[Rect]:
        """The slide: the best candidate, unless that misses one of its long sides and
        one seen on all four sides scores at least ``whole_slide_share`` of it (a
        rectangle of the holder opening's edges and the label's edge can outscore the
        slide's own, thinner outline; a slide's ends are often unseen, under the clips
        or the label, and an inner edge, a chamber block's, say, can stand in for one)."""

        def make() -> list[Rect]:
            cands = self.slide_candidates
            if cands and not _long_sides_seen(cands[0]):
                floor = self.cfg.whole_slide_share * cands[0].score
                whole = [c for c in cands if c.sides_seen == 4 and c.score >= floor]
                if whole:
                    return whole[:1]
            return _exclusive(cands, [], self.cfg)[0][:1]

        return self._get("slides", make)

    @property
    def plate_body(self) -> Rect | None:
        def make() -> Rect | None:
            cands = _rect_candidates(
                self.lines, (SBS_SIZE_MM,), self.cfg, self.cfg.min_slide_score, within=None
            )
            return cands[0] if cands else None

        return self._get("plate_body", make)

    @property
    def plate(self) -> PlateFit | None:
        def make() -> PlateFit | None:
            body = self.plate_body
            pb = PlateBody(body.center, body.angle_deg, body.score) if body else None
            used = set(body.lines) if body else set()
            strong = [
                (ln.endpoints[0], ln.endpoints[1], ln.probability)
                for i, ln in enumerate(self.lines)
                if i not in used and ln.length >= 5.0
            ]
            short = [
                (np.asarray(e["segment"][0]), np.asarray(e["segment"][1]), float(e["p"]))
                for e in self.line_entries
                if math.dist(*e["segment"]) <= 4.5
            ]
            return fit_plate(arcs_of(self.entries), short, pb, strong)

        return self._get("plate", make)

    @property
    def dish_rings(self) -> list[CircleSource]:
        """Every dish-wall-sized ring seen round most of its circle, best first."""

        def make() -> list[CircleSource]:
            # A dish wall's long chords bow away from their circle more than a cover
            # glass's short ones: their ends get a looser tolerance.
            cfg = replace(self.cfg, circle_end_tol_mm=self.cfg.ring_end_tol_mm)
            found = _find_circles(_chords(self.entries), DISH_RING_DIAMETERS, cfg)
            found = [c for c in found if c.span_deg >= cfg.min_ring_span_deg]
            return sorted(found, key=lambda c: (-round(c.span_deg * c.probability, 9), c.center[0]))

        return self._get("dish_rings", make)

    @property
    def dish_ring(self) -> CircleSource | None:
        return self.dish_rings[0] if self.dish_rings else None

    @property
    def chambers(self) -> ChamberFit | None:
        """The chamber grid from wall-like edges (what recognition asks: faint edges,
        classed as cover-glass edges, do not count), on the best slide."""
        return self._chamber_fit(faint=False, slide=self.slides[0] if self.slides else None)

    @property
    def chambers_declared(self) -> tuple[ChamberFit, Rect] | None:
        """The chamber grid, and the slide it lies on, of a slide said to be a chamber
        slide: the walls of a hard (faint) chamber block are often classed as cover-glass
        edges, so every edge counts.

        The slide and the grid are fitted together: a chamber block's outer wall and
        the holder's edge can make a slide-sized pair that scores a little better than
        the real slide. When the best slide's grid scores below
        ``chamber_fit_trusted``, the other well-supported slide candidates are tried too,
        and the best product of slide and grid scores wins. With no grid from the
        identified edges on any of them, or only a guess (below ``chamber_guess_score``:
        no cell edge across the slide seen) on the best slide where its
        :attr:`chamber_walls` make a grid, or on another where they make a better one,
        the best slide's :attr:`chamber_walls`.
        """

        def make() -> tuple[ChamberFit, Rect] | None:
            best: tuple[float, ChamberFit, Rect] | None = None
            # no slide seen on three sides: perhaps one filling the holder's opening
            slides = self._distinct_slides() or self._distinct_slides(self.slide_rects)
            guess = self.cfg.chamber_guess_score
            for k, s in enumerate(slides):
                fit = self._chamber_fit(faint=True, slide=s)
                if (
                    k == 0
                    and self.slides  # no best slide: no walls either
                    and s is self.slides[0]
                    and (fit is None or fit.score < guess)
                ):
                    # the best slide's identified edges only guess its grid; its walls
                    # show it (other slide candidates would be fitted to that guess)
                    walls = self.chamber_walls
                    if walls is not None and walls.score >= self.cfg.min_wall_chamber_score:
                        return walls, s
                if fit is not None and (best is None or fit.score * s.score > best[0] + 1e-9):
                    best = (fit.score * s.score, fit, s)
                if best is not None and best[1].score >= self.cfg.chamber_fit_trusted:
                    break
            if best is None or best[1].score < guess:
                # no grid from the identified edges, or only a guess on another slide
                # candidate: the walls' steps on the coarse data
                walls = self.chamber_walls
                if walls is not None and (best is None or walls.score > best[1].score):
                    return walls, self.slides[0]
            return None if best is None else (best[1], best[2])

        return self._get("chambers-declared", make)

    def _distinct_slides(self, candidates: list[Rect] | None = None) -> list[Rect]:
        """The best slide, then up to ``max_slide_alternatives`` other slide candidates
        scoring at least ``slide_alternative_share`` of it, no two at the same place
        (of :attr:`slide_candidates`, or of ``candidates``, best first)."""
        cands = self.slide_candidates if candidates is None else candidates
        if not cands:
            return []
        out = self.slides[:1] if candidates is None else cands[:1]
        floor = self.cfg.slide_alternative_share * cands[0].score
        for c in cands:
            if len(out) > self.cfg.max_slide_alternatives or c.score < floor:
                break
            if all(
                math.dist(c.center, o.center) > self.cfg.side_tol_mm
                or c.size != o.size
                or abs(c.angle_deg - o.angle_deg) > self.cfg.parallel_tol_deg
                for o in out
            ):
                out.append(c)
        return out

    @property
    def chamber_walls(self) -> ChamberFit | None:
        """The chamber grid on the best slide from the walls' steps on the coarse data
        alone (None without a slide or coarse data)."""

        def make() -> ChamberFit | None:
            views = self.coarse_views
            if not self.slides or not views:
                return None
            s = self.slides[0]
            walls = wall_lines(views, s.center, s.size, s.angle_deg)
            return fit_chambers(walls, s.center, s.size, s.angle_deg, WALLS_CHAMBER_CONFIG)

        return self._get("chamber-walls", make)

    def _chamber_fit(self, faint: bool, slide: Rect | None) -> ChamberFit | None:
        if slide is None:
            return None
        s = slide

        def make() -> ChamberFit | None:
            lines = [
                (ln.endpoints, ln.coverage_mm * ln.probability)
                for i, ln in enumerate(self.lines)
                if i not in s.lines
                and ln.probability >= self.cfg.min_chamber_line_p
                and (faint or ln.shape_class not in COVER_GLASS_EDGE_CLASSES)
            ]
            return fit_chambers(lines, s.center, s.size, s.angle_deg)

        key = f"chambers-{faint}-{s.center}-{s.size}-{s.angle_deg}"
        return self._get(key, make)


def recognise_carrier(ev: _Evidence) -> str:
    """``slide``, ``multiwell``, ``chamber_slide``, ``petri_dish`` or ``unknown`` from evidence.

    A plate footprint with a well grid on it means a multiwell plate; a slide with a
    chamber grid of strong walls, or one that explains faint walls well, a chamber
    slide, else a slide; a dish's outer ring a dish; a well grid alone a plate; one
    round glass of a dish's glass-bottom size and nothing else a dish; other cover
    glasses alone a slide.
    """
    cfg = ev.cfg
    if ev.plate_body is not None and ev.plate_body.score >= cfg.min_body_score:
        return "multiwell"
    slide = ev.slides[0] if ev.slides else None
    # Narrow frames often miss one end of a chamber slide (under the holder's clip).
    if slide is not None and slide.sides_seen >= 3:
        if slide.score >= cfg.min_body_score:
            chambers = ev.chambers
            if (
                chambers is not None
                and chambers.score >= cfg.min_chamber_score
                and not _on_label_end(ev, chambers)
            ):
                return "chamber_slide"
            # A hard chamber block's walls are faint (classed as cover-glass edges): a
            # grid that explains them well still means chambers; cover glasses fit it
            # poorly.
            faint = ev.chambers_declared
            if (
                faint is not None
                and faint[0].score >= cfg.min_faint_chamber_score
                and not _on_label_end(ev, faint[0])
            ):
                return "chamber_slide"
        # Walls too faint or too little identified for either: their steps on the
        # coarse data (a cover glass's outline has no wall's second edge beside it). A
        # dish's holder and wall make such steps too, but a dish shows its ring.
        walls = ev.chamber_walls
        if (
            walls is not None
            and walls.score >= cfg.min_wall_chamber_score
            and _seen_dish_ring(ev) is None
            and not _on_label_end(ev, walls)
        ):
            return "chamber_slide"
        if slide.sides_seen == 4 and slide.score >= cfg.min_body_score:
            return "slide"
    ring = _seen_dish_ring(ev)
    if ring is not None:
        # A dish has one wall: rings of its size side by side are the wells of a 6- or
        # 12-well plate whose body was not seen.
        apart = any(math.dist(c.center, ring.center) >= ring.radius for c in ev.dish_rings)
        return "multiwell" if apart else "petri_dish"
    plate = ev.plate
    if plate is not None and plate.score >= cfg.min_plate_score_alone:
        return "multiwell"
    if slide is not None:
        return "slide"
    samples = ev.slide_part.samples
    lo, hi = DISH_GLASS_DIAMETERS
    round_glass = len(samples) == 1 and samples[0]["shape"] == "circle"
    if round_glass and lo <= samples[0]["size_mm"][0] <= hi:
        return "petri_dish"  # no slide outline, one round glass: a dish, its wall unseen
    return "slide" if samples else "unknown"


def _seen_dish_ring(ev: _Evidence) -> CircleSource | None:
    """The dish's outer ring where enough of it was seen."""
    ring = ev.dish_ring
    if ring is None or ring.span_deg * ring.probability / 360.0 < ev.cfg.min_ring_score:
        return None
    return ring


def _plate_part(ev: _Evidence) -> _Part:
    fit = ev.plate
    roles = {i: "plate_edge" for i in ev.plate_body.lines} if ev.plate_body else {}
    body = ev.plate_body
    views = ev.coarse_views
    if (
        (fit is None or fit.score < BODY_GRID_SCORE)
        and body is not None
        and body.score >= ev.cfg.min_body_score
        and views
    ):
        # No well identified, or too few to trust the format: the plate's footprint fixes
        # where each standard grid is, and the rims on the coarse data say which one it is
        # (a black plate's wells can fit a wrong format's grid barely better than chance).
        rims = grid_from_body(PlateBody(body.center, body.angle_deg, body.score), views)
        if rims is not None and (fit is None or rims.fmt != fit.fmt):
            fit = rims
    if fit is None:
        return _Part([], None, roles, [])
    fmt = fit.fmt
    covered = _covered(ev.state, fit.centers())
    samples: list[dict[str, Any]] = []
    for k, c in enumerate(fit.centers()):
        row, col = divmod(k, fmt.cols)
        center = (float(c[0]), float(c[1]))
        seen = min(1.0, fit.support[k] / 4.0)
        conf = fit_confidence = max(0.0, min(1.0, fit.score))
        conf = fit_confidence * (0.6 + 0.4 * seen) * (1.0 if covered[k] else 0.5)
        if fmt.circular:
            shape = {
                "shape": "circle",
                "center_mm": list(center),
                "size_mm": [fmt.well_size],
                "angle_deg": 0.0,
                "polygon_mm": _poly(circle_polygon(center, fmt.well_size)),
            }
        else:
            angle = normalize_angle_deg(fit.angle_deg)
            shape = {
                "shape": "rectangle",
                "center_mm": list(center),
                "size_mm": [fmt.well_size, fmt.well_size],
                "angle_deg": angle,
                "polygon_mm": _poly(
                    rectangle_polygon(center, (fmt.well_size, fmt.well_size), angle)
                ),
            }
        samples.append(
            {"element": "well", **shape, "confidence": float(conf), "label": well_name(row, col)}
        )
    if views:
        for sample in samples:
            occupied = well_occupancy(views, sample["center_mm"], fmt.well_size)
            if occupied is not None:
                sample["occupied"] = occupied
    plate = {
        "wells": fmt.wells,
        "rows": fmt.rows,
        "cols": fmt.cols,
        "a1_center_mm": [float(fit.a1_center[0]), float(fit.a1_center[1])],
        "rotation_deg": float(fit.angle_deg),
        "well_spacing_mm": [fmt.pitch, fmt.pitch],
        "well_size_mm": fmt.well_size,
        "circular_wells": fmt.circular,
    }
    return _Part(samples, plate, roles, [])


def _covered(state: FuseState, points: np.ndarray) -> list[bool]:
    """Whether each point lies in a frame footprint (all True when none is recorded)."""
    if not state.footprints:
        return [True] * len(points)
    polys = [np.asarray(p, dtype=np.float32) for _, p in sorted(state.footprints.items())]
    return [
        any(cv2.pointPolygonTest(p, (float(x), float(y)), False) >= 0 for p in polys)
        for x, y in points
    ]


def _on_label_end(ev: _Evidence, fit: ChamberFit) -> bool:
    """Whether a chamber of ``fit`` lies on the slide's label (a quarter of its area or
    more on :attr:`_Evidence.label_end`): no chamber block is glued over the label, so
    such a grid was made of the label's border and other edges, not of walls."""
    return any(
        _on_label_paper(ev, rectangle_polygon(center, size, angle))
        for center, size, angle in fit.rects()
    )


def _on_label_paper(ev: _Evidence, polygon: np.ndarray) -> bool:
    """Whether ``max_label_share`` or more of ``polygon``'s area lies on the slide's
    label (:attr:`_Evidence.label_end`; False where none was seen)."""
    paper = ev.label_end
    return paper is not None and covered_share(paper, polygon) >= ev.cfg.max_label_share


def _chamber_part(ev: _Evidence) -> _Part:
    found = ev.chambers_declared
    if found is None:
        return _Part([], None, {i: "sample_carrier_edge" for s in ev.slides for i in s.lines}, [])
    fit, slide = found
    roles = {i: "sample_carrier_edge" for i in slide.lines}
    rects = sorted(fit.rects(), key=lambda r: (round(r[0][0], 6), round(r[0][1], 6)))
    samples = []
    for k, (center, size, angle) in enumerate(rects, start=1):
        samples.append(
            {
                "element": "chamber",
                "shape": "rectangle",
                "center_mm": [float(center[0]), float(center[1])],
                "size_mm": [float(size[0]), float(size[1])],
                "angle_deg": float(angle),
                "polygon_mm": _poly(rectangle_polygon(center, size, angle)),
                "confidence": float(max(0.0, min(1.0, fit.score))),
                "label": str(k),
            }
        )
    return _Part(samples, None, roles, [])


def _dish_part(ev: _Evidence) -> _Part:
    cfg = ev.cfg
    ring = ev.dish_ring
    glass: CircleSource | None
    if ring is not None:
        # The glass bottom sits in the middle of the dish, concentric with its wall.
        glass = _concentric_circle(_chords(ev.entries), ring, DISH_GLASS_DIAMETERS, cfg)
        if glass is None:
            glass = _outline_dish_glass(ev, ring)
    else:
        found = _find_circles(_chords(ev.entries), DISH_GLASS_DIAMETERS, cfg)
        glass = max(
            found, key=lambda c: (round(c.probability * c.span_deg, 9), -c.center[0]), default=None
        )
    circles = [c for c in (ring, glass) if c is not None]
    if glass is None:
        return _Part([], None, {}, circles)
    d = _snap(2.0 * glass.radius, DISH_GLASS_STANDARD_MM, cfg.diameter_snap_mm)
    sample = {
        "element": "dish_glass",
        "shape": "circle",
        "center_mm": [float(glass.center[0]), float(glass.center[1])],
        "size_mm": [float(d)],
        "angle_deg": 0.0,
        "polygon_mm": _poly(circle_polygon(glass.center, d)),
        "confidence": float(max(0.0, min(1.0, glass.probability))),
        "label": "1",
    }
    return _Part([sample], None, {}, circles)


def _outline_dish_glass(ev: _Evidence, ring: CircleSource) -> CircleSource | None:
    """The glass bottom of a dish whose wall was found but whose glass edge was not, by
    its whole outline on the coarse data (:func:`~samplescout.fuse.outline.circle_outlines`):
    a standard diameter centred within ``dish_glass_offset_mm`` of the wall's centre,
    scoring at least ``dish_glass_min_z``: lower than a cover glass needs on a slide,
    because with the centre known there are a few hundred hypotheses, not tens of
    thousands.

    Whether the glass looks darker or brighter than the plastic around it depends on
    the light, so both signs of the step are tried.
    """
    views = ev.coarse_views
    if not views:
        return None
    cfg = ev.cfg
    side = (2.0 * ring.radius, 2.0 * ring.radius)
    search = replace(cfg.outline, min_circle_z=cfg.dish_glass_min_z)
    best = _circle_outline_near(
        views, ring.center, side, DISH_GLASS_STANDARD_MM, search, cfg.dish_glass_offset_mm
    )
    if best is None:
        return None
    return CircleSource(
        center=best.center,
        radius=best.size[0] / 2.0,
        span_deg=360.0,
        probability=best.z / (best.z + 4.0),
        shape_class="round_cover_glass_edge",
        frames=ring.frames,
    )


def _circle_outline_near(
    views: list[tuple[np.ndarray, FrameGeometry]],
    center: tuple[float, float],
    canvas: tuple[float, float],
    diameters: tuple[float, ...] | list[float],
    search: OutlineConfig,
    within_mm: float,
) -> OutlineHit | None:
    """The best circle outline of ``diameters`` centred within ``within_mm`` of
    ``center``, of either sign of the step: whether a glass looks darker or brighter
    than what lies around it depends on the light and on what lies under it."""
    best: OutlineHit | None = None
    for hit in circle_outlines(views, center, 0.0, canvas, diameters, search, (1.0, -1.0)):
        if math.dist(hit.center, center) <= within_mm and (best is None or hit.z > best.z):
            best = hit
    return best


def _concentric_circle(
    chords: list[Chord],
    ring: CircleSource,
    diameters: tuple[float, float],
    cfg: LocalizeConfig,
) -> CircleSource | None:
    """The circle about ``ring``'s centre best supported by tangent chords: a histogram of
    the chords' distances from the centre (weighted by length and probability), over
    the diameters given. Few and short pieces suffice, because the centre is known."""
    if not chords:
        return None
    c = np.asarray(ring.center)
    _, _, prob, frames, mid, vec, length = _chord_arrays(chords)
    d = mid - c
    dist = np.maximum(np.hypot(d[:, 0], d[:, 1]), 1e-9)
    radial = np.abs(np.einsum("ij,ij->i", vec / length[:, None], d)) / dist
    ok = (radial <= math.sin(math.radians(cfg.tangent_tol_deg))) & (
        (dist >= diameters[0] / 2) & (dist <= diameters[1] / 2)
    )
    if not ok.any():
        return None
    step = cfg.circle_bin_mm / 2
    bins = np.arange(diameters[0] / 2, diameters[1] / 2 + step, step)
    hist, _ = np.histogram(dist[ok], bins=bins, weights=(length * prob)[ok])
    hist = np.convolve(hist, np.ones(3), mode="same")
    k = int(np.argmax(hist))
    r0 = 0.5 * (bins[k] + bins[k + 1])
    near = ok & (np.abs(dist - r0) <= cfg.circle_bin_mm)
    radius = float(np.average(dist[near], weights=(length * prob)[near]))
    ang = np.degrees(np.arctan2(d[near, 1], d[near, 0])) % 360.0
    half = np.degrees(length[near] / (2 * radius))
    covered = np.zeros(72, dtype=bool)
    for a, h in zip(ang, half, strict=True):
        covered[np.arange(int((a - h) // 5), int((a + h) // 5) + 1) % 72] = True
    span = 5.0 * float(covered.sum())
    p_mean = float(np.average(prob[near], weights=length[near]))
    return CircleSource(
        center=ring.center,
        radius=radius,
        span_deg=span,
        probability=p_mean * min(1.0, 0.3 + span / 270.0),
        shape_class="round_structure",
        frames=tuple(sorted({int(f) for f in frames[near]})),
    )


def _snap(value: float, standard: tuple[float, ...], tol: float) -> float:
    snap = min(standard, key=lambda v: abs(v - value))
    return snap if abs(snap - value) <= tol else value


def _slide_part(ev: _Evidence) -> _Part:
    cfg = ev.cfg
    lines, entries, line_entries = ev.lines, ev.entries, ev.line_entries
    slides = ev.slides
    roles: dict[int, str] = {}
    for s in slides:
        # A cover glass edge can run within the slide edge's tolerance (24 mm on 25 mm).
        roles.update(
            {
                i: "sample_carrier_edge"
                for i in s.lines
                if lines[i].shape_class not in COVER_GLASS_EDGE_CLASSES
            }
        )
    # Cover glasses lie on a slide: with a slide found, only edges on it can be theirs.
    # A cover-glass edge may run 0.5 mm inside the slide's edge (24 mm on 25 mm) while
    # the fitted slide is off by as much (25 or 26 mm wide, a holder edge taken for its
    # side): such edges count up to ``slide_margin_mm`` outside it, other edges only
    # well inside it.
    # Only along the slide's long sides: a glass as long as the slide is not made, and a
    # slide end (its outline classed as a cover-glass edge on faint frames) would close
    # a ghost glass over the whole slide.
    free = [
        i
        for i, ln in enumerate(lines)
        if i not in roles
        and not ev.on_label_edge(ln)
        and (
            not slides
            or _on_any(
                ln.endpoints.mean(axis=0),
                slides,
                cfg.slide_margin_mm
                if ln.shape_class in COVER_GLASS_EDGE_CLASSES and _along_long_side(ln, slides[0])
                else -0.3,
            )
        )
    ]
    covers = _rect_candidates(
        [lines[i] for i in free], COVER_GLASS_SIZES, cfg, cfg.min_cover_score, within=slides
    )
    used_entries = {m for i in roles for m in lines[i].members}
    # Marker-pen strokes draw rings round samples: rings, but not glasses.
    pen = [e for e in entries if e.get("marker")]
    chords = _chords(
        [e for k, e in enumerate(line_entries) if k not in used_entries and not e.get("marker")]
        + [e for e in entries if e["arc"] is not None and not e.get("marker")]
    )
    pen_chords = _chords(pen)
    if slides:
        chords, pen_chords = (
            [c for c in cs if _on_any(0.5 * (c[0] + c[1]), slides, -0.3)]
            for cs in (chords, pen_chords)
        )
    diameters = (COVER_GLASS_DIAMETERS[0] - 0.6, COVER_GLASS_DIAMETERS[-1] + 0.6)
    # Round cover glasses come in standard diameters, and thin edges measure theirs to
    # a few tenths of a mm: a circle of none of them is a ring of something else.
    circles = [
        c
        for c in _find_circles(chords, diameters, cfg, concentric=True)
        if min(abs(2.0 * c.radius - d) for d in COVER_GLASS_DIAMETERS) <= cfg.diameter_snap_mm
    ]
    loops = _pen_loops(pen_chords, slides[0].angle_deg if slides else 0.0, cfg)
    # A round outline wholly inside a rectangular glass whose cover-glass edges are seen
    # on three sides is drawn on that glass (a marker ring round the sample), not a
    # glass of its own. A circle that touches the rectangle's sides (its inscribed
    # circle) stays a candidate, and so does one inside a rectangle of other edges (a
    # ghost between holder and slide edges).
    glass_edges = _Lines(
        [lines[i] for i in free if lines[i].shape_class in COVER_GLASS_EDGE_CLASSES]
    )
    framed = [r for r in covers if r.sides_seen >= 3 and sum(_sides_seen(r, glass_edges, cfg)) >= 3]
    circles = [
        c
        for c in circles
        if not any(_circle_inside(c.center, c.radius, r, cfg.ring_inside_mm) for r in framed)
    ]
    covers, circles = _exclusive(covers, circles, cfg)
    for c in covers:
        c.lines = [free[i] for i in c.lines]
        roles.update({i: "straight_cover_glass_edge" for i in c.lines})
    covers += _single_edge_covers(ev, covers, circles, roles)
    outlined, covers, circles = _outline_glasses(ev, covers, circles, loops)
    outlined += _arc_glasses(ev, covers, circles, outlined, loops)
    ringed, ringed_round = _ringed_glasses(ev, loops, covers, circles, outlined)
    covers += ringed
    circles += ringed_round

    samples = [
        _glass_sample("rectangle", r.center, r.size, r.angle_deg, r.polygon(), min(1.0, r.score))
        for r in covers
    ]
    for c in circles:
        d = min(COVER_GLASS_DIAMETERS, key=lambda v: abs(v - 2.0 * c.radius))
        samples.append(
            _glass_sample("circle", c.center, (d,), 0.0, circle_polygon(c.center, d), c.probability)
        )
    samples += outlined
    # No cover glass lies on the label: an outline over much of a piece of label print or
    # a code read is the label's (a label region's margin may reach a glass beside it).
    label = _label_polygons(ev)
    samples = [
        s
        for s in samples
        if not any(covered_share(s["polygon_mm"], q) >= cfg.max_label_share for q in label)
    ]
    # Nor on the label's paper, seen or not as a label region: much of the glass on it
    # means print and the label's border made it.
    samples = [s for s in samples if not _on_label_paper(ev, np.asarray(s["polygon_mm"]))]
    samples.sort(key=lambda s: (round(s["center_mm"][0], 6), round(s["center_mm"][1], 6)))
    for k, sample in enumerate(samples, start=1):
        sample["label"] = str(k)

    return _Part(samples, None, roles, circles)


@dataclass(frozen=True)
class PenLoop:
    """A closed-looking marker-pen stroke: centre and extent (mm) along the slide's axes."""

    center: tuple[float, float]
    extent: tuple[float, float]
    cover_deg: float


def _pen_loops(pen_chords: list[Chord], angle_deg: float, cfg: LocalizeConfig) -> list[PenLoop]:
    """Marker loops drawn round samples, from the pieces of pen stroke identification saw.

    Pen chords are linked into strokes when their ends lie within ``pen_link_mm``. A
    loop is often seen in pieces (where it runs along a glass edge or leaves a frame,
    no pen is reported), so each stroke seeds a group that takes the others, largest
    first, while one ellipse still fits them all within ``pen_fit_mm`` (rms); the
    groups seen round the most of their ellipse are kept first, each stroke in one
    loop. A group is a loop when its
    ellipse is seen round at least ``min_loop_cover_deg`` (10 degree bins), fits
    within ``pen_fit_mm`` (twice that when seen round ``closed_loop_cover_deg``) and
    is ``min_loop_mm`` to ``max_loop_mm`` across; its extent, along the slide's axes,
    is the ellipse's, so a loop seen in part is still placed whole.
    """
    if not pen_chords:
        return []
    p0, p1 = _chord_arrays(pen_chords)[:2]
    n = len(p0)
    label = np.full(n, -1)
    k = 0
    for i in range(n):
        if label[i] >= 0:
            continue
        label[i] = k
        stack = [i]
        while stack:
            j = stack.pop()
            gap = np.min([np.hypot(*(q - e).T) for q in (p0, p1) for e in (p0[j], p1[j])], axis=0)
            near = np.nonzero((gap <= cfg.pen_link_mm) & (label < 0))[0]
            label[near] = k
            stack.extend(int(v) for v in near)
        k += 1
    strokes = [_along_chords(p0[label == c], p1[label == c]) for c in range(k)]
    strokes.sort(key=lambda pts: (-len(pts), float(pts[0, 0]), float(pts[0, 1])))
    # Every stroke seeds a group; the groups seen round most of their ellipse are kept
    # first, each stroke in one loop (a short stroke far off, on the label, say, seeds a
    # large ellipse through a real loop's pieces that fits them all as well).
    found: list[tuple[PenLoop, set[int]]] = []
    for a, seed in enumerate(strokes):
        members = {a}
        pts = seed
        fit = _fit_ellipse(seed)
        middle = 0.5 * (seed.min(axis=0) + seed.max(axis=0))
        for b, other in enumerate(strokes):
            # One loop is at most ``max_loop_mm`` across: strokes farther off are others.
            if b in members or np.hypot(*(other[0] - middle)) > cfg.max_loop_mm:
                continue
            joined = np.concatenate([pts, other])
            trial = _fit_ellipse(joined)
            if (
                trial is not None
                and trial[3] <= cfg.pen_fit_mm
                and max(trial[1]) <= cfg.max_loop_mm
            ):
                members.add(b)
                pts, fit = joined, trial
        loop = _loop_of(fit, angle_deg, cfg)
        if loop is not None:
            found.append((loop, members))
    found.sort(key=lambda f: (-f[0].cover_deg, -len(f[1]), f[0].center))
    loops: list[PenLoop] = []
    used: set[int] = set()
    for loop, members in found:
        if not members & used:
            loops.append(loop)
            used |= members
    return sorted(loops, key=lambda lp: (-lp.cover_deg, lp.center))


def _loop_of(
    fit: tuple[tuple[float, float], tuple[float, float], float, float, float] | None,
    angle_deg: float,
    cfg: LocalizeConfig,
) -> PenLoop | None:
    """The pen loop an ellipse fit of strokes makes (see :func:`_pen_loops`), or None."""
    if fit is None:
        return None
    center, axes, tilt, rms, cover = fit
    # A loop seen nearly all round needs no close fit: a hand-drawn loop is no
    # true ellipse, and its extent is seen, not extrapolated.
    closed = cover >= cfg.closed_loop_cover_deg
    if cover < cfg.min_loop_cover_deg or rms > cfg.pen_fit_mm * (2.0 if closed else 1.0):
        return None
    if not (cfg.min_loop_mm <= min(axes) and max(axes) <= cfg.max_loop_mm):
        return None
    phi = math.radians(tilt - angle_deg)
    ea, eb = axes[0] / 2.0, axes[1] / 2.0
    extent = (
        2.0 * math.hypot(ea * math.cos(phi), eb * math.sin(phi)),
        2.0 * math.hypot(ea * math.sin(phi), eb * math.cos(phi)),
    )
    return PenLoop(center, extent, cover)


def _along_chords(p0: np.ndarray, p1: np.ndarray, step_mm: float = 1.0) -> np.ndarray:
    """Points along chords, one per ``step_mm`` or closer, so long chords weigh by length."""
    out = []
    for a, b in zip(p0, p1, strict=True):
        t = np.linspace(0.0, 1.0, max(1, math.ceil(math.dist(a, b) / step_mm)) + 1)[:, None]
        out.append(a + (b - a) * t)
    return np.concatenate(out)


def _fit_ellipse(
    pts: np.ndarray,
) -> tuple[tuple[float, float], tuple[float, float], float, float, float] | None:
    """``(centre, full axes, tilt deg, rms distance mm, cover deg)`` of the ellipse
    through ``pts``; cover counts the 10 degree bins of the ellipse's own angle that
    hold a point. None for fewer than 6 points or a degenerate fit."""
    if len(pts) < 6:
        return None
    (cx, cy), (ax_a, ax_b), tilt = cv2.fitEllipse(pts.astype(np.float32))
    if not (math.isfinite(ax_a) and math.isfinite(ax_b)) or min(ax_a, ax_b) <= 1e-6:
        return None
    t = math.radians(tilt)
    d = pts - np.array([cx, cy])
    u = (d[:, 0] * math.cos(t) + d[:, 1] * math.sin(t)) / (ax_a / 2.0)
    v = (-d[:, 0] * math.sin(t) + d[:, 1] * math.cos(t)) / (ax_b / 2.0)
    # distance from the ellipse, to first order: |r - 1| times the mean radius
    r = np.hypot(u, v)
    rms = float(np.sqrt(np.mean(((r - 1.0) * math.sqrt(ax_a * ax_b) / 2.0) ** 2)))
    cover = 10.0 * len(np.unique(np.floor(np.degrees(np.arctan2(v, u)) / 10.0)))
    return (float(cx), float(cy)), (float(ax_a), float(ax_b)), float(tilt), rms, cover


def _on_loop(
    center: tuple[float, float], radius: float, loops: list[PenLoop], cfg: LocalizeConfig
) -> bool:
    """Whether a circle runs on a pen loop: centres within ``loop_circle_tol_mm``, and
    the radius between the loop's half extents, give or take as much."""
    tol = cfg.loop_circle_tol_mm
    return any(
        math.dist(center, lp.center) <= tol
        and min(lp.extent) / 2.0 - tol <= radius <= max(lp.extent) / 2.0 + tol
        for lp in loops
    )


def _ringed_glasses(
    ev: _Evidence,
    loops: list[PenLoop],
    covers: list[Rect],
    circles: list[CircleSource],
    outlined: list[dict[str, Any]],
) -> tuple[list[Rect], list[CircleSource]]:
    """A glass for every marker loop that no glass found covers.

    A loop is drawn round a sample, on its cover glass; where the glass's own edges and
    outline are too faint to find, the loop still says a glass is there and roughly
    where. It is placed centred on the loop, with the low confidence
    ``ring_glass_confidence`` and only where it lies on the slide, as the smallest
    standard glass of at least ``loop_glass_share`` of the loop's extent: a rectangle
    (long side along the slide), or a round glass where that is at most
    ``small_loop_share`` of the rectangle's side (standard squares start at 18 mm; a
    small loop is on a small round glass). The shape is not chosen by the outline
    scores on the coarse data: there the loop's own dark band outscores a faint glass
    outline of either shape (on the development slides choosing by that score lost 3
    of 68 glasses).
    """
    cfg = ev.cfg
    slides = ev.slides
    found = _glass_polygons(covers, circles, outlined)
    label = _label_polygons(ev)
    angle = slides[0].angle_deg if slides else 0.0
    by_area = sorted(((b, a) for a, b in COVER_GLASS_SIZES), key=lambda s: (s[0] * s[1], s[0]))
    rects: list[Rect] = []
    rounds: list[CircleSource] = []
    for loop in loops:
        need = (loop.extent[0] * cfg.loop_glass_share, loop.extent[1] * cfg.loop_glass_share)
        size = next((s for s in by_area if s[0] >= need[0] and s[1] >= need[1]), None)
        diameter = next((d for d in COVER_GLASS_DIAMETERS if d >= max(need)), None)
        if size is None or any(_point_in(loop.center, poly) for poly in found):
            continue
        shape: Rect | CircleSource
        if diameter is not None and diameter <= cfg.small_loop_share * max(size):
            shape = CircleSource(
                center=loop.center,
                radius=diameter / 2.0,
                span_deg=loop.cover_deg,
                probability=cfg.ring_glass_confidence,
                shape_class="round_cover_glass_edge",
                frames=(),
            )
            poly = circle_polygon(loop.center, diameter)
        else:
            shape = Rect(center=loop.center, size=size, angle_deg=angle)
            shape.score = cfg.ring_glass_confidence
            poly = shape.polygon()
        if slides and not all(_on_any(p, slides[:1], 0.5) for p in poly):
            # A loop seen in part is extrapolated: its glass may overhang the slide's
            # end a little, and then lies where it fits.
            shift = _onto(poly, slides[0], 0.5, cfg.loop_shift_mm)
            if shift is None:
                continue
            center = (shape.center[0] + float(shift[0]), shape.center[1] + float(shift[1]))
            if isinstance(shape, Rect):
                shape.center = center
            else:
                shape = replace(shape, center=center)
            poly = poly + shift
        if any(covered_share(poly, q) > 0.0 for q in label):
            continue  # a loop reaching into a code is handwriting on the label
        if isinstance(shape, Rect):
            rects.append(shape)
        else:
            rounds.append(shape)
        found.append(poly)
    return rects, rounds


def _label_polygons(ev: _Evidence) -> list[np.ndarray]:
    """Label regions and the codes read, holder mm: no cover glass lies there."""
    label = [np.asarray(e["region_mm"]) for e in ev.entries if e["class"] == "label"]
    return label + [np.asarray(b["polygon_mm"]) for b in ev.state.barcodes]


def _glass_polygons(
    covers: list[Rect], circles: list[CircleSource], outlined: Sequence[dict[str, Any]] = ()
) -> list[np.ndarray]:
    """The outlines (holder mm) of the glasses found so far: rectangles from edges,
    circles, and samples found by their outline."""
    out = [r.polygon() for r in covers]
    out += [circle_polygon(c.center, 2.0 * c.radius) for c in circles]
    out += [np.asarray(o["polygon_mm"]) for o in outlined]
    return out


def _point_in(point: tuple[float, float], polygon: np.ndarray) -> bool:
    poly = np.asarray(polygon, dtype=np.float32)
    return cv2.pointPolygonTest(poly, (float(point[0]), float(point[1])), False) >= 0


def _glass_sample(
    shape: str,
    center: tuple[float, float],
    size: tuple[float, ...],
    angle_deg: float,
    polygon: np.ndarray,
    confidence: float,
) -> dict[str, Any]:
    """A cover glass as a SPEC section 3 sample (its label is given later)."""
    return {
        "element": "cover_glass",
        "shape": shape,
        "center_mm": [float(center[0]), float(center[1])],
        "size_mm": [float(v) for v in size],
        "angle_deg": float(angle_deg),
        "polygon_mm": _poly(polygon),
        "confidence": float(confidence),
    }


def _long_sides_seen(rect: Rect) -> bool:
    """Whether both long sides of ``rect`` are seen (:attr:`Rect.seen`; sides in the
    order of :func:`~samplescout.geometry.rectangle_polygon`: top, right, bottom, left)."""
    if len(rect.seen) != 4:
        return rect.sides_seen >= 4
    long = (0, 2) if rect.long_axis == 0 else (1, 3)
    return all(rect.seen[k] for k in long)


def _onto(poly: np.ndarray, rect: Rect, margin: float, max_shift: float) -> np.ndarray | None:
    """The smallest shift (holder mm) that puts ``poly`` inside ``rect`` grown by
    ``margin``, when no more than ``max_shift`` along either of its axes; else None."""
    rot = rotation_matrix(rect.angle_deg)
    local = (np.asarray(poly, dtype=np.float64) - np.asarray(rect.center)) @ rot
    shift = np.zeros(2)
    for k in (0, 1):
        lim = rect.size[k] / 2.0 + margin
        lo, hi = float(local[:, k].min()), float(local[:, k].max())
        if hi - lo > 2.0 * lim:
            return None
        shift[k] = max(0.0, -lim - lo) - max(0.0, hi - lim)
    if np.any(np.abs(shift) > max_shift):
        return None
    return rot @ shift


def _on_any(p: np.ndarray, rects: list[Rect], margin: float) -> bool:
    """Whether point ``p`` lies in one of ``rects`` grown by ``margin`` mm (negative: shrunk)."""
    for r in rects:
        a = math.radians(r.angle_deg)
        d = np.asarray(p) - np.asarray(r.center)
        lx = d[0] * math.cos(a) + d[1] * math.sin(a)
        ly = -d[0] * math.sin(a) + d[1] * math.cos(a)
        if abs(lx) <= r.size[0] / 2 + margin and abs(ly) <= r.size[1] / 2 + margin:
            return True
    return False


def _along_long_side(line: LineSource, rect: Rect, tol_deg: float = 5.0) -> bool:
    """Whether ``line`` runs parallel to the long sides of ``rect``."""
    long_axis = rect.angle_deg + 90.0 * rect.long_axis
    d = abs(line.angle_deg - long_axis) % 180.0
    return min(d, 180.0 - d) <= tol_deg


def _sides_seen(rect: Rect, arr: _Lines, cfg: LocalizeConfig) -> tuple[bool, ...]:
    """Which sides of ``rect`` (the order of its polygon's sides) the lines ``arr``
    cover (``rect`` is left unchanged)."""
    probe = replace(rect)
    _score(probe, arr, cfg)
    return probe.seen


def _circle_inside(center: tuple[float, float], radius: float, r: Rect, margin: float) -> bool:
    """Whether the circle lies inside rectangle ``r`` at least ``margin`` mm from its sides."""
    return _on_any(np.asarray(center), [r], -(radius + margin))


def _poly(p: np.ndarray) -> list[list[float]]:
    return [[float(x), float(y)] for x, y in p]


class _Lines:
    """Fused lines as arrays, for vectorised tests against many hypotheses."""

    def __init__(self, lines: list[LineSource]) -> None:
        self.items = lines
        n = len(lines)
        self.angle = np.array([ln.angle_deg for ln in lines], dtype=np.float64).reshape(n)
        self.ends = np.array([ln.endpoints for ln in lines], dtype=np.float64).reshape(n, 2, 2)
        self.mid = self.ends.mean(axis=1)
        self.length = np.array([ln.length for ln in lines], dtype=np.float64).reshape(n)
        self.coverage = np.array([ln.coverage_mm for ln in lines], dtype=np.float64).reshape(n)
        self.prob = np.array([ln.probability for ln in lines], dtype=np.float64).reshape(n)
        self.weight = self.prob * np.minimum(1.0, self.coverage / np.maximum(self.length, 1e-9))

    def angle_diff(self, angle: float) -> np.ndarray:
        d = np.abs((self.angle - angle) % 180.0)
        return np.minimum(d, 180.0 - d)


def _rect_candidates(
    lines: list[LineSource],
    sizes: tuple[tuple[float, float], ...],
    cfg: LocalizeConfig,
    min_score: float,
    within: list[Rect] | None,
) -> list[Rect]:
    """Rectangles of the given standard sizes with enough evidence, best first (overlapping)."""
    return _seen_enough(_scored_rects(lines, sizes, cfg, min_score, within), cfg)


def _scored_rects(
    lines: list[LineSource],
    sizes: tuple[tuple[float, float], ...],
    cfg: LocalizeConfig,
    min_score: float,
    within: list[Rect] | None,
) -> list[Rect]:
    """Rectangles of the given standard sizes scoring at least ``min_score``, however
    many of their sides were seen, best first (overlapping)."""
    arr = _Lines(lines)
    hyps = _rect_hypotheses(arr, sizes, cfg)
    if within:
        hyps = [h for h in hyps if _inside_any(h, within)]
    hyps = [_refine(h, arr, cfg) for h in hyps]
    return sorted((h for h in hyps if h.score >= min_score), key=Rect.key)


def _seen_enough(rects: list[Rect], cfg: LocalizeConfig) -> list[Rect]:
    """Those of ``rects`` seen on three sides or more, or scoring ``two_sided_score``."""
    return [h for h in rects if h.sides_seen >= 3 or h.score >= cfg.two_sided_score]


def _inside_any(h: Rect, outers: list[Rect]) -> bool:
    hp = h.polygon()
    return any(covered_share(o.polygon(), hp) >= 0.9 for o in outers)


def _rect_hypotheses(
    arr: _Lines, sizes: tuple[tuple[float, float], ...], cfg: LocalizeConfig
) -> list[Rect]:
    """Rectangles proposed by parallel pairs at a standard spacing (see module docstring)."""
    dims = np.array(sorted({d for s in sizes for d in s}))
    partners: dict[float, list[float]] = {}
    for a, b in sizes:
        partners.setdefault(a, []).append(b)
        if a != b:
            partners.setdefault(b, []).append(a)
    strong = np.nonzero(
        (arr.coverage >= cfg.min_pair_coverage_mm) & (arr.prob >= cfg.min_pair_probability)
    )[0]
    rad = np.radians(arr.angle)
    u_all = np.stack([np.cos(rad), np.sin(rad)], axis=1)
    nv_all = np.stack([-u_all[:, 1], u_all[:, 0]], axis=1)
    hyps: dict[tuple[float, ...], Rect] = {}
    for a_i, i in enumerate(strong):
        rest = strong[a_i + 1 :]
        if len(rest) == 0:
            break
        par = arr.angle_diff(arr.angle[i])[rest] <= cfg.parallel_tol_deg
        sep = np.abs((arr.mid[rest] - arr.mid[i]) @ nv_all[i])
        near = np.min(np.abs(sep[:, None] - dims[None, :]), axis=1) <= cfg.dim_tol_mm
        for j in rest[par & near]:
            uj = u_all[j] if float(u_all[i] @ u_all[j]) >= 0 else -u_all[j]
            u = u_all[i] * arr.coverage[i] + uj * arr.coverage[j]
            u /= np.linalg.norm(u)
            nv = np.array([-u[1], u[0]])
            s_ij = abs(float((arr.mid[j] - arr.mid[i]) @ nv))
            mid_off = 0.5 * float((arr.mid[i] + arr.mid[j]) @ nv)
            ends = np.concatenate([arr.ends[i] @ u, arr.ends[j] @ u])
            t_lo, t_hi = float(ends.min()), float(ends.max())
            perp_mask = (np.abs(arr.angle_diff(arr.angle[i]) - 90.0) <= cfg.parallel_tol_deg) & (
                np.abs(arr.mid @ nv - mid_off) <= s_ij / 2 + 1.0
            )
            perp = arr.mid[perp_mask] @ u
            for d in dims[np.abs(s_ij - dims) <= cfg.dim_tol_mm]:
                for e in partners[float(d)]:
                    centres = {0.5 * (t_lo + t_hi), t_lo + e / 2, t_hi - e / 2}
                    for t in perp[(perp > t_lo - e - 1.0) & (perp < t_hi + e + 1.0)]:
                        centres.update((float(t) + e / 2, float(t) - e / 2))
                    for tc in sorted(centres):
                        if tc - e / 2 > t_lo + 2.0 or tc + e / 2 < t_hi - 2.0:
                            continue  # the pair's own edges would run past the rectangle's end
                        rect = _make_rect(mid_off * nv + tc * u, u, along=e, across=float(d))
                        key = (round(rect.center[0] * 4), round(rect.center[1] * 4), *rect.size)
                        hyps.setdefault(key, rect)
    return [hyps[k] for k in sorted(hyps)]


def _make_rect(center: np.ndarray, u: np.ndarray, along: float, across: float) -> Rect:
    """Rectangle with sides ``along`` in direction ``u`` and ``across`` perpendicular,
    written with its angle in (-45, 45] so that ``w`` lies along the turned x axis."""
    angle = normalize_angle_deg(math.degrees(math.atan2(u[1], u[0])))
    w, h = along, across
    if angle > 45.0:
        angle, w, h = angle - 90.0, across, along
    elif angle <= -45.0:
        angle, w, h = angle + 90.0, across, along
    return Rect(center=(float(center[0]), float(center[1])), size=(w, h), angle_deg=angle)


def _score(rect: Rect, arr: _Lines, cfg: LocalizeConfig) -> list[tuple[np.ndarray, np.ndarray]]:
    """Score ``rect`` in place: mean over its four sides of the fraction covered by fused
    edges (weighted by probability), less edges running on past its corners. Returns,
    per side, the indices of the matched lines and their offsets from the side (mm,
    along the side's left normal)."""
    poly = rect.polygon()
    side = poly[[1, 2, 3, 0]] - poly
    lengths = np.hypot(side[:, 0], side[:, 1])
    u = side / lengths[:, None]
    nv = np.stack([-u[:, 1], u[:, 0]], axis=1)
    d = np.abs((arr.angle[None, :] - np.degrees(np.arctan2(u[:, 1], u[:, 0]))[:, None]) % 180.0)
    parallel = np.minimum(d, 180.0 - d) <= cfg.parallel_tol_deg
    tol = cfg.side_tol_mm + 0.005 * arr.length
    # Only lines parallel to a side and near the rectangle can match one (1 mm to spare).
    reach = (tol + 1.0)[:, None]
    near = (
        (arr.ends.max(axis=1) >= poly.min(axis=0) - reach)
        & (arr.ends.min(axis=1) <= poly.max(axis=0) + reach)
    ).all(axis=1)
    cand = np.nonzero(parallel.any(axis=0) & near)[0]
    # All four sides at once: (side, candidate line, end).
    rel = arr.ends[None, cand, :, :] - poly[:, None, None, :]
    offs = rel[..., 0] * nv[:, None, None, 0] + rel[..., 1] * nv[:, None, None, 1]
    along = rel[..., 0] * u[:, None, None, 0] + rel[..., 1] * u[:, None, None, 1]
    t0, t1 = along.min(axis=2), along.max(axis=2)
    lo, hi = np.maximum(t0, 0.0), np.minimum(t1, lengths[:, None])
    ok = parallel[:, cand] & (np.abs(offs).max(axis=2) <= tol[None, cand]) & (hi > lo)
    over = arr.weight[None, cand] * (
        np.maximum(-t0 - 1.0, 0.0) + np.maximum(t1 - lengths[:, None] - 1.0, 0.0)
    )
    total, seen, used = 0.0, [], set()
    matched: list[tuple[np.ndarray, np.ndarray]] = []
    for k in range(4):
        sel = np.nonzero(ok[k])[0]
        idx = cand[sel]
        union = _weighted_union(
            list(
                zip(lo[k, sel].tolist(), hi[k, sel].tolist(), arr.weight[idx].tolist(), strict=True)
            )
        )
        cover = max(0.0, union - 0.5 * float(over[k, sel].sum())) / float(lengths[k])
        total += cover
        seen.append(cover > 0.15)
        matched.append((idx, offs[k, sel].mean(axis=1)))
        used.update(idx.tolist())
    rect.score = total / 4.0
    rect.seen = tuple(seen)
    rect.sides_seen = sum(seen)
    rect.lines = sorted(used)
    return matched


def _refine(rect: Rect, arr: _Lines, cfg: LocalizeConfig) -> Rect:
    """Move ``rect`` (size kept) onto the fused edges that matched its sides, then rescore."""
    matched = _score(rect, arr, cfg)
    poly = rect.polygon()
    shift = np.zeros(2)
    for axis in (0, 1):
        vals: list[np.ndarray] = []
        wts: list[float] = []
        for k in (axis, axis + 2):
            u = (poly[(k + 1) % 4] - poly[k]) / np.linalg.norm(poly[(k + 1) % 4] - poly[k])
            nv = np.array([-u[1], u[0]])
            idx, offs = matched[k]
            vals.extend(off * nv for off in offs)
            wts.extend((arr.coverage[idx] * arr.prob[idx]).tolist())
        if wts:
            shift += np.average(np.array(vals), axis=0, weights=np.array(wts))
    idx = np.concatenate([m[0] for m in matched])
    if len(idx):
        d = (arr.angle[idx] - rect.angle_deg) % 90.0
        d = np.where(d > 45.0, d - 90.0, d)
        angle = rect.angle_deg + float(np.average(d, weights=arr.coverage[idx] * arr.prob[idx]))
    else:
        angle = rect.angle_deg
    out = Rect(
        center=(rect.center[0] + float(shift[0]), rect.center[1] + float(shift[1])),
        size=rect.size,
        angle_deg=angle,
    )
    _score(out, arr, cfg)
    return out if out.score >= rect.score else rect


def _weighted_union(intervals: list[tuple[float, float, float]]) -> float:
    """Length of the union of intervals, each point counted with the best weight covering it."""
    if not intervals:
        return 0.0
    cuts = sorted({v for lo, hi, _ in intervals for v in (lo, hi)})
    total = 0.0
    for x0, x1 in itertools.pairwise(cuts):
        m = 0.5 * (x0 + x1)
        best = max((w for lo, hi, w in intervals if lo <= m <= hi), default=0.0)
        total += (x1 - x0) * best
    return total


def _exclusive(
    rects: list[Rect], circles: list[CircleSource], cfg: LocalizeConfig
) -> tuple[list[Rect], list[CircleSource]]:
    """Greedy choice among overlapping candidates, best supported first: cover glasses (and
    slides) do not overlap one another."""
    cands: list[tuple[float, float, float, int, Rect | CircleSource, np.ndarray]] = []
    for r in rects:
        cands.append((-min(1.0, r.score), r.center[0], r.center[1], 0, r, r.polygon()))
    for c in circles:
        poly = circle_polygon(c.center, 2 * c.radius)
        cands.append((-c.probability, c.center[0], c.center[1], 1, c, poly))
    cands.sort(key=lambda t: (round(t[0], 9), round(t[1], 6), round(t[2], 6), t[3]))
    kept: list[tuple[Rect | CircleSource, np.ndarray]] = []
    used_lines: set[int] = set()
    for *_, obj, poly in cands:
        # Two cover glasses never share an edge: a rectangle built on another's side is a ghost.
        lines = set(obj.lines) if isinstance(obj, Rect) else set()
        if lines & used_lines:
            continue
        if all(polygon_iou(poly, p) <= cfg.max_overlap_iou for _, p in kept):
            kept.append((obj, poly))
            used_lines |= lines
    return (
        [o for o, _ in kept if isinstance(o, Rect)],
        [o for o, _ in kept if isinstance(o, CircleSource)],
    )


Chord = tuple[np.ndarray, np.ndarray, float, int]


def _chord_arrays(chords: list[Chord]) -> tuple[np.ndarray, ...]:
    """``(p0, p1, prob, frames, mid, vec, length)`` of the chords as arrays."""
    p0 = np.array([c[0] for c in chords])
    p1 = np.array([c[1] for c in chords])
    prob = np.array([c[2] for c in chords])
    frames = np.array([c[3] for c in chords])
    vec = p1 - p0
    length = np.maximum(np.hypot(vec[:, 0], vec[:, 1]), 1e-9)
    return p0, p1, prob, frames, 0.5 * (p0 + p1), vec, length


def _chords(entries: list[dict[str, Any]]) -> list[Chord]:
    """Straight pieces ``(p0, p1, probability, frame)`` of segments and of arcs (<= 1 mm chords)."""
    out: list[Chord] = []
    for e in entries:
        if e["segment"] is not None:
            p0, p1 = np.asarray(e["segment"][0]), np.asarray(e["segment"][1])
            out.append((p0, p1, float(e["p"]), int(e["frame"])))
            continue
        if e["arc"] is None:
            continue  # a label or another structure without an outline
        cx, cy, r, a0, a1 = e["arc"]
        n = max(1, math.ceil(math.radians(a1 - a0) * r))
        a = np.radians(np.linspace(a0, a1, n + 1))
        pts = np.stack([cx + r * np.cos(a), cy + r * np.sin(a)], axis=1)
        out.extend((pts[k], pts[k + 1], float(e["p"]), int(e["frame"])) for k in range(n))
    return out


def _find_circles(
    chords: list[Chord],
    diameters: tuple[float, float],
    cfg: LocalizeConfig,
    concentric: bool = False,
) -> list[CircleSource]:
    """Circles of the given diameter range tangent to many chords (a Hough transform of centres).

    Every chord votes along its normal, both ways, at every radius in range, weighted by
    its length and probability; chords of one circle agree on its centre while straight
    edges spread their votes along parallel lines. Peaks are taken best first; each is
    refined by a circle fit through its tangent chords and kept when they cover at least
    ``min_circle_span_deg`` of it and it does not overlap a better circle.

    ``concentric``: at each peak every radius whose tangent chords spread round enough
    of a circle is fitted, and the outermost fit is kept (a marker ring drawn round the
    sample on a round cover glass shares the glass's centre; the glass is outside).
    """
    if not chords:
        return []
    p0, p1, prob, frames, mid, vec, length = _chord_arrays(chords)
    u = vec / length[:, None]
    nv = np.stack([-u[:, 1], u[:, 0]], axis=1)
    r_lo, r_hi = diameters[0] / 2, diameters[1] / 2
    radii = np.arange(r_lo, r_hi, cfg.circle_bin_mm / 2)
    cell = cfg.circle_bin_mm
    lo = mid.min(axis=0) - r_hi - 1.0
    shape = np.ceil((mid.max(axis=0) + r_hi + 1.0 - lo) / cell).astype(int) + 1
    votes = np.concatenate(
        [mid[:, None, :] + sgn * radii[None, :, None] * nv[:, None, :] for sgn in (1.0, -1.0)],
        axis=1,
    )
    ij = np.floor((votes - lo) / cell).astype(np.int64)
    weight = np.repeat((length * prob)[:, None], votes.shape[1], axis=1)
    votes_acc = np.bincount(
        (ij[..., 1] * shape[0] + ij[..., 0]).ravel(),
        weights=weight.ravel(),
        minlength=shape[0] * shape[1],
    ).reshape(shape[1], shape[0])
    acc = cv2.GaussianBlur(votes_acc.astype(np.float32), (0, 0), 1.0)
    found: list[CircleSource] = []
    taken: list[np.ndarray] = []
    for _ in range(cfg.max_circles):
        k = int(np.argmax(acc))
        if acc.flat[k] <= 0:
            break
        cy_i, cx_i = divmod(k, shape[0])
        rr = max(1, round(r_lo / cell))
        acc[max(0, cy_i - rr) : cy_i + rr + 1, max(0, cx_i - rr) : cx_i + rr + 1] = 0.0
        center = lo + (np.array([cx_i, cy_i]) + 0.5) * cell
        circle = _fit_tangent_chords(
            center, mid, u, p0, p1, length, prob, frames, (r_lo, r_hi), cfg
        )
        if concentric:
            fits = [circle] if circle is not None else []
            for r in _radius_modes(center, mid, u, (r_lo, r_hi), cfg)[1:]:
                fit = _fit_tangent_chords(
                    center, mid, u, p0, p1, length, prob, frames, (r_lo, r_hi), cfg, radius=r
                )
                if fit is not None:
                    fits.append(fit)
            circle = max(fits, key=lambda c: (round(c.radius, 9), c.span_deg), default=None)
        if circle is None:
            continue
        poly = circle_polygon(circle.center, 2 * circle.radius)
        if any(polygon_iou(poly, t) > cfg.max_overlap_iou for t in taken):
            continue
        taken.append(poly)
        found.append(circle)
    found.sort(key=lambda c: (round(c.center[0], 6), round(c.center[1], 6)))
    return found


def _fit_tangent_chords(
    center: np.ndarray,
    mid: np.ndarray,
    u: np.ndarray,
    p0: np.ndarray,
    p1: np.ndarray,
    length: np.ndarray,
    prob: np.ndarray,
    frames: np.ndarray,
    radius_range: tuple[float, float],
    cfg: LocalizeConfig,
    radius: float | None = None,
) -> CircleSource | None:
    """Circle through the chords tangent to a circle about ``center`` (starting from
    ``radius``, default: the best of :func:`_radius_modes`); None if too little of it
    is seen."""
    if radius is None:
        modes = _radius_modes(center, mid, u, radius_range, cfg, min_sectors=1)
        if not modes:
            return None
        radius = modes[0]
    fit: tuple[float, float, float] | None = (float(center[0]), float(center[1]), radius)
    inl = np.zeros(len(mid), dtype=bool)
    sin_tol = math.sin(math.radians(cfg.tangent_tol_deg))
    # Ends as well as middles on the circle: a straight edge touching the circle (the side
    # of a square round its inscribed circle) has tangent chords whose ends lie outside.
    for tol in (2 * cfg.circle_bin_mm, cfg.circle_bin_mm, cfg.circle_end_tol_mm):
        assert fit is not None
        c = np.array(fit[:2])
        d = mid - c
        dist = np.maximum(np.hypot(d[:, 0], d[:, 1]), 1e-9)
        tangent = np.abs(np.einsum("ij,ij->i", u, d)) / dist <= sin_tol
        on = [np.abs(np.hypot(*(q - c).T) - fit[2]) <= tol for q in (p0, p1)]
        inl = tangent & (np.abs(dist - fit[2]) <= tol) & on[0] & on[1]
        if inl.sum() < 3:
            return None
        fit = fit_circle(np.concatenate([p0[inl], p1[inl], mid[inl]]))
        if fit is None or not radius_range[0] <= fit[2] <= radius_range[1]:
            return None
    assert fit is not None
    cx, cy, r = fit
    covered = np.zeros(72, dtype=bool)
    for a, b in zip(p0[inl], p1[inl], strict=True):
        ang = np.degrees(np.arctan2([a[1] - cy, b[1] - cy], [a[0] - cx, b[0] - cx])) % 360.0
        lo_a, hi_a = sorted(ang)
        if hi_a - lo_a > 180.0:
            lo_a, hi_a = hi_a, lo_a + 360.0
        covered[(np.arange(int(lo_a // 5), int(hi_a // 5) + 1)) % 72] = True
    span = 5.0 * float(covered.sum())
    if span < cfg.min_circle_span_deg:
        return None
    p_mean = float(np.average(prob[inl], weights=length[inl]))
    return CircleSource(
        center=(cx, cy),
        radius=r,
        span_deg=span,
        probability=p_mean * min(1.0, span / 270.0),
        shape_class="round_cover_glass_edge",
        frames=tuple(sorted({int(f) for f in frames[inl]})),
    )


def _radius_modes(
    center: np.ndarray,
    mid: np.ndarray,
    u: np.ndarray,
    radius_range: tuple[float, float],
    cfg: LocalizeConfig,
    min_sectors: int | None = None,
    separation_mm: float = 1.5,
) -> list[float]:
    """Radii about ``center`` whose tangent chords spread round the most of a circle (5
    deg sectors), best first, ``separation_mm`` apart, each covering at least
    ``min_sectors`` sectors (default: ``min_circle_span_deg``). Clutter inside a cover
    glass (tissue) gathers many chords but over few directions."""
    d = mid - center
    dist = np.maximum(np.hypot(d[:, 0], d[:, 1]), 1e-9)
    tangent = np.abs(np.einsum("ij,ij->i", u, d)) / dist <= math.sin(
        math.radians(cfg.tangent_tol_deg)
    )
    ok = tangent & (dist >= radius_range[0]) & (dist < radius_range[1])
    if not ok.any():
        return []
    nbin = math.ceil((radius_range[1] - radius_range[0]) / cfg.circle_bin_mm)
    rbin = ((dist[ok] - radius_range[0]) / cfg.circle_bin_mm).astype(np.int64)
    sector = (np.degrees(np.arctan2(d[ok, 1], d[ok, 0])) % 360.0 // 5.0).astype(np.int64)
    seen = np.zeros((nbin + 2, 72), dtype=bool)
    seen[rbin + 1, sector] = True
    seen = seen[:-2] | seen[1:-1] | seen[2:]
    counts = seen.sum(axis=1)
    need = math.ceil(cfg.min_circle_span_deg / 5.0) if min_sectors is None else min_sectors
    out: list[float] = []
    for i in np.argsort(-counts, kind="stable"):
        if counts[i] < need:
            break
        r = radius_range[0] + (int(i) + 0.5) * cfg.circle_bin_mm
        if all(abs(r - q) >= separation_mm for q in out):
            out.append(r)
    return out


def _structures(
    lines: list[LineSource],
    circles: list[CircleSource],
    roles: dict[int, str],
    entries: list[dict[str, Any]],
    min_probability: float = 0.3,
) -> list[dict[str, Any]]:
    """Fused sources as SPEC structures; the role a line plays in a sample names its class."""
    out: list[dict[str, Any]] = []
    for i, ln in enumerate(lines):
        if i not in roles and ln.probability < min_probability:
            continue
        a, b = ln.endpoints
        nv = ln.normal * 0.1
        out.append(
            {
                "class": roles.get(i, ln.shape_class),
                "polygon_mm": _poly(np.array([a - nv, b - nv, b + nv, a + nv])),
                "probability": float(ln.probability),
                "frames": list(ln.frames),
            }
        )
    for c in circles:
        out.append(
            {
                "class": c.shape_class,
                "polygon_mm": _poly(circle_polygon(c.center, 2 * c.radius)),
                "probability": float(c.probability),
                "frames": list(c.frames),
            }
        )
    labels = [e for e in entries if e["class"] == "label" and e["region_mm"]]
    polys = [np.asarray(e["region_mm"]) for e in labels]
    touching = [
        (i, j)
        for i in range(len(polys))
        for j in range(i + 1, len(polys))
        if polygon_iou(polys[i], polys[j]) > 0.0
    ]
    for group in connected_groups(len(polys), touching):
        pts = np.concatenate([polys[i] for i in group]).astype(np.float32)
        box = cv2.boxPoints(cv2.minAreaRect(pts))
        out.append(
            {
                "class": "label",
                "polygon_mm": _poly(box.astype(np.float64)),
                "probability": float(max(labels[i]["p"] for i in group)),
                "frames": sorted({int(labels[i]["frame"]) for i in group}),
            }
        )
    out.sort(key=lambda s: (s["class"], -round(s["probability"], 9), s["polygon_mm"]))
    return out


def _single_edge_covers(
    ev: _Evidence, covers: list[Rect], circles: list[CircleSource], roles: dict[int, str]
) -> list[Rect]:
    """Cover glasses seen by one whole edge only, placed when the standard sizes allow one
    rectangle alone: the edge's length names one standard size, both its ends (corners)
    lie well inside the frames (not cut off by a frame border), and the glass fits on
    the slide on one side of the edge only. Their score (confidence) is low."""
    cfg = ev.cfg
    if not ev.slides:
        return []
    slide = ev.slides[0]
    taken = _glass_polygons(covers, circles)
    dims = sorted({d for s in COVER_GLASS_SIZES for d in s})
    out: list[Rect] = []
    for i, ln in enumerate(ev.lines):
        if i in roles or ln.shape_class != "straight_cover_glass_edge":
            continue
        near = [v for v in dims if abs(ln.length - v) <= cfg.single_edge_tol_mm]
        if len(near) != 1:
            continue
        d = near[0]
        partners = {b if a == d else a for a, b in COVER_GLASS_SIZES if d in (a, b)}
        if len(partners) != 1 or not _inside_frames(ev.state, ln.endpoints, cfg):
            continue
        e = partners.pop()
        mid = ln.endpoints.mean(axis=0)
        if not _on_any(mid, [slide], -cfg.slide_margin_mm):
            continue  # along the slide's own side: as likely the slide's edge as a glass's
        fits = []
        for sgn in (1.0, -1.0):
            rect = _make_rect(mid + sgn * ln.normal * e / 2, ln.direction, along=d, across=e)
            poly = rect.polygon()
            on_slide = all(_on_any(p, [slide], -0.05) for p in poly)
            if on_slide and all(polygon_iou(poly, t) <= cfg.max_overlap_iou for t in taken):
                fits.append(rect)
        if len(fits) != 1:
            continue
        rect = fits[0]
        rect.score = cfg.single_edge_confidence * ln.probability
        rect.sides_seen = 1
        rect.lines = [i]
        roles[i] = "straight_cover_glass_edge"
        taken.append(rect.polygon())
        out.append(rect)
    return out


def _outline_glasses(
    ev: _Evidence,
    covers: list[Rect],
    circles: list[CircleSource],
    loops: list[PenLoop],
) -> tuple[list[dict[str, Any]], list[Rect], list[CircleSource]]:
    """Cover glasses found by their whole outline on the coarse data (see
    :mod:`samplescout.fuse.outline`), and the glasses found from the edges that they
    leave standing.

    An outline counts on the slide (``outline_slide_margin_mm`` from its sides), with
    no side along a carrier edge (a label's edge and the slide's own sides outline
    slide-sized ghosts) but for long sides along the slide's when its ends are strong
    (:func:`_between_slide_sides`), best first. One scoring at least ``outline_override_z``
    replaces the glasses from edges it overlaps (such a whole outline is stronger
    evidence than a few pieces of edge; a glass from its edges is often a circle
    through pieces of a square's sides), a weaker one only fills a gap. A round
    outline on a marker loop (:func:`_on_loop`) is the loop's dark band, not a glass.
    """
    cfg = ev.cfg
    views = ev.coarse_views if ev.slides else []
    if not views:
        return [], covers, circles
    slide = ev.slides[0]
    canvas = (slide.size[0] + 2.0, slide.size[1] + 2.0)
    hits = rectangle_outlines(
        views, slide.center, slide.angle_deg, canvas, COVER_GLASS_SIZES, cfg.outline
    ) + circle_outlines(
        views, slide.center, slide.angle_deg, canvas, COVER_GLASS_DIAMETERS, cfg.outline
    )
    carrier_edges = _Lines([ln for ln in ev.lines if ln.shape_class == "sample_carrier_edge"])
    valid: list[tuple[OutlineHit, Rect | None, np.ndarray]] = []
    for hit in hits:
        rect = None
        if hit.shape == "rectangle":
            rect = Rect(center=hit.center, size=(hit.size[0], hit.size[1]), angle_deg=hit.angle_deg)
            on_carrier = _sides_seen(rect, carrier_edges, cfg)
            if any(on_carrier) and not _between_slide_sides(hit, on_carrier, cfg):
                continue
            poly = rect.polygon()
        else:
            if _on_loop(hit.center, hit.size[0] / 2.0, loops, cfg):
                continue
            poly = circle_polygon(hit.center, hit.size[0])
        if all(_on_any(p, [slide], -cfg.outline_slide_margin_mm) for p in poly):
            valid.append((hit, rect, poly))
    # A ring wholly inside a well-outlined rectangle is a marker ring drawn round the
    # sample on that glass (a thin dark ring steps up just outside it), not a glass.
    framed = [r for h, r, _ in valid if r is not None and h.z >= cfg.outline_override_z]
    valid = [
        (h, r, poly)
        for h, r, poly in valid
        if r is not None
        or not any(_circle_inside(h.center, h.size[0] / 2, f, cfg.ring_inside_mm) for f in framed)
    ]
    found: list[tuple[Rect | CircleSource, np.ndarray]] = [(r, r.polygon()) for r in covers]
    found += [(c, circle_polygon(c.center, 2 * c.radius)) for c in circles]
    dropped: set[int] = set()  # ids of the glasses from edges that an outline replaced
    taken: list[np.ndarray] = []
    out: list[dict[str, Any]] = []
    for hit, _, poly in sorted(valid, key=lambda t: (-round(t[0].z, 9), t[0].center, t[0].size)):
        if any(polygon_iou(poly, t) > cfg.max_overlap_iou for t in taken):
            continue
        overlapped = [
            id(g)
            for g, gp in found
            if id(g) not in dropped and polygon_iou(poly, gp) > cfg.max_overlap_iou
        ]
        if overlapped and hit.z < cfg.outline_override_z:
            continue
        dropped.update(overlapped)
        taken.append(poly)
        out.append(
            _glass_sample(
                hit.shape,
                hit.center,
                hit.size,
                hit.angle_deg if hit.shape == "rectangle" else 0.0,
                poly,
                hit.z / (hit.z + cfg.outline_half_confidence_z),
            )
        )
    return (
        out,
        [r for r in covers if id(r) not in dropped],
        [c for c in circles if id(c) not in dropped],
    )


def _arc_glasses(
    ev: _Evidence,
    covers: list[Rect],
    circles: list[CircleSource],
    outlined: list[dict[str, Any]],
    loops: list[PenLoop],
) -> list[dict[str, Any]]:
    """Round glasses seen by one short arc of their edge, confirmed by their outline.

    A round glass's thin edge is bright only where it faces the LED ring, so often one
    arc of it is identified: too little for a circle of its own, but it proposes the
    circle (centre and diameter, to a mm or so). At that one place the outline on the
    coarse data is tested, with either sign of the step (:func:`_circle_outline_near`;
    searched over the whole slide, the brighter sign finds the label and the LED
    reflections). Tried
    best arc first: a standard diameter within ``arc_diameter_tol_mm`` of the arc's,
    centred within as much of its centre, whose weakest sixth reaches
    ``arc_glass_min_z``, on the slide, on no marker loop and overlapping no glass found.
    """
    cfg = ev.cfg
    views = ev.coarse_views if ev.slides else []
    if not views:
        return []
    slide = ev.slides[0]
    tol = cfg.arc_diameter_tol_mm
    search = replace(cfg.outline, min_circle_z=cfg.arc_glass_min_z)
    taken = _glass_polygons(covers, circles, outlined)
    arcs = sorted(
        (
            e
            for e in ev.entries
            if e["arc"] is not None
            and e["class"] == "round_cover_glass_edge"
            and not e.get("marker")
        ),
        key=lambda e: (-round(e["p"], 9), e["frame"], e["region"]),
    )
    out: list[dict[str, Any]] = []
    for e in arcs:
        cx, cy, r = (float(v) for v in e["arc"][:3])
        diameters = [d for d in COVER_GLASS_DIAMETERS if abs(d - 2.0 * r) <= tol]
        if not diameters or not _on_any(np.array([cx, cy]), [slide], 0.0):
            continue
        canvas = (2.0 * r + 2.0 * tol + 2.0,) * 2
        best = _circle_outline_near(views, (cx, cy), canvas, diameters, search, tol)
        if best is None or _on_loop(best.center, best.size[0] / 2.0, loops, cfg):
            continue
        poly = circle_polygon(best.center, best.size[0])
        if not all(_on_any(p, [slide], -cfg.outline_slide_margin_mm) for p in poly):
            continue
        if any(polygon_iou(poly, t) > cfg.max_overlap_iou for t in taken):
            continue
        taken.append(poly)
        out.append(
            _glass_sample(
                "circle",
                best.center,
                best.size,
                0.0,
                poly,
                best.z / (best.z + cfg.outline_half_confidence_z),
            )
        )
    return out


def _between_slide_sides(
    hit: OutlineHit, on_carrier: tuple[bool, ...], cfg: LocalizeConfig
) -> bool:
    """Whether an outline whose long sides run along carrier edges is still a glass: a
    24 mm wide glass on a 25-26 mm slide has its long sides within a side's tolerance of
    the slide's, so those say nothing, but its two ends across the slide, on no carrier
    edge, are strong (``outline_ends_z``: the slide's sides alone make no such ends)."""
    across = (1, 3)  # the rectangle's ends: its sides across the slide
    return not any(on_carrier[k] for k in across) and all(
        hit.side_z[k] >= cfg.outline_ends_z for k in across
    )


def _inside_frames(state: FuseState, points: np.ndarray, cfg: LocalizeConfig) -> bool:
    """Whether every point lies at least ``single_edge_margin_mm`` inside some frame
    (True when no frame outline was recorded)."""
    if not state.footprints:
        return True
    polys = [np.asarray(p, dtype=np.float32) for _, p in sorted(state.footprints.items())]
    return all(
        any(
            cv2.pointPolygonTest(p, (float(x), float(y)), True) >= cfg.single_edge_margin_mm
            for p in polys
        )
        for x, y in points
    )
