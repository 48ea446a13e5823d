"""Whole-outline search of standard cover glasses on coarse data, and fusion using it."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from samplescout.contracts import Region, Structure
from samplescout.framestore import InMemoryFrameStore, frame_key
from samplescout.fuse import FuseState, LocalizeConfig, localize
from samplescout.fuse.outline import (
    CoarseViews,
    OutlineConfig,
    circle_outlines,
    flat_fielded,
    rectangle_outlines,
)
from samplescout.fuse.worker import StoredCoarseViews
from samplescout.geometry import FrameGeometry, Pose, polygon_iou, rectangle_polygon
from samplescout.redis_store import RedisFrameStore
from samplescout.standards import COVER_GLASS_DIAMETERS, COVER_GLASS_SIZES

from conftest import StaticViews

PS = 0.2  # mm per coarse pixel
SLIDE = ((40.0, 15.0), (75.0, 25.0))


def _slide_image(seed: int = 0) -> tuple[np.ndarray, FrameGeometry, np.ndarray, np.ndarray]:
    """A coarse frame of a slide on a dark holder (0.2 mm pixels, 80 x 30 mm), with noise,
    and the holder coordinates of its pixel centres."""
    geometry = FrameGeometry(Pose((40.0, 15.0), PS), 400, 150)
    jj, ii = np.meshgrid(np.arange(400), np.arange(150))
    xy = geometry.pixel_to_holder(np.stack([jj, ii], axis=-1))
    img = np.full((150, 400), 0.1, np.float32)
    on_slide = (np.abs(xy[..., 0] - 40.0) <= 37.5) & (np.abs(xy[..., 1] - 15.0) <= 12.5)
    img[on_slide] = 0.3
    rng = np.random.default_rng(seed)
    img += rng.normal(0.0, 0.002, img.shape).astype(np.float32)
    return img, geometry, xy[..., 0], xy[..., 1]


def _darken(img: np.ndarray, inside: np.ndarray, share: float = 0.03) -> None:
    img[inside] *= np.float32(1.0 - share)


def _rect_mask(x, y, center, size, angle_deg=0.0) -> np.ndarray:
    a = math.radians(angle_deg)
    dx, dy = x - center[0], y - center[1]
    lx = dx * math.cos(a) + dy * math.sin(a)
    ly = -dx * math.sin(a) + dy * math.cos(a)
    return (np.abs(lx) <= size[0] / 2) & (np.abs(ly) <= size[1] / 2)


def test_faint_rectangle_found_by_its_whole_outline() -> None:
    img, geometry, x, y = _slide_image()
    _darken(img, _rect_mask(x, y, (47.0, 15.0), (32.0, 24.0), 1.0))
    # a strong pen ring and a bright speck cross the glass outline: bounded by the clip
    r = np.hypot(x - 40.0, y - 15.0)
    img[np.abs(r - 9.0) < 0.4] = 0.05
    img[np.hypot(x - 31.0, y - 10.0) < 1.0] = 0.9
    hits = rectangle_outlines(
        [(img, geometry)], SLIDE[0], 0.0, (77.0, 27.0), COVER_GLASS_SIZES, OutlineConfig()
    )
    best = max(hits, key=lambda h: h.z)
    truth = rectangle_polygon((47.0, 15.0), (32.0, 24.0), 1.0)
    assert polygon_iou(rectangle_polygon(best.center, best.size, best.angle_deg), truth) > 0.93
    assert sorted(best.size) == [24.0, 32.0]
    assert best.z > 4.0


def test_three_sides_of_a_rectangle_are_not_a_glass() -> None:
    img, geometry, x, y = _slide_image(1)
    # the step of a 24 x 24 square's left, top and bottom sides, not its right side
    inside = _rect_mask(x, y, (40.0, 15.0), (24.0, 24.0)) | _rect_mask(
        x, y, (60.0, 15.0), (20.0, 24.0)
    )
    _darken(img, inside)
    cfg = OutlineConfig()
    full = rectangle_outlines([(img, geometry)], SLIDE[0], 0.0, (77.0, 27.0), ((24.0, 24.0),), cfg)
    square = rectangle_polygon((40.0, 15.0), (24.0, 24.0), 0.0)
    assert not [
        h
        for h in full
        if polygon_iou(rectangle_polygon(h.center, h.size, h.angle_deg), square) > 0.8
    ]


def test_faint_circle_found_and_a_dark_pen_ring_is_not_a_glass() -> None:
    img, geometry, x, y = _slide_image(2)
    _darken(img, np.hypot(x - 25.0, y - 15.0) <= 7.5)
    # a thick dark pen ring of a standard glass diameter, drawn on the slide
    r = np.hypot(x - 55.0, y - 14.0)
    img[np.abs(r - 9.0) < 0.3] = 0.05
    hits = circle_outlines(
        [(img, geometry)], SLIDE[0], 0.0, (77.0, 27.0), COVER_GLASS_DIAMETERS, OutlineConfig()
    )
    best = max(hits, key=lambda h: h.z)
    assert best.size == (15.0,)
    assert math.dist(best.center, (25.0, 15.0)) < 0.4
    assert all(math.dist(h.center, (55.0, 14.0)) > 3.0 for h in hits)


def test_seams_between_frames_of_different_brightness_make_no_glass() -> None:
    img = _slide_image(3)[0]
    left = FrameGeometry(Pose((30.0, 15.0), PS), 200, 150)
    right = FrameGeometry(Pose((50.0, 15.0), PS), 200, 150)
    # the right frame is exposed 20 % brighter: its left border is a step on the slide
    views = [(img[:, :200].copy(), left), (img[:, 175:375] * np.float32(1.2), right)]
    hits = rectangle_outlines(
        views, SLIDE[0], 0.0, (77.0, 27.0), COVER_GLASS_SIZES, OutlineConfig()
    )
    assert hits == []


def _slide_edges() -> list[Structure]:
    out = []
    poly = rectangle_polygon(*SLIDE, 0.0)
    for k in range(4):
        a, b = poly[k], poly[(k + 1) % 4]
        n = max(1, int(np.linalg.norm(b - a) // 5.0))
        for i in range(n):
            region = Region(
                frame_index=0, region_index=100 * k + i, box_px=(0, 0, 64, 64), probability=0.9
            )
            out.append(
                Structure(
                    region=region,
                    shape_class="sample_carrier_edge",
                    probability=0.9,
                    segment_mm=(tuple(a + (b - a) * i / n), tuple(a + (b - a) * (i + 1) / n)),
                )
            )
    return out


def _edge(index: int, shape_class: str, **geometry: Any) -> Structure:
    """One identified structure of frame 0 (``segment_mm`` or ``arc_mm``, ``marker``)."""
    region = Region(frame_index=0, region_index=index, box_px=(0, 0, 64, 64), probability=0.9)
    return Structure(region=region, shape_class=shape_class, probability=0.9, **geometry)


def test_localize_places_a_glass_no_edge_was_reported_for() -> None:
    img, geometry, x, y = _slide_image(4)
    _darken(img, _rect_mask(x, y, (30.0, 15.0), (24.0, 24.0), -1.0))
    state = FuseState()
    state.add(_slide_edges())
    state.add_frame(0, FrameGeometry(Pose((40.0, 15.0), PS / 8), 3200, 1200))
    assert localize(state, "slide")["samples"] == []
    (sample,) = localize(state, "slide", views=StaticViews([(img, geometry)]))["samples"]
    truth = rectangle_polygon((30.0, 15.0), (24.0, 24.0), -1.0)
    assert polygon_iou(sample["polygon_mm"], truth) > 0.93
    assert 0.0 < sample["confidence"] < 1.0


def test_an_outline_along_carrier_edges_is_not_a_glass() -> None:
    """Between a label's edge, the slide's glowing sides and its end lies an outline of
    about a standard size, darker inside than out: with its sides on carrier edges it
    is no glass."""
    img, geometry, x, y = _slide_image(5)
    _darken(img, _rect_mask(x, y, (50.0, 15.0), (50.0, 24.0)), 0.05)
    state = FuseState()
    state.add(_slide_edges())
    ghost = rectangle_polygon((50.0, 15.0), (50.0, 24.0), 0.0)
    for k in range(4):
        a, b = ghost[k], ghost[(k + 1) % 4]
        state.add([_edge(900 + k, "sample_carrier_edge", segment_mm=(tuple(a), tuple(b)))])
    assert localize(state, "slide", views=StaticViews([(img, geometry)]))["samples"] == []


def test_a_glass_as_wide_as_the_slide_allows_is_found_between_its_sides() -> None:
    """A 24 mm wide glass on a 25 mm slide: its long sides run within a side's tolerance
    of the slide's (long fused carrier edges), its ends do not, and they are strong."""
    img, geometry, x, y = _slide_image(6)
    _darken(img, _rect_mask(x, y, (45.0, 15.2), (32.0, 24.0)))
    state = FuseState()
    poly = rectangle_polygon(*SLIDE, 0.0)
    state.add(
        [
            _edge(
                800 + k,
                "sample_carrier_edge",
                segment_mm=(tuple(poly[k]), tuple(poly[(k + 1) % 4])),
            )
            for k in range(4)
        ]
    )
    views = StaticViews([(img, geometry)])
    truth = rectangle_polygon((45.0, 15.2), (32.0, 24.0), 0.0)
    (sample,) = localize(state, "slide", views=views)["samples"]
    assert polygon_iou(sample["polygon_mm"], truth) > 0.93
    # the ends are what lets it count: asked for more than they give, it is no glass
    strict = LocalizeConfig(outline_ends_z=math.inf)
    assert localize(state, "slide", strict, views=views)["samples"] == []


