from __future__ import annotations

import json
import math
import random

import numpy as np
from samplescout.fuse import FuseState, localize
from samplescout.fuse.state import fuse_lines

from samplescout.contracts import Region, Structure
from samplescout.geometry import polygon_iou, rectangle_polygon

_COUNTER = iter(range(10**6))


def _seg(
    p0: tuple[float, float],
    p1: tuple[float, float],
    frame: int = 0,
    cls: str = "straight_cover_glass_edge",
    p: float = 0.8,
) -> Structure:
    region = Region(
        frame_index=frame, region_index=next(_COUNTER), box_px=(0, 0, 256, 256), probability=0.9
    )
    return Structure(region=region, shape_class=cls, probability=p, segment_mm=(p0, p1))


def _arc(cx: float, cy: float, r: float, a0: float, a1: float, frame: int = 0) -> Structure:
    region = Region(
        frame_index=frame, region_index=next(_COUNTER), box_px=(0, 0, 256, 256), probability=0.9
    )
    return Structure(
        region=region,
        shape_class="round_cover_glass_edge",
        probability=0.8,
        arc_mm=(cx, cy, r, a0, a1),
    )


def _pieces(
    a: np.ndarray,
    b: np.ndarray,
    step: float,
    frame: int,
    cls: str,
    jitter: float = 0.0,
    seed: int = 0,
) -> list[Structure]:
    """The edge a-b cut into tile-sized pieces, each seen a little differently."""
    rng = np.random.default_rng(seed)
    n = max(1, int(np.linalg.norm(b - a) // step))
    out = []
    for k in range(n):
        p0 = a + (b - a) * k / n + rng.normal(0, jitter, 2)
        p1 = a + (b - a) * (k + 1) / n + rng.normal(0, jitter, 2)
        out.append(_seg(tuple(p0), tuple(p1), frame=frame, cls=cls))
    return out


def _rectangle_edges(
    center: tuple[float, float],
    size: tuple[float, float],
    angle: float,
    frame: int,
    cls: str,
    seed: int,
) -> list[Structure]:
    poly = rectangle_polygon(center, size, angle)
    out: list[Structure] = []
    for k in range(4):
        out += _pieces(poly[k], poly[(k + 1) % 4], 3.0, frame, cls, jitter=0.01, seed=seed + k)
    return out


def _scene() -> list[Structure]:
    """A 75 x 25 slide with a 24 x 40 cover glass and a 15 mm round one, seen by two frames."""
    out: list[Structure] = []
    for frame in (0, 1):
        out += _rectangle_edges(
            (40.0, 20.0), (75.0, 25.0), 0.4, frame, "sample_carrier_edge", 10 * frame
        )
        out += _rectangle_edges(
            (30.0, 20.3), (40.0, 24.0), 1.2, frame, "straight_cover_glass_edge", 100 + frame
        )
        for k in range(6):
            out.append(_arc(62.0, 20.0, 7.5, 60.0 * k + 5, 60.0 * k + 40, frame=frame))
    out.append(_seg((50.0, 12.0), (51.0, 13.5), cls="straight_structure", p=0.5))  # a scratch
    return out


def test_two_frames_seeing_one_edge_give_one_source() -> None:
    a = _seg((10.0, 5.0), (13.0, 5.02), frame=0)
    b = _seg((12.5, 5.03), (15.5, 5.05), frame=1)
    state = FuseState()
    state.add([a, b])
    sources = fuse_lines(state.sorted_structures())
    assert len(sources) == 1
    assert sources[0].frames == (0, 1)
    assert sources[0].t1 - sources[0].t0 > 5.4


def test_perpendicular_edges_at_a_corner_stay_two() -> None:
    state = FuseState()
    state.add([_seg((10.0, 5.0), (13.0, 5.0)), _seg((13.0, 5.0), (13.0, 8.0))])
    assert len(fuse_lines(state.sorted_structures())) == 2


def test_parallel_edges_a_little_apart_stay_two() -> None:
    state = FuseState()
    state.add([_seg((10.0, 5.0), (13.0, 5.0)), _seg((10.0, 5.5), (13.0, 5.5))])
    assert len(fuse_lines(state.sorted_structures())) == 2


def test_majority_vote_of_shape_classes() -> None:
    pieces = [
        _seg((10.0, 5.0), (13.0, 5.0), frame=0, cls="straight_cover_glass_edge"),
        _seg((12.0, 5.0), (15.0, 5.0), frame=1, cls="straight_cover_glass_edge"),
        _seg((14.0, 5.0), (17.0, 5.0), frame=2, cls="straight_structure"),
    ]
    state = FuseState()
    state.add(pieces)
    (source,) = fuse_lines(state.sorted_structures())
    assert source.shape_class == "straight_cover_glass_edge"


def test_no_structure_is_only_counted() -> None:
    region = Region(frame_index=0, region_index=0, box_px=(0, 0, 8, 8), probability=0.5)
    state = FuseState()
    state.add([Structure(region=region, shape_class="no_structure", probability=0.9)])
    assert state.structures == [] and state.empty_regions == 1


def test_state_round_trips_through_json() -> None:
    state = FuseState()
    state.add(_scene())
    state.add_frame(0, [[0.0, 0.0], [20.0, 0.0], [20.0, 15.0], [0.0, 15.0]])
    again = FuseState.from_dict(json.loads(json.dumps(state.to_dict())))
    assert again.to_dict() == state.to_dict()
    assert localize(again, "slide") == localize(state, "slide")


def test_localize_slide_scene() -> None:
    state = FuseState()
    state.add(_scene())
    result = localize(state, None)
    assert result["carrier"] == "slide"
    assert result["plate"] is None and result["barcodes"] == []
    samples = result["samples"]
    assert [s["label"] for s in samples] == ["1", "2"]
    rect, circle = samples
    assert rect["shape"] == "rectangle" and rect["element"] == "cover_glass"
    assert sorted(rect["size_mm"]) == [24.0, 40.0]
    assert -90.0 < rect["angle_deg"] <= 90.0
    assert (
        polygon_iou(rect["polygon_mm"], rectangle_polygon((30.0, 20.3), (40.0, 24.0), 1.2)) > 0.98
    )
    assert circle["shape"] == "circle" and circle["size_mm"] == [15.0]
    assert math.dist(circle["center_mm"], (62.0, 20.0)) < 0.05
    assert len(circle["polygon_mm"]) >= 32
    classes = {s["class"] for s in result["structures"]}
    assert {"sample_carrier_edge", "straight_cover_glass_edge", "round_cover_glass_edge"} <= classes
    for s in result["structures"]:
        assert s["frames"] == sorted(s["frames"])


def test_partial_cover_glass_from_three_sides() -> None:
    """Three sides of an 18 x 18 cover glass are enough to place it."""
    poly = rectangle_polygon((30.0, 20.0), (18.0, 18.0), -2.0)
    pieces: list[Structure] = []
    for k in range(3):
        pieces += _pieces(poly[k], poly[(k + 1) % 4], 3.0, 0, "straight_cover_glass_edge")
    state = FuseState()
    state.add(pieces)
    (sample,) = localize(state, "slide")["samples"]
    assert sample["size_mm"] == [18.0, 18.0]
    assert polygon_iou(sample["polygon_mm"], poly) > 0.97


def test_redelivered_structures_count_once() -> None:
    structures = _scene()
    once, twice = FuseState(), FuseState()
    once.add(structures)
    twice.add(structures)
    twice.add(structures[:20])
    assert localize(twice, None) == localize(once, None)


def test_localize_does_not_depend_on_arrival_order() -> None:
    structures = _scene()
    ref = FuseState()
    ref.add(structures)
    expected = localize(ref, None)
    for seed in range(3):
        shuffled = structures[:]
        random.Random(seed).shuffle(shuffled)
        state = FuseState()
        for k in range(0, len(shuffled), 7):
            state.add(shuffled[k : k + 7])
        assert localize(state, None) == expected


def test_fuse_is_fast_for_hundreds_of_structures() -> None:
    import time

    structures = _scene() * 4
    state = FuseState()
    state.add(structures)
    assert len(state.structures) > 300
    t = time.perf_counter()
    localize(state, None)
    assert time.perf_counter() - t < 2.0
