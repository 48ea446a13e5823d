"""Adaptive overview path: planner decisions on synthetic localizations, live sessions."""

from __future__ import annotations

import importlib
import math
from typing import Any

import numpy as np
import pytest

from samplescout.acquire.drivers import MicroscopeSource, SimulatedMicroscope
from samplescout.app import AdaptiveSource, EmbeddedPipeline, localize_adaptive
from samplescout.cli import main
from samplescout.config import Settings
from samplescout.contracts import Region, Structure
from samplescout.control.adaptive import AdaptiveConfig, AdaptivePlanner, raster_frame_count
from samplescout.fuse import FuseState, localize
from samplescout.fuse.localize import LocalizeConfig
from samplescout.geometry import polygon_iou, rectangle_polygon
from samplescout.microscope import MicroscopeInfo

SLIDE_INFO = MicroscopeInfo(
    name="synthetic",
    camera_width=640,
    camera_height=480,
    pixel_size_mm=0.03125,  # a 20 x 15 mm field
    rotation_deg=0.0,
    stage_min_mm=(0.0, 0.0),
    stage_max_mm=(80.0, 30.0),
    carrier="slide",
)


def _frame(x: float, y: float) -> np.ndarray:
    return rectangle_polygon((x, y), (20.0, 15.0), 0.0)


def _edge(a: tuple[float, float], b: tuple[float, float], cls: str) -> dict[str, Any]:
    pa, pb = np.asarray(a, float), np.asarray(b, float)
    d = (pb - pa) / np.linalg.norm(pb - pa)
    n = np.array([-d[1], d[0]]) * 0.1
    return {
        "class": cls,
        "polygon_mm": [list(pa - n), list(pb - n), list(pb + n), list(pa + n)],
        "probability": 0.9,
        "frames": [0],
    }


def _cover(center: tuple[float, float], size: tuple[float, float]) -> dict[str, Any]:
    return {
        "element": "cover_glass",
        "shape": "rectangle",
        "center_mm": list(center),
        "size_mm": list(size),
        "angle_deg": 0.0,
        "polygon_mm": rectangle_polygon(center, size, 0.0).tolist(),
        "confidence": 0.9,
        "label": "1",
    }


def _doc(samples=(), structures=()) -> dict[str, Any]:
    return {"carrier": "slide", "samples": list(samples), "structures": list(structures)}


def test_first_frame_starts_in_the_slide_middle() -> None:
    step = AdaptivePlanner(SLIDE_INFO).next(None)
    assert step.center_mm is not None and step.reason == "discover"
    assert 25.0 <= step.center_mm[0] <= 55.0  # the middle, not an end that may be the label


def test_stops_when_every_cover_glass_is_closed_and_nothing_can_hide() -> None:
    planner = AdaptivePlanner(SLIDE_INFO)
    for x in (9.5, 27.0, 44.5, 62.0, 70.5):  # two rows over the whole opening
        for y in (7.0, 23.0):
            planner.record(_frame(x, y))
    doc = _doc([_cover((40.0, 15.0), (40.0, 24.0))])
    assert planner.closed(doc)
    step = planner.next(doc)
    assert step.stop and step.reason == "closed"


def test_follows_an_open_cover_glass_edge_towards_its_open_end() -> None:
    planner = AdaptivePlanner(SLIDE_INFO)
    for x in (9.5, 29.5, 49.5, 70.5):  # the middle band, end to end: nothing can hide
        planner.record(_frame(x, 15.0))
    # a cover-glass edge leaving the band at its bottom border (y = 22.5), open below
    doc = _doc(structures=[_edge((40.0, 12.0), (40.0, 22.4), "straight_cover_glass_edge")])
    step = planner.next(doc)
    assert step.reason == "follow edge"
    assert step.center_mm is not None
    x, y = step.center_mm
    assert y > 20.0 and abs(x - 40.0) < 10.0  # the frame goes down along the edge
    # once the edge is seen to end inside a frame, there is nothing left to follow
    planner.record(_frame(*step.center_mm))
    closed = _doc(structures=[_edge((40.0, 12.0), (40.0, 26.0), "straight_cover_glass_edge")])
    assert planner.next(closed).stop