def test_one_arc_of_a_round_glass_is_confirmed_by_its_outline_of_either_sign() -> None:
    """A 16 mm round glass brighter inside than out (no darker outline to search for),
    of whose edge one 40 degree arc was identified, 0.3 mm off in radius: the arc
    proposes the circle and the outline at that place confirms it. An arc where no
    outline is, and the glass without its arc, give no glass."""
    img, geometry, x, y = _slide_image(7)
    _darken(img, np.hypot(x - 50.0, y - 14.0) <= 8.0, -0.03)
    views = StaticViews([(img, geometry)])
    state = FuseState()
    state.add(_slide_edges())
    assert localize(state, "slide", views=views)["samples"] == []
    state.add([_edge(700, "round_cover_glass_edge", arc_mm=(50.2, 14.1, 7.7, 200.0, 240.0))])
    (sample,) = localize(state, "slide", views=views)["samples"]
    assert sample["shape"] == "circle" and sample["size_mm"] == [16.0]
    assert math.dist(sample["center_mm"], (50.0, 14.0)) < 0.3
    assert 0.0 < sample["confidence"] < 1.0
    state = FuseState()
    state.add(_slide_edges())
    state.add([_edge(701, "round_cover_glass_edge", arc_mm=(25.0, 14.0, 8.0, 200.0, 240.0))])
    assert (
        localize(state, "slide", views=StaticViews([(_slide_image(7)[0], geometry)]))["samples"]
        == []
    )


