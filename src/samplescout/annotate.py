"""Auto-annotation of simulator frames for the selection and identification models.

How a target is made
--------------------
1. The scene (simulator objects) says which element outlines *may* be in a frame:
   slide and plate sides, cover glasses, chambers, wells, dish rims, clips. This only
   names things: which straight line is a cover glass and which a slide cannot be
   known from pixels alone.
2. Classic image processing at **full resolution** decides what is really visible:
   every outline is cut into pieces of ~64 px, and each piece is tested with a
   matched filter on the noise-normalised gradient (the Hough vote of that exact
   line / arc, searched over a few pixels of offset for pose error). Only pieces
   whose vote is well above noise become positive targets; the rest are *ignored*
   (weight 0), so a faint edge is neither learned as structure nor as background.
3. Canny + probabilistic Hough lines over the whole frame find the straight edges the
   image shows. Lines that match no outline are scratches, fibres and print: they
   become explicit ``straight_structure`` / distractor targets, and they measure the
   annotation's precision against the simulator ground truth.

:func:`annotate_frame` returns both the coarse per-pixel target of the selection
model and the outline pieces the identification crops are cut around;
:func:`annotation_quality` compares the image-processing result with the ground truth.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from samplescout.coarse import to_gray_float
from samplescout.geometry import FrameGeometry, Pose

#: Selection classes, per coarse pixel (index = class id). 255 in a target: ignore.
SELECT_CLASSES: tuple[str, ...] = ("no_structure", "structure", "label", "non_sample")
IGNORE = 255

#: Element classes of the identification model.
ELEMENT_CLASSES: tuple[str, ...] = (
    "none",
    "cover_glass",
    "slide",
    "plate",
    "well",
    "chamber",
    "dish",
    "holder",
    "label",
)

#: Size classes: standard cover glasses, well formats, chamber counts, dish glass.
SIZE_CLASSES: tuple[str, ...] = (
    "unknown",
    "cg_18x18",
    "cg_22x22",
    "cg_24x24",
    "cg_32x24",
    "cg_40x24",
    "cg_50x24",
    "cg_60x24",
    "cg_d10",
    "cg_d12",
    "cg_d13",
    "cg_d15",
    "cg_d16",
    "cg_d18",
    "cg_d20",
    "cg_d22",
    "cg_d25",
    "plate_6",
    "plate_12",
    "plate_24",
    "plate_48",
    "plate_96",
    "plate_384",
    "dish_d14",
    "dish_d16",
    "dish_d18",
    "dish_d20",
)

PIECE_PX = 64


@dataclass(frozen=True, slots=True)
class Outline:
    """A known element boundary in holder mm: a line segment or a circle."""

    shape_class: str
    element: str
    size_class: str
    segment: tuple[tuple[float, float], tuple[float, float]] | None = None
    circle: tuple[float, float, float] | None = None  # cx, cy, r (mm)


@dataclass(slots=True)
class Piece:
    """A ~64 px piece of an outline in one frame, in full-resolution pixels."""

    outline: int
    p0: np.ndarray  # (2,) px
    p1: np.ndarray  # (2,) px
    z: float  # matched-filter score in noise units
    confirmed: bool


@dataclass(slots=True)
class FrameAnnotation:
    """Targets of one frame."""

    select: np.ndarray  # (h, w) uint8 coarse target, SELECT_CLASSES ids or IGNORE
    factor: int
    outlines: list[Outline]
    pieces: list[Piece]
    hough: list[tuple[np.ndarray, bool]]  # (segment (4,), matches an outline)
    label_mask: np.ndarray  # (H, W) uint8 at full res / 4 (label area)
    stats: dict[str, float] = field(default_factory=dict)


def _size_name(prefix: str, value: Any) -> str:
    name = f"{prefix}_{value}"
    return name if name in SIZE_CLASSES else "unknown"


def _rect_sides(rect: Any) -> list[tuple[tuple[float, float], tuple[float, float]]]:
    p = np.asarray(rect.polygon(), dtype=np.float64)
    return [
        ((float(p[i, 0]), float(p[i, 1])), (float(p[(i + 1) % 4, 0]), float(p[(i + 1) % 4, 1])))
        for i in range(4)
    ]


def scene_outlines(scene: Any) -> list[Outline]:
    """Every element boundary of a simulator scene, named (see module doc, step 1)."""
    out: list[Outline] = []
    if scene.slide is not None:
        for s in _rect_sides(scene.slide):
            out.append(Outline("sample_carrier_edge", "slide", "unknown", segment=s))
    for g in scene.cover_glasses:
        shape = g.shape
        if hasattr(shape, "diameter"):
            size = _size_name("cg", f"d{round(shape.diameter)}")
            out.append(
                Outline(
                    "round_cover_glass_edge",
                    "cover_glass",
                    size,
                    circle=(shape.center[0], shape.center[1], shape.diameter / 2),
                )
            )
        else:
            w, h = shape.size
            size = _size_name("cg", f"{round(w)}x{round(h)}")
            for s in _rect_sides(shape):
                out.append(Outline("straight_cover_glass_edge", "cover_glass", size, segment=s))
    if scene.chambers is not None:
        m = scene.chambers
        for s in _rect_sides(m.outer):
            out.append(Outline("spacer", "chamber", "unknown", segment=s))
        for r in range(m.rows):
            for c in range(m.cols):
                for s in _rect_sides(m.chamber_rect(r, c)):
                    out.append(Outline("sample_chamber_edge", "chamber", "unknown", segment=s))
    if scene.plate is not None:
        p = scene.plate
        size = _size_name("plate", p.wells)
        for s in _rect_sides(p.body):
            out.append(Outline("plate_edge", "plate", size, segment=s))
        for r in range(p.rows):
            for c in range(p.cols):
                cx, cy = p.well_center(r, c)
                if p.circular:
                    out.append(Outline("well", "well", size, circle=(cx, cy, p.well_size / 2)))
                else:
                    from samplescout.geometry import rectangle_polygon

                    q = rectangle_polygon((cx, cy), (p.well_size, p.well_size), p.body.angle_deg)
                    for i in range(4):
                        a, b = q[i], q[(i + 1) % 4]
                        out.append(
                            Outline(
                                "well",
                                "well",
                                size,
                                segment=((float(a[0]), float(a[1])), (float(b[0]), float(b[1]))),
                            )
                        )
    if scene.dish is not None:
        d = scene.dish
        cx, cy = d.center
        out.append(
            Outline("round_structure", "dish", "unknown", circle=(cx, cy, d.outer_diameter / 2))
        )
        out.append(
            Outline(
                "round_structure", "dish", "unknown", circle=(cx, cy, d.outer_diameter / 2 - d.wall)
            )
        )
        out.append(
            Outline(
                "round_cover_glass_edge",
                "dish",
                _size_name("dish", f"d{round(d.glass_diameter)}"),
                circle=(cx, cy, d.glass_diameter / 2),
            )
        )
    for clip in scene.clips:
        for s in _rect_sides(clip):
            out.append(Outline("holding_frame", "holder", "unknown", segment=s))
    return out


def noise_normalized_gradient(
    gray: np.ndarray, sigma: float = 1.2
) -> tuple[np.ndarray, np.ndarray]:
    """Gradient ``(gx, gy)`` of a smoothed image in units of its own noise."""
    g = cv2.GaussianBlur(gray, (0, 0), sigma)
    gx = cv2.Sobel(g, cv2.CV_32F, 1, 0, ksize=3, scale=0.125)
    gy = cv2.Sobel(g, cv2.CV_32F, 0, 1, ksize=3, scale=0.125)
    # Robust noise of one gradient component: median absolute value over the frame.
    s = float(np.median(np.abs(gx[::4, ::4]))) * 1.4826 + 1e-9
    return gx / s, gy / s


def _sample(img: np.ndarray, pts: np.ndarray) -> np.ndarray:
    m = pts.astype(np.float32).reshape(-1, 1, 2)
    out = cv2.remap(img, m[..., 0], m[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    return out.reshape(-1)


def _piece_score(
    gx: np.ndarray, gy: np.ndarray, p0: np.ndarray, p1: np.ndarray, search: float
) -> float:
    """Matched filter: mean normal gradient along ``p0-p1`` at the best offset, in noise units."""
    d = p1 - p0
    n = float(np.hypot(*d))
    if n < 4:
        return 0.0
    t = d / n
    nrm = np.array([-t[1], t[0]])
    s = np.linspace(0.0, 1.0, max(4, int(n)))
    base = p0[None, :] + s[:, None] * d[None, :]
    best = 0.0
    # Along-line samples of smoothed-gradient noise are correlated over ~3 px.
    dof = math.sqrt(max(1.0, n / 3.0))
    for off in np.arange(-search, search + 0.01, 1.0):
        pts = base + off * nrm
        gn = _sample(gx, pts) * nrm[0] + _sample(gy, pts) * nrm[1]
        best = max(best, abs(float(gn.mean())) * dof)
    return best


def _circle_pieces(
    c: tuple[float, float], r: float, w: int, h: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    if r < 2:
        return []
    n = max(8, int(2 * math.pi * r / PIECE_PX))
    ang = np.linspace(0, 2 * math.pi, n + 1)
    out = []
    for a0, a1 in itertools.pairwise(ang):
        p0 = np.array([c[0] + r * math.cos(a0), c[1] + r * math.sin(a0)])
        p1 = np.array([c[0] + r * math.cos(a1), c[1] + r * math.sin(a1)])
        out.append((p0, p1))
    return [p for p in out if _inside(p[0], w, h, 2) and _inside(p[1], w, h, 2)]


def _inside(p: np.ndarray, w: int, h: int, m: float) -> bool:
    return bool(m <= p[0] <= w - 1 - m and m <= p[1] <= h - 1 - m)


def _clip_segment(
    p0: np.ndarray, p1: np.ndarray, w: int, h: int, m: float
) -> tuple[np.ndarray, np.ndarray] | None:
    ok, a, b = cv2.clipLine(
        (int(m), int(m), int(w - 2 * m), int(h - 2 * m)),
        tuple(np.round(p0).astype(int)),
        tuple(np.round(p1).astype(int)),
    )
    if not ok:
        return None
    # clipLine works on integers: recompute exact ends by projection on the true line.
    d = p1 - p0
    L2 = float(d @ d)
    if L2 <= 0:
        return None
    ta = float((np.asarray(a, float) - p0) @ d / L2)
    tb = float((np.asarray(b, float) - p0) @ d / L2)
    ta, tb = sorted((max(0.0, ta), min(1.0, tb)))
    return p0 + ta * d, p0 + tb * d


def outline_pieces(
    outlines: list[Outline], geometry: FrameGeometry
) -> list[tuple[int, np.ndarray, np.ndarray]]:
    """Cut every outline visible in the frame into ~``PIECE_PX`` pixel pieces."""
    w, h = geometry.width, geometry.height
    ps = geometry.pose.pixel_size_mm
    pieces: list[tuple[int, np.ndarray, np.ndarray]] = []
    for i, o in enumerate(outlines):
        if o.circle is not None:
            cx, cy, r = o.circle
            c = geometry.holder_to_pixel(np.array([cx, cy]))
            for p0, p1 in _circle_pieces((float(c[0]), float(c[1])), r / ps, w, h):
                pieces.append((i, p0, p1))
        else:
            assert o.segment is not None
            a = geometry.holder_to_pixel(np.array(o.segment[0]))
            b = geometry.holder_to_pixel(np.array(o.segment[1]))
            cl = _clip_segment(a, b, w, h, 3)
            if cl is None:
                continue
            a, b = cl
            n = float(np.hypot(*(b - a)))
            k = max(1, round(n / PIECE_PX))
            if n < 16:
                continue
            for j in range(k):
                pieces.append((i, a + (b - a) * j / k, a + (b - a) * (j + 1) / k))
    return pieces


def hough_lines(gray: np.ndarray, *, min_length: int = 80) -> list[np.ndarray]:
    """Canny + probabilistic Hough on the full-resolution frame: ``(x0, y0, x1, y1)`` lines."""
    g = cv2.GaussianBlur(gray, (0, 0), 1.5)
    lo, hi = np.percentile(g[::4, ::4], (0.5, 99.5))
    img8 = np.clip((g - lo) / max(hi - lo, 1e-6) * 255, 0, 255).astype(np.uint8)
    # Canny thresholds in units of the frame's own gradient noise (median Sobel magnitude).
    mag = cv2.magnitude(
        cv2.Sobel(img8, cv2.CV_32F, 1, 0, ksize=3), cv2.Sobel(img8, cv2.CV_32F, 0, 1, ksize=3)
    )
    noise = max(float(np.median(mag[::2, ::2])), 1.0)
    edges = cv2.Canny(img8, 3.0 * noise, 6.0 * noise, L2gradient=True)
    lines = cv2.HoughLinesP(edges, 2, math.pi / 360, 60, minLineLength=min_length, maxLineGap=8)
    return [] if lines is None else [ln.reshape(4).astype(np.float64) for ln in lines]


def _near_outline(
    seg: np.ndarray, outlines: list[Outline], geometry: FrameGeometry, tol_px: float
) -> bool:
    pts = np.linspace(seg[:2], seg[2:], 9)
    mm = geometry.pixel_to_holder(pts)
    tol = tol_px * geometry.pose.pixel_size_mm
    best = np.full(len(mm), np.inf)
    for o in outlines:
        best = np.minimum(best, distance_to_outline(o, mm))
    return bool(np.mean(best < tol) >= 0.8)


def distance_to_outline(o: Outline, pts: np.ndarray) -> np.ndarray:
    """Unsigned distance (same units as the outline) of ``pts (n, 2)`` to ``o``."""
    if o.circle is not None:
        cx, cy, r = o.circle
        return np.abs(np.hypot(pts[:, 0] - cx, pts[:, 1] - cy) - r)
    assert o.segment is not None
    a, b = np.asarray(o.segment[0]), np.asarray(o.segment[1])
    d = b - a
    t = np.clip(((pts - a) @ d) / max(float(d @ d), 1e-12), 0.0, 1.0)
    return np.hypot(*(pts - (a + t[:, None] * d)).T)


def _poly_px(geometry: FrameGeometry, poly_mm: np.ndarray, factor: int) -> np.ndarray:
    px = geometry.holder_to_pixel(poly_mm)
    return np.round(((px + 0.5) / factor - 0.5) * 16).astype(np.int32)


def annotate_frame(
    image: np.ndarray,
    scene: Any,
    pose: Pose,
    *,
    factor: int,
    z_confirm: float = 6.0,
    z_local: float = 2.5,
    search_px: float = 3.0,
    with_hough: bool = True,
    ignore_markers: bool = False,
) -> FrameAnnotation:
    """Targets for one rendered frame (see module doc).

    Parameters
    ----------
    image
        The full-resolution frame as rendered (any bit depth, grey or BGR).
    scene
        The simulator scene it shows.
    pose
        The *true* pose it was rendered with.
    factor
        Coarse factor of the selection target.
    z_confirm
        Matched-filter score (noise units) an outline piece needs to count as seen.
    z_local
        Lower score that suffices for a piece of an outline that is clear as a whole
        (whole-outline score >= ``2 * z_confirm``).
    search_px
        Offset search for the matched filter (pose and rendering error).
    with_hough
        Also run Canny + Hough (distractor lines and precision measurement).
    ignore_markers
        Marker-pen strokes are ``IGNORE`` in the selection target rather than
        ``no_structure``: fusion reads pen loops drawn round samples, so a selector
        need not learn to drop them (the first models' targets have them as background).
    """
    h, w = image.shape[:2]
    geometry = FrameGeometry(pose, w, h)
    gray = to_gray_float(image)
    gx, gy = noise_normalized_gradient(gray)
    outlines = scene_outlines(scene)
    pieces: list[Piece] = []
    for i, p0, p1 in outline_pieces(outlines, geometry):
        z = _piece_score(gx, gy, p0, p1, search_px)
        pieces.append(Piece(i, p0, p1, z, z >= z_confirm))
    # A whole outline is one Hough line / circle: its pieces' votes add up, so a faint
    # edge that is clear over its full visible length is confirmed where it shows locally.
    per: dict[int, list[Piece]] = {}
    for pc in pieces:
        per.setdefault(pc.outline, []).append(pc)
    for group in per.values():
        whole = float(np.mean([g.z for g in group])) * math.sqrt(len(group))
        if whole >= 2.0 * z_confirm:
            for g in group:
                g.confirmed = g.confirmed or g.z >= z_local

    ch, cw = h // factor, w // factor
    target = np.zeros((ch, cw), np.uint8)
    sh = 4  # fixed-point bits of cv2 drawing
    carrier = _carrier_polygons(scene)
    target[:] = 3
    for poly in carrier:
        cv2.fillPoly(target, [_poly_px(geometry, poly, factor)], 0, cv2.LINE_8, sh)
    for clip in scene.clips:
        cv2.fillPoly(
            target, [_poly_px(geometry, np.asarray(clip.polygon()), factor)], 3, cv2.LINE_8, sh
        )
    label_poly = _label_polygon(scene)
    if label_poly is not None:
        cv2.fillPoly(target, [_poly_px(geometry, label_poly, factor)], 2, cv2.LINE_8, sh)
    for pc in pieces:
        a = np.round(((pc.p0 + 0.5) / factor - 0.5) * 16).astype(np.int32)
        b = np.round(((pc.p1 + 0.5) / factor - 0.5) * 16).astype(np.int32)
        val = 1 if pc.confirmed else IGNORE
        if not pc.confirmed and outlines[pc.outline].element == "holder":
            continue  # an unseen clip side is just holder
        cv2.line(target, tuple(a), tuple(b), val, 2, cv2.LINE_8, sh)
    if ignore_markers:
        for st in scene.strokes:
            if st.kind != "marker":
                continue
            px = _poly_px(geometry, np.asarray(st.points, float), factor)
            thick = max(1, round(st.width_mm / (pose.pixel_size_mm * factor)) + 2)
            cv2.polylines(target, [px], False, IGNORE, thick, cv2.LINE_8, sh)
    # confirmed pieces win over ignored ones where they cross
    for pc in pieces:
        if pc.confirmed:
            a = np.round(((pc.p0 + 0.5) / factor - 0.5) * 16).astype(np.int32)
            b = np.round(((pc.p1 + 0.5) / factor - 0.5) * 16).astype(np.int32)
            cv2.line(target, tuple(a), tuple(b), 1, 2, cv2.LINE_8, sh)

    hough: list[tuple[np.ndarray, bool]] = []
    if with_hough:
        for seg in hough_lines(gray):
            hough.append((seg, _near_outline(seg, outlines, geometry, 6.0)))
    lm = np.zeros((max(1, h // 4), max(1, w // 4)), np.uint8)
    if label_poly is not None:
        cv2.fillPoly(lm, [_poly_px(geometry, label_poly, 4)], 1, cv2.LINE_8, sh)
    ann = FrameAnnotation(target, factor, outlines, pieces, hough, lm)
    ann.stats = _stats(ann, geometry)
    return ann


def _label_polygon(scene: Any) -> np.ndarray | None:
    """The label area: the slide end the simulator put the label decal on."""
    if scene.label is None:
        return None
    return np.asarray(scene.label.rect.polygon())


def _carrier_polygons(scene: Any) -> list[np.ndarray]:
    from samplescout.geometry import circle_polygon

    if scene.slide is not None:
        return [np.asarray(scene.slide.polygon())]
    if scene.plate is not None:
        return [np.asarray(scene.plate.body.polygon())]
    if scene.dish is not None:
        return [circle_polygon(scene.dish.center, scene.dish.outer_diameter, 128)]
    return []


def _stats(ann: FrameAnnotation, geometry: FrameGeometry) -> dict[str, float]:
    """Annotation quality vs the simulator ground truth (outline lengths in px)."""
    total = sum(float(np.hypot(*(p.p1 - p.p0))) for p in ann.pieces)
    seen = sum(float(np.hypot(*(p.p1 - p.p0))) for p in ann.pieces if p.confirmed)
    hl = [float(np.hypot(*(s[2:] - s[:2]))) for s, _ in ann.hough]
    hm = [x for x, (_, m) in zip(hl, ann.hough, strict=True) if m]
    t = ann.select
    valid = t != IGNORE
    return {
        "outline_px": total,
        "outline_confirmed_px": seen,
        "hough_px": float(sum(hl)),
        "hough_matched_px": float(sum(hm)),
        "target_pixels": float(t.size),
        "target_ignored": float((~valid).sum()),
        "target_structure": float((t == 1).sum()),
    }


def annotation_quality(stats: list[dict[str, float]]) -> dict[str, float]:
    """Aggregate :class:`FrameAnnotation` stats into precision/recall figures.

    ``outline_recall``: share of the true outline length that the matched filter
    confirmed (the rest is ignored in training). ``hough_precision``: share of the
    length of Canny/Hough lines that lies on a true outline; ``hough_recall``: their
    matched length over the true outline length.
    """
    s = {k: sum(d[k] for d in stats) for k in stats[0]} if stats else {}
    if not s:
        return {}
    return {
        "outline_recall": s["outline_confirmed_px"] / max(s["outline_px"], 1.0),
        "hough_precision": s["hough_matched_px"] / max(s["hough_px"], 1.0),
        "hough_recall": min(1.0, s["hough_matched_px"] / max(s["outline_px"], 1.0)),
        "ignored_fraction": s["target_ignored"] / max(s["target_pixels"], 1.0),
        "structure_fraction": s["target_structure"] / max(s["target_pixels"], 1.0),
    }


# ---------------------------------------------------------------------------
# training data: simulator frames


@dataclass(slots=True)
class RenderedFrame:
    """One simulator frame with what made it (for annotation)."""

    image: np.ndarray
    scene: Any
    pose: Pose  # true pose
    scale: float  # frame_scale it was rendered at (pixel counts relative to the camera)
    profile: str
    carrier: str
    difficulty: str
    seed: int


def render_frames(
    seeds: list[int] | range,
    *,
    carriers: tuple[str, ...] = ("slide", "multiwell", "chamber_slide", "petri_dish"),
    difficulties: tuple[str, ...] = ("easy", "hard"),
    profiles: tuple[str, ...] = ("wide", "narrow"),
    wide_scale: float = 0.5,
    narrow_scale: float = 1.0,
    narrow_frames: int = 3,
) -> Any:
    """Yield simulator frames for training or evaluation, deterministically.

    Every (seed, carrier, difficulty) is one scene; it is seen by the wide camera (one
    frame, rendered at ``wide_scale`` to keep training cheap) and by ``narrow_frames``
    frames of the narrow camera's raster chosen at random (all when 0).
    """
    from samplescout.acquire.simulator import (
        camera_profile,
        make_scene,
        overview_path,
        render_frame,
        true_poses,
    )

    for seed in seeds:
        for ci, carrier in enumerate(carriers):
            for di, diff in enumerate(difficulties):
                scene = make_scene(carrier, int(seed), diff)
                for profile in profiles:
                    scale = wide_scale if profile == "wide" else narrow_scale
                    cam = camera_profile(profile, scene.holder_opening_mm, frame_scale=scale)
                    rep = overview_path(
                        cam, scene.holder_opening_mm, rotation_deg=scene.reported_rotation_deg
                    )
                    rng = np.random.default_rng([int(seed), ci, di, len(profile), 0xA11])
                    act = true_poses(scene, rep, rng)
                    idx = list(range(len(act)))
                    if profile == "narrow" and 0 < narrow_frames < len(idx):
                        idx = sorted(rng.choice(len(idx), narrow_frames, replace=False).tolist())
                    blur = scene.blur_px * min(1.0, scale)
                    for i in idx:
                        img = render_frame(
                            scene, act[i], cam.width, cam.height, rng=rng, blur_px=blur
                        )
                        yield RenderedFrame(
                            img, scene, act[i], scale, profile, carrier, diff, int(seed)
                        )