def test_an_unclosed_cover_glass_asks_for_its_missing_side() -> None:
    planner = AdaptivePlanner(SLIDE_INFO)
    for x in (9.5, 29.5, 49.5, 70.5):
        planner.record(_frame(x, 15.0))
    # a 24 mm wide pair seen in the band: the long sides (top/bottom) are still unseen
    doc = _doc([_cover((40.0, 15.0), (24.0, 24.0))])
    assert not planner.closed(doc)
    step = planner.next(doc)
    assert step.reason == "close sample" and step.center_mm is not None
    assert step.center_mm[1] < 7.5 or step.center_mm[1] > 22.5


def test_skips_the_label_end() -> None:
    planner = AdaptivePlanner(SLIDE_INFO)
    label = {
        "class": "label",
        "polygon_mm": rectangle_polygon((12.5, 15.0), (20.0, 25.0), 0.0).tolist(),
        "probability": 0.9,
        "frames": [0],
    }
    doc = _doc(structures=[label])
    seen = []
    for _ in range(raster_frame_count(SLIDE_INFO)):
        step = planner.next(doc)
        if step.stop:
            break
        assert step.center_mm is not None
        seen.append(step.center_mm)
        planner.record(_frame(*step.center_mm))
    assert seen and all(x - 10.0 > 15.0 for x, _ in seen), seen  # no frame on the label


PLATE_INFO = MicroscopeInfo(
    "plate", 640, 480, 0.03125, 0.0, (0.0, 0.0), (130.0, 88.0), carrier="multiwell"
)


def _plate_doc(
    a1: tuple[float, float], rows: int = 8, cols: int = 12, pitch: float = 9.0, size: float = 6.4
) -> dict[str, Any]:
    """A fitted plate whose wells all have evidence (confidence 0.9)."""
    from samplescout.standards import well_name

    plate = {
        "rows": rows,
        "cols": cols,
        "wells": rows * cols,
        "a1_center_mm": list(a1),
        "rotation_deg": 0.0,
        "well_spacing_mm": [pitch, pitch],
        "well_size_mm": size,
        "circular_wells": True,
    }
    wells = [
        {
            "element": "well",
            "shape": "circle",
            "center_mm": [a1[0] + c * pitch, a1[1] + r * pitch],
            "size_mm": [size],
            "angle_deg": 0.0,
            "polygon_mm": rectangle_polygon(
                (a1[0] + c * pitch, a1[1] + r * pitch), (size, size), 0.0
            ).tolist(),
            "confidence": 0.9,
            "label": well_name(r, c),
        }
        for r in range(rows)
        for c in range(cols)
    ]
    return {"carrier": "multiwell", "samples": wells, "structures": [], "plate": plate}


def test_plate_stops_once_two_opposite_corner_wells_are_seen() -> None:
    planner = AdaptivePlanner(PLATE_INFO)
    first = planner.next(None)
    assert first.reason == "plate corner" and first.center_mm is not None
    planner.record(_frame(*first.center_mm))
    doc = _plate_doc((15.5, 12.5))  # a 96-well grid centred in the opening
    corners = {"A1": (15.5, 12.5), "A12": (114.5, 12.5), "H1": (15.5, 75.5), "H12": (114.5, 75.5)}
    taken = [first.center_mm]
    for _ in range(6):
        step = planner.next(doc)
        if step.stop:
            break
        assert step.reason == "plate corner" and step.center_mm is not None
        taken.append(step.center_mm)
        planner.record(_frame(*step.center_mm))
    assert planner.closed(doc) and len(taken) <= 5

    def seen(name: str) -> bool:
        x, y = corners[name]
        return any(abs(x - cx) <= 10 - 4.2 and abs(y - cy) <= 7.5 - 4.2 for cx, cy in taken)

    assert (seen("A1") and seen("H12")) or (seen("A12") and seen("H1"))
    # the same frames do not close a grid whose corner wells lack evidence of their own
    weak = _plate_doc((15.5, 12.5))
    for s in weak["samples"]:
        if s["label"] in ("A1", "A12", "H1", "H12"):
            s["confidence"] = 0.3
    assert not planner.closed(weak)


def test_plate_grid_off_the_holder_centre_is_not_trusted() -> None:
    # a 6-well grid fitted two columns too far right (A1 on the true A3): its corner
    # wells reach out of the holder and its centre is far from the opening's centre
    planner = AdaptivePlanner(PLATE_INFO)
    for x in (10.0, 30.0, 50.0, 70.0, 90.0, 110.0, 120.0):
        for y in (7.5, 22.5, 37.5, 52.5, 67.5, 80.5):
            planner.record(_frame(x, y))
    wrong = _plate_doc((103.7, 24.1), rows=2, cols=3, pitch=39.12, size=34.8)
    assert not planner.closed(wrong)
    right = _plate_doc((25.9, 24.4), rows=2, cols=3, pitch=39.12, size=34.8)
    assert planner.closed(right)
    # a non-standard layout (a 96-well pitch on a 6-well grid) is not trusted either
    odd = _plate_doc((25.9, 24.4), rows=2, cols=3, pitch=9.0, size=6.4)
    assert not planner.closed(odd)


