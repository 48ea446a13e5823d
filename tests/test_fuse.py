from __future__ import annotations

import json
import math
import random
from dataclasses import replace
from typing import Any

import numpy as np
import pytest

from samplescout.contracts import Region, Structure
from samplescout.fuse import FuseState, localize
from samplescout.fuse.localize import LocalizeConfig, Rect, _Lines, _score
from samplescout.fuse.state import LineSource, fuse_lines
from samplescout.geometry import (
    FrameGeometry,
    Pose,
    polygon_iou,
    rectangle_polygon,
    rotation_matrix,
)

from conftest import StaticViews, plate_frame

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
    state.add_frame(0, FrameGeometry(Pose((10.0, 7.5), 0.01), 2000, 1500))
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


def test_probabilistic_vote_uses_class_distributions() -> None:
    """Two unsure pieces say cover glass, one sure piece says carrier edge: the majority
    vote and the product of the distributions disagree, as they should."""
    from samplescout.fuse.state import vote

    def entry(cls: str, probs: dict[str, float]) -> dict[str, object]:
        return {"class": cls, "p": max(probs.values()), "probs": probs}

    unsure = {"straight_cover_glass_edge": 0.5, "sample_carrier_edge": 0.45, "no_structure": 0.05}
    sure = {"sample_carrier_edge": 0.99, "straight_cover_glass_edge": 0.01}
    members = [
        entry("straight_cover_glass_edge", unsure),
        entry("straight_cover_glass_edge", unsure),
        entry("sample_carrier_edge", sure),
    ]
    weights = np.ones(3)
    assert vote(members, weights, "majority")[0] == "straight_cover_glass_edge"
    assert vote(members, weights, "probabilistic")[0] == "sample_carrier_edge"


def test_vote_stops_early_once_decided_with_the_same_answer() -> None:
    from samplescout.fuse.state import vote

    members = [{"class": "well", "p": 0.9}] * 8 + [{"class": "label", "p": 0.9}]
    cls, early = vote(members, np.ones(9))
    assert cls == "well" and early
    assert vote(members[::-1], np.ones(9))[0] == "well"


def test_probabilistic_vote_is_selectable_in_localize() -> None:
    from samplescout.fuse import LocalizeConfig

    state = FuseState()
    state.add(_scene())
    result = localize(state, "slide", LocalizeConfig(vote="probabilistic"))
    assert len(result["samples"]) == 2


def _well_arcs(center: np.ndarray, diameter: float, frame: int = 0) -> list[Structure]:
    """A well's outline as four 80 deg arcs (what identification reports for a well)."""
    return [
        _arc(float(center[0]), float(center[1]), diameter / 2, 90.0 * k, 90.0 * k + 80.0, frame)
        for k in range(4)
    ]


def test_well_grid_from_an_outer_row_and_column() -> None:
    """Only row A, column 1 and the plate's left and top edges are seen: the whole
    96-well grid follows, named A1..H12, with its rotation and pose."""
    from samplescout.geometry import rotation_matrix

    angle, a1 = 0.6, np.array([20.0, 15.0])
    rot = rotation_matrix(angle)
    structures: list[Structure] = []
    for col in range(12):
        structures += _well_arcs(a1 + rot @ np.array([9.0 * col, 0.0]), 6.4)
    for row in range(1, 8):
        structures += _well_arcs(a1 + rot @ np.array([0.0, 9.0 * row]), 6.4)
    corner = a1 - rot @ np.array([14.38, 11.24])  # SBS: A1 is 14.38, 11.24 mm from the corner
    for p0, p1 in ((corner, corner + rot @ [60.0, 0.0]), (corner, corner + rot @ [0.0, 60.0])):
        structures += _pieces(p0, p1, 5.0, 0, "sample_carrier_edge")
    state = FuseState()
    state.add(structures)
    result = localize(state, "multiwell")
    plate = result["plate"]
    assert plate["wells"] == 96 and (plate["rows"], plate["cols"]) == (8, 12)
    assert math.dist(plate["a1_center_mm"], a1) < 0.05
    assert abs(plate["rotation_deg"] - angle) < 0.05
    assert plate["well_spacing_mm"] == [9.0, 9.0] and plate["circular_wells"] is True
    samples = result["samples"]
    assert len(samples) == 96 and samples[0]["label"] == "A1" and samples[-1]["label"] == "H12"
    h12 = a1 + rot @ np.array([99.0, 63.0])
    assert math.dist(samples[-1]["center_mm"], h12) < 0.1
    assert all(len(s["polygon_mm"]) >= 32 for s in samples)


def test_single_edge_cover_glass_with_a_known_size() -> None:
    """One whole 50 mm edge inside the frame names a 24 x 50 glass; the slide leaves room
    on one side only; it is placed, with a low confidence."""
    slide_poly = rectangle_polygon((40.0, 15.0), (75.0, 25.0), 0.0)
    glass = rectangle_polygon((45.0, 15.0), (50.0, 24.0), 0.0)
    structures: list[Structure] = []
    for k in range(4):
        structures += _pieces(slide_poly[k], slide_poly[(k + 1) % 4], 5.0, 0, "sample_carrier_edge")
    structures += _pieces(glass[0], glass[1], 5.0, 0, "straight_cover_glass_edge")
    state = FuseState()
    state.add(structures)
    state.add_frame(0, FrameGeometry(Pose((40.0, 15.0), 0.02), 4000, 1500))
    (sample,) = localize(state, "slide")["samples"]
    assert sorted(sample["size_mm"]) == [24.0, 50.0]
    assert polygon_iou(sample["polygon_mm"], glass) > 0.95
    assert sample["confidence"] < 0.5
    # a 22 mm piece running on the slide's own side (classed as a glass edge on a faint
    # frame) names a 22 x 22 glass too, but is as likely the slide's edge: no glass
    state = FuseState()
    state.add(structures[: -len(_pieces(glass[0], glass[1], 5.0, 0, "x"))])
    state.add(
        _pieces(np.array([30.0, 2.9]), np.array([52.0, 2.9]), 5.0, 0, "straight_cover_glass_edge")
    )
    state.add_frame(0, FrameGeometry(Pose((40.0, 15.0), 0.02), 4000, 1500))
    assert localize(state, "slide")["samples"] == []


def _slide_edges(sides: tuple[int, ...] = (0, 1, 2, 3)) -> list[Structure]:
    poly = rectangle_polygon((40.0, 15.0), (75.0, 25.0), 0.3)
    out: list[Structure] = []
    for k in sides:
        out += _pieces(poly[k], poly[(k + 1) % 4], 5.0, 0, "sample_carrier_edge")
    return out