def test_vignetting_is_divided_out_of_many_frames_and_one_frame_is_left_alone() -> None:
    """Frames of a narrow overview, each darkened towards its borders alike (to 55 % in
    the corners) over different content: the estimated flat field takes the fall-off
    out and keeps the content; a single frame is returned as it is."""
    rng = np.random.default_rng(8)
    h, w = 60, 80
    v, u = np.mgrid[0:h, 0:w]
    fall = (1 - 0.3 * ((u - 39.5) / 39.5) ** 2) * (1 - 0.3 * ((v - 29.5) / 39.5) ** 2 * 1.78)
    geometry = FrameGeometry(Pose((0.0, 0.0), PS), w, h)
    frames = []
    for k in range(9):
        content = np.full((h, w), 0.3 + 0.02 * k, np.float32)
        # the dark holder at one side of the frames along the holder's edges
        band = [np.s_[:, :15], np.s_[:, -15:], np.s_[:12, :], np.s_[-12:, :]]
        if k < len(band):
            content[band[k]] = 0.1
        content += rng.normal(0.0, 0.002, content.shape).astype(np.float32)
        frames.append(content)
    views = [((c * fall).astype(np.float32), geometry) for c in frames]
    flat = flat_fielded(views)
    for (out, _), content in zip(flat, frames, strict=True):
        ratio = out / content
        # what is left of the fall-off: a uniform gain, corners as bright as the middle
        assert np.ptp(ratio) / ratio.mean() < 0.05
    assert np.ptp(views[0][0] / frames[0]) / (views[0][0] / frames[0]).mean() > 0.3
    (single,) = flat_fielded(views[:1])
    assert single[0] is views[0][0]