def test_plate_without_a_trusted_grid_falls_back_to_covering_the_plate() -> None:
    planner = AdaptivePlanner(PLATE_INFO)
    wrong = _plate_doc((103.7, 24.1), rows=2, cols=3, pitch=39.12, size=34.8)
    taken = []
    for _ in range(100):
        step = planner.next(wrong)
        if step.stop:
            break
        assert step.center_mm is not None
        taken.append(step.center_mm)
        planner.record(_frame(*step.center_mm))
    assert step.reason in ("nothing useful left", "frame limit")
    assert len(taken) <= raster_frame_count(PLATE_INFO)
    # every point of the opening lies in a frame (up to the slivers between tiles)
    xs, ys = np.meshgrid(np.linspace(1, 129, 40), np.linspace(1, 87, 30))
    for x, y in zip(xs.ravel(), ys.ravel(), strict=True):
        assert any(abs(x - cx) <= 10.0 and abs(y - cy) <= 7.5 for cx, cy in taken), (x, y)


def test_chamber_slide_is_tiled_whole_overlapping_across_the_slide() -> None:
    info = MicroscopeInfo(
        "chambers", 640, 480, 0.03125, 0.0, (0.0, 0.0), (80.0, 30.0), carrier="chamber_slide"
    )
    planner = AdaptivePlanner(info)
    doc = {"carrier": "chamber_slide", "samples": [], "structures": []}
    taken = []
    for _ in range(20):
        step = planner.next(doc)
        if step.stop:
            break
        assert step.reason == "cover carrier" and step.center_mm is not None
        taken.append(step.center_mm)
        planner.record(_frame(*step.center_mm))
    assert step.reason == "closed"
    # 4 columns tile the 80 mm flush; across the slide 3 rows overlap so that its
    # long midline (a two-row module's middle wall) lies well inside a frame: 12 of
    # the raster's 15 (4 x 2 flush tiles put a border on the midline: seed 3's
    # 8-chamber slide got a wrong layout)
    assert sorted(taken) == [(x, y) for x in (10.0, 30.0, 50.0, 70.0) for y in (7.5, 15.0, 22.5)]
    assert raster_frame_count(info) == 15
    flush = AdaptivePlanner(info, config=AdaptiveConfig(cover_clear_mm=0.0))
    assert len(flush._tiles.nonzero()[0]) == 8


def _arc_piece(centre: tuple[float, float], r: float, deg: float) -> dict[str, Any]:
    """A 2.4 mm straight piece of a circle's outline (an arc not fitted yet)."""
    t = math.radians(deg)
    mid = np.array(centre) + r * np.array([math.cos(t), math.sin(t)])
    tangent = np.array([-math.sin(t), math.cos(t)])
    a, b = mid - 1.2 * tangent, mid + 1.2 * tangent
    return _edge((a[0], a[1]), (b[0], b[1]), "straight_cover_glass_edge")


ARCS = AdaptiveConfig(follow_arcs=True)


