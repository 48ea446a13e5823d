from __future__ import annotations

import math
import time

import cv2
import numpy as np
import pytest

from samplescout.contracts import STRUCTURE_CLASSES, Region
from samplescout.geometry import FrameGeometry, Pose
from samplescout.identify.base import Identifier
from samplescout.identify.classical import ClassicalIdentifier, full_frame_regions

PS = 0.0125
GEOM = FrameGeometry(Pose((30.0, 20.0), PS, 0.4), 1600, 1200)
BOX = (600, 400, 856, 656)


def _crop(dist_px: np.ndarray, amplitude: float, noise: float, seed: int = 0) -> np.ndarray:
    """A thin bright line (Gaussian profile, sigma 0.8 px) along the zero set of ``dist_px``."""
    rng = np.random.default_rng(seed)
    img = 0.3 + amplitude * np.exp(-0.5 * (dist_px / 0.8) ** 2)
    return (img + rng.normal(0, noise, img.shape)).astype(np.float32)


def _pixel_grid() -> tuple[np.ndarray, np.ndarray]:
    x0, y0, x1, y1 = BOX
    return np.meshgrid(np.arange(x0, x1, dtype=np.float64), np.arange(y0, y1, dtype=np.float64))


def _region(
    box: tuple[int, int, int, int] = BOX, probability: float = 0.9, index: int = 0
) -> Region:
    return Region(frame_index=2, region_index=index, box_px=box, probability=probability)


def _line_distance_mm(seg: tuple, p: np.ndarray, angle_deg: float) -> float:
    n = np.array([-math.sin(math.radians(angle_deg)), math.cos(math.radians(angle_deg))])
    return max(abs(float((np.asarray(q) - p) @ n)) for q in seg)


def test_classical_identifier_is_an_identifier() -> None:
    assert isinstance(ClassicalIdentifier(), Identifier)


@pytest.mark.parametrize("amplitude", [0.2, 0.04])
def test_straight_edge_position_and_angle_in_holder_mm(amplitude: float) -> None:
    # A line through pixel (700.3, 530.0) at 12 deg in the frame.
    a = math.radians(12.0)
    u, v = _pixel_grid()
    dist = -(u - 700.3) * math.sin(a) + (v - 530.0) * math.cos(a)
    crop = _crop(dist, amplitude, noise=0.02)
    out = ClassicalIdentifier().identify([(_region(), crop)], GEOM)
    s = out[0]
    assert s.shape_class in STRUCTURE_CLASSES and s.segment_mm is not None and s.arc_mm is None
    assert s.region.frame_index == 2
    p = GEOM.pixel_to_holder([700.3, 530.0])
    holder_angle = 12.0 + GEOM.pose.rotation_deg
    assert _line_distance_mm(s.segment_mm, p, holder_angle) < 0.01  # < 1 px
    d = np.subtract(s.segment_mm[1], s.segment_mm[0])
    angle = math.degrees(math.atan2(d[1], d[0])) % 180.0
    assert abs(angle - holder_angle) < 0.3
    assert math.hypot(*d) > 0.8 * 256 * PS / math.cos(a)
    assert 0.5 < s.probability <= 1.0


def test_round_edge_gives_an_arc() -> None:
    # Circle of radius 180 px centred at pixel (760, 700): the crop sees its top arc.
    u, v = _pixel_grid()
    dist = np.hypot(u - 760.0, v - 700.0) - 180.0
    crop = _crop(dist, 0.15, noise=0.02)
    s = ClassicalIdentifier().identify([(_region(), crop)], GEOM)[0]
    assert s.arc_mm is not None and s.segment_mm is None
    assert s.shape_class in ("round_cover_glass_edge", "round_structure", "well")
    cx, cy, r, a0, a1 = s.arc_mm
    c = GEOM.pixel_to_holder([760.0, 700.0])
    # A short arc pins its points down far better than its centre.
    assert math.hypot(cx - c[0], cy - c[1]) < 0.15
    assert r == pytest.approx(180.0 * PS, abs=0.15)
    assert a1 > a0
    for a in np.radians(np.linspace(a0, a1, 5)):
        q = (cx + r * math.cos(a), cy + r * math.sin(a))
        assert math.hypot(q[0] - c[0], q[1] - c[1]) == pytest.approx(180.0 * PS, abs=0.02)


def test_noise_only_crop_has_no_structure() -> None:
    u, _ = _pixel_grid()
    crop = _crop(np.full_like(u, 1e3), 0.0, noise=0.02, seed=4)
    out = ClassicalIdentifier().identify([(_region(), crop)], GEOM)
    assert [s.shape_class for s in out] == ["no_structure"]