@pytest.mark.parametrize("kind", ["memory", "redis"])
def test_store_keeps_coarse_data_after_releasing_full_res(kind: str, request) -> None:
    store = (
        InMemoryFrameStore()
        if kind == "memory"
        else RedisFrameStore(request.getfixturevalue("redis_client"), tile=64)
    )
    image = (np.arange(120 * 160, dtype=np.uint32).reshape(120, 160) % 251).astype(np.uint8)
    store.put(frame_key("s", 0), image, 8)
    store.crop(frame_key("s", 0), (0, 0, 10, 10))
    coarse = store.coarse(frame_key("s", 0))
    store.release_full_res(frame_key("s", 0))
    with pytest.raises(KeyError):
        store.crop(frame_key("s", 0), (20, 20, 30, 30))
    np.testing.assert_array_equal(store.coarse(frame_key("s", 0)), coarse)

    full = FrameGeometry(Pose((5.0, 4.0), 0.05, 30.0), 165, 123)  # trailing pixels dropped
    state = FuseState()
    state.add_frame(0, full)
    views = StoredCoarseViews(store, "s", state)
    assert isinstance(views, CoarseViews)
    ((c, g),) = views.views()
    assert views.bytes_read == c.nbytes
    assert c.shape == (g.height, g.width) == (15, 20)
    # a coarse pixel centre is the centre of its 8 x 8 block of full-res pixels
    np.testing.assert_allclose(
        g.pixel_to_holder((3, 2)), full.pixel_to_holder((3 * 8 + 3.5, 2 * 8 + 3.5))
    )


def test_marker_ring_on_an_outlined_glass_is_not_a_second_glass() -> None:
    img, geometry, x, y = _slide_image(6)
    _darken(img, _rect_mask(x, y, (45.0, 15.0), (22.0, 22.0)), 0.01)
    # a thin dark pen ring round the sample: its outside steps up like a glass edge
    img[np.abs(np.hypot(x - 45.0, y - 15.0) - 8.8) < 0.25] *= np.float32(0.5)
    state = FuseState()
    state.add(_slide_edges())
    samples = localize(state, "slide", views=StaticViews([(img, geometry)]))["samples"]
    assert [s["shape"] for s in samples] == ["rectangle"]
    assert sorted(samples[0]["size_mm"]) == [22.0, 22.0]


def test_a_round_outline_on_a_pen_ring_is_the_ring_not_a_glass() -> None:
    """A dark pen ring of a standard diameter (22 mm) round a sample on a glass whose
    outline is too faint to see: the ring's dark band scores as a round outline on the
    coarse data, but where the ring's flanks were reported as pen it is no round glass;
    the ring places a low-confidence rectangle round it instead."""
    img, geometry, x, y = _slide_image(7)
    # the ring's outer flank lies on the 22 mm circle
    img[np.abs(np.hypot(x - 45.0, y - 15.0) - 10.75) < 0.25] *= np.float32(0.3)
    state = FuseState()
    state.add(_slide_edges())
    state.add(
        [
            _edge(
                500 + k, "round_structure", arc_mm=(45.0, 15.0, 10.75, a0, a0 + 30.0), marker=True
            )
            for k, a0 in enumerate(range(0, 360, 30))
        ]
    )
    views = StaticViews([(img, geometry)])
    loose = LocalizeConfig(loop_circle_tol_mm=-1.0)
    (ghost,) = localize(state, "slide", loose, views=views)["samples"]
    assert ghost["shape"] == "circle" and ghost["confidence"] > 0.5  # the test can fail
    (sample,) = localize(state, "slide", views=views)["samples"]
    assert sample["shape"] == "rectangle" and sample["size_mm"] == [22.0, 22.0]
    assert sample["confidence"] == pytest.approx(0.2)
    assert math.dist(sample["center_mm"], (45.0, 15.0)) < 0.3


def _dish(glass_step: float, seed: int) -> tuple[FuseState, StaticViews]:
    """A dish whose wall (35 mm) was identified all round, and a coarse frame (0.2 mm
    pixels) in which its 18 mm glass bottom is ``glass_step`` brighter than the plastic
    round it; no edge of the glass was reported."""
    center = (40.0, 30.0)
    geometry = FrameGeometry(Pose(center, PS), 250, 250)
    jj, ii = np.meshgrid(np.arange(250), np.arange(250))
    xy = geometry.pixel_to_holder(np.stack([jj, ii], axis=-1))
    r = np.hypot(xy[..., 0] - 40.3, xy[..., 1] - 29.8)
    rng = np.random.default_rng(seed)
    img = np.full((250, 250), 0.3, np.float32) + rng.normal(0, 0.002, (250, 250)).astype(np.float32)
    img[r <= 9.0] *= np.float32(1.0 + glass_step)
    img[np.abs(np.hypot(xy[..., 0] - 40.0, xy[..., 1] - 30.0) - 17.5) < 0.5] = 0.6
    state = FuseState()
    for k, a0 in enumerate(range(0, 360, 30)):
        region = Region(frame_index=0, region_index=k, box_px=(0, 0, 64, 64), probability=0.9)
        arc = (40.0, 30.0, 17.5, float(a0), float(a0 + 30))
        state.add(
            [Structure(region=region, shape_class="round_structure", probability=0.9, arc_mm=arc)]
        )
    state.add_frame(0, geometry)
    return state, StaticViews([(img, geometry)])


