"""Analytic rendering of one overview-camera frame of a :class:`~.scene.Scene`.

Every pixel ``(u, v)`` is mapped to holder mm with the frame pose exactly as SPEC
section 1 (``FrameGeometry.pixel_to_holder``) and the scene is evaluated there as
signed-distance functions in mm (negative inside): holder opening, slide, cover
glasses, wells (nearest grid cell, O(1) per pixel however many wells), chambers,
dish circles. Raster parts (label, tissue, molded text, holder texture) are
sampled with ``cv2.remap``; thin distractors (dust, scratches, fibres, marker) are
drawn anti-aliased in pixel space from their holder-mm polylines.

Illumination is a camera-fixed ring of LEDs: thin glass edges (cover glasses,
glass-bottom edges) show up mostly where they reflect the ring (radius
``scene.ring_radius`` of half the smaller frame side, and strongest where the edge
normal points radially), and the LEDs themselves appear as specular spots on glass
and plastic. Thick edges (slide, plate, wells, chamber walls) are clear
everywhere. Then vignetting, defocus blur, shot and read noise, and quantisation
to 8 or 16 bit (grey, or BGR as cv2 writes it).

Each object is evaluated only on the pixel window its bounding box covers; all
per-pixel work is float32.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from samplescout.acquire.scene import Circle, Decal, Rect, Scene
from samplescout.geometry import FrameGeometry, Pose

F32 = np.float32
Window = tuple[slice, slice]


@dataclass(slots=True)
class _Ctx:
    scene: Scene
    geom: FrameGeometry
    X: np.ndarray  # (H, W) holder x mm
    Y: np.ndarray
    img: np.ndarray  # (C, H, W) linear reflectance
    refl: np.ndarray  # (H, W) specular reflectivity (for the LED spots)
    grain: np.ndarray  # (H, W) holder-fixed isotropic texture ~N(0, 1)
    brushed: np.ndarray  # (H, W) holder-fixed brushed-metal texture
    ps: float

    @property
    def channels(self) -> int:
        return int(self.img.shape[0])

    def col(self, bgr: tuple[float, float, float] | np.ndarray) -> np.ndarray:
        c = np.asarray(bgr, dtype=F32)
        if self.channels == 1:
            return np.array([0.114 * c[0] + 0.587 * c[1] + 0.299 * c[2]], dtype=F32)
        return c

    def window(self, bbox: tuple[float, float, float, float]) -> Window | None:
        """Pixel window covering the holder-mm box ``(x0, y0, x1, y1)``, or None if off-frame."""
        x0, y0, x1, y1 = bbox
        corners = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]])
        uv = self.geom.holder_to_pixel(corners)
        u0 = max(0, math.floor(uv[:, 0].min()) - 1)
        v0 = max(0, math.floor(uv[:, 1].min()) - 1)
        u1 = min(self.geom.width, math.ceil(uv[:, 0].max()) + 2)
        v1 = min(self.geom.height, math.ceil(uv[:, 1].max()) + 2)
        if u1 <= u0 or v1 <= v0:
            return None
        return (slice(v0, v1), slice(u0, u1))

    def view(self, win: Window) -> np.ndarray:
        return self.img[:, win[0], win[1]]


# ---------------------------------------------------------------------------
# small helpers (all in place on window views)


def _cover(d: np.ndarray, ps: float) -> np.ndarray:
    """Anti-aliased inside fraction from a signed distance (one pixel ramp)."""
    out = np.multiply(d, F32(-1.0 / ps))
    out += F32(0.5)
    np.clip(out, 0.0, 1.0, out=out)
    return out


def _box_sdf(lx: np.ndarray, ly: np.ndarray, hw: float, hh: float, r: float = 0.0) -> np.ndarray:
    """Signed distance to a (rounded) box of half sizes ``hw, hh`` centred at 0."""
    qx = np.abs(lx)
    qx -= F32(hw - r)
    qy = np.abs(ly)
    qy -= F32(hh - r)
    inside = np.minimum(np.maximum(qx, qy), 0.0)
    np.maximum(qx, 0.0, out=qx)
    np.maximum(qy, 0.0, out=qy)
    d = np.hypot(qx, qy)
    d += inside
    if r:
        d -= F32(r)
    return d


def _local(rect: Rect, X: np.ndarray, Y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a = math.radians(rect.angle_deg)
    c, s = F32(math.cos(a)), F32(math.sin(a))
    dx = X - F32(rect.center[0])
    dy = Y - F32(rect.center[1])
    lx = dx * c + dy * s
    ly = dy * c - dx * s
    return lx, ly


def _gauss(d: np.ndarray, sigma: float, offset: float = 0.0) -> np.ndarray:
    t = d - F32(offset) if offset else d.copy()
    t *= F32(1.0 / sigma)
    np.square(t, out=t)
    t *= F32(-0.5)
    return np.exp(t, out=t)


def _over(v: np.ndarray, alpha: np.ndarray, col: np.ndarray) -> None:
    """``v = v + alpha * (col - v)``; ``col`` is (C,) or (C, h, w)."""
    tmp = np.empty(alpha.shape, F32)
    for c in range(v.shape[0]):
        np.subtract(col[c], v[c], out=tmp)
        tmp *= alpha
        v[c] += tmp


def _over_lum(v: np.ndarray, alpha: np.ndarray, tint: np.ndarray, lum: np.ndarray) -> None:
    """``v = v + alpha * (tint * lum - v)`` with a per-pixel luminance ``lum``."""
    tmp = np.empty(alpha.shape, F32)
    for c in range(v.shape[0]):
        np.multiply(lum, tint[c], out=tmp)
        tmp -= v[c]
        tmp *= alpha
        v[c] += tmp


def _add(v: np.ndarray, amount: np.ndarray, col: np.ndarray) -> None:
    if v.shape[0] == 1:
        if col[0] == 1.0:
            v[0] += amount
        else:
            v[0] += amount * col[0]
        return
    tmp = np.empty(amount.shape, F32)
    for c in range(v.shape[0]):
        np.multiply(amount, col[c], out=tmp)
        v[c] += tmp


def _mul(v: np.ndarray, factor: np.ndarray) -> None:
    v *= factor[None]


def _edge_sigma(ctx: _Ctx, mm: float) -> float:
    return max(mm, 0.55 * ctx.ps)


def _ring_gain(
    ctx: _Ctx, win: Window, nx: np.ndarray | None, ny: np.ndarray | None, base: float, amp: float
) -> np.ndarray:
    """Edge contrast from the camera-fixed LED ring: ``base`` everywhere, ``+amp`` on the ring.

    The reflection is strongest where the edge normal ``(nx, ny)`` points towards the
    frame centre's radial direction (the LED then mirrors into the lens).
    """
    cx, cy = ctx.geom.pose.center_mm
    dx = ctx.X[win] - F32(cx)
    dy = ctx.Y[win] - F32(cy)
    r = np.hypot(dx, dy)
    half = 0.5 * min(ctx.geom.width, ctx.geom.height) * ctx.ps
    s = ctx.scene
    t = r * F32(1.0 / half)
    t -= F32(s.ring_radius)
    t *= F32(1.0 / s.ring_width)
    np.square(t, out=t)
    np.negative(t, out=t)
    ring = np.exp(t, out=t)
    if nx is not None and ny is not None:
        dot = nx * dx
        dot += ny * dy
        r += F32(1e-6)
        dot /= r
        np.square(dot, out=dot)
        dot *= F32(0.8)
        dot += F32(0.2)
        ring *= dot
    ring *= F32(amp)
    ring += F32(base)
    return ring


# ---------------------------------------------------------------------------
# layers

_BAND_PIXELS = 1 << 17


def _banded(ctx: _Ctx, win: Window | None, fn: Callable[..., None], *args: object) -> None:
    """Run ``fn(ctx, *args, win=band)`` over row bands of ``win``.

    Every layer is per-pixel, so bands give the same result as one call; small bands
    keep the float32 temporaries in cache and out of fresh (page-faulting) memory.
    """
    if win is None:
        return
    rows = max(4, _BAND_PIXELS // max(1, win[1].stop - win[1].start))
    for r0 in range(win[0].start, win[0].stop, rows):
        fn(ctx, *args, win=(slice(r0, min(r0 + rows, win[0].stop)), win[1]))


def _holder(ctx: _Ctx, win: Window | None = None) -> None:
    if win is None:
        H, W = ctx.X.shape
        _banded(ctx, (slice(0, H), slice(0, W)), _holder)
        _screws(ctx)
        return
    s = ctx.scene
    ow, oh = s.holder_opening_mm
    X, Y = ctx.X[win], ctx.Y[win]
    d = _box_sdf(X - F32(ow / 2), Y - F32(oh / 2), ow / 2, oh / 2, 1.5)
    inside = _cover(d, ctx.ps)
    g = ctx.brushed[win]
    # holder material with texture, a bright bevel just outside the opening
    metal = g * F32(s.holder_level * s.holder_texture)
    metal += F32(s.holder_level)
    bevel = _gauss(d, 0.25, 0.45)
    metal += bevel * F32(0.5 * s.holder_level + 0.1)
    # background through the opening, darker in the shadow of the opening wall
    bg = ctx.grain[win] * F32(0.04 * s.background_level)
    bg += F32(s.background_level)
    shade = np.minimum(d, 0.0)
    shade *= F32(1 / 0.8)
    np.exp(shade, out=shade)
    shade *= F32(-0.45)
    shade += F32(1.0)
    bg *= shade
    # combine: img = bg * inside + metal * (1 - inside)
    metal -= bg
    metal *= F32(1.0) - inside
    metal += bg
    hc = ctx.col(s.holder_color)
    for c in range(ctx.channels):
        np.multiply(metal, hc[c] if ctx.channels == 3 else 1.0, out=ctx.img[c, win[0], win[1]])
    np.multiply(F32(1.0) - inside, F32(0.2), out=ctx.refl[win])


def _screws(ctx: _Ctx) -> None:
    s = ctx.scene
    X, Y = ctx.X, ctx.Y
    for screw in s.screws:
        win = ctx.window(screw.bbox(0.5))
        if win is None:
            continue
        r = np.hypot(X[win] - F32(screw.center[0]), Y[win] - F32(screw.center[1]))
        dd = r - F32(screw.diameter / 2)
        v = ctx.view(win)
        _over(v, _cover(dd, ctx.ps) * F32(0.85), ctx.col((0.06, 0.06, 0.06)))
        _add(v, _gauss(dd, 0.15, 0.05) * F32(0.35), ctx.col((1, 1, 1)))
        slot = np.abs(_local(Rect(screw.center, (1, 1), 30.0), X[win], Y[win])[1])
        _over(
            v,
            _cover(slot - F32(0.25), ctx.ps) * _cover(dd + F32(0.4), ctx.ps),
            ctx.col((0.02, 0.02, 0.02)),
        )


def _glass_plate(ctx: _Ctx, rect: Rect, edge_level: float, win: Window | None = None) -> None:
    """A thick glass plate (the slide): slightly brighter, bright ground edges, shadow."""
    if win is None:
        return _banded(ctx, ctx.window(rect.bbox(1.5)), _glass_plate, rect, edge_level)
    s = ctx.scene
    lx, ly = _local(rect, ctx.X[win], ctx.Y[win])
    d = _box_sdf(lx, ly, rect.size[0] / 2, rect.size[1] / 2, rect.radius)
    cov = _cover(d, ctx.ps)
    v = ctx.view(win)
    # shadow of the glass edge on the background just outside
    out = np.maximum(d, 0.0)
    out *= F32(-1 / 0.35)
    np.exp(out, out=out)
    out *= F32(-0.35) * (F32(1.0) - cov)
    out += F32(1.0)
    _mul(v, out)
    # glass: transmits ~92 %, reflects a little, glows near its ground edges
    _mul(v, F32(1.0) - F32(0.08) * cov)
    inner = np.minimum(d, 0.0)
    inner *= F32(1 / 0.22)
    np.exp(inner, out=inner)
    inner *= F32(edge_level)
    inner += F32(s.glass_level)
    inner *= cov
    inner += _gauss(d, _edge_sigma(ctx, 0.04)) * F32(edge_level * 0.8)
    _add(v, inner, ctx.col((1.0, 1.0, 0.97)))
    np.maximum(ctx.refl[win], cov, out=ctx.refl[win])


def _decal(ctx: _Ctx, decal: Decal, win: Window | None = None) -> None:
    if win is None:
        return _banded(ctx, ctx.window(decal.rect.bbox(0.2)), _decal, decal)
    C = ctx.channels
    tex, texel = decal.level(C, ctx.ps)
    lx, ly = _local(decal.rect, ctx.X[win], ctx.Y[win])
    lx += F32(decal.rect.size[0] / 2)
    lx *= F32(1.0 / texel)
    lx -= F32(0.5)
    ly += F32(decal.rect.size[1] / 2)
    ly *= F32(1.0 / texel)
    ly -= F32(0.5)
    smp = cv2.remap(tex, lx, ly, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    smp = smp.reshape(smp.shape[0], smp.shape[1], C + 1)
    alpha = np.ascontiguousarray(smp[..., C])
    colour = np.moveaxis(smp[..., :C], -1, 0)
    v = ctx.view(win)
    if decal.mode == "over":
        _over(v, alpha, colour)
        np.minimum(ctx.refl[win], F32(1.0) - alpha * F32(0.7), out=ctx.refl[win])
    else:
        v += alpha[None] * colour


def _cover_glass(ctx: _Ctx, shape: Rect | Circle, win: Window | None = None) -> None:
    s = ctx.scene
    if win is None:
        return _banded(ctx, ctx.window(shape.bbox(0.5)), _cover_glass, shape)
    X, Y = ctx.X[win], ctx.Y[win]
    if isinstance(shape, Rect):
        lx, ly = _local(shape, X, Y)
        hw, hh = shape.size[0] / 2, shape.size[1] / 2
        d = _box_sdf(lx, ly, hw, hh, shape.radius)
        # outward normal of the nearest side, in holder coordinates
        xside = (np.abs(lx) - F32(hw)) > (np.abs(ly) - F32(hh))
        nlx = np.where(xside, np.sign(lx), F32(0.0)).astype(F32)
        nly = np.where(xside, F32(0.0), np.sign(ly)).astype(F32)
        a = math.radians(shape.angle_deg)
        c, sn = F32(math.cos(a)), F32(math.sin(a))
        nx = nlx * c - nly * sn
        ny = nlx * sn + nly * c
    else:
        dx = X - F32(shape.center[0])
        dy = Y - F32(shape.center[1])
        r = np.hypot(dx, dy)
        d = r - F32(shape.diameter / 2)
        r += F32(1e-6)
        nx, ny = dx / r, dy / r
    cov = _cover(d, ctx.ps)
    v = ctx.view(win)
    _mul(v, F32(1.0) - F32(0.03) * cov)
    gain = _ring_gain(ctx, win, nx, ny, s.edge_base, s.edge_ring)
    sig = _edge_sigma(ctx, 0.012)
    edge = _gauss(d, sig)
    edge -= _gauss(d, sig, 2.5 * sig) * F32(0.35)
    edge *= gain
    edge += cov * F32(s.cover_delta)
    _add(v, edge, ctx.col((1.0, 1.0, 1.0)))
    np.maximum(ctx.refl[win], cov, out=ctx.refl[win])


def _slide(ctx: _Ctx) -> None:
    s = ctx.scene
    assert s.slide is not None
    _glass_plate(ctx, s.slide, 0.22 if s.difficulty == "easy" else 0.16)
    for decal in s.decals:  # tissue lies on the slide, under the cover glass
        _decal(ctx, decal)
    for g in s.cover_glasses:
        _cover_glass(ctx, g.shape)
    if s.label is not None:
        _decal(ctx, s.label)
    if s.chambers is not None:
        _chambers(ctx)


def _chambers(ctx: _Ctx, win: Window | None = None) -> None:
    s = ctx.scene
    m = s.chambers
    assert m is not None
    if win is None:
        return _banded(ctx, ctx.window(m.outer.bbox(1.0)), _chambers)
    lx, ly = _local(m.outer, ctx.X[win], ctx.Y[win])
    w, h = m.outer.size
    d_out = _box_sdf(lx, ly, w / 2, h / 2, m.outer.radius)
    cw, ch = m.cell_size
    ax = lx + F32(w / 2 - m.outer_wall + m.inner_wall / 2)
    ay = ly + F32(h / 2 - m.outer_wall + m.inner_wall / 2)
    ci = np.clip(np.floor(ax / F32(cw + m.inner_wall)), 0, m.cols - 1)
    cj = np.clip(np.floor(ay / F32(ch + m.inner_wall)), 0, m.rows - 1)
    cx = ci * F32(cw + m.inner_wall) + F32(cw / 2 + m.inner_wall / 2)
    cy = cj * F32(ch + m.inner_wall) + F32(ch / 2 + m.inner_wall / 2)
    d_cell = _box_sdf(ax - cx, ay - cy, cw / 2, ch / 2, 0.6)
    cov_out = _cover(d_out, ctx.ps)
    cov_cell = _cover(d_cell, ctx.ps)
    wall = cov_out * (F32(1.0) - cov_cell)
    v = ctx.view(win)
    # shadow around the block
    sh = np.maximum(d_out, 0.0)
    sh *= F32(-1 / 0.6)
    np.exp(sh, out=sh)
    sh *= F32(-0.4) * (F32(1.0) - cov_out)
    sh += F32(1.0)
    _mul(v, sh)
    # plastic walls
    L = ctx.grain[win] * F32(0.03)
    L += F32(0.36)
    _over_lum(v, wall, ctx.col((0.95, 0.97, 1.0)), L)
    # medium in filled chambers
    filled = m.filled[cj.astype(np.int32), ci.astype(np.int32)].astype(F32)
    liquid = cov_cell * cov_out * filled * F32(0.35)
    _over(v, liquid, ctx.col(s.liquid_color) * F32(0.35))
    # thick edges: outer block edge, chamber inner edges, inner shadow
    e = _gauss(d_out, _edge_sigma(ctx, 0.12)) * F32(0.3)
    e += _gauss(d_cell, _edge_sigma(ctx, 0.1)) * F32(0.25) * cov_out
    dark = np.minimum(d_cell, 0.0)
    dark *= F32(1 / 0.35)
    np.exp(dark, out=dark)
    dark *= cov_cell * cov_out * F32(-0.5)
    dark += F32(1.0)
    _mul(v, dark)
    _add(v, e, ctx.col((1.0, 1.0, 1.0)))
    np.maximum(ctx.refl[win], cov_out * F32(0.7), out=ctx.refl[win])


def _plate(ctx: _Ctx, win: Window | None = None) -> None:
    s = ctx.scene
    p = s.plate
    assert p is not None
    body = p.body
    if win is None:
        _banded(ctx, ctx.window(body.bbox(1.5)), _plate)
        for decal in s.decals:
            _decal(ctx, decal)
        return
    w, h = body.size
    lx, ly = _local(body, ctx.X[win], ctx.Y[win])
    d = _box_sdf(lx, ly, w / 2, h / 2, body.radius)
    # chamfered corner (top right)
    ch = (lx - ly) * F32(1 / math.sqrt(2)) - F32((w / 2 + h / 2 - 5.0) / math.sqrt(2))
    np.maximum(d, ch, out=d)
    cov = _cover(d, ctx.ps)
    v = ctx.view(win)
    sh = np.maximum(d, 0.0)
    sh *= F32(-1 / 0.6)
    np.exp(sh, out=sh)
    sh *= F32(-0.4) * (F32(1.0) - cov)
    sh += F32(1.0)
    _mul(v, sh)
    top = 0.07 if p.black else 0.3
    L = ctx.grain[win] * F32(top * 0.05)
    L += F32(top)
    # skirt/flange band along the edge, brighter, with an inner step edge
    flange = _cover(-(d + F32(1.6)), ctx.ps)  # 1 in the flange band
    L += flange * F32(0.12)
    L += _gauss(d, _edge_sigma(ctx, 0.1)) * F32(0.35)
    L += _gauss(d, _edge_sigma(ctx, 0.08), -1.6) * F32(0.2)
    # wells: nearest grid cell
    ax = lx + F32(w / 2 - p.a1_local[0])
    ay = ly + F32(h / 2 - p.a1_local[1])
    inv = F32(1.0 / p.pitch)
    i = np.clip(np.rint(ax * inv), 0, p.cols - 1)
    j = np.clip(np.rint(ay * inv), 0, p.rows - 1)
    ax -= i * F32(p.pitch)
    ay -= j * F32(p.pitch)
    if p.circular:
        dw = np.hypot(ax, ay)
        dw -= F32(p.well_size / 2)
    else:
        dw = _box_sdf(ax, ay, p.well_size / 2, p.well_size / 2, 0.3)
    wall = min(0.8, 0.6 * (p.pitch - p.well_size) / 2 + 0.1)
    inside = _cover(dw, ctx.ps)
    filled = p.filled[j.astype(np.int32), i.astype(np.int32)].astype(F32)
    floor = F32(0.8 * s.background_level + 0.03)
    # well floor replaces the plate top inside each well
    L += inside * (floor - L)
    # rim: the well wall's top, a bright band just outside the well, brightest at
    # the inner edge; a dark line where the wall meets the well floor
    band = _cover(dw - F32(wall), ctx.ps)
    band *= F32(1.0) - inside
    prof = dw * F32(-0.5 / wall)
    prof += F32(1.0)
    band *= prof
    L += band * F32(0.12 if p.black else 0.2)
    L -= _gauss(dw, _edge_sigma(ctx, 0.05), -0.03) * F32(0.08)
    np.maximum(L, 0.0, out=L)
    _over_lum(v, cov, ctx.col((1.0, 1.0, 1.0)), L)
    # liquid: tinted medium, bright meniscus ring along the wall
    liq = inside * filled
    _over(v, liq * F32(0.5), ctx.col(s.liquid_color) * F32(0.35))
    men = np.minimum(dw, 0.0)
    men *= F32(1.0 / (0.12 * p.well_size / 2 + 0.05))
    np.exp(men, out=men)
    men *= liq * F32(0.18)
    _add(v, men * cov, ctx.col((1.0, 1.0, 1.0)))
    np.maximum(ctx.refl[win], cov * F32(0.8), out=ctx.refl[win])


def _dish(ctx: _Ctx, win: Window | None = None) -> None:
    s = ctx.scene
    dsh = s.dish
    assert dsh is not None
    ro = dsh.outer_diameter / 2
    if win is None:
        return _banded(ctx, ctx.window(Circle(dsh.center, dsh.outer_diameter).bbox(1.5)), _dish)
    dx = ctx.X[win] - F32(dsh.center[0])
    dy = ctx.Y[win] - F32(dsh.center[1])
    r = np.hypot(dx, dy)
    d = r - F32(ro)
    cov = _cover(d, ctx.ps)
    v = ctx.view(win)
    sh = np.maximum(d, 0.0)
    sh *= F32(-1 / 0.8)
    np.exp(sh, out=sh)
    sh *= F32(-0.4) * (F32(1.0) - cov)
    sh += F32(1.0)
    _mul(v, sh)
    L = ctx.grain[win] * F32(0.01)
    L += F32(0.2)
    wall = _cover(-(d + F32(dsh.wall)), ctx.ps)  # 1 in the wall ring
    L += wall * F32(0.25)
    L += _gauss(d, _edge_sigma(ctx, 0.1)) * F32(0.3)
    L += _gauss(d, _edge_sigma(ctx, 0.1), -dsh.wall) * F32(0.25)
    L -= _gauss(d, _edge_sigma(ctx, 0.5), -2.6) * F32(0.04)  # molded foot ring
    rg = dsh.glass_diameter / 2
    dg = r - F32(rg)
    cg = _cover(dg, ctx.ps)
    L += cg * (F32(0.8 * s.background_level + 0.05) - L)
    _over_lum(v, cov, ctx.col((1.0, 1.0, 1.0)), L)
    if dsh.occupied:
        inner = _cover(d + F32(dsh.wall), ctx.ps)
        _over(v, inner * F32(0.3), ctx.col(s.liquid_color) * F32(0.3))
        cells = ctx.grain[win] * F32(0.015)
        cells += F32(0.02)
        np.maximum(cells, 0, out=cells)
        _add(v, cells * cg, ctx.col((0.8, 0.7, 0.9)))
    # faint edge of the glass bottom (plastic cut-out), brighter on the LED ring
    r += F32(1e-6)
    gain = _ring_gain(ctx, win, dx / r, dy / r, s.edge_base * 1.5, s.edge_ring * 1.2)
    sig = _edge_sigma(ctx, 0.03)
    e = _gauss(dg, sig, 0.05)
    e -= _gauss(dg, sig, -2 * sig) * F32(0.5)
    e *= gain
    _add(v, e, ctx.col((1.0, 1.0, 1.0)))
    np.maximum(ctx.refl[win], cov, out=ctx.refl[win])


def _dirt(ctx: _Ctx) -> None:
    """Dust, scratches, fibres and marker lines, drawn anti-aliased in pixel space."""
    s = ctx.scene
    H, W = ctx.geom.height, ctx.geom.width
    fp = ctx.geom.footprint_mm()
    x0, y0 = fp.min(0) - 1.0
    x1, y1 = fp.max(0) + 1.0
    layers: dict[str, np.ndarray] = {}

    def layer(name: str) -> np.ndarray:
        if name not in layers:
            layers[name] = np.zeros((H, W), np.uint8)
        return layers[name]

    shift = 4
    one = 1 << shift
    sp = s.specks
    if len(sp):
        sel = (sp[:, 0] > x0) & (sp[:, 0] < x1) & (sp[:, 1] > y0) & (sp[:, 1] < y1)
        for x, y, rmm, it in sp[sel]:
            uv = ctx.geom.holder_to_pixel(np.array([x, y]))
            rpx = rmm / ctx.ps
            amp = abs(it) * min(1.0, (rpx / 0.6) ** 2)
            if amp < 0.02:
                continue
            img = layer("bright" if it > 0 else "dark")
            cv2.circle(
                img,
                (round(uv[0] * one), round(uv[1] * one)),
                max(one // 2, round(rpx * one)),
                int(min(255, amp * 255)),
                -1,
                cv2.LINE_AA,
                shift,
            )
    for st in s.strokes:
        pts = st.points
        if (
            pts[:, 0].max() < x0
            or pts[:, 0].min() > x1
            or pts[:, 1].max() < y0
            or pts[:, 1].min() > y1
        ):
            continue
        uv = ctx.geom.holder_to_pixel(pts)
        wpx = st.width_mm / ctx.ps
        thick = max(1, round(wpx))
        amp = abs(st.intensity) * min(1.0, wpx)
        if amp < 0.02:
            continue
        name = "marker" if st.kind == "marker" else ("bright" if st.intensity > 0 else "dark")
        poly = np.round(uv * one).astype(np.int32).reshape(-1, 1, 2)
        cv2.polylines(
            layer(name), [poly], False, int(min(255, amp * 255)), thick, cv2.LINE_AA, shift
        )
    if "bright" in layers:
        b = layers["bright"].astype(F32)
        b *= F32(1 / 255)
        _add(ctx.img, b, ctx.col((1.0, 1.0, 1.0)))
    if "dark" in layers:
        dk = layers["dark"].astype(F32)
        dk *= F32(-1 / 255)
        dk += F32(1.0)
        _mul(ctx.img, dk)
    if "marker" in layers:
        mk = layers["marker"].astype(F32)
        mk *= F32(1 / 255)
        _over(ctx.img, mk, ctx.col(s.marker_color) * F32(0.08))


def _clips(ctx: _Ctx) -> None:
    """Spring clips / clamps of the holder, on top of the carrier edge."""
    for clip in ctx.scene.clips:
        _banded(ctx, ctx.window(clip.bbox(1.2)), _clip, clip)


def _clip(ctx: _Ctx, clip: Rect, win: Window) -> None:
    lx, ly = _local(clip, ctx.X[win], ctx.Y[win])
    d = _box_sdf(lx, ly, clip.size[0] / 2, clip.size[1] / 2, clip.radius)
    cov = _cover(d, ctx.ps)
    v = ctx.view(win)
    # cast shadow (offset) then the bent metal with a highlight along its length
    d2 = _box_sdf(lx - F32(0.4), ly - F32(0.4), clip.size[0] / 2, clip.size[1] / 2, clip.radius)
    sh = np.maximum(d2, 0.0)
    sh *= F32(-1 / 0.5)
    np.exp(sh, out=sh)
    sh *= F32(-0.5)
    sh += F32(1.0)
    _mul(v, sh)
    across = lx if clip.size[0] < clip.size[1] else ly
    half = min(clip.size) / 2
    L = np.cos(across * F32(math.pi / 2 / half))
    np.abs(L, out=L)
    L *= F32(0.35)
    L += F32(0.35)
    L += ctx.brushed[win] * F32(0.03)
    L += _gauss(d, _edge_sigma(ctx, 0.1)) * F32(0.25)
    _over_lum(v, cov, ctx.col((0.95, 0.95, 1.0)), L)
    np.maximum(ctx.refl[win], cov * F32(0.5), out=ctx.refl[win])


def _led_spots(ctx: _Ctx) -> None:
    """Specular reflections of the LED ring on flat glass/plastic (camera-fixed)."""
    s = ctx.scene
    W, H = ctx.geom.width, ctx.geom.height
    half = 0.5 * min(W, H)
    rad = s.ring_radius * half
    sig = 0.012 * half
    for k in range(s.n_leds):
        th = s.led_phase + 2 * math.pi * k / s.n_leds
        cu = (W - 1) / 2 + rad * math.cos(th)
        cv = (H - 1) / 2 + rad * math.sin(th)
        u0, u1 = max(0, int(cu - 4 * sig)), min(W, int(cu + 4 * sig) + 2)
        v0, v1 = max(0, int(cv - 4 * sig)), min(H, int(cv + 4 * sig) + 2)
        if u1 <= u0 or v1 <= v0:
            continue
        uu = (np.arange(u0, u1, dtype=F32) - F32(cu)) ** 2
        vv = (np.arange(v0, v1, dtype=F32) - F32(cv)) ** 2
        g = np.exp(-(vv[:, None] + uu[None, :]) / F32(2 * sig * sig))
        g *= ctx.refl[v0:v1, u0:u1] * F32(s.led_level)
        _add(ctx.img[:, v0:v1, u0:u1], g, ctx.col((1.0, 0.98, 0.95)))


def _camera(ctx: _Ctx, rng: np.random.Generator, blur_px: float) -> np.ndarray:
    """Defocus blur, vignetting, exposure, shot + read noise, quantisation."""
    s = ctx.scene
    C, H, W = ctx.img.shape
    img = ctx.img
    if blur_px > 0.3:
        for c in range(C):
            cv2.GaussianBlur(img[c], (0, 0), blur_px, dst=img[c])
    # vignetting: separable cos^4-like fall-off
    vu = np.linspace(-1, 1, W, dtype=F32)
    vu = F32(1) - F32(s.vignetting) * vu**2
    vv = np.linspace(-1, 1, H, dtype=F32) * F32(H / W)
    vv = F32(1) - F32(s.vignetting) * vv**2
    wb = np.asarray(s.white_balance, F32) if C == 3 else np.ones(1, F32)
    maxv = float((1 << s.adc_bits) - 1)
    dtype = np.uint8 if s.bit_depth == 8 else np.uint16
    out = np.empty((H, W) if C == 1 else (H, W, C), dtype)
    rows = max(4, _BAND_PIXELS // W)
    read2 = F32(s.read_noise**2)
    to_dn = F32(maxv / s.full_well)
    for r0 in range(0, H, rows):
        r1 = min(H, r0 + rows)
        vig = vu[None, :] * vv[r0:r1, None]
        for c in range(C):
            e = img[c, r0:r1] * (vig * F32(s.exposure * wb[c] * s.full_well))  # electrons
            np.maximum(e, 0.0, out=e)
            sd = e + read2
            np.sqrt(sd, out=sd)
            sd *= rng.standard_normal(e.shape, dtype=F32)
            e += sd
            e *= to_dn
            np.clip(e, 0.0, maxv, out=e)
            e += F32(0.5)
            if C == 1:
                out[r0:r1] = e
            else:
                out[r0:r1, :, c] = e
    return out


def _grain(scene: Scene, X: np.ndarray, Y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sample the holder-fixed textures: (isotropic, brushed metal)."""
    x0, y0 = scene.grain_origin
    t = scene.grain_texel
    mx = X - F32(x0)
    mx *= F32(1 / t)
    my = Y - F32(y0)
    my *= F32(1 / t)
    return tuple(  # type: ignore[return-value]
        cv2.remap(scene.grain[k], mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        for k in range(2)
    )


def holder_grid(pose: Pose, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """Holder mm of every pixel centre (float32 ``X, Y`` of shape ``(height, width)``).

    Exactly ``FrameGeometry(pose, width, height).pixel_to_holder`` (SPEC section 1).
    """
    ps = pose.pixel_size_mm
    a = math.radians(pose.rotation_deg)
    c, s = math.cos(a), math.sin(a)
    du = (np.arange(width, dtype=np.float64) - (width - 1) / 2) * ps
    dv = (np.arange(height, dtype=np.float64) - (height - 1) / 2) * ps
    X = (pose.center_mm[0] + c * du).astype(F32)[None, :] - (s * dv).astype(F32)[:, None]
    Y = (pose.center_mm[1] + s * du).astype(F32)[None, :] + (c * dv).astype(F32)[:, None]
    return X, Y


def render_frame(
    scene: Scene,
    pose: Pose,
    width: int,
    height: int,
    *,
    rng: np.random.Generator,
    blur_px: float | None = None,
) -> np.ndarray:
    """Render one frame of ``scene`` seen with the *true* ``pose``.

    Parameters
    ----------
    scene
        The scene (holder coordinates).
    pose
        The true frame pose (centre mm, pixel size, camera rotation).
    width, height
        Frame size in pixels.
    rng
        Generator for the sensor noise.
    blur_px
        Defocus blur sigma in pixels; default ``scene.blur_px``.

    Returns
    -------
    numpy.ndarray
        ``(height, width)`` grey or ``(height, width, 3)`` BGR, uint8 or uint16
        (``scene.bit_depth``; 12-bit data in uint16 when ``scene.adc_bits`` is 12).
    """
    geom = FrameGeometry(pose, int(width), int(height))
    X, Y = holder_grid(pose, int(width), int(height))
    C = 3 if scene.color else 1
    grain, brushed = _grain(scene, X, Y)
    ctx = _Ctx(
        scene=scene,
        geom=geom,
        X=X,
        Y=Y,
        img=np.empty((C, height, width), F32),
        refl=np.empty((height, width), F32),
        grain=grain,
        brushed=brushed,
        ps=float(pose.pixel_size_mm),
    )
    _holder(ctx)
    if scene.slide is not None:
        _slide(ctx)
    elif scene.plate is not None:
        _plate(ctx)
    elif scene.dish is not None:
        _dish(ctx)
    _dirt(ctx)
    _clips(ctx)
    _led_spots(ctx)
    return _camera(ctx, rng, scene.blur_px if blur_px is None else blur_px)
