"""Random sample-holder scenes for the overview-camera simulator, with ground truth.

A :class:`Scene` is everything physical that the camera looks at, in **holder
coordinates** (SPEC section 1: mm, x right, y down, origin at the top-left corner
of the holder opening): the holder frame and its clips, the carrier (slide, SBS
plate, chamber slide, dish), cover glasses, wells, chambers, the printed label
with its codes, tissue, dust, scratches and fibres; plus the camera and
illumination parameters of one simulated microscope (LED ring, blur, noise, bit
depth, pose errors).

:func:`ground_truth` turns a scene into a result dict in exactly the SPEC section 3
format, so evaluation tools can score a pipeline result against it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from samplescout import __version__
from samplescout.geometry import (
    circle_polygon,
    normalize_angle_deg,
    rectangle_polygon,
    rotation_matrix,
)
from samplescout.standards import (
    COVER_GLASS_DIAMETERS,
    COVER_GLASS_SIZES,
    PLATE_FORMAT_BY_WELLS,
    SBS_SIZE_MM,
    SLIDE_SIZE_MM,
    well_name,
)

CARRIERS: tuple[str, ...] = ("slide", "multiwell", "chamber_slide", "petri_dish")
DIFFICULTIES: tuple[str, ...] = ("easy", "hard")

#: Holder type per carrier and the size of its opening (w, h) in mm.
HOLDER_FOR_CARRIER: dict[str, str] = {
    "slide": "slide_holder",
    "chamber_slide": "slide_holder",
    "multiwell": "plate_holder",
    "petri_dish": "dish_holder",
}
HOLDER_OPENINGS_MM: dict[str, tuple[float, float]] = {
    "slide_holder": (80.0, 30.0),
    "plate_holder": (130.0, 88.0),
    "dish_holder": (60.0, 60.0),  # or (80, 60), chosen per scene
}

LABEL_LENGTH_MM = 20.0
Point = tuple[float, float]

_HANDWRITING = (
    "HE {n}",
    "mouse #{n}",
    "KO-{n} d7",
    "P{n} liver",
    "ctrl {n}",
    "DAPI {n}",
    "WT {n}/3",
    "T{n} B2",
    "brain s{n}",
    "IHC {n}",
)


# ---------------------------------------------------------------------------
# shapes


@dataclass(frozen=True, slots=True)
class Rect:
    """A rectangle in holder mm: ``size = (w, h)`` turned by ``angle_deg`` about ``center``.

    ``radius`` rounds the corners (rendering only; the ground truth stays a rectangle).
    """

    center: Point
    size: tuple[float, float]
    angle_deg: float = 0.0
    radius: float = 0.0

    def polygon(self) -> np.ndarray:
        return rectangle_polygon(self.center, self.size, self.angle_deg)

    def bbox(self, margin: float = 0.0) -> tuple[float, float, float, float]:
        p = self.polygon()
        return (
            float(p[:, 0].min()) - margin,
            float(p[:, 1].min()) - margin,
            float(p[:, 0].max()) + margin,
            float(p[:, 1].max()) + margin,
        )

    def to_holder(self, local: np.ndarray) -> np.ndarray:
        """Map centred local mm ``(..., 2)`` to holder mm."""
        return np.asarray(local, dtype=np.float64) @ rotation_matrix(self.angle_deg).T + np.asarray(
            self.center
        )

    def to_local(self, xy: np.ndarray) -> np.ndarray:
        """Map holder mm ``(..., 2)`` to centred local mm."""
        d = np.asarray(xy, dtype=np.float64) - np.asarray(self.center)
        return d @ rotation_matrix(self.angle_deg)


@dataclass(frozen=True, slots=True)
class Circle:
    center: Point
    diameter: float

    def polygon(self, n: int = 64) -> np.ndarray:
        return circle_polygon(self.center, self.diameter, n)

    def bbox(self, margin: float = 0.0) -> tuple[float, float, float, float]:
        r = self.diameter / 2 + margin
        return (self.center[0] - r, self.center[1] - r, self.center[0] + r, self.center[1] + r)


Shape = Rect | Circle


# ---------------------------------------------------------------------------
# scene parts


@dataclass(slots=True)
class Decal:
    """A raster image lying flat in the holder (label, tissue, molded text).

    ``rgba`` is ``(h, w, 4)`` float32 BGR + alpha covering ``rect`` (row 0 at the
    rect's local top edge). Rendering samples it with ``cv2.remap``; ``mode`` is
    ``"over"`` (alpha blend) or ``"add"`` (scattering: adds ``alpha * colour``).
    """

    rect: Rect
    rgba: np.ndarray
    mode: str = "over"
    _mips: dict[tuple[int, int], np.ndarray] = field(default_factory=dict, repr=False)

    @property
    def texel_mm(self) -> float:
        return self.rect.size[0] / self.rgba.shape[1]

    def level(self, channels: int, pixel_mm: float) -> tuple[np.ndarray, float]:
        """The image as ``channels`` colour + alpha, pre-shrunk so a texel is near ``pixel_mm``."""
        lvl = 0
        while (
            self.texel_mm * 2 ** (lvl + 1) <= pixel_mm * 1.2
            and min(self.rgba.shape[:2]) >> (lvl + 1) >= 8
        ):
            lvl += 1
        key = (channels, lvl)
        if key not in self._mips:
            img = self.rgba
            if channels == 1:
                grey = img[..., 0] * 0.114 + img[..., 1] * 0.587 + img[..., 2] * 0.299
                img = np.ascontiguousarray(np.stack([grey, img[..., 3]], axis=-1))
            for _ in range(lvl):
                img = cv2.pyrDown(img)
            self._mips[key] = np.ascontiguousarray(img, dtype=np.float32)
        return self._mips[key], self.texel_mm * 2**lvl


@dataclass(slots=True)
class CoverGlass:
    shape: Shape
    tissue: bool
    label: str = ""


@dataclass(slots=True)
class Plate:
    """An SBS plate: ``body`` is the footprint, wells in plate-local mm from its top-left."""

    body: Rect
    wells: int
    rows: int
    cols: int
    pitch: float
    well_size: float
    circular: bool
    a1_local: Point
    filled: np.ndarray  # (rows, cols) bool
    black: bool

    def well_center(self, row: int, col: int) -> Point:
        w, h = self.body.size
        local = np.array(
            [
                self.a1_local[0] + col * self.pitch - w / 2,
                self.a1_local[1] + row * self.pitch - h / 2,
            ]
        )
        x, y = self.body.to_holder(local)
        return (float(x), float(y))


@dataclass(slots=True)
class ChamberModule:
    """The plastic chamber block on a chamber slide: ``rows x cols`` chambers."""

    outer: Rect
    rows: int
    cols: int
    outer_wall: float
    inner_wall: float
    filled: np.ndarray  # (rows, cols) bool

    @property
    def cell_size(self) -> tuple[float, float]:
        w, h = self.outer.size
        cw = (w - 2 * self.outer_wall - (self.cols - 1) * self.inner_wall) / self.cols
        ch = (h - 2 * self.outer_wall - (self.rows - 1) * self.inner_wall) / self.rows
        return cw, ch

    def chamber_rect(self, row: int, col: int) -> Rect:
        w, h = self.outer.size
        cw, ch = self.cell_size
        lx = -w / 2 + self.outer_wall + col * (cw + self.inner_wall) + cw / 2
        ly = -h / 2 + self.outer_wall + row * (ch + self.inner_wall) + ch / 2
        x, y = self.outer.to_holder(np.array([lx, ly]))
        return Rect((float(x), float(y)), (cw, ch), self.outer.angle_deg, radius=0.6)


@dataclass(slots=True)
class Dish:
    center: Point
    outer_diameter: float
    wall: float
    glass_diameter: float
    occupied: bool


@dataclass(slots=True)
class Barcode:
    format: str
    text: str
    polygon_mm: np.ndarray


@dataclass(slots=True)
class Stroke:
    """A thin line (scratch, fibre, marker) as a polyline in holder mm."""

    points: np.ndarray  # (n, 2)
    width_mm: float
    intensity: float  # > 0 brightens (scatter), < 0 darkens
    kind: str


@dataclass(slots=True)
class Scene:
    """One random sample holder under one simulated overview camera (see module doc)."""

    carrier: str
    difficulty: str
    seed: int
    holder: str
    holder_opening_mm: tuple[float, float]
    # materials (relative reflectance, BGR colours)
    background_level: float
    holder_level: float
    holder_texture: float
    holder_color: tuple[float, float, float]
    glass_level: float
    clips: list[Rect] = field(default_factory=list)
    screws: list[Circle] = field(default_factory=list)
    slide: Rect | None = None
    label: Decal | None = None
    decals: list[Decal] = field(default_factory=list)  # tissue, molded plate text
    cover_glasses: list[CoverGlass] = field(default_factory=list)
    plate: Plate | None = None
    chambers: ChamberModule | None = None
    dish: Dish | None = None
    barcodes: list[Barcode] = field(default_factory=list)
    strokes: list[Stroke] = field(default_factory=list)
    specks: np.ndarray = field(default_factory=lambda: np.zeros((0, 4)))  # x, y, r_mm, intensity
    # camera + illumination
    color: bool = False
    bit_depth: int = 8
    adc_bits: int = 8
    exposure: float = 1.0
    full_well: float = 20000.0
    read_noise: float = 4.0
    blur_px: float = 0.7
    vignetting: float = 0.15
    edge_base: float = 0.06  # faint cover-glass edge contrast away from the LED ring
    edge_ring: float = 0.22  # extra contrast on the LED ring
    cover_delta: float = 0.03  # brightness change inside a cover glass
    ring_radius: float = 0.72  # LED ring radius / half the smaller frame side
    ring_width: float = 0.16
    n_leds: int = 16
    led_phase: float = 0.0
    led_level: float = 0.25
    white_balance: tuple[float, float, float] = (1.0, 1.0, 1.0)
    camera_rotation_deg: float = 0.3  # true camera rotation
    reported_rotation_deg: float = 0.3  # what the calibration says
    pose_sigma_mm: float = 0.01
    liquid_color: tuple[float, float, float] = (0.55, 0.42, 0.85)
    tissue_color: tuple[float, float, float] = (0.75, 0.45, 0.85)
    marker_color: tuple[float, float, float] = (0.35, 0.2, 0.1)
    grain: np.ndarray = field(
        default_factory=lambda: np.zeros((2, 2, 2), np.float32), repr=False
    )  # (2, ny, nx): isotropic, brushed
    grain_origin: Point = (0.0, 0.0)
    grain_texel: float = 0.05

    @property
    def holder_center_mm(self) -> Point:
        return (self.holder_opening_mm[0] / 2, self.holder_opening_mm[1] / 2)


# ---------------------------------------------------------------------------
# scene generation


def _check(value: str, allowed: tuple[str, ...], what: str) -> None:
    if value not in allowed:
        raise ValueError(f"unknown {what} {value!r} (one of {', '.join(allowed)})")


def make_scene(
    carrier: str, rng_or_seed: np.random.Generator | int = 0, difficulty: str = "easy"
) -> Scene:
    """Make a random scene.

    Parameters
    ----------
    carrier
        One of ``slide``, ``multiwell``, ``chamber_slide``, ``petri_dish``.
    rng_or_seed
        A numpy Generator or an integer seed (same seed, same scene).
    difficulty
        ``easy``: clear edges, few distractors, 8-bit grey frames. ``hard``: faint
        edges, many distractors, 16-bit (sometimes 12-bit data) and maybe colour,
        larger pose errors.

    Returns
    -------
    Scene
        The scene, in holder coordinates.

    Raises
    ------
    ValueError
        For an unknown carrier or difficulty.
    """
    _check(carrier, CARRIERS, "carrier")
    _check(difficulty, DIFFICULTIES, "difficulty")
    if isinstance(rng_or_seed, np.random.Generator):
        rng = rng_or_seed
        seed = int(rng.integers(0, 2**31))
    else:
        seed = int(rng_or_seed)
        rng = np.random.default_rng(np.random.SeedSequence([seed, 0x5C0]))
    hard = difficulty == "hard"
    holder = HOLDER_FOR_CARRIER[carrier]
    opening = HOLDER_OPENINGS_MM[holder]
    if holder == "dish_holder" and rng.random() < 0.5:
        opening = (80.0, 60.0)
    u = rng.uniform
    holder_color = (
        (1.0, 1.0, 1.0)
        if rng.random() < 0.6
        else tuple(float(c) for c in rng.uniform(0.75, 1.15, 3))
    )
    scene = Scene(
        carrier=carrier,
        difficulty=difficulty,
        seed=seed,
        holder=holder,
        holder_opening_mm=opening,
        background_level=float(u(0.05, 0.3) if hard else u(0.08, 0.14)),
        holder_level=float(u(0.2, 0.7) if hard else u(0.38, 0.55)),
        holder_texture=float(u(0.08, 0.16) if hard else 0.06),
        holder_color=holder_color,  # type: ignore[arg-type]
        glass_level=float(u(0.04, 0.08)),
        color=bool(hard and rng.random() < 0.5),
        bit_depth=16 if hard else 8,
        adc_bits=(12 if rng.random() < 0.5 else 16) if hard else 8,
        exposure=float(u(0.75, 1.25) if hard else u(0.9, 1.1)),
        full_well=float(5000.0 if hard else 20000.0),
        read_noise=float(12.0 if hard else 4.0),
        blur_px=float(u(0.8, 2.0) if hard else u(0.5, 0.9)),
        vignetting=float(u(0.2, 0.45) if hard else u(0.08, 0.18)),
        edge_base=float(u(0.008, 0.02) if hard else u(0.05, 0.08)),
        edge_ring=float(u(0.06, 0.12) if hard else u(0.2, 0.28)),
        cover_delta=float(rng.choice([-1.0, 1.0]) * u(0.004, 0.015) if hard else u(0.02, 0.035)),
        ring_radius=float(u(0.55, 0.85)),
        ring_width=float(u(0.1, 0.2)),
        n_leds=int(rng.choice([8, 12, 16, 24])),
        led_phase=float(u(0, 2 * math.pi)),
        led_level=float(u(0.3, 0.7) if hard else u(0.15, 0.3)),
        white_balance=tuple(float(c) for c in rng.uniform(0.85, 1.15, 3))
        if hard
        else (1.0, 1.0, 1.0),  # type: ignore[arg-type]
        camera_rotation_deg=0.0,
        pose_sigma_mm=0.03 if hard else 0.01,
    )
    rot = float(rng.choice([-1.0, 1.0]) * u(0.1, 0.6))
    scene.camera_rotation_deg = rot
    scene.reported_rotation_deg = rot + float(rng.normal(0.0, 0.04 if hard else 0.01))
    _make_grain(scene, rng)
    _make_holder_features(scene, rng)
    if carrier == "slide":
        _make_slide(scene, rng, chambers=False)
    elif carrier == "chamber_slide":
        _make_slide(scene, rng, chambers=True)
    elif carrier == "multiwell":
        _make_plate(scene, rng)
    else:
        _make_dish(scene, rng)
    _make_dirt(scene, rng)
    return scene


def _make_grain(scene: Scene, rng: np.random.Generator) -> None:
    """Multi-scale texture in holder coordinates (brushed metal, plastic, glass haze)."""
    w, h = scene.holder_opening_mm
    margin = 25.0
    t = 0.06 if w * h < 6000 else 0.08
    nx, ny = int((w + 2 * margin) / t), int((h + 2 * margin) / t)
    iso = np.zeros((ny, nx), np.float32)
    for scale, amp in ((3, 0.3), (12, 0.3), (60, 0.35), (300, 0.5)):
        small = rng.standard_normal((max(2, ny // scale), max(2, nx // scale)), dtype=np.float32)
        iso += amp * cv2.resize(small, (nx, ny), interpolation=cv2.INTER_CUBIC)
    iso /= float(iso.std()) + 1e-6
    brushed = np.asarray(
        cv2.blur(rng.standard_normal((ny, nx), dtype=np.float32), (25, 1)), np.float32
    )
    brushed /= float(brushed.std()) + 1e-6
    brushed = 0.6 * brushed + 0.6 * iso
    scene.grain = np.ascontiguousarray(np.stack([iso, brushed]), dtype=np.float32)
    scene.grain_origin = (-margin, -margin)
    scene.grain_texel = t


def _make_holder_features(scene: Scene, rng: np.random.Generator) -> None:
    w, h = scene.holder_opening_mm
    for _ in range(int(rng.integers(2, 5))):
        for _attempt in range(20):
            side = int(rng.integers(0, 4))
            d = float(rng.uniform(4.0, 9.0))
            if side == 0:
                c = (float(rng.uniform(5, w - 5)), -d)
            elif side == 1:
                c = (float(rng.uniform(5, w - 5)), h + d)
            elif side == 2:
                c = (-d, float(rng.uniform(3, h - 3)))
            else:
                c = (w + d, float(rng.uniform(3, h - 3)))
            if all(math.dist(c, o.center) > 12.0 for o in scene.screws):
                scene.screws.append(Circle(c, float(rng.uniform(2.5, 4.0))))
                break


def _fits(shape: Shape, region: Rect, margin: float) -> bool:
    """Whether ``shape`` lies inside ``region`` (a rectangle) with ``margin`` to spare."""
    pts = shape.polygon() if isinstance(shape, Rect) else shape.polygon(32)
    local = region.to_local(pts)
    hw, hh = region.size[0] / 2 - margin, region.size[1] / 2 - margin
    return bool(np.all(np.abs(local[:, 0]) <= hw) and np.all(np.abs(local[:, 1]) <= hh))


def _overlaps(a: Shape, b: Shape, gap: float) -> bool:
    pa = a.polygon() if isinstance(a, Rect) else a.polygon(48)
    pb = b.polygon() if isinstance(b, Rect) else b.polygon(48)
    # grow a by the gap approximately: test the polygons of a scaled about its centre
    ca = np.asarray(a.center)
    grow = 1.0 + 2 * gap / max(min(_extent(a)), 1e-3)
    pa = (pa - ca) * grow + ca
    inter, _ = cv2.intersectConvexConvex(_ccw(pa), _ccw(pb))
    return float(inter) > 0.0


def _extent(s: Shape) -> tuple[float, float]:
    return s.size if isinstance(s, Rect) else (s.diameter, s.diameter)


def _ccw(p: np.ndarray) -> np.ndarray:
    p = np.asarray(p, dtype=np.float32)
    return p if cv2.contourArea(p, oriented=True) > 0 else p[::-1].copy()


def _place_rect(
    rng: np.random.Generator,
    size: tuple[float, float],
    opening: tuple[float, float],
    max_angle: float,
    clearance: float,
) -> Rect:
    """A rectangle of ``size`` placed randomly, turned a little, inside the opening."""
    a = float(rng.uniform(-max_angle, max_angle))
    r = math.radians(abs(a))
    hx = size[0] / 2 * math.cos(r) + size[1] / 2 * math.sin(r)
    hy = size[0] / 2 * math.sin(r) + size[1] / 2 * math.cos(r)
    lo_x, hi_x = hx + clearance, opening[0] - hx - clearance
    lo_y, hi_y = hy + clearance, opening[1] - hy - clearance
    cx = float(rng.uniform(lo_x, hi_x)) if hi_x > lo_x else opening[0] / 2
    cy = float(rng.uniform(lo_y, hi_y)) if hi_y > lo_y else opening[1] / 2
    return Rect((cx, cy), size, a)


def _make_slide(scene: Scene, rng: np.random.Generator, *, chambers: bool) -> None:
    opening = scene.holder_opening_mm
    slide = _place_rect(rng, SLIDE_SIZE_MM, opening, 1.5, 0.15)
    slide = Rect(slide.center, slide.size, slide.angle_deg, radius=0.4)
    scene.slide = slide
    sw, sh = SLIDE_SIZE_MM
    label_left = bool(rng.random() < 0.5)
    side = -1.0 if label_left else 1.0
    label_local = (side * (sw / 2 - LABEL_LENGTH_MM / 2), 0.0)
    lc = slide.to_holder(np.array(label_local))
    label_rect = Rect((float(lc[0]), float(lc[1])), (LABEL_LENGTH_MM, sh), slide.angle_deg)
    scene.label, scene.barcodes = _make_label(label_rect, rng, scene.difficulty == "hard")
    # free region of the slide beside the label
    free_w = sw - LABEL_LENGTH_MM - 0.6
    fc = slide.to_holder(np.array([-side * (sw / 2 - 0.3 - free_w / 2), 0.0]))
    free = Rect((float(fc[0]), float(fc[1])), (free_w, sh), slide.angle_deg)

    # spring clips: one pushing the slide's long edge, one at the far end
    bottom = slide.polygon()[:, 1].max()
    for x in (float(rng.uniform(12, 25)), float(rng.uniform(55, 68))):
        if rng.random() < 0.8:
            y0 = float(bottom) - 0.1
            y1 = opening[1] + 2.0
            scene.clips.append(
                Rect((x, (y0 + y1) / 2), (float(rng.uniform(5, 8)), y1 - y0), 0.0, 0.8)
            )
    right = float(slide.polygon()[:, 0].max())
    if rng.random() < 0.7:
        scene.clips.append(
            Rect(
                ((right - 0.1 + opening[0] + 2) / 2, slide.center[1]),
                (opening[0] + 2 - right + 0.1, 6.0),
                0,
                0.8,
            )
        )

    if chambers:
        _make_chambers(scene, rng, free)
        return
    hard = scene.difficulty == "hard"
    n = int(rng.choice([1, 1, 2, 2, 3]))
    placed: list[Shape] = []
    for _ in range(n):
        for _attempt in range(60):
            if rng.random() < 0.6:
                short, long_ = COVER_GLASS_SIZES[int(rng.integers(0, len(COVER_GLASS_SIZES)))]
                size = (long_, short)  # long side along the slide
                if size[0] > free_w - 1:
                    continue
                w, h = size
                amax = min(4.0, math.degrees(max(0.0, (sh - 0.6 - h) / w)))
                rel = float(rng.uniform(-amax, amax))
                ar = math.radians(abs(rel))
                hx_ext = w / 2 * math.cos(ar) + h / 2 * math.sin(ar)
                hy_ext = w / 2 * math.sin(ar) + h / 2 * math.cos(ar)
                sx = free.size[0] / 2 - hx_ext - 0.3
                sy = free.size[1] / 2 - hy_ext - 0.25
                if sx < 0 or sy < 0:
                    continue
                ang = slide.angle_deg + rel
                c = free.to_holder(np.array([rng.uniform(-sx, sx), rng.uniform(-sy, sy)]))
                shape: Shape = Rect((float(c[0]), float(c[1])), size, ang, radius=0.05)
            else:
                d = float(rng.choice(COVER_GLASS_DIAMETERS))
                hx = free.size[0] / 2 - d / 2 - 0.3
                hy = free.size[1] / 2 - d / 2 - 0.3
                if hx < 0 or hy < 0:
                    continue
                c = free.to_holder(np.array([rng.uniform(-hx, hx), rng.uniform(-hy, hy)]))
                shape = Circle((float(c[0]), float(c[1])), d)
            if not _fits(shape, slide, 0.2) or not _fits(shape, free, 0.0):
                continue
            if any(_overlaps(shape, o, 0.8) for o in placed):
                continue
            placed.append(shape)
            break
    for shape in placed:
        tissue = bool(rng.random() < (0.6 if hard else 0.75))
        scene.cover_glasses.append(CoverGlass(shape, tissue))
        if tissue:
            scene.decals.append(_make_tissue(shape, rng, hard))
    scene.cover_glasses.sort(key=lambda g: _center_key(g.shape.center))
    for i, g in enumerate(scene.cover_glasses):
        g.label = str(i + 1)
    if hard or rng.random() < 0.3:
        # marker pen circles around some tissue, crossing cover glass edges
        for g in scene.cover_glasses[: int(rng.integers(1, 3))]:
            c = np.asarray(g.shape.center)
            ext = _extent(g.shape)
            ax = np.array([ext[0] * rng.uniform(0.3, 0.55), ext[1] * rng.uniform(0.3, 0.5)])
            t = np.linspace(0, 2 * math.pi * rng.uniform(0.85, 1.05), 80)
            pts = np.stack([np.cos(t) * ax[0], np.sin(t) * ax[1]], 1)
            pts += rng.normal(0, 0.15, pts.shape).cumsum(0) * 0.1
            scene.strokes.append(Stroke(pts + c, float(rng.uniform(0.3, 0.6)), -0.6, "marker"))


def _center_key(c: Point) -> tuple[float, float]:
    return (round(float(c[0]), 6), round(float(c[1]), 6))


def _make_label(rect: Rect, rng: np.random.Generator, hard: bool) -> tuple[Decal, list[Barcode]]:
    """Frosted/printed label with a Code128 barcode, a QR code and handwriting."""
    import barcode as _barcode

    texel = 0.02
    w_mm, h_mm = rect.size
    nx, ny = round(w_mm / texel), round(h_mm / texel)
    paper = float(rng.uniform(0.78, 0.92))
    tint = np.array([1.0, 1.0, 1.0]) if rng.random() < 0.6 else rng.uniform(0.85, 1.0, 3)
    img = np.empty((ny, nx, 3), np.float32)
    noise = rng.standard_normal((ny // 4, nx // 4), dtype=np.float32)
    noise = np.asarray(cv2.resize(noise, (nx, ny), interpolation=cv2.INTER_LINEAR), np.float32)
    for ch in range(3):
        img[..., ch] = paper * tint[ch] * (1 + 0.03 * noise)
    ink = np.zeros((ny, nx), np.float32)  # printed black
    barcodes: list[Barcode] = []

    def to_holder(pts_mm: np.ndarray) -> np.ndarray:
        return rect.to_holder(np.asarray(pts_mm) - np.array([w_mm / 2, h_mm / 2]))

    # Code128 across the top
    year = int(rng.integers(2019, 2027))
    code_text = f"S-{year}-{int(rng.integers(0, 10000)):04d}"
    modules = _barcode.get("code128", code_text).build()[0]
    m = min(0.13, (w_mm - 2.5) / len(modules))
    bw = m * len(modules)
    x0, y0, bh = (w_mm - bw) / 2, 1.2, 4.5
    bars = np.array([c == "1" for c in modules], np.float32)
    cols = np.arange(nx) * texel + texel / 2
    idx = np.floor((cols - x0) / m).astype(int)
    valid = (idx >= 0) & (idx < len(modules))
    row = np.zeros(nx, np.float32)
    row[valid] = bars[idx[valid]]
    r0, r1 = round(y0 / texel), round((y0 + bh) / texel)
    ink[r0:r1, :] = np.maximum(ink[r0:r1, :], row[None, :])
    barcodes.append(
        Barcode(
            "CODE_128",
            code_text,
            to_holder(np.array([[x0, y0], [x0 + bw, y0], [x0 + bw, y0 + bh], [x0, y0 + bh]])),
        )
    )
    # human-readable line under the bars
    txt = np.zeros((ny, nx), np.uint8)
    cv2.putText(
        txt,
        code_text,
        (round(x0 / texel), round((y0 + bh + 1.3) / texel)),
        cv2.FONT_HERSHEY_SIMPLEX,
        1.6,
        255,
        3,
        cv2.LINE_AA,
    )
    ink = np.maximum(ink, txt.astype(np.float32) / 255)

    # QR code bottom-left
    qr_text = f"SMP:{int(rng.integers(0, 10**6)):06d}"
    q = cv2.QRCodeEncoder.create().encode(qr_text)
    dark = q == 0
    ys, xs = np.where(dark)
    core = dark[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    qs = float(rng.uniform(6.5, 8.5))
    qx, qy = 1.2, h_mm - qs - 1.5
    qpx = round(qs / texel)
    qimg = cv2.resize(core.astype(np.float32), (qpx, qpx), interpolation=cv2.INTER_NEAREST)
    ry, rx = round(qy / texel), round(qx / texel)
    ink[ry : ry + qpx, rx : rx + qpx] = np.maximum(ink[ry : ry + qpx, rx : rx + qpx], qimg)
    barcodes.append(
        Barcode(
            "QR_CODE",
            qr_text,
            to_holder(np.array([[qx, qy], [qx + qs, qy], [qx + qs, qy + qs], [qx, qy + qs]])),
        )
    )
    ink = np.asarray(cv2.GaussianBlur(ink, (0, 0), 0.8), np.float32)
    for ch in range(3):
        img[..., ch] = img[..., ch] * (1 - 0.92 * ink) + 0.04 * ink

    # handwriting to the right of the QR code and above it
    hand = np.zeros((ny, nx), np.uint8)
    font = int(rng.choice([cv2.FONT_HERSHEY_SCRIPT_SIMPLEX, cv2.FONT_HERSHEY_SCRIPT_COMPLEX]))
    spots = [
        (qx + qs + 0.6, qy + 2.8, w_mm - (qx + qs + 0.6) - 0.4),
        (1.0, y0 + bh + 3.8, w_mm - 2.0),
    ]
    if rng.random() < 0.5:
        spots.reverse()
    for k in range(int(rng.integers(1, 3))):
        sx, sy, avail = spots[k]
        s = str(rng.choice(_HANDWRITING)).format(n=int(rng.integers(1, 40)))
        scale = float(rng.uniform(2.5, 4.0))
        thick = int(rng.integers(3, 6))
        (tw, _th), _ = cv2.getTextSize(s, font, scale, thick)
        scale *= min(1.0, avail / texel / max(tw, 1))
        line = np.zeros((ny, nx), np.uint8)
        cv2.putText(
            line, s, (round(sx / texel), round(sy / texel)), font, scale, 255, thick, cv2.LINE_AA
        )
        k_shear = float(rng.uniform(-0.2, 0.05))  # slant about the line's own baseline
        shear = np.array([[1, k_shear, -k_shear * sy / texel], [0, 1, 0]], np.float32)
        line = np.asarray(cv2.warpAffine(line, shear, (nx, ny)), np.uint8)
        # wobble: a smooth random displacement makes the font look hand-drawn
        gy, gx = np.mgrid[0:ny, 0:nx].astype(np.float32)
        gx += 3.5 * _smooth_noise(rng, (ny, nx), 25)
        gy += 3.5 * _smooth_noise(rng, (ny, nx), 25)
        line = np.asarray(cv2.remap(line, gx, gy, cv2.INTER_LINEAR), np.uint8)
        hand = np.maximum(hand, line)
    hand_f = hand.astype(np.float32) / 255
    ink_col = np.array([0.45, 0.15, 0.1]) if rng.random() < 0.6 else np.array([0.08, 0.08, 0.08])
    a = 0.85 * hand_f
    for ch in range(3):
        img[..., ch] = img[..., ch] * (1 - a) + a * ink_col[ch] * paper
    rgba = np.concatenate([img, np.ones((ny, nx, 1), np.float32)], axis=-1)
    return Decal(rect, rgba, "over"), barcodes


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], cell: int) -> np.ndarray:
    small = rng.standard_normal(
        (max(2, shape[0] // cell), max(2, shape[1] // cell)), dtype=np.float32
    )
    return cv2.resize(small, (shape[1], shape[0]), interpolation=cv2.INTER_CUBIC)


def _make_tissue(shape: Shape, rng: np.random.Generator, hard: bool) -> Decal:
    """Stained tissue sections under a cover glass as an additive (scattering) decal."""
    ext = _extent(shape)
    angle = shape.angle_deg if isinstance(shape, Rect) else 0.0
    rect = Rect(shape.center, (ext[0] - 1.0, ext[1] - 1.0), angle)
    texel = 0.025
    nx, ny = round(rect.size[0] / texel), round(rect.size[1] / texel)
    yy, xx = np.mgrid[0:ny, 0:nx].astype(np.float32)
    xx = xx / nx - 0.5
    yy = yy / ny - 0.5
    field_ = np.full((ny, nx), -1.0, np.float32)
    for _ in range(int(rng.integers(1, 4))):
        cx, cy = rng.uniform(-0.2, 0.2, 2)
        ax, ay = rng.uniform(0.12, 0.3, 2)
        th = rng.uniform(0, math.pi)
        c, s = math.cos(th), math.sin(th)
        u = (xx - cx) * c + (yy - cy) * s
        v = -(xx - cx) * s + (yy - cy) * c
        field_ = np.maximum(field_, 1 - (u / ax) ** 2 - (v / ay) ** 2)
    field_ += 0.5 * _smooth_noise(rng, (ny, nx), 40) + 0.15 * _smooth_noise(rng, (ny, nx), 8)
    if isinstance(shape, Circle):
        field_ = np.minimum(field_, 1 - 4 * (xx**2 + yy**2))
    mask = np.clip(field_ / 0.15, 0, 1)
    density = np.clip(
        0.75 + 0.2 * _smooth_noise(rng, (ny, nx), 24) + 0.1 * _smooth_noise(rng, (ny, nx), 3),
        0,
        1.2,
    )
    alpha = mask * density * float(rng.uniform(0.12, 0.22) if hard else rng.uniform(0.25, 0.4))
    col = np.array([0.75, 0.45, 0.85]) if rng.random() < 0.7 else np.array([0.85, 0.5, 0.45])
    rgba = np.empty((ny, nx, 4), np.float32)
    rgba[..., :3] = col
    rgba[..., 3] = cv2.GaussianBlur(alpha, (0, 0), 1.5)
    return Decal(rect, rgba, "add")


def _make_chambers(scene: Scene, rng: np.random.Generator, free: Rect) -> None:
    n = int(rng.choice([1, 2, 4, 8]))
    rows, cols = {1: (1, 1), 2: (1, 2), 4: (1, 4) if rng.random() < 0.6 else (2, 2), 8: (2, 4)}[n]
    outer = Rect(free.center, (free.size[0] - 1.0, free.size[1] - 1.2), free.angle_deg, radius=1.2)
    filled = rng.random((rows, cols)) < 0.6
    scene.chambers = ChamberModule(
        outer, rows, cols, float(rng.uniform(1.3, 1.8)), float(rng.uniform(0.9, 1.3)), filled
    )


def _make_plate(scene: Scene, rng: np.random.Generator) -> None:
    wells = int(rng.choice([6, 12, 24, 48, 96, 96, 384]))
    fmt = PLATE_FORMAT_BY_WELLS[wells]
    rows, cols, pitch, size, circular = fmt.rows, fmt.cols, fmt.pitch, fmt.well_size, fmt.circular
    a1 = fmt.a1_offset
    body = _place_rect(rng, SBS_SIZE_MM, scene.holder_opening_mm, 0.6, 0.1)
    body = Rect(body.center, body.size, body.angle_deg, radius=2.5)
    mode = rng.random()
    if mode < 0.3:
        filled = np.ones((rows, cols), bool)
    elif mode < 0.6:
        filled = rng.random((rows, cols)) < 0.5
    else:  # filled in a block of rows/cols
        filled = np.zeros((rows, cols), bool)
        filled[: int(rng.integers(1, rows + 1)), : int(rng.integers(1, cols + 1))] = True
    black = bool(scene.difficulty == "hard" and rng.random() < 0.35)
    scene.plate = Plate(body, wells, rows, cols, pitch, size, circular, a1, filled, black)
    # L-shaped spring at the bottom-right corner, stops top-left
    p = body.polygon()
    right, bottom = float(p[:, 0].max()), float(p[:, 1].max())
    ow, oh = scene.holder_opening_mm
    scene.clips.append(
        Rect(((right + ow + 3) / 2, oh - 15.0), (ow + 3 - right + 0.1, 10.0), 0.0, 1.0)
    )
    scene.clips.append(
        Rect((ow - 20.0, (bottom + oh + 3) / 2), (10.0, oh + 3 - bottom + 0.1), 0.0, 1.0)
    )
    # molded column numbers and row letters
    scene.decals.extend(_plate_markings(scene.plate, rng))


def _plate_markings(plate: Plate, rng: np.random.Generator) -> list[Decal]:
    texel = 0.05
    w, h = plate.body.size
    nx, ny = round(w / texel), round(h / texel)
    canvas = np.zeros((ny, nx), np.uint8)
    a1x, a1y = plate.a1_local
    fs = min(1.2, plate.pitch / 9.0 * 1.1) if plate.wells <= 96 else 0.55
    top = a1y - plate.pitch / 2 - 0.4
    left = a1x - plate.pitch / 2 - 0.3
    if top < 1.5 or left < 1.5:
        return []
    for c in range(plate.cols):
        x = a1x + c * plate.pitch - 0.8 * fs * (1 if c < 9 else 2)
        cv2.putText(
            canvas,
            str(c + 1),
            (round(x / texel), round((top - 0.3) / texel)),
            cv2.FONT_HERSHEY_SIMPLEX,
            fs * 1.4,
            255,
            2,
            cv2.LINE_AA,
        )
    for r in range(plate.rows):
        y = a1y + r * plate.pitch + 0.8 * fs
        cv2.putText(
            canvas,
            chr(ord("A") + r),
            (round((left - 2.2 * fs) / texel), round(y / texel)),
            cv2.FONT_HERSHEY_SIMPLEX,
            fs * 1.4,
            255,
            2,
            cv2.LINE_AA,
        )
    rgba = np.empty((ny, nx, 4), np.float32)
    rgba[..., :3] = 1.0
    rgba[..., 3] = canvas.astype(np.float32) / 255 * float(rng.uniform(0.05, 0.12))
    return [Decal(plate.body, rgba, "add")]


def _make_dish(scene: Scene, rng: np.random.Generator) -> None:
    ow, oh = scene.holder_opening_mm
    c = (ow / 2 + float(rng.uniform(-3, 3)), oh / 2 + float(rng.uniform(-3, 3)))
    glass = float(rng.choice([14.0, 16.0, 18.0, 20.0]))
    scene.dish = Dish(
        c,
        float(rng.uniform(34.5, 35.5)),
        float(rng.uniform(0.9, 1.3)),
        glass,
        bool(rng.random() < 0.6),
    )
    # two clamps left and right of the dish
    r = scene.dish.outer_diameter / 2
    for sgn in (-1.0, 1.0):
        edge = c[0] + sgn * (r - 0.2)
        far = ow + 2.0 if sgn > 0 else -2.0
        scene.clips.append(Rect(((edge + far) / 2, c[1]), (abs(far - edge), 5.0), 0.0, 1.0))


def _make_dirt(scene: Scene, rng: np.random.Generator) -> None:
    """Dust specks, scratches and fibres anywhere over the holder opening."""
    hard = scene.difficulty == "hard"
    ow, oh = scene.holder_opening_mm
    area = ow * oh / 2400.0  # relative to a slide holder
    n_dust = int((rng.integers(250, 500) if hard else rng.integers(20, 50)) * area)
    n_scratch = int(rng.integers(15, 35) if hard else rng.integers(1, 5))
    n_fibre = int(rng.integers(6, 15) if hard else rng.integers(0, 3))
    xs = rng.uniform(-3, ow + 3, n_dust)
    ys = rng.uniform(-3, oh + 3, n_dust)
    rs = np.exp(rng.uniform(math.log(0.004), math.log(0.06), n_dust))
    big = rng.random(n_dust) < 0.05
    rs[big] = rng.uniform(0.06, 0.15, int(big.sum()))
    it = rng.uniform(0.1, 0.6, n_dust) * np.where(rng.random(n_dust) < 0.75, 1.0, -1.0)
    scene.specks = np.stack([xs, ys, rs, it], 1)
    for _ in range(n_scratch):
        p0 = np.array([rng.uniform(0, ow), rng.uniform(0, oh)])
        length = float(rng.uniform(2, 25))
        th = float(rng.uniform(0, math.pi))
        p1 = p0 + length * np.array([math.cos(th), math.sin(th)])
        scene.strokes.append(
            Stroke(
                np.stack([p0, p1]),
                float(rng.uniform(0.005, 0.025)),
                float(rng.uniform(0.03, 0.15)),
                "scratch",
            )
        )
    for _ in range(n_fibre):
        n = 40
        length = float(rng.uniform(1, 8))
        heading = rng.uniform(0, 2 * math.pi) + np.cumsum(rng.normal(0, 0.15, n))
        steps = np.stack([np.cos(heading), np.sin(heading)], 1) * (length / n)
        p = np.array([rng.uniform(0, ow), rng.uniform(0, oh)]) + np.cumsum(steps, 0)
        sgn = 1.0 if rng.random() < 0.6 else -1.0
        scene.strokes.append(
            Stroke(p, float(rng.uniform(0.01, 0.03)), sgn * float(rng.uniform(0.05, 0.3)), "fibre")
        )


# ---------------------------------------------------------------------------
# ground truth


def _r(v: float) -> float:
    return round(float(v), 6)


def _pt(p: Any) -> list[float]:
    return [_r(p[0]), _r(p[1])]


def _poly(p: np.ndarray) -> list[list[float]]:
    return [_pt(q) for q in np.asarray(p)]


def _shape_sample(element: str, shape: Shape, label: str, occupied: float) -> dict[str, Any]:
    if isinstance(shape, Rect):
        angle = normalize_angle_deg(shape.angle_deg)
        w, h = shape.size
        return {
            "element": element,
            "shape": "rectangle",
            "center_mm": _pt(shape.center),
            "size_mm": [_r(w), _r(h)],
            "angle_deg": _r(angle),
            "polygon_mm": _poly(rectangle_polygon(shape.center, (w, h), angle)),
            "confidence": 1.0,
            "label": label,
            "occupied": float(occupied),
        }
    return {
        "element": element,
        "shape": "circle",
        "center_mm": _pt(shape.center),
        "size_mm": [_r(shape.diameter)],
        "angle_deg": 0.0,
        "polygon_mm": _poly(circle_polygon(shape.center, shape.diameter, 64)),
        "confidence": 1.0,
        "label": label,
        "occupied": float(occupied),
    }


def ground_truth(scene: Scene, context: dict[str, str] | None = None) -> dict[str, Any]:
    """The true result for ``scene`` in the SPEC section 3 format (holder mm).

    Samples are sorted like the pipeline sorts them: wells by row then column
    (``A1, A2, ... A12, B1 ...``), everything else by centre ``(x, y)``.
    ``structures`` is empty and ``stats`` is ``{}``; ``provenance.simulator`` records
    how the scene was made.
    """
    samples: list[dict[str, Any]] = []
    plate: dict[str, Any] | None = None
    if scene.carrier == "slide":
        for g in scene.cover_glasses:
            samples.append(_shape_sample("cover_glass", g.shape, g.label, 1.0 if g.tissue else 0.0))
    elif scene.carrier == "chamber_slide":
        assert scene.chambers is not None
        m = scene.chambers
        rects = [
            (m.chamber_rect(r, c), bool(m.filled[r, c]))
            for r in range(m.rows)
            for c in range(m.cols)
        ]
        rects.sort(key=lambda t: _center_key(t[0].center))
        for i, (rect, filled) in enumerate(rects):
            samples.append(
                _shape_sample(
                    "chamber",
                    Rect(rect.center, rect.size, rect.angle_deg),
                    str(i + 1),
                    float(filled),
                )
            )
    elif scene.carrier == "multiwell":
        assert scene.plate is not None
        p = scene.plate
        for r in range(p.rows):
            for c in range(p.cols):
                center = p.well_center(r, c)
                shape: Shape = (
                    Circle(center, p.well_size)
                    if p.circular
                    else Rect(center, (p.well_size, p.well_size), p.body.angle_deg)
                )
                samples.append(_shape_sample("well", shape, well_name(r, c), float(p.filled[r, c])))
        plate = {
            "wells": p.wells,
            "rows": p.rows,
            "cols": p.cols,
            "a1_center_mm": _pt(p.well_center(0, 0)),
            "rotation_deg": _r(p.body.angle_deg),
            "well_spacing_mm": [_r(p.pitch), _r(p.pitch)],
            "well_size_mm": _r(p.well_size),
            "circular_wells": p.circular,
        }
    else:
        assert scene.dish is not None
        d = scene.dish
        samples.append(
            _shape_sample("dish_glass", Circle(d.center, d.glass_diameter), "1", float(d.occupied))
        )
    return {
        "version": 1,
        "carrier": scene.carrier,
        "samples": samples,
        "plate": plate,
        "structures": [],
        "barcodes": [
            {"format": b.format, "text": b.text, "polygon_mm": _poly(b.polygon_mm)}
            for b in scene.barcodes
        ],
        "provenance": {
            "samplescout": __version__,
            "models": {},
            "context": dict(context or {}),
            "simulator": {
                "seed": scene.seed,
                "difficulty": scene.difficulty,
                "holder": scene.holder,
                "holder_opening_mm": _pt(scene.holder_opening_mm),
                "camera_rotation_deg": _r(scene.camera_rotation_deg),
            },
        },
        "stats": {},
    }