def _chamber_block(dividers_crossing: bool = False) -> list[Structure]:
    """4 chambers 12 x 20 mm in a block with 1.5 mm walls on the slide of
    ``_slide_edges``; the dividers' sides optionally flagged as lines across a wall."""
    out: list[Structure] = []
    for x0 in (10.0, 23.5, 37.0, 50.5):
        cell = rectangle_polygon((x0 + 6.0, 15.0), (12.0, 20.0), 0.0)
        for k in range(4):
            pieces = _pieces(cell[k], cell[(k + 1) % 4], 5.0, 0, "sample_carrier_edge")
            inner = k in (1, 3) and not (x0 == 10.0 and k == 3) and not (x0 == 50.5 and k == 1)
            crossing = dividers_crossing and inner
            out += [replace(p, crossing=True) for p in pieces] if crossing else pieces
    block = rectangle_polygon((34.25, 15.0), (55.5, 23.0), 0.0)
    for k in range(4):
        out += _pieces(block[k], block[(k + 1) % 4], 5.0, 0, "sample_carrier_edge")
    return out


def test_carrier_recognition_on_synthetic_structures() -> None:
    from samplescout.geometry import rotation_matrix

    def recognised(structures: list[Structure]) -> str:
        state = FuseState()
        state.add(structures)
        return str(localize(state, None)["carrier"])

    cover = _rectangle_edges((45.0, 15.0), (40.0, 24.0), 0.3, 0, "straight_cover_glass_edge", 3)
    assert recognised(_slide_edges() + cover) == "slide"

    state = FuseState()
    state.add(_slide_edges() + _chamber_block())
    result = localize(state, None)
    assert result["carrier"] == "chamber_slide"
    assert [s["element"] for s in result["samples"]] == ["chamber"] * 4
    assert (
        polygon_iou(
            result["samples"][0]["polygon_mm"], rectangle_polygon((16.0, 15.0), (12.0, 20.0), 0.0)
        )
        > 0.9
    )

    plate: list[Structure] = []
    body = rectangle_polygon((65.0, 44.0), (127.76, 85.48), 0.2)
    for k in range(4):
        plate += _pieces(body[k], body[(k + 1) % 4], 8.0, 0, "sample_carrier_edge")
    rot = rotation_matrix(0.2)
    a1 = np.array([65.0, 44.0]) + rot @ np.array([-127.76 / 2 + 15.38, -85.48 / 2 + 13.79])
    for k in range(6):
        plate += _well_arcs(a1 + rot @ np.array([19.3 * (k % 3), 19.3 * (k // 3)]), 15.6)
    state = FuseState()
    state.add(plate)
    result = localize(state, None)
    assert result["carrier"] == "multiwell" and result["plate"]["wells"] == 24

    dish: list[Structure] = []
    for k in range(8):
        dish.append(_arc(30.0, 30.0, 17.5, 45.0 * k, 45.0 * k + 40.0))
        dish.append(_arc(30.0, 30.0, 9.0, 45.0 * k, 45.0 * k + 40.0))
    state = FuseState()
    state.add(dish)
    result = localize(state, None)
    assert result["carrier"] == "petri_dish"
    (glass,) = result["samples"]
    assert glass["element"] == "dish_glass" and glass["size_mm"] == [18.0]
    assert math.dist(glass["center_mm"], (30.0, 30.0)) < 0.05

    # the dish's wall unseen, no slide outline either: one glass-bottom-sized round
    # glass is a dish's; two round glasses, or one on a slide, are cover glasses
    state = FuseState()
    state.add(dish[1::2])
    result = localize(state, None)
    assert result["carrier"] == "petri_dish"
    assert [s["element"] for s in result["samples"]] == ["dish_glass"]
    state = FuseState()
    state.add(dish[1::2] + [_arc(60.0, 30.0, 9.0, 45.0 * k, 45.0 * k + 40.0) for k in range(8)])
    assert localize(state, None)["carrier"] == "slide"
    state = FuseState()
    state.add(_slide_edges() + [_arc(40.0, 15.0, 9.0, 45.0 * k, 45.0 * k + 40.0) for k in range(8)])
    assert localize(state, None)["carrier"] == "slide"


def test_a_chamber_grid_over_the_label_is_no_chamber_slide() -> None:
    """The chamber block's edges of the recognition test, but the coarse data show a
    paper label over the slide's left 20 mm, under the first chamber: no block is glued
    over a label, so those edges are something else and the slide is a slide. With a
    plain slide on the coarse data it stays a chamber slide."""
    geometry = FrameGeometry(Pose((40.0, 15.0), 0.2, 0.0), 400, 150)
    jj, ii = np.meshgrid(np.arange(400), np.arange(150))
    xy = geometry.pixel_to_holder(np.stack([jj, ii], axis=-1))
    x, y = xy[..., 0], xy[..., 1]
    plain = np.full((150, 400), 0.1, np.float32)
    plain[(np.abs(x - 40.0) <= 37.5) & (np.abs(y - 15.0) <= 12.5)] = 0.3
    labelled = plain.copy()
    paper = (x >= 2.5) & (x <= 22.5) & (np.abs(y - 15.0) <= 12.5)
    labelled[paper] = 0.8
    labelled[paper & (y < 10.0) & (np.floor(x / 0.6) % 2 == 0)] = 0.15  # a barcode
    state = FuseState()
    state.add(_slide_edges() + _chamber_block())
    assert localize(state, None)["carrier"] == "chamber_slide"
    assert localize(state, None, views=StaticViews([(plain, geometry)]))["carrier"] == (
        "chamber_slide"
    )
    assert localize(state, None, views=StaticViews([(labelled, geometry)]))["carrier"] == "slide"


def test_lines_across_walls_count_on_chamber_slides_only() -> None:
    """Dividers that identification found across a wall (flagged ``crossing``) make a
    chamber slide's grid when the carrier is one or is to be recognised; on a slide or
    a plate they are not used at all."""
    chambers = _chamber_block(dividers_crossing=True)
    state = FuseState()
    state.add(_slide_edges() + chambers)
    result = localize(state, None)
    assert result["carrier"] == "chamber_slide"
    assert [s["element"] for s in result["samples"]] == ["chamber"] * 4
    assert localize(state, "chamber_slide")["samples"] == result["samples"]
    # the same evidence with the dividers unflagged is the same chamber slide; flagged
    # and the carrier a slide, they are not there
    plain = FuseState()
    plain.add(_slide_edges() + [replace(c, crossing=False) for c in chambers])
    assert localize(plain, None)["samples"] == result["samples"]
    as_slide = localize(state, "slide")
    without = FuseState()
    without.add(_slide_edges() + [c for c in chambers if not c.crossing])
    assert as_slide == {**localize(without, "slide"), "carrier": "slide"}


def test_barcodes_merge_across_frames_in_any_order() -> None:
    a = {"format": "QR_CODE", "text": "X", "polygon_mm": [[0, 0], [2, 0], [2, 2], [0, 2]]}
    b = {
        "format": "QR_CODE",
        "text": "X",
        "polygon_mm": [[2.1, 2.1], [0.1, 2.1], [0.1, 0.1], [2.1, 0.1]],
    }
    one, two = FuseState(), FuseState()
    one.add_barcodes(0, [a])
    one.add_barcodes(1, [b])
    two.add_barcodes(1, [b])
    two.add_barcodes(0, [a])
    res1, res2 = localize(one, "slide"), localize(two, "slide")
    assert res1["barcodes"] == res2["barcodes"]
    (code,) = res1["barcodes"]
    assert (
        code["text"] == "X" and math.dist(np.mean(code["polygon_mm"], axis=0), (1.05, 1.05)) < 1e-9
    )
    again = FuseState.from_dict(json.loads(json.dumps(one.to_dict())))
    assert localize(again, "slide")["barcodes"] == res1["barcodes"]


def test_384_well_grid_from_short_sides_of_a_partial_view() -> None:
    """A narrow view of a 384-well plate's top-left corner: only short straight pieces of
    the square wells' sides (no arcs) and the plate's left and top edges. The format,
    the rotation and A1 follow; the whole 16 x 24 grid is named."""
    from samplescout.geometry import rotation_matrix

    angle, a1 = -0.4, np.array([14.0, 10.0])
    rot = rotation_matrix(angle)
    rng = np.random.default_rng(3)
    structures: list[Structure] = []
    for row in range(5):
        for col in range(9):
            c = np.array([4.5 * col, 4.5 * row])
            for k in range(4):  # sides: top, right, bottom, left; each seen in part
                a = np.array([[-1.8, -1.8], [1.8, -1.8], [1.8, 1.8], [-1.8, 1.8]])
                p, q = a[k], a[(k + 1) % 4]
                t0, t1 = sorted(rng.uniform(0.0, 1.0, 2))
                if t1 - t0 < 0.2:
                    continue
                ends = [a1 + rot @ (c + p + (q - p) * t + rng.normal(0, 0.03, 2)) for t in (t0, t1)]
                structures.append(_seg(tuple(ends[0]), tuple(ends[1])))
    corner = a1 - rot @ np.array([12.13, 8.99])  # A1 is 12.13, 8.99 mm from the corner
    for p0, p1 in ((corner, corner + rot @ [45.0, 0.0]), (corner, corner + rot @ [0.0, 30.0])):
        structures += _pieces(p0, p1, 5.0, 0, "sample_carrier_edge")
    state = FuseState()
    state.add(structures)
    result = localize(state, "multiwell")
    plate = result["plate"]
    assert plate["wells"] == 384 and (plate["rows"], plate["cols"]) == (16, 24)
    assert plate["circular_wells"] is False
    assert math.dist(plate["a1_center_mm"], a1) < 0.1
    assert abs(plate["rotation_deg"] - angle) < 0.1
    samples = result["samples"]
    assert len(samples) == 384 and samples[0]["label"] == "A1" and samples[-1]["label"] == "P24"
    b3 = next(s for s in samples if s["label"] == "B3")
    assert (
        polygon_iou(b3["polygon_mm"], rectangle_polygon(a1 + rot @ [9.0, 4.5], (3.6, 3.6), angle))
        > 0.9
    )


def _plate_body_off(
    center: np.ndarray, angle: float, offset: tuple[float, float]
) -> tuple[list[Structure], np.ndarray]:
    """The four edges of an SBS plate body fitted ``offset`` mm away from the true plate
    centred at ``center``, turned ``angle`` degrees; and that rotation."""
    from samplescout.geometry import rotation_matrix

    body = rectangle_polygon(tuple(center + np.asarray(offset)), (127.76, 85.48), angle)
    structures: list[Structure] = []
    for k in range(4):
        structures += _pieces(body[k], body[(k + 1) % 4], 8.0, 0, "sample_carrier_edge")
    return structures, rotation_matrix(angle)


def test_grid_of_large_wells_placed_by_short_arcs() -> None:
    """A 6-well plate whose body is found 1.5 mm off and whose wells show only short
    (20 degree) arcs, two rims each (a black plate's wall): the arcs move the grid."""
    center = np.array([65.0, 45.0])
    structures, rot = _plate_body_off(center, 0.1, (1.5, -1.0))
    a1 = center + rot @ np.array([-127.76 / 2 + 24.76, -85.48 / 2 + 23.18])
    for k in range(6):
        c = a1 + rot @ np.array([39.12 * (k % 3), 39.12 * (k // 3)])
        for a0 in (200.0, 230.0, 260.0, 290.0, 320.0):
            for r in (17.4, 18.1):
                structures.append(_arc(float(c[0]), float(c[1]), r, a0, a0 + 20.0))
    state = FuseState()
    state.add(structures)
    plate = localize(state, "multiwell")["plate"]
    assert plate["wells"] == 6
    assert math.dist(plate["a1_center_mm"], a1) < 0.25


def test_96_well_grid_follows_its_wells_when_the_body_is_two_millimetres_off() -> None:
    """A plate body fitted 1.6 / -1.4 mm off (a wrong edge in its fit): more than the
    fine fit corrects at a 9 mm pitch. The wells of the outer row and column, modulo the
    pitch, put the grid back; the body still says which well is A1."""
    center = np.array([63.9, 42.7])
    structures, rot = _plate_body_off(center, 0.2, (1.6, -1.4))
    a1 = center + rot @ np.array([-127.76 / 2 + 14.38, -85.48 / 2 + 11.24])
    wells = [(c, 0) for c in range(12)] + [(0, r) for r in range(1, 8)]
    for col, row in wells:
        c = a1 + rot @ np.array([9.0 * col, 9.0 * row])
        for a0 in (0.0, 120.0, 240.0):
            structures.append(_arc(float(c[0]), float(c[1]), 3.2, a0, a0 + 60.0))
    state = FuseState()
    state.add(structures)
    plate = localize(state, "multiwell")["plate"]
    assert plate is not None and plate["wells"] == 96
    assert math.dist(plate["a1_center_mm"], a1) < 0.25


def test_a_barely_supported_format_gives_way_to_the_rims_of_another() -> None:
    """A black 96-well plate whose identified round edges are two 48-well-sized wells
    and some clutter: the 48-well grid fits them barely better than chance. The wells'
    rims on the coarse data name the 96-well format, and its grid is placed from the
    body; without coarse data the weak fit is all there is."""
    from samplescout.standards import PLATE_FORMAT_BY_WELLS, SBS_SIZE_MM

    img, geometry, a1_96 = plate_frame(96)
    center = np.array([64.0, 43.0])
    structures, rot = _plate_body_off(center, 0.5, (0.0, 0.0))
    f48 = PLATE_FORMAT_BY_WELLS[48]
    a1 = center + rot @ (np.array(f48.a1_offset) - np.array(SBS_SIZE_MM) / 2)
    for col, row in ((0, 0), (2, 1)):
        c = a1 + rot @ np.array([f48.pitch * col, f48.pitch * row])
        for a0 in (0.0, 120.0, 240.0):
            structures.append(_arc(float(c[0]), float(c[1]), f48.well_size / 2, a0, a0 + 70.0))
    rng = np.random.default_rng(3)
    for _ in range(4):
        c = center + rng.uniform(-40, 40, 2) * [1.3, 0.8]
        structures.append(_arc(float(c[0]), float(c[1]), float(rng.uniform(2, 6)), 0.0, 300.0))
    state = FuseState()
    state.add(structures)
    assert localize(state, "multiwell")["plate"]["wells"] == 48
    plate = localize(state, "multiwell", views=StaticViews([(img, geometry)]))["plate"]
    assert plate["wells"] == 96
    assert math.dist(plate["a1_center_mm"], a1_96) < 0.25


def _faint_chamber_slide(
    slide_sides: tuple[int, ...] = (0, 1, 2, 3),
) -> tuple[list[Structure], list[np.ndarray]]:
    """A 2 x 4 chamber slide whose walls are faint (classed as cover-glass edges) and seen
    only in part: some cell edges are missing, and the label's edge lies next to the
    block. Returns its structures and the true chambers."""
    slide = rectangle_polygon((40.0, 15.0), (75.0, 25.0), 0.0)
    structures: list[Structure] = []
    for k in slide_sides:
        structures += _pieces(slide[k], slide[(k + 1) % 4], 5.0, 0, "sample_carrier_edge")
    # block 53.4 x 23.8 centred at x = 50 (label on the left, its edge at x = 22.5),
    # outer wall 1.5, inner wall 1.1: cells (53.4 - 3 - 3.3) / 4 = 11.775 wide
    ow, iw = 1.5, 1.1
    x0, y0 = 50.0 - 26.7, 15.0 - 11.9
    cw, ch = (53.4 - 2 * ow - 3 * iw) / 4, (23.8 - 2 * ow - iw) / 2
    faint = "straight_cover_glass_edge"
    structures += _pieces(np.array([22.5, 3.0]), np.array([22.5, 27.0]), 4.0, 0, faint)  # label
    block = rectangle_polygon((50.0, 15.0), (53.4, 23.8), 0.0)
    for k in range(4):
        structures += _pieces(block[k], block[(k + 1) % 4], 6.0, 0, faint)
    rng = np.random.default_rng(5)
    for r in range(2):
        for c in range(4):
            cx0, cy0 = x0 + ow + c * (cw + iw), y0 + ow + r * (ch + iw)
            cell = rectangle_polygon((cx0 + cw / 2, cy0 + ch / 2), (cw, ch), 0.0)
            for k in range(4):
                if rng.random() < 0.3:
                    continue  # this side not seen
                a, b = cell[k], cell[(k + 1) % 4]
                structures += _pieces(a + 0.2 * (b - a), a + 0.7 * (b - a), 2.0, 0, faint)
    truth = [
        rectangle_polygon(
            (x0 + ow + c * (cw + iw) + cw / 2, y0 + ow + r * (ch + iw) + ch / 2), (cw, ch), 0.0
        )
        for r in range(2)
        for c in range(4)
    ]
    return structures, truth


def test_chamber_layout_from_partial_faint_walls() -> None:
    """The declared chamber slide of :func:`_faint_chamber_slide` gets its eight chambers."""
    structures, truth = _faint_chamber_slide()
    state = FuseState()
    state.add(structures)
    samples = localize(state, "chamber_slide")["samples"]
    assert len(samples) == 8 and {s["element"] for s in samples} == {"chamber"}
    for t in truth:
        assert max(polygon_iou(s["polygon_mm"], t) for s in samples) > 0.9


@pytest.mark.parametrize("sides", [(0, 1, 2, 3), (0, 1, 2)])
def test_faint_walled_chamber_slide_is_recognised(sides: tuple[int, ...]) -> None:
    """With no carrier given, a chamber slide whose walls are all faint is still told from
    a slide by how well a chamber grid explains them, also with one slide end unseen (a
    narrow camera's frames often miss the end under the holder's clip)."""
    structures, truth = _faint_chamber_slide(sides)
    state = FuseState()
    state.add(structures)
    result = localize(state, None)
    assert result["carrier"] == "chamber_slide"
    assert len(result["samples"]) == 8
    for t in truth:
        assert max(polygon_iou(s["polygon_mm"], t) for s in result["samples"]) > 0.9


def test_chamber_rows_ignore_the_label_print_beside_the_block() -> None:
    """A 1 x 1 chamber slide seen faintly: the printed label beside the block has a
    strong straight edge across the slide's width at the height where a cell edge could
    be. The rows come from the edges on the block only."""
    from samplescout.fuse.chambers import fit_chambers

    c = np.array([40.0, 15.0])

    def seg(x0: float, y0: float, x1: float, y1: float, w: float) -> tuple[np.ndarray, float]:
        return np.array([[x0, y0], [x1, y1]]) + c, w

    lines = [
        # columns: outer wall, cell edge (left); outer wall, the label's edge (right)
        seg(-36.7, -8.0, -36.7, 8.0, 13.0),
        seg(-35.05, -8.0, -35.05, 8.0, 15.0),
        seg(16.7, -8.0, 16.7, 8.0, 11.4),
        seg(17.5, -10.0, 17.5, 10.0, 11.4),
        # rows: the two cell edges in part, the outer wall's outside (tilted a little,
        # 0.4 mm from the slide's edge), and the label's print at y = -7
        seg(-30.0, -10.45, -20.0, -10.45, 4.2),
        seg(-20.0, 10.05, -8.0, 10.05, 5.8),
        seg(-30.0, 11.6, 10.0, 11.8, 39.6),
        seg(21.0, -7.0, 33.0, -7.0, 5.4),
    ]
    fit = fit_chambers(lines, (40.0, 15.0), (75.0, 25.0), 0.0)
    assert fit is not None and len(fit.ys) == 1 and len(fit.xs) == 1
    assert np.allclose(fit.ys[0], (-10.45, 10.05), atol=0.05)
    assert fit.xs[0][0] == pytest.approx(-35.05, abs=0.05)


def test_chamber_block_leaves_the_label_end_free() -> None:
    """Straight print on the label (past the block's right outer wall at x = 16.8)
    must not stretch a 2 x 2 block into a 2 x 4 one over the whole slide."""
    from samplescout.fuse.chambers import fit_chambers

    c = np.array([40.0, 15.0])
    xs = [(-36.77, 15.1), (-35.41, 1.3), (-9.52, 3.7), (16.78, 11.4), (17.52, 11.4)]
    xs += [(23.65, 3.5), (26.12, 3.5), (31.99, 4.4), (34.65, 3.7)]  # the label's print
    ys = [(-11.7, 22.0), (-10.37, 32.6), (-6.53, 6.7), (-0.26, 45.3), (0.7, 45.2)]
    ys += [(3.87, 2.0), (4.23, 1.3), (10.82, 29.4), (11.94, 7.5)]
    lines = [(np.array([[x, -8.0], [x, 8.0]]) + c, w) for x, w in xs]
    lines += [(np.array([[-30.0, y], [-5.0, y]]) + c, w) for y, w in ys]
    fit = fit_chambers(lines, (40.0, 15.0), (75.0, 25.0), 0.0)
    assert fit is not None and (len(fit.ys), len(fit.xs)) == (2, 2)
    assert fit.xs[-1][1] <= 17.0


def test_chamber_row_from_the_outer_wall_alone_is_centred_on_the_slide() -> None:
    """No cell edge seen across the slide, only one outer wall's outside (and print on
    the label): the one row of cells is centred on the slide's width, inside outer walls
    as thick as those found along the slide."""
    from samplescout.fuse.chambers import fit_chambers

    c = np.array([40.0, 15.0])
    xs = [(-16.7, 12.0), (-15.2, 11.0), (9.45, 16.0), (10.55, 16.0), (35.2, 11.0), (36.7, 12.0)]
    lines = [(np.array([[x, -8.0], [x, 8.0]]) + c, w) for x, w in xs]
    lines.append((np.array([[-10.0, 11.9], [20.0, 11.9]]) + c, 30.0))
    lines += [(np.array([[-30.0, y], [-20.0, y]]) + c, 4.0) for y in (-7.0, 4.2)]  # label
    fit = fit_chambers(lines, (40.0, 15.0), (75.0, 25.0), 0.0)
    assert fit is not None and (len(fit.ys), len(fit.xs)) == (1, 2)
    assert np.allclose(fit.ys[0], (-10.4, 10.4), atol=0.2)


def test_chamber_block_prefers_ending_near_the_slide_end() -> None:
    """A 2 x 4 block whose far end (x = 36.7) is barely seen, next to the label's edge
    and print (x < -17): the grid is not shifted one cell onto the label, since blocks
    reach (nearly) to the slide's end opposite the label."""
    from samplescout.fuse.chambers import fit_chambers

    c = np.array([40.0, 15.0])
    xs = [(-19.34, 3.7), (-17.55, 11.4), (-16.79, 17.9), (-3.22, 3.3), (-2.44, 3.1)]
    xs += [(9.51, 7.3), (10.42, 7.3), (22.27, 5.3), (23.19, 7.7), (36.76, 1.8)]
    ys = [(-10.62, 10.1), (-0.72, 40.7), (0.15, 33.5), (10.0, 3.1), (11.6, 36.6)]
    lines = [(np.array([[x, -8.0], [x, 8.0]]) + c, w) for x, w in xs]
    lines += [(np.array([[-10.0, y], [20.0, y]]) + c, w) for y, w in ys]
    fit = fit_chambers(lines, (40.0, 15.0), (75.0, 25.0), 0.0)
    assert fit is not None and (len(fit.ys), len(fit.xs)) == (2, 4)
    assert fit.xs[0][0] > -16.5 and fit.xs[-1][1] > 34.0


def test_chamber_slide_and_its_grid_are_fitted_together() -> None:
    """The long sides of a chamber slide are seen only beside the label, while the
    block's outer wall and the holder's edge, 26.3 mm apart, make a better-supported
    slide-sized pair. That slide would cut through the block; the slide that carries a
    chamber grid is the real one, and the four chambers come out where they are."""
    structures: list[Structure] = []
    carrier = "sample_carrier_edge"
    slide = rectangle_polygon((40.0, 15.0), (75.0, 25.0), 0.0)  # corners from (2.5, 2.5)
    structures += _pieces(slide[0], slide[0] + [25.0, 0.0], 5.0, 0, carrier)  # top, label end
    structures += _pieces(slide[3], slide[3] + [25.0, 0.0], 5.0, 0, carrier)  # bottom, likewise
    structures += _pieces(slide[1], slide[2], 5.0, 0, carrier)  # both ends
    structures += _pieces(slide[3], slide[0], 5.0, 0, carrier)
    structures += _pieces(np.array([0.0, 29.4]), np.array([80.0, 29.4]), 5.0, 0, carrier)  # holder
    # 1 x 4 block 53.4 x 23.8 centred on the slide's width at x = 50, walls 1.5 / 1.1
    ow, iw = 1.5, 1.1
    cw, ch = (53.4 - 2 * ow - 3 * iw) / 4, 23.8 - 2 * ow
    faint = "straight_cover_glass_edge"
    block = rectangle_polygon((50.0, 15.0), (53.4, 23.8), 0.0)
    for k in range(4):
        structures += _pieces(block[k], block[(k + 1) % 4], 6.0, 0, faint)
    truth = []
    for c in range(4):
        cell = rectangle_polygon((23.3 + ow + c * (cw + iw) + cw / 2, 15.0), (cw, ch), 0.0)
        truth.append(cell)
        for k in range(4):
            structures += _pieces(cell[k], cell[(k + 1) % 4], 4.0, 0, faint)
    state = FuseState()
    state.add(structures)
    samples = localize(state, "chamber_slide")["samples"]
    assert len(samples) == 4
    for t in truth:
        assert max(polygon_iou(s["polygon_mm"], t) for s in samples) > 0.9


def _line(angle_deg: float, offset: float, t0: float, t1: float) -> LineSource:
    return LineSource(
        angle_deg=angle_deg,
        offset=offset,
        t0=t0,
        t1=t1,
        coverage_mm=t1 - t0,
        probability=0.9,
        shape_class="straight_cover_glass_edge",
        frames=(0,),
    )


def test_a_slide_seen_all_round_beats_the_holder_openings_edges() -> None:
    """Thin slide edges seen in part on three sides and whole at the label end, and the
    holder opening's top and right edges seen whole: a 76 x 26 rectangle of the
    opening's right edge, the label end and the slide's bottom scores a little more
    than the slide, but misses a long side. The slide, seen on all four sides, is
    chosen."""
    from samplescout.fuse.localize import _Evidence

    def side(a: tuple[float, float], b: tuple[float, float], seen: float) -> list[Structure]:
        p, q = np.asarray(a), np.asarray(b)
        return _pieces(p, p + (q - p) * seen, 2.0, 0, "sample_carrier_edge")

    structures = (
        side((3.8, 2.8), (78.8, 2.8), 0.35)
        + side((78.8, 27.8), (3.8, 27.8), 0.4)
        + side((78.8, 2.8), (78.8, 27.8), 0.4)
        + side((3.8, 27.8), (3.8, 2.8), 1.0)
        + side((-1.0, 0.0), (79.0, 0.0), 1.0)
        + side((80.0, 0.0), (80.0, 30.0), 1.0)
    )
    state = FuseState()
    state.add(structures)
    every = state.sorted_structures()
    segments = [e for e in every if e["segment"] is not None]
    chosen = []
    for share in (0.9, 1.0):  # 1.0: the best score wins, as before the rule
        cfg = LocalizeConfig(whole_slide_share=share)
        lines = [ln for ln in fuse_lines(segments) if ln.length >= cfg.min_line_mm]
        chosen += _Evidence(state, every, segments, lines, cfg, None).slides
    whole, best = chosen
    assert whole.size == (75.0, 25.0) and whole.sides_seen == 4
    assert math.dist(whole.center, (41.3, 15.3)) < 0.2
    assert best.size == (76.0, 26.0) and best.sides_seen == 3 and best.score > whole.score
    # A best slide missing only an end (under a clip, say) stays, although a rectangle
    # 2.5 mm along, closed by an inner line and the holder's edge, is seen all round
    # and scores nearly as much.
    structures = (
        side((2.5, 2.5), (77.5, 2.5), 1.0)
        + side((77.5, 27.5), (2.5, 27.5), 1.0)
        + side((77.5, 2.5), (77.5, 27.5), 1.0)
        + side((5.0, 4.0), (5.0, 26.0), 0.5)
        + side((80.0, 2.5), (80.0, 27.5), 0.5)
    )
    state = FuseState()
    state.add(structures)
    every = state.sorted_structures()
    segments = [e for e in every if e["segment"] is not None]
    cfg = LocalizeConfig()
    lines = [ln for ln in fuse_lines(segments) if ln.length >= cfg.min_line_mm]
    ev = _Evidence(state, every, segments, lines, cfg, None)
    best, shifted = ev.slide_candidates[:2]
    assert shifted.sides_seen == 4 and shifted.score >= cfg.whole_slide_share * best.score
    assert ev.slides == [best] and math.dist(best.center, (40.0, 15.0)) < 0.1


def test_rectangle_score_counts_side_lines_within_tolerance_and_ignores_the_rest() -> None:
    # A 20 x 10 mm rectangle centred at (40, 15): sides y = 10, y = 20, x = 30, x = 50.
    rect = Rect(center=(40.0, 15.0), size=(20.0, 10.0), angle_deg=0.0)
    sides = [
        _line(0.0, 10.0 - 0.29, 31.0, 49.0),  # 0.29 mm outside: within the tolerance (0.39 mm)
        _line(0.0, 20.0, 30.0, 50.0),
        _line(90.0, -30.0, 10.0, 20.0),
        _line(90.0, -50.0 - 0.45, 10.0, 20.0),  # 0.45 mm off: outside it (0.35 for 10 mm)
    ]
    clutter = [
        _line(0.0, 40.0, 30.0, 50.0),  # parallel, far away
        _line(30.0, 0.0, 0.0, 80.0),  # crosses the rectangle at an angle
        _line(90.0, -80.0, 0.0, 30.0),  # parallel to the short sides, outside
        _line(0.0, 20.0, 60.0, 70.0),  # on a side's line, beyond its end
    ]
    cfg = LocalizeConfig()
    alone, mixed = replace(rect), replace(rect)
    matched = _score(alone, _Lines(sides), cfg)
    _score(mixed, _Lines(clutter + sides), cfg)
    assert [len(idx) for idx, _ in matched] == [1, 0, 1, 1]  # the far x = 50 line is not seen
    assert alone.sides_seen == 3
    assert mixed.score == alone.score
    assert mixed.sides_seen == alone.sides_seen
    assert all((clutter + sides)[i] in sides for i in mixed.lines)


def _pen_ring(cx: float, cy: float, r: float) -> list[Structure]:
    """A marker-pen ring seen all round, its flanks flagged by identification."""
    return [
        replace(_arc(cx, cy, r, float(a0), float(a0 + 30)), marker=True) for a0 in range(0, 360, 30)
    ]


def test_a_pen_ring_is_no_glass_but_says_a_glass_lies_round_it() -> None:
    """A 17 mm ring drawn round a sample on a glass none of whose edges was seen: not a
    17 mm round glass, but the smallest standard rectangle holding it (18 x 18),
    centred on it, with low confidence. A 10 mm ring: a 10 mm round glass (no standard
    square is that small)."""
    slide = rectangle_polygon((40.0, 15.0), (75.0, 25.0), 0.0)
    base: list[Structure] = []
    for k in range(4):
        base += _pieces(slide[k], slide[(k + 1) % 4], 5.0, 0, "sample_carrier_edge")
    state = FuseState()
    state.add(base + _pen_ring(45.0, 14.0, 8.5))
    (sample,) = localize(state, "slide")["samples"]
    assert sample["shape"] == "rectangle" and sample["size_mm"] == [18.0, 18.0]
    assert math.dist(sample["center_mm"], (45.0, 14.0)) < 0.1
    assert sample["confidence"] == pytest.approx(0.2)
    state = FuseState()
    state.add(base + _pen_ring(45.0, 14.0, 5.0))
    (sample,) = localize(state, "slide")["samples"]
    assert sample["shape"] == "circle" and sample["size_mm"] == [10.0]
    assert math.dist(sample["center_mm"], (45.0, 14.0)) < 0.1
    assert sample["confidence"] == pytest.approx(0.2)
    # such arcs, not flagged: a round glass of that size (as a glass edge seen all round)
    state = FuseState()
    state.add(base + [replace(s, marker=False) for s in _pen_ring(45.0, 14.0, 7.5)])
    (sample,) = localize(state, "slide")["samples"]
    assert sample["shape"] == "circle" and sample["size_mm"] == [15.0]
    # ... when its diameter is a standard one: a 14 mm ring (1 mm off 13 and 15) is none
    state = FuseState()
    state.add(base + [replace(s, marker=False) for s in _pen_ring(45.0, 14.0, 7.0)])
    assert localize(state, "slide")["samples"] == []
    # a ring on a glass that was found adds nothing
    state = FuseState()
    state.add(base + _pen_ring(45.0, 14.0, 7.0))
    state.add([_arc(45.0, 14.0, 10.0, float(a0), float(a0 + 30)) for a0 in range(0, 360, 30)])
    (sample,) = localize(state, "slide")["samples"]
    assert sample["shape"] == "circle" and sample["size_mm"] == [20.0]


def test_a_far_pen_stroke_does_not_swallow_a_loop() -> None:
    """A loop round a sample seen as three short pen chords and one arc, and a longer
    straight pen stroke 30 mm off (writing): one ellipse fits all of them within the
    fit tolerance, but the loop's own pieces are seen round more of theirs. The loop
    places its glass; seeded by the longest stroke alone it was lost."""
    slide = rectangle_polygon((40.0, 14.5), (75.0, 25.0), 0.0)
    base: list[Structure] = []
    for k in range(4):
        base += _pieces(slide[k], slide[(k + 1) % 4], 5.0, 0, "sample_carrier_edge")
    loop = [
        _seg((39.4, 18.7), (42.5, 16.3)),
        _seg((40.9, 10.3), (39.3, 9.3)),
        _seg((42.4, 14.9), (41.9, 16.5)),
        _arc(36.4, 12.1, 7.6, 62.4, 129.6),
    ]
    writing = [_seg((4.5, 8.5), (4.4, 4.1))]
    for extra in ([], writing):
        state = FuseState()
        state.add(base + [replace(s, marker=True) for s in loop + extra])
        (sample,) = localize(state, "slide")["samples"]
        assert sample["shape"] == "circle" and sample["size_mm"] == [13.0]
        assert math.dist(sample["center_mm"], (36.2, 14.1)) < 0.3


def test_an_elongated_pen_loop_places_a_long_glass_round_it() -> None:
    """An elliptic pen loop (36 x 18 mm) reported as straight pieces flagged as pen: no
    glass from its pieces, but the smallest standard glass that holds it, long side
    along the slide (40 x 24), centred on it, also when seen in pieces. A short stroke
    places nothing."""
    slide = rectangle_polygon((40.0, 15.0), (75.0, 25.0), 0.0)
    base: list[Structure] = []
    for k in range(4):
        base += _pieces(slide[k], slide[(k + 1) % 4], 5.0, 0, "sample_carrier_edge")
    t = np.radians(np.arange(0.0, 361.0, 10.0))
    pts = np.stack([46.0 + 18.0 * np.cos(t), 15.0 + 9.0 * np.sin(t)], axis=1)
    loop = [
        replace(_seg(tuple(pts[k]), tuple(pts[k + 1]), cls="sample_carrier_edge"), marker=True)
        for k in range(len(pts) - 1)
    ]
    state = FuseState()
    state.add(base + loop)
    (sample,) = localize(state, "slide")["samples"]
    assert sample["shape"] == "rectangle" and sample["size_mm"] == [40.0, 24.0]
    assert math.dist(sample["center_mm"], (46.0, 15.0)) < 0.3
    assert sample["confidence"] == pytest.approx(0.2)
    # seen in two pieces, a third each, on opposite sides (where the loop runs along a
    # glass edge no pen is reported): still one loop, placed whole
    state = FuseState()
    state.add(base + loop[3:15] + loop[21:33])
    (sample,) = localize(state, "slide")["samples"]
    assert sample["size_mm"] == [40.0, 24.0]
    assert math.dist(sample["center_mm"], (46.0, 15.0)) < 0.3
    # under a quarter of it: a stroke, not round anything
    state = FuseState()
    state.add(base + loop[:8])
    assert localize(state, "slide")["samples"] == []
    # near the slide's end its glass would overhang it: moved onto the slide by up to
    # 2 mm (a loop seen in part is extrapolated), not dropped; farther, nothing
    for dx, placed in ((12.5, 58.0), (16.0, None)):
        state = FuseState()
        state.add(base + [replace(s, segment_mm=_moved(s.segment_mm, dx)) for s in loop])
        samples = localize(state, "slide")["samples"]
        if placed is None:
            assert samples == []
        else:
            (sample,) = samples
            assert sample["size_mm"] == [40.0, 24.0]
            assert math.dist(sample["center_mm"], (placed, 15.0)) < 0.3


def _moved(segment: Any, dx: float) -> Any:
    (x0, y0), (x1, y1) = segment
    return ((x0 + dx, y0), (x1 + dx, y1))


def test_no_glass_on_the_label() -> None:
    """An 18 x 18 outline of edges at the label's end, over much of a piece of label
    print, is the label's (its edge and print), not a glass; a glass whose outline
    only touches a label region's margin stays; a pen loop that reaches into a label
    region places no glass."""
    slide = rectangle_polygon((40.0, 15.0), (75.0, 25.0), 0.0)
    base: list[Structure] = []
    for k in range(4):
        base += _pieces(slide[k], slide[(k + 1) % 4], 5.0, 0, "sample_carrier_edge")
    label = Structure(
        region=Region(
            frame_index=0,
            region_index=next(_COUNTER),
            box_px=(0, 0, 64, 64),
            probability=0.9,
            kind="label",
            polygon_mm=((64.0, 17.0), (74.0, 17.0), (74.0, 26.0), (64.0, 26.0)),
        ),
        shape_class="label",
        probability=0.9,
    )
    on_label = _rectangle_edges((66.0, 14.0), (18.0, 18.0), 0.0, 0, "straight_cover_glass_edge", 1)
    state = FuseState()
    state.add(base + on_label)
    assert [s["size_mm"] for s in localize(state, "slide")["samples"]] == [[18.0, 18.0]]
    state.add([label])
    assert localize(state, "slide")["samples"] == []
    beside = _rectangle_edges((44.8, 15.0), (40.0, 24.0), 0.0, 0, "straight_cover_glass_edge", 2)
    state = FuseState()
    state.add(base + beside + [label])
    assert [s["size_mm"] for s in localize(state, "slide")["samples"]] == [[40.0, 24.0]]
    # Handwriting on the label: a pen loop reaching into a label region is no glass's,
    # although the glass it would imply covers little of the region.
    state = FuseState()
    state.add(base + _pen_ring(66.0, 13.0, 5.0))
    assert [s["size_mm"] for s in localize(state, "slide")["samples"]] == [[10.0]]
    state.add([label])
    assert localize(state, "slide")["samples"] == []


def test_dish_sized_rings_side_by_side_are_a_plate_not_a_dish() -> None:
    """A narrow camera sees two wells of a 6-well plate (35 mm, 39.1 mm apart) and no
    plate edge: a dish has one wall, so this is a multiwell plate; one ring is a dish."""
    wells: list[Structure] = []
    for cx in (40.0, 79.1):
        wells += [_arc(cx, 40.0, 17.5, float(a0), float(a0 + 40)) for a0 in range(0, 360, 45)]
    state = FuseState()
    state.add(wells)
    assert localize(state, None)["carrier"] == "multiwell"
    one = FuseState()
    one.add([_arc(40.0, 40.0, 17.5, float(a0), float(a0 + 40)) for a0 in range(0, 360, 45)])
    assert localize(one, None)["carrier"] == "petri_dish"


def _chamber_frame(
    cells_x: tuple[float, float],
    cells_y: tuple[float, float],
    wall: float,
    angle: float,
    dividers: tuple[float, ...] = (),
) -> tuple[np.ndarray, FrameGeometry]:
    """A 0.3 mm/px coarse frame of a 75 x 25 slide at (40, 15) mm turned by ``angle``,
    dark, with one chamber (slide-local cell ``cells_x`` x ``cells_y``) in a brighter
    wall ``wall`` thick, split by walls as thick centred on the slide-local ``dividers``,
    and a bright label at its right end; shot-like noise."""
    geometry = FrameGeometry(Pose((40.0, 15.0), 0.3, 0.0), 300, 120)
    jj, ii = np.meshgrid(np.arange(300), np.arange(120))
    xy = geometry.pixel_to_holder(np.stack([jj, ii], axis=-1).reshape(-1, 2).astype(float))
    t = math.radians(angle)
    d = xy - np.array([40.0, 15.0])
    u = (d[:, 0] * math.cos(t) + d[:, 1] * math.sin(t)).reshape(120, 300)
    v = (-d[:, 0] * math.sin(t) + d[:, 1] * math.cos(t)).reshape(120, 300)
    img = np.full((120, 300), 0.05, np.float32)  # holder
    on = (np.abs(u) < 37.5) & (np.abs(v) < 12.5)
    img[on] = 0.01
    (x0, x1), (y0, y1) = cells_x, cells_y
    block = (u > x0 - wall) & (u < x1 + wall) & (v > y0 - wall) & (v < y1 + wall)
    cell = (u > x0) & (u < x1) & (v > y0) & (v < y1)
    img[block & ~cell] = 0.018
    for x in dividers:
        img[block & (np.abs(u - x) < wall / 2)] = 0.018
    img[on & (u > 22.0)] = 0.06  # the label
    rng = np.random.default_rng(5)
    img += rng.normal(0.0, 1.0, img.shape).astype(np.float32) * 0.0004
    return img.astype(np.float32), geometry


@pytest.mark.parametrize("angle", [0.0, 1.2])
def test_chamber_walls_are_read_from_the_coarse_data(angle: float) -> None:
    """With no identified wall, the walls' steps on the coarse frames give the grid."""
    from samplescout.fuse.chambers import ChamberConfig, fit_chambers, wall_lines

    cfg = ChamberConfig(min_cell_edges_seen=0.5)
    img, geometry = _chamber_frame((-34.0, 16.0), (-10.0, 10.5), 1.5, angle)
    walls = wall_lines([(img, geometry)], (40.0, 15.0), (75.0, 25.0), angle)
    fit = fit_chambers(walls, (40.0, 15.0), (75.0, 25.0), angle, cfg)
    assert fit is not None and (len(fit.ys), len(fit.xs)) == (1, 1)
    assert np.allclose(fit.xs[0], (-34.0, 16.0), atol=0.4)
    assert np.allclose(fit.ys[0], (-10.0, 10.5), atol=0.4)
    # a slide with no chamber block has no walls to read
    bare, _ = _chamber_frame((-34.0, 16.0), (-10.0, 10.5), 0.0, angle)
    assert (
        fit_chambers(
            wall_lines([(bare, geometry)], (40.0, 15.0), (75.0, 25.0), angle),
            (40.0, 15.0),
            (75.0, 25.0),
            angle,
            cfg,
        )
        is None
    )


@pytest.mark.parametrize("carrier", [None, "chamber_slide"])
def test_a_chamber_block_no_wall_of_which_was_identified(carrier: str | None) -> None:
    """Only the slide's outline was identified; the block's walls show on the coarse
    data alone. Recognised (or declared), the slide gets its chamber from them; a bare
    slide stays a slide."""
    state = FuseState()
    state.add(_slide_edges())
    img, geometry = _chamber_frame((-34.0, 16.0), (-10.0, 10.5), 1.5, 0.3)
    result = localize(state, carrier, views=StaticViews([(img, geometry)]))
    assert result["carrier"] == "chamber_slide"
    center = np.array([40.0, 15.0]) + rotation_matrix(0.3) @ np.array([-9.0, 0.25])
    truth = rectangle_polygon(tuple(center), (50.0, 20.5), 0.3)
    assert [round(polygon_iou(s["polygon_mm"], truth), 1) for s in result["samples"]] == [1.0]
    if carrier is None:
        bare, _ = _chamber_frame((-34.0, 16.0), (-10.0, 10.5), 0.0, 0.3)
        assert localize(state, None, views=StaticViews([(bare, geometry)]))["carrier"] == "slide"


def test_walls_decide_the_rows_the_identified_edges_only_guess() -> None:
    """A declared 1 x 2 chamber slide whose identified edges are the walls across the
    slide and one outer wall's outside (no cell edge along the slide, so the row is a
    guess centred on the slide's width), while the coarse data show the walls of a row
    0.7 mm off centre: the row is the walls'. Asked not to trust the walls over a guess,
    the row is the centred guess."""
    state = FuseState()
    state.add(_slide_edges())
    cells_y = (-9.0, 10.4)
    img, geometry = _chamber_frame((-35.2, 15.2), cells_y, 1.5, 0.3, dividers=(-10.0,))
    rot = rotation_matrix(0.3)
    c = np.array([40.0, 15.0])
    pieces = [((x, -8.0), (x, 8.0)) for x in (-36.7, -35.2, -10.55, -9.45, 15.2, 16.7)]
    pieces.append(((-20.0, 11.9), (10.0, 11.9)))
    for p0, p1 in pieces:
        a, b = (c + rot @ np.array(p) for p in (p0, p1))
        state.add([_seg(tuple(a), tuple(b))])
    views = StaticViews([(img, geometry)])

    def row(cfg: LocalizeConfig) -> tuple[float, float]:
        samples = localize(state, "chamber_slide", cfg, views=views)["samples"]
        assert len(samples) == 2
        local = (np.asarray(samples[0]["polygon_mm"]) - c) @ rot
        return float(local[:, 1].min()), float(local[:, 1].max())

    assert np.allclose(row(LocalizeConfig()), cells_y, atol=0.4)
    guessed = row(LocalizeConfig(chamber_guess_score=0.0))
    assert abs(guessed[0] + guessed[1]) < 0.3  # centred on the slide


def test_chambers_on_a_slide_seen_on_two_sides_only() -> None:
    """A slide filling the holder's opening may show only its long sides (its ends lie on the
    holder's edges); a declared chamber slide still gets its chambers on it."""
    state = FuseState()
    state.add(_slide_edges((0, 2)) + _chamber_block())
    samples = localize(state, "chamber_slide")["samples"]
    assert len(samples) == 4
    for x0 in (10.0, 23.5, 37.0, 50.5):
        cell = rectangle_polygon((x0 + 6.0, 15.0), (12.0, 20.0), 0.0)
        assert max(polygon_iou(s["polygon_mm"], cell) for s in samples) > 0.9
