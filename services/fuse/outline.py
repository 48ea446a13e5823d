"""Whole-outline test of standard-size cover glasses on the frames' coarse data.

On hard frames a thin cover-glass edge is reported by identification only in places:
dust, tissue, pen marks and scratches are much stronger per pixel, and no single crop
sees enough of a faint edge to call it. Integrated along a whole standard-size outline
the edge is plain, though: the glass interior is a few percent darker than the slide
around it (each glass surface reflects about 4 %), all the way round.

So, on a canvas resampled from the coarse frames (aligned with the slide, a few
degrees either way), every rectangle of a standard cover-glass size at every position
gets the outward step across each of its sides, and every standard circle the outward
radial step: the signed difference across the outline, clipped at a few noise levels
(a pen stroke or a dust speck crossing the outline adds a bounded amount), summed
along each third of a side (each sixth of a circle) and normalised to a z score. A
hypothesis scores the **least** of its pieces, so the whole outline has to be there;
two strong edges meeting a third (a label and the slide's ends) do not make a glass.

Only coarse data are read: no full-resolution pixel is touched.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import cv2
import numpy as np

from samplescout.geometry import FrameGeometry, rotation_matrix


@runtime_checkable
class CoarseViews(Protocol):
    """The coarse data of a session's frames, for fusion's pixel checks.

    Contract
    --------
    ``views()`` returns, per frame in frame order, the grey ``float32`` coarse image
    and the :class:`~samplescout.geometry.FrameGeometry` of that coarse image (its
    pixels mapped to holder mm). Reading them touches no full-resolution pixel.
    """

    def views(self) -> list[tuple[np.ndarray, FrameGeometry]]: ...


@dataclass(frozen=True)
class OutlineConfig:
    """Canvas and acceptance of the outline search.

    ``resolution_mm`` is the canvas pixel; ``angles_deg`` the turns from the slide's
    angle that rectangles are tried at; ``clip`` the largest step, in noise levels, a
    pixel of the outline may add; ``min_rect_z`` and ``min_circle_z`` the least piece
    score of a rectangle and a circle that is reported (a circle's sixths are shorter
    than a rectangle's thirds, and more of them are tried, so noise reaches higher).
    """

    resolution_mm: float = 0.25
    angles_deg: tuple[float, ...] = tuple(np.arange(-4.5, 4.51, 0.5).tolist())
    clip: float = 3.0
    min_rect_z: float = 3.0
    min_circle_z: float = 4.5
    rect_pieces: int = 3
    circle_sectors: int = 6


@dataclass(frozen=True)
class OutlineHit:
    """A standard outline with its weakest piece score ``z`` (noise levels), and for a
    rectangle each side's weakest piece (``side_z``, in the order of
    :func:`~samplescout.geometry.rectangle_polygon`'s sides: top, right, bottom, left)."""

    shape: str  # "rectangle" or "circle"
    center: tuple[float, float]
    size: tuple[float, ...]  # (w, h) for a rectangle, (diameter,) for a circle
    angle_deg: float
    z: float
    side_z: tuple[float, ...] = ()


def flat_fielded(
    views: Sequence[tuple[np.ndarray, FrameGeometry]], min_frames: int = 6
) -> list[tuple[np.ndarray, FrameGeometry]]:
    """The views divided by the camera's vignetting, estimated from the views themselves.

    Vignetting darkens every frame towards its borders alike. Across a frame narrower
    than a cover glass that fall-off is a slope of about a noise level per pixel in the
    coarse data, the same sign over half a frame: summed along a glass-sized side it
    outlines glasses that are not there (between a frame's middle and the slide's end),
    and it cancels real outlines. With ``min_frames`` or more frames of one size, each
    normalised by its median, the per-pixel median over them is the camera's fall-off
    plus what most frames show there; a smooth even surface (1, u², v², u²v², and u, v
    for an off-centre optical axis) fitted to it is the flat field. Fewer frames (one
    wide frame, whose slide fills its middle) are returned as they are.
    """
    if len(views) < min_frames or len({c.shape for c, _ in views}) != 1:
        return list(views)
    stack = np.stack([c / max(float(np.median(c)), 1e-6) for c, _ in views])
    med = np.median(stack, axis=0)
    h, w = med.shape
    v, u = np.mgrid[0:h, 0:w].astype(np.float64)
    half = max(1.0, (w - 1) / 2.0)
    u = (u - (w - 1) / 2.0) / half
    v = (v - (h - 1) / 2.0) / half
    terms = np.stack([np.ones_like(u), u * u, v * v, u * u * v * v, u, v], axis=-1)
    coef, *_ = np.linalg.lstsq(terms.reshape(-1, 6), med.reshape(-1), rcond=None)
    flat = terms @ coef
    top = float(flat.max())
    if top <= 0.0:
        return list(views)
    flat = np.clip(flat / top, 0.2, 1.0).astype(np.float32)
    return [(np.asarray(c, np.float32) / flat, g) for c, g in views]


def step_canvas(
    views: Sequence[tuple[np.ndarray, FrameGeometry]],
    center: tuple[float, float],
    angle_deg: float,
    resolution_mm: float,
    size_mm: tuple[float, float],
    clip: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Steps along x and y of a canvas centred at ``center``, turned by ``angle_deg``
    (its x axis along the turned holder x), ``size_mm`` across, resampled from the
    coarse frames: central differences in noise levels of their frame, clipped to
    ``+-clip``, zero where no frame covers both neighbours.

    Each frame's steps are taken on its own pixels (the first frame that has a step
    gives it), so the seams between frames of different brightness make no edges.
    """
    w = max(5, round(size_mm[0] / resolution_mm))
    h = max(5, round(size_mm[1] / resolution_mm))
    xy = _canvas_points(center, angle_deg, resolution_mm, (h, w))
    gx = np.zeros((h, w), np.float32)
    gy = np.zeros((h, w), np.float32)
    have_x = np.zeros((h, w), bool)
    have_y = np.zeros((h, w), bool)
    to_local = rotation_matrix(-angle_deg)
    for coarse, geometry in views:
        # only the canvas window this frame can cover
        ij = (geometry.footprint_mm() - np.asarray(center)) @ to_local.T / resolution_mm
        ij += np.array([(w - 1) / 2.0, (h - 1) / 2.0])
        j0, i0 = np.floor(ij.min(axis=0)).astype(int) - 2
        j1, i1 = np.ceil(ij.max(axis=0)).astype(int) + 3
        j0, i0, j1, i1 = max(j0, 0), max(i0, 0), min(j1, w), min(i1, h)
        if j1 - j0 < 3 or i1 - i0 < 3:
            continue
        win = (slice(i0, i1), slice(j0, j1))
        sub = xy[win]
        uv = geometry.holder_to_pixel(sub.reshape(-1, 2)).reshape(*sub.shape[:2], 2)
        uv = uv.astype(np.float32)
        ch, cw = coarse.shape
        inside = (
            (uv[..., 0] >= 0.0)
            & (uv[..., 1] >= 0.0)
            & (uv[..., 0] <= cw - 1.0)
            & (uv[..., 1] <= ch - 1.0)
        )
        if not inside.any():
            continue
        img = cv2.remap(
            np.ascontiguousarray(coarse, dtype=np.float32),
            np.ascontiguousarray(uv[..., 0]),
            np.ascontiguousarray(uv[..., 1]),
            cv2.INTER_LINEAR,
        )
        fx, fy, mx, my = _steps(img, inside, clip)
        mx &= ~have_x[win]
        my &= ~have_y[win]
        gx[win][mx] = fx[mx]
        gy[win][my] = fy[my]
        have_x[win] |= mx
        have_y[win] |= my
    return gx, gy


def _canvas_points(
    center: tuple[float, float], angle_deg: float, res: float, shape: tuple[int, int]
) -> np.ndarray:
    h, w = shape
    jj, ii = np.meshgrid(np.arange(w), np.arange(h))
    local = np.stack([(jj - (w - 1) / 2.0) * res, (ii - (h - 1) / 2.0) * res], axis=-1)
    return local @ rotation_matrix(angle_deg).T + np.asarray(center, dtype=np.float64)


def _steps(
    img: np.ndarray, mask: np.ndarray, clip: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Central differences along x and y in noise levels of ``img``, clipped to
    ``+-clip``, and where both neighbours lie in ``mask``: ``(gx, gy, mx, my)``."""
    gx = np.zeros_like(img)
    gy = np.zeros_like(img)
    gx[:, 1:-1] = img[:, 2:] - img[:, :-2]
    gy[1:-1] = img[2:] - img[:-2]
    mx = np.zeros_like(mask)
    my = np.zeros_like(mask)
    mx[:, 1:-1] = mask[:, 2:] & mask[:, :-2]
    my[1:-1] = mask[2:] & mask[:-2]
    # the noise level from a sample of the differences (the median is the slow part)
    vals = np.concatenate([gx[mx][::3], gy[my][::3]])
    if vals.size < 16:
        return gx, gy, np.zeros_like(mx), np.zeros_like(my)
    sigma = 1.4826 * float(np.median(np.abs(vals - np.median(vals)))) + 1e-9
    return np.clip(gx / sigma, -clip, clip), np.clip(gy / sigma, -clip, clip), mx, my


def rectangle_outlines(
    views: Sequence[tuple[np.ndarray, FrameGeometry]],
    center: tuple[float, float],
    angle_deg: float,
    size_mm: tuple[float, float],
    sizes: Sequence[tuple[float, float]],
    cfg: OutlineConfig,
) -> list[OutlineHit]:
    """Every rectangle of ``sizes`` (either way round) inside the canvas with its piece
    score above ``cfg.min_rect_z``, at its best angle of ``cfg.angles_deg`` (local maxima
    only: no other such rectangle with a better score overlaps it)."""
    res = cfg.resolution_mm
    hits: list[OutlineHit] = []
    for turn in cfg.angles_deg:
        ang = angle_deg + turn
        gx, gy = step_canvas(views, center, ang, res, size_mm, cfg.clip)
        h, w = gx.shape
        # Column sums of gx give vertical sides, row sums of gy horizontal ones, in O(1).
        cx = np.vstack([np.zeros((1, w)), np.cumsum(gx, axis=0)])
        cy = np.hstack([np.zeros((h, 1)), np.cumsum(gy, axis=1)])
        for wp, hp, size in _pixel_sizes(sizes, res):
            if wp >= w - 2 or hp >= h - 2:
                continue
            ny, nx = h - hp - 2, w - wp - 2  # top-left corners (1..ny, 1..nx)

            def at(arr: np.ndarray, dy: int, dx: int, ny: int = ny, nx: int = nx) -> np.ndarray:
                return arr[1 + dy : 1 + dy + ny, 1 + dx : 1 + dx + nx]

            # weakest piece per side, in the order of rectangle_polygon's sides
            # (top, right, bottom, left)
            sides = np.full((4, ny, nx), np.inf)
            n = cfg.rect_pieces
            nv = math.sqrt(max(1, hp // n))
            nh = math.sqrt(max(1, wp // n))
            for k in range(n):
                ya, yb = hp * k // n, hp * (k + 1) // n
                xa, xb = wp * k // n, wp * (k + 1) // n
                # outward step: outside minus inside (the glass is darker inside)
                for s, piece in (
                    (3, (at(cx, ya, 0) - at(cx, yb, 0)) / nv),
                    (1, (at(cx, yb, wp) - at(cx, ya, wp)) / nv),
                    (0, (at(cy, 0, xa) - at(cy, 0, xb)) / nh),
                    (2, (at(cy, hp, xb) - at(cy, hp, xa)) / nh),
                ):
                    np.minimum(sides[s], piece, out=sides[s])
            z = sides.min(axis=0)
            for yy, xx in zip(*np.nonzero(z >= cfg.min_rect_z), strict=True):
                c_local = np.array(
                    [
                        (1 + xx + wp / 2.0 - (w - 1) / 2.0) * res,
                        (1 + yy + hp / 2.0 - (h - 1) / 2.0) * res,
                    ]
                )
                hits.append(
                    OutlineHit(
                        "rectangle",
                        _to_holder(c_local, center, ang),
                        size,
                        ang,
                        float(z[yy, xx]),
                        tuple(float(v) for v in sides[:, yy, xx]),
                    )
                )
    return _local_maxima(hits)


def circle_outlines(
    views: Sequence[tuple[np.ndarray, FrameGeometry]],
    center: tuple[float, float],
    angle_deg: float,
    size_mm: tuple[float, float],
    diameters: Sequence[float],
    cfg: OutlineConfig,
    signs: Sequence[float] = (1.0,),
) -> list[OutlineHit]:
    """Every circle of ``diameters`` inside the canvas with its sector score above
    ``cfg.min_circle_z`` (local maxima only, per sign).

    ``signs``: ``1.0`` scores a glass darker inside than around it (a positive outward
    step), ``-1.0`` one brighter inside; the canvas is read once for all of them.
    """
    res = cfg.resolution_mm
    gx, gy = step_canvas(views, center, angle_deg, res, size_mm, cfg.clip)
    h, w = gx.shape
    hits: dict[float, list[OutlineHit]] = {sign: [] for sign in signs}
    for d in diameters:
        r = d / 2.0 / res
        if 2 * r + 4 >= min(h, w):
            continue
        m = math.ceil(r) + 1
        zs = {sign: np.full((h, w), np.inf) for sign in signs}
        for kx, ky, count in _ring_kernels(r, cfg.circle_sectors):
            # correlation: the response at p sums the outward step over the sector of
            # the ring around p
            resp = cv2.filter2D(gx, -1, kx, borderType=cv2.BORDER_CONSTANT) + cv2.filter2D(
                gy, -1, ky, borderType=cv2.BORDER_CONSTANT
            )
            resp /= math.sqrt(count)
            for sign, z in zs.items():
                np.minimum(z, sign * resp, out=z)
        for sign, z in zs.items():
            z[:m] = -np.inf
            z[-m:] = -np.inf
            z[:, :m] = -np.inf
            z[:, -m:] = -np.inf
            for yy, xx in zip(*np.nonzero(z >= cfg.min_circle_z), strict=True):
                c_local = np.array([(xx - (w - 1) / 2.0) * res, (yy - (h - 1) / 2.0) * res])
                hits[sign].append(
                    OutlineHit(
                        "circle",
                        _to_holder(c_local, center, angle_deg),
                        (d,),
                        0.0,
                        float(z[yy, xx]),
                    )
                )
    return [hit for sign in signs for hit in _local_maxima(hits[sign])]


def _pixel_sizes(
    sizes: Sequence[tuple[float, float]], res: float
) -> list[tuple[int, int, tuple[float, float]]]:
    out: dict[tuple[int, int], tuple[float, float]] = {}
    for a, b in sizes:
        for w, h in ((a, b), (b, a)):
            out.setdefault((round(w / res), round(h / res)), (w, h))
    return [(wp, hp, size) for (wp, hp), size in sorted(out.items())]


def _ring_kernels(r: float, sectors: int) -> list[tuple[np.ndarray, np.ndarray, int]]:
    """Per sector, kernels whose correlation with ``(gx, gy)`` sums the outward radial
    step over the ring of radius ``r`` pixels (one sample per pixel of arc), and the
    number of samples."""
    m = math.ceil(r) + 1
    n = max(8 * sectors, round(2 * math.pi * r))
    theta = (np.arange(n) + 0.5) * 2 * math.pi / n
    out = []
    for s in range(sectors):
        sel = (theta >= s * 2 * math.pi / sectors) & (theta < (s + 1) * 2 * math.pi / sectors)
        kx = np.zeros((2 * m + 1, 2 * m + 1), np.float32)
        ky = np.zeros_like(kx)
        for t in theta[sel]:
            px, py = m + r * math.cos(t), m + r * math.sin(t)
            ix, iy = math.floor(px), math.floor(py)
            fx, fy = px - ix, py - iy
            for dx, dy, wgt in (
                (0, 0, (1 - fx) * (1 - fy)),
                (1, 0, fx * (1 - fy)),
                (0, 1, (1 - fx) * fy),
                (1, 1, fx * fy),
            ):
                kx[iy + dy, ix + dx] += wgt * math.cos(t)
                ky[iy + dy, ix + dx] += wgt * math.sin(t)
        out.append((kx, ky, int(sel.sum())))
    return out


def _to_holder(
    local: np.ndarray, center: tuple[float, float], angle_deg: float
) -> tuple[float, float]:
    x, y = rotation_matrix(angle_deg) @ local + np.asarray(center, dtype=np.float64)
    return (float(x), float(y))


def _local_maxima(hits: list[OutlineHit]) -> list[OutlineHit]:
    """Greedy, best first: drop every hit whose centre lies within a quarter of a better
    one's smaller dimension (the same glass, shifted, turned or one size off)."""
    ordered = sorted(hits, key=lambda t: (-round(t.z, 9), t.center, t.size, t.angle_deg))
    kept: list[OutlineHit] = []
    for hit in ordered:
        reach = 0.25 * min(hit.size)
        if all(math.dist(hit.center, k.center) > max(reach, 0.25 * min(k.size)) for k in kept):
            kept.append(hit)
    return kept