def test_two_edges_in_one_crop() -> None:
    """A faint edge next to a strong one is reported too."""
    _, v = _pixel_grid()
    crop = _crop(v - 450.0, 0.3, noise=0.01) + _crop(v - 520.0, 0.05, noise=0.0) - 0.3
    out = ClassicalIdentifier().identify([(_region(), crop)], GEOM)
    rows = sorted(
        round(float(GEOM.holder_to_pixel(np.mean(s.segment_mm, axis=0))[1]))
        for s in out
        if s.segment_mm
    )
    assert rows == [450, 520]


def test_top_k_keeps_the_most_probable_regions() -> None:
    u, _ = _pixel_grid()
    crop = _crop(np.full_like(u, 1e3), 0.0, noise=0.02)
    crops = [(_region(probability=p, index=i), crop) for i, p in enumerate([0.2, 0.9, 0.5])]
    out = ClassicalIdentifier(top_k=2).identify(crops, GEOM)
    assert [s.region.region_index for s in out] == [1, 2]


def test_full_frame_regions_tile_the_frame() -> None:
    regions = full_frame_regions(1000, 600, frame_index=1, geometry=GEOM, tile=256)
    cover = np.zeros((600, 1000), np.int32)
    for r in regions:
        x0, y0, x1, y1 = r.box_px
        cover[y0:y1, x0:x1] += 1
        assert x1 - x0 <= 256 and y1 - y0 <= 256 and r.frame_index == 1
    assert (cover == 1).all()
    assert [r.region_index for r in regions] == list(range(len(regions)))


def test_identify_speed_per_crop() -> None:
    a = math.radians(30.0)
    u, v = _pixel_grid()
    crop = _crop(-(u - 700.0) * math.sin(a) + (v - 530.0) * math.cos(a), 0.05, noise=0.02)
    ident = ClassicalIdentifier()
    ident.identify([(_region(), crop)], GEOM)
    t = time.perf_counter()
    for _ in range(20):
        ident.identify([(_region(), crop)], GEOM)
    assert (time.perf_counter() - t) / 20 < 0.02


def _pen_stroke_crop(with_edge: bool) -> np.ndarray:
    """A 0.4 mm wide dark marker-pen stroke (columns 660-692), and optionally a faint
    cover-glass edge (a thin bright line) at column 780 over the upper half of the crop."""
    u, v = _pixel_grid()
    inside = ((u >= 660.0) & (u < 692.0)).astype(np.float64)
    band = 0.6 * cv2.GaussianBlur(inside, (0, 0), 1.5)
    dist = np.where(v < 528.0, u - 780.0, 1e3)
    crop = _crop(dist, 0.03 if with_edge else 0.0, noise=0.004, seed=7)
    return (crop * (1.0 - band)).astype(np.float32)


def test_faint_edge_beside_a_pen_stroke_is_found() -> None:
    """A marker-pen circle round the tissue is far stronger than the cover glass's edge
    next to it: its flanks do not count towards ``max_per_region``, so the search goes
    on and the faint edge is reported too."""
    out = ClassicalIdentifier(max_per_region=1).identify(
        [(_region(), _pen_stroke_crop(True))], GEOM
    )
    faint = [
        s
        for s in out
        if s.segment_mm is not None
        and all(
            abs(float(GEOM.holder_to_pixel(np.asarray(p))[0]) - 780.0) < 2.0 for p in s.segment_mm
        )
    ]
    assert len(faint) == 1 and faint[0].shape_class == "straight_cover_glass_edge"
    dropped = ClassicalIdentifier(max_per_region=1, report_markers=False).identify(
        [(_region(), _pen_stroke_crop(True))], GEOM
    )
    assert [s.segment_mm for s in dropped] == [faint[0].segment_mm]
    # the stroke's flanks are reported flagged as a marker, the glass edge not
    assert not faint[0].marker
    assert [s.marker for s in out if s.segment_mm is not None].count(True) >= 1
    flagged = next(s for s in out if s.marker)
    assert type(flagged).from_proto(flagged.to_proto()).marker


def test_pen_stroke_can_be_left_out_but_a_step_edge_is_kept() -> None:
    ident = ClassicalIdentifier(report_markers=False)
    only_stroke = ident.identify([(_region(), _pen_stroke_crop(False))], GEOM)
    assert [s.shape_class for s in only_stroke] == ["no_structure"]
    # A slide edge: bright glass, then the dark gap to the holder, then the brighter
    # holder: dark between two different levels is no pen stroke.
    u, _ = _pixel_grid()
    level = np.where(u < 700.0, 0.5, np.where(u < 720.0, 0.1, 0.3))
    rng = np.random.default_rng(3)
    crop = cv2.GaussianBlur(level, (0, 0), 1.2) + rng.normal(0, 0.004, u.shape)
    out = ident.identify([(_region(), crop.astype(np.float32))], GEOM)
    assert [s.shape_class for s in out].count("sample_carrier_edge") >= 1