def test_unfitted_arcs_of_a_round_glass_are_followed() -> None:
    planner = AdaptivePlanner(SLIDE_INFO, config=ARCS)
    for x in (9.5, 29.5, 49.5, 70.5):  # the middle band, y 7.5..22.5: nothing can hide
        planner.record(_frame(x, 15.0))
    # a 13 mm round glass at (35, 8): the band shows its lower arcs as short pieces
    # whose directions disagree; no sample explains them
    arcs = _doc(structures=[_arc_piece((35.0, 8.0), 6.5, d) for d in (30, 60, 90, 120, 150)])
    step = planner.next(arcs)
    assert step.reason == "follow edge" and step.center_mm is not None
    assert abs(step.center_mm[0] - 35.0) < 10.0 and step.center_mm[1] < 15.0  # up, to the rest
    # collinear pieces (one straight edge seen in parts) inside the band are not arcs
    planner = AdaptivePlanner(SLIDE_INFO, config=ARCS)
    for x in (9.5, 29.5, 49.5, 70.5):
        planner.record(_frame(x, 15.0))
    straight = _doc(
        structures=[
            _edge((x, 15.0), (x + 2.4, 15.0), "straight_cover_glass_edge") for x in (30, 34, 38)
        ]
    )
    assert planner.next(straight).reason != "follow edge"
    # off by default
    planner = AdaptivePlanner(SLIDE_INFO)
    for x in (9.5, 29.5, 49.5, 70.5):
        planner.record(_frame(x, 15.0))
    assert planner.next(arcs).reason != "follow edge"
    # once a found round glass explains the arcs, they ask for nothing
    glass = {
        "element": "cover_glass",
        "shape": "circle",
        "center_mm": [35.0, 8.0],
        "size_mm": [13.0],
        "angle_deg": 0.0,
        "polygon_mm": [
            [35.0 + 6.5 * math.cos(t), 8.0 + 6.5 * math.sin(t)]
            for t in np.linspace(0, 2 * math.pi, 32, endpoint=False)
        ],
        "confidence": 0.9,
        "label": "1",
    }
    planner2 = AdaptivePlanner(SLIDE_INFO, config=ARCS)
    for x in (9.5, 29.5, 49.5, 70.5):
        planner2.record(_frame(x, 15.0))
    explained = _doc([glass], arcs["structures"])
    assert planner2.next(explained).reason != "follow edge"


def _recall(result: dict[str, Any], truth: dict[str, Any]) -> list[float]:
    return [
        max((polygon_iou(g["polygon_mm"], s["polygon_mm"]) for s in result["samples"]), default=0)
        for g in truth["samples"]
    ]


@pytest.mark.parametrize("seed", [0, 3, 5])
def test_adaptive_path_finds_every_cover_glass_the_raster_finds(seed: int) -> None:
    from samplescout.acquire.scene import ground_truth

    def scope() -> SimulatedMicroscope:
        return SimulatedMicroscope(carrier="slide", profile="narrow", seed=seed, frame_scale=0.4)

    raster_source = MicroscopeSource(scope())
    raster = EmbeddedPipeline(settings=Settings()).run(raster_source)
    live = scope()
    adaptive, frames = localize_adaptive(live, Settings())
    truth = ground_truth(live.scene)
    assert frames < raster_source.frame_count
    assert frames <= math.ceil(raster_source.frame_count / 2) + 1
    found_raster = [iou >= 0.5 for iou in _recall(raster, truth)]
    found_adaptive = [iou >= 0.5 for iou in _recall(adaptive, truth)]
    assert all(a or not r for a, r in zip(found_adaptive, found_raster, strict=True))
    stats = adaptive["stats"]["adaptive"]
    assert stats["frames"] == frames == adaptive["stats"]["frames"]
    assert len(stats["path_mm"]) == frames


def test_adaptive_source_is_deterministic() -> None:
    paths = []
    for _ in range(2):
        scope = SimulatedMicroscope(carrier="petri_dish", profile="narrow", seed=1, frame_scale=0.3)
        pipe = EmbeddedPipeline(settings=Settings())
        from samplescout.app import latest_localization

        source = AdaptiveSource(scope, lambda p=pipe: latest_localization(p.events, "s"))
        assert source.frame_count == 0
        pipe.run(source, session_id="s", progressive=True)
        paths.append(source.taken)
    assert paths[0] == paths[1] and 0 < len(paths[0]) < 20


def test_cli_localize_adaptive(tmp_path, capsys) -> None:
    out = tmp_path / "result.json"
    code = main(["localize", "--microscope", "sim:petri_dish", "--adaptive", "--out", str(out)])
    assert code == 0
    import json

    doc = json.loads(out.read_text())
    assert doc["stats"]["adaptive"]["frames"] < doc["stats"]["adaptive"]["raster_frames"]
    assert main(["localize", "tests", "--adaptive", "--out", str(tmp_path / "x.json")]) == 2


# -- localizer: cover glasses from the sparse views of an adaptive path ---------------