def test_a_dish_glass_bottom_no_edge_was_reported_for_is_found_by_its_outline() -> None:
    state, views = _dish(0.03, seed=7)
    assert localize(state, "petri_dish")["samples"] == []  # no coarse data: nothing
    (glass,) = localize(state, "petri_dish", views=views)["samples"]
    assert glass["element"] == "dish_glass" and glass["size_mm"] == [18.0]
    assert math.dist(glass["center_mm"], (40.3, 29.8)) < 0.3
    assert 0.0 < glass["confidence"] < 1.0
    # the same dish without a glass step: noise makes no glass
    state, views = _dish(0.0, seed=7)
    assert localize(state, "petri_dish", views=views)["samples"] == []


def _labelled_slide(seed: int) -> tuple[np.ndarray, FrameGeometry]:
    """The slide of :func:`_slide_image` with a paper label over its right 20 mm: bright,
    with dark print (bars and text lines) over a good part of it."""
    img, geometry, x, y = _slide_image(seed)
    paper = _rect_mask(x, y, (67.5, 15.0), (20.0, 25.0))
    img[paper] = 0.8
    bars = paper & (y < 10.0) & (np.floor(x / 0.6) % 2 == 0)
    text = paper & (y > 14.0) & (y < 20.0) & (np.floor(y / 1.2) % 2 == 0) & (x < 72.0)
    img[bars | text] = 0.15
    return img, geometry


def test_the_label_end_is_found_on_the_coarse_data_and_holds_no_glass() -> None:
    from samplescout.fuse.label import label_span

    img, geometry = _labelled_slide(6)
    span = label_span([(img, geometry)], SLIDE[0], SLIDE[1], 0.0)
    assert span is not None and abs(span[0] - 17.5) < 0.6 and span[1] == 37.5
    plain, _, _, _ = _slide_image(6)
    assert label_span([(plain, geometry)], SLIDE[0], SLIDE[1], 0.0) is None
    # An 18 x 18 outline of identified glass edges on the label (its border and print),
    # no code found on it, and a 24 x 24 glass beside it.
    state = FuseState()
    state.add(_slide_edges())
    for n, center in enumerate(((66.0, 14.0), (42.0, 15.0))):
        size = (18.0, 18.0) if n == 0 else (24.0, 24.0)
        poly = rectangle_polygon(center, size, 0.0)
        for k in range(4):
            a, b = poly[k], poly[(k + 1) % 4]
            seg = (tuple(a), tuple(b))
            state.add([_edge(500 + 10 * n + k, "straight_cover_glass_edge", segment_mm=seg)])
    without = localize(state, "slide")["samples"]
    assert sorted(s["size_mm"][0] for s in without) == [18.0, 24.0]
    (sample,) = localize(state, "slide", views=StaticViews([(img, geometry)]))["samples"]
    assert sample["size_mm"] == [24.0, 24.0]
    # Lines across the slide on the label's border are that border (no glass side);
    # one 5 mm off it, or one along the slide, may be a glass's.
    from samplescout.fuse.localize import _Evidence
    from samplescout.fuse.state import fuse_lines

    state = FuseState()
    state.add(_slide_edges())
    lines = {
        "border": ((57.3, 4.0), (57.4, 26.0)),
        "off": ((52.5, 4.0), (52.5, 26.0)),
        "along": ((30.0, 14.0), (50.0, 14.0)),
    }
    for k, seg in enumerate(lines.values()):
        state.add([_edge(600 + k, "straight_cover_glass_edge", segment_mm=seg)])
    every = state.sorted_structures()
    segments = [e for e in every if e["segment"] is not None]
    fused = fuse_lines(segments)
    ev = _Evidence(state, every, segments, fused, LocalizeConfig(), StaticViews([(img, geometry)]))
    on_edge = {
        name: any(
            ev.on_label_edge(ln)
            for ln in fused
            if min(math.dist(p, seg[0]) for p in ln.endpoints) < 0.5
        )
        for name, seg in lines.items()
    }
    assert on_edge == {"border": True, "off": False, "along": False}