@pytest.mark.parametrize("scale", [1.0, 4095 / 65535])
def test_bold_and_faint_steps_keep_their_class_in_a_dim_frame(scale: float) -> None:
    # A 12-bit camera stored in 16 bits uses a sixteenth of the grey range: a slide's
    # bold step must stay a carrier edge, a cover glass's faint step a cover-glass edge.
    _, v = _pixel_grid()
    results = {}
    for name, (inside, outside) in {"bold": (0.45, 0.12), "faint": (0.45, 0.43)}.items():
        step = np.where(v < 530.0, outside, inside)
        img = cv2.GaussianBlur(step.astype(np.float32), (0, 0), 1.0) * scale
        img += np.random.default_rng(3).normal(0, 0.002 * scale, img.shape).astype(np.float32)
        out = ClassicalIdentifier().identify([(_region(), img)], GEOM)
        results[name] = out[0].shape_class
    assert results == {"bold": "sample_carrier_edge", "faint": "straight_cover_glass_edge"}


def _walls_crossing(noise: float = 0.01, seed: int = 1) -> np.ndarray:
    """A 256 px crop (0.045 mm px) of a chamber slide where two dividers cross: a bright
    wall 1 mm (22 px) thick across the whole crop, a shorter one across it above."""
    rng = np.random.default_rng(seed)
    img = np.full((256, 256), 0.3, np.float32)
    img[110:132, :] = 0.6
    img[:110, 150:172] = 0.6
    img = cv2.GaussianBlur(img, (0, 0), 1.0)
    return (img + rng.normal(0, noise, img.shape)).astype(np.float32)


def _directions(edges: list) -> list[str]:
    out = []
    for e in edges:
        assert e.kind == "line"
        x0, y0, x1, y1 = e.line
        out.append("h" if abs(x1 - x0) > abs(y1 - y0) else "v")
    return out


def test_on_chamber_slides_a_divider_crossing_a_wall_is_found_too() -> None:
    crop = _walls_crossing()
    plain = ClassicalIdentifier()
    assert _directions(plain.find_edges(crop, 0.045)) == ["h", "h"]
    chamber = plain.for_carrier("chamber_slide")
    assert chamber is not plain and chamber is plain.for_carrier("chamber_slide")
    assert chamber.max_crossing == 2 and plain.max_crossing == 0
    found = chamber.find_edges(crop, 0.045)
    dirs = _directions(found)
    assert dirs[:2] == ["h", "h"] and dirs[2:] == ["v", "v"]
    # the lines across the wall are flagged (fusion uses them on chamber slides only)
    assert [e.crossing for e in found] == [False, False, True, True]
    geometry = FrameGeometry(Pose((30.0, 20.0), 0.045, 0.4), 1600, 1200)
    structures = chamber.identify([(_region(), crop)], geometry)
    assert sorted(s.crossing for s in structures) == [False, False, True, True]
    assert [type(s).from_proto(s.to_proto()).crossing for s in structures] == [
        s.crossing for s in structures
    ]
    # a carrier still to be recognised may be a chamber slide: the same search
    assert plain.for_carrier("unknown") is chamber
    for carrier in ("slide", "multiwell", "petri_dish"):
        assert plain.for_carrier(carrier) is plain
    # two parallel lines 0.2 mm apart are one glass edge's double line, not a wall
    thin = np.full((256, 256), 0.3, np.float32)
    thin[120:125, :] = 0.6
    thin[:110, 150:172] = 0.6
    thin = cv2.GaussianBlur(thin, (0, 0), 1.0)
    assert _directions(chamber.find_edges(thin, 0.045))[:2] == ["h", "h"]
    assert len(chamber.find_edges(thin, 0.045)) == 2


def test_the_identify_stage_uses_the_sessions_carrier(easy_wide_slide) -> None:
    from samplescout.acquire.sources import BundleSource
    from samplescout.app import EmbeddedPipeline, Stages, load_stages
    from samplescout.bundle import open_bundle
    from samplescout.config import Settings
    from samplescout.identify.base import CarrierAware

    asked: list[str] = []

    class Recording(ClassicalIdentifier):
        def for_carrier(self, carrier: str) -> ClassicalIdentifier:
            asked.append(carrier)
            return super().for_carrier(carrier)

    assert isinstance(Recording(), CarrierAware)
    settings = Settings()
    base = load_stages(settings)
    stages = Stages(
        selectors=base.selectors, identifiers={**base.identifiers, "coarse": Recording()}
    )
    pipeline = EmbeddedPipeline(settings=settings, stages=stages)
    pipeline.run(BundleSource(open_bundle(easy_wide_slide)), carrier="chamber_slide")
    pipeline.run(BundleSource(open_bundle(easy_wide_slide)))
    frames = len(open_bundle(easy_wide_slide).manifest.frames)
    assert asked == ["chamber_slide"] * frames + ["slide"] * frames