def _edge_structures(
    a: tuple[float, float], b: tuple[float, float], cls: str, frame: int = 0, step: float = 3.0
) -> list[Structure]:
    """The edge a-b as tile-sized identified pieces."""
    pa, pb = np.asarray(a, float), np.asarray(b, float)
    n = max(1, int(np.linalg.norm(pb - pa) // step))
    out: list[Structure] = []
    for k in range(n):
        p0, p1 = pa + (pb - pa) * k / n, pa + (pb - pa) * (k + 1) / n
        region = Region(frame, 1000 * frame + len(out), (0, 0, 256, 256), 0.9)
        out.append(
            Structure(
                region=region,
                shape_class=cls,
                probability=0.9,
                segment_mm=((float(p0[0]), float(p0[1])), (float(p1[0]), float(p1[1]))),
            )
        )
    return out


def test_cover_glass_edge_next_to_the_slide_edge_is_kept() -> None:
    """A 24 mm glass on a slide runs right along the slide's edge, and the slide is
    fitted 26 mm wide from a holder edge (its own top edge unseen): the glass edge lies
    within the fitted slide's 0.3 mm inner margin, and the slide's position is that
    uncertain. It still counts (seed 4 lost its 24 x 24 mm glass so)."""
    state = FuseState()
    carrier = "sample_carrier_edge"
    glass = "straight_cover_glass_edge"
    for a, b, cls in (
        ((3.5, 3.7), (79.5, 3.7), carrier),  # the slide's bottom edge
        ((3.5, 30.3), (79.5, 30.3), carrier),  # the holder opening, 26.6 mm above it
        ((3.5, 3.7), (3.5, 29.7), carrier),
        ((79.5, 3.7), (79.5, 29.7), carrier),
        ((50.0, 3.9), (74.0, 3.9), glass),  # the glass: bottom whole, sides in part,
        ((50.0, 5.9), (50.0, 24.9), glass),  # top not seen
        ((74.0, 5.9), (74.0, 24.9), glass),
    ):
        state.add(_edge_structures(a, b, cls))
    truth = rectangle_polygon((62.0, 15.9), (24.0, 24.0), 0.0)
    (sample,) = localize(state, "slide")["samples"]
    assert sample["size_mm"] == [24.0, 24.0]
    assert polygon_iou(sample["polygon_mm"], truth) > 0.95
    # the old rule (only edges 0.3 mm inside the fitted slide) lost the glass
    assert localize(state, "slide", LocalizeConfig(slide_margin_mm=-0.3))["samples"] == []


def test_marker_ring_inside_a_rectangular_glass_is_not_a_glass() -> None:
    """A 15 mm marker ring drawn round the sample on an 18 x 18 mm glass seen on three
    sides: one rectangular glass, no round one (seed 0, held-out seeds 14 and 17)."""
    state = FuseState()
    poly = rectangle_polygon((40.0, 15.0), (18.0, 18.0), 0.0)
    for k in range(3):
        state.add(
            _edge_structures(tuple(poly[k]), tuple(poly[(k + 1) % 4]), "straight_cover_glass_edge")
        )
    for a0 in range(0, 360, 30):
        region = Region(1, 2000 + a0, (0, 0, 256, 256), 0.9)
        state.add(
            [
                Structure(
                    region=region,
                    shape_class="round_cover_glass_edge",
                    probability=0.95,
                    arc_mm=(40.0, 15.5, 7.5, float(a0), float(a0 + 30)),
                )
            ]
        )
    (sample,) = localize(state, "slide")["samples"]
    assert sample["shape"] == "rectangle" and sample["size_mm"] == [18.0, 18.0]
    assert polygon_iou(sample["polygon_mm"], poly) > 0.95
    # without the rule the ring wins over the three-sided glass
    shapes = [
        s["shape"] for s in localize(state, "slide", LocalizeConfig(ring_inside_mm=99.0))["samples"]
    ]
    assert shapes == ["circle"]


def test_a_seen_side_without_an_edge_does_not_close_a_24_mm_glass() -> None:
    """A 24 x 24 mm glass placed on the right part of a 24 x 50 mm one (seed 23): its
    left side lies inside the frames but no edge runs there, and a longer 24 mm glass
    could continue, so its long sides are followed past it."""
    glass = _cover((63.0, 15.5), (24.0, 24.0))  # x 51..75, y 3.5..27.5
    edges = [
        _edge((75.0, 3.5), (75.0, 27.5), "straight_cover_glass_edge"),
        _edge((58.0, 27.5), (72.0, 27.5), "straight_cover_glass_edge"),
        _edge((66.0, 3.5), (74.0, 3.5), "straight_cover_glass_edge"),
    ]
    doc = _doc([glass], edges)

    def planner(config: AdaptiveConfig | None = None) -> AdaptivePlanner:
        p = AdaptivePlanner(SLIDE_INFO, config=config)
        for x in (10.0, 30.0, 50.0, 70.0):  # the middle band: nothing can hide
            p.record(_frame(x, 15.0))
        for y in (7.0, 23.0):  # the glass's long sides on its right part
            p.record(_frame(66.0, y))
        return p

    step = planner().next(doc)
    assert step.reason == "close sample" and step.center_mm is not None
    assert step.center_mm[0] < 51.0  # to the left, along the long sides
    # with an edge on the left side the glass is closed
    closed = _doc([glass], [*edges, _edge((51.0, 5.0), (51.0, 26.0), "straight_cover_glass_edge")])
    assert planner().closed(closed)
    # without the check the empty side closed it
    assert planner(AdaptiveConfig(check_empty_sides=False)).closed(doc)


def test_marker_ring_inside_a_round_glass_gives_the_glass() -> None:
    """A 12 mm marker ring round the sample on an 18 mm round glass shares its centre
    and is seen whole: the glass, not the ring (held-out seed 15)."""
    state = FuseState()
    arcs = [(9.0, a0) for a0 in range(0, 270, 30)] + [(6.0, a0) for a0 in range(0, 360, 30)]
    for k, (r, a0) in enumerate(arcs):
        region = Region(0, 3000 + k, (0, 0, 256, 256), 0.9)
        state.add(
            [
                Structure(
                    region=region,
                    shape_class="round_cover_glass_edge",
                    probability=0.95,
                    arc_mm=(40.0, 15.0, r, float(a0), float(a0 + 30)),
                )
            ]
        )
    (sample,) = localize(state, "slide")["samples"]
    assert sample["shape"] == "circle" and sample["size_mm"] == [18.0]
    # one radius per centre (before): the ring, seen all round, won
    from samplescout.fuse.localize import _chords, _find_circles

    entries = state.sorted_structures()
    (ring,) = _find_circles(_chords(entries), (9.4, 25.6), LocalizeConfig())
    assert abs(2 * ring.radius - 12.0) < 0.5


def test_a_covered_chamber_slide_skips_the_per_frame_localization() -> None:
    """The chamber path does not read the localization, so fuse does not compute it
    after every frame (its chamber fit is the costly part); a dish path does."""
    from samplescout.app import latest_localization
    from samplescout.v1 import pipeline_pb2

    updates = {}
    for carrier in ("chamber_slide", "petri_dish"):
        scope = SimulatedMicroscope(carrier=carrier, profile="narrow", seed=1, frame_scale=0.3)
        pipe = EmbeddedPipeline(settings=Settings())
        source = AdaptiveSource(scope, lambda p=pipe: latest_localization(p.events, "s"))
        result = pipe.run(source, session_id="s", progressive=True)
        assert result["samples"] and len(source.taken) > 1
        updates[carrier] = sum(
            e.kind == pipeline_pb2.SESSION_EVENT_KIND_LOCALIZATION_UPDATED
            for e in pipe.events.events("s")
        )
    # the chamber session publishes only its final localization
    assert updates["chamber_slide"] == 1 < updates["petri_dish"]


def test_a_slide_end_classed_as_a_glass_edge_makes_no_glass(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """On faint frames the slide's own outline is classed as cover-glass edges. The
    margin outside the fitted slide is for a glass flush with a long side only: with it
    on the slide's end too, two long edges and the end closed a 50 x 24 mm ghost glass
    over two real round ones (held-out narrow hard slide 100)."""
    # the module, not the function of the same name the package exports
    loc = importlib.import_module("samplescout.fuse.localize")
    state = FuseState()
    carrier = "sample_carrier_edge"
    glass = "straight_cover_glass_edge"
    for a, b, cls in (
        ((0.0, 2.0), (76.0, 2.0), carrier),  # the fitted slide, 76 x 26 mm
        ((0.0, 28.0), (76.0, 28.0), carrier),
        ((0.0, 2.0), (0.0, 28.0), carrier),
        ((76.0, 2.0), (76.0, 28.0), carrier),
        ((26.0, 3.0), (75.0, 3.0), glass),  # the slide's real edges, classed as glass
        ((26.0, 27.0), (75.0, 27.0), glass),
        ((76.3, 3.5), (76.3, 26.5), glass),  # its real end, just outside the fit
    ):
        state.add(_edge_structures(a, b, cls))
    assert localize(state, "slide")["samples"] == []
    monkeypatch.setattr(loc, "_along_long_side", lambda line, rect: True)
    assert localize(state, "slide")["samples"], "the margin on every side closes the ghost"
