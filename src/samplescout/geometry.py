"""Holder coordinates (SPEC section 1): pixel <-> holder millimetres, shapes.

A frame of ``W x H`` pixels with pose ``(center_mm, pixel_size_mm, rotation_deg)``
maps pixel ``(u, v)`` (pixel centres at integers) to
``center_mm + R(rotation) @ ((u - (W-1)/2) * ps, (v - (H-1)/2) * ps)``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

FloatArray = NDArray[np.float64]


def rotation_matrix(angle_deg: float) -> FloatArray:
    """``R(a) = [[cos a, -sin a], [sin a, cos a]]``; positive turns +x towards +y (down)."""
    a = math.radians(angle_deg)
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, -s], [s, c]], dtype=np.float64)


@dataclass(frozen=True, slots=True)
class Pose:
    """Where a frame was taken: centre in holder mm, square pixel size, camera rotation."""

    center_mm: tuple[float, float]
    pixel_size_mm: float
    rotation_deg: float = 0.0

    def to_dict(self) -> dict[str, object]:
        return {
            "center_mm": [float(self.center_mm[0]), float(self.center_mm[1])],
            "pixel_size_mm": float(self.pixel_size_mm),
            "rotation_deg": float(self.rotation_deg),
        }


@dataclass(frozen=True, slots=True)
class FrameGeometry:
    """A pose plus the frame size: the full pixel <-> holder mapping of one frame."""

    pose: Pose
    width: int
    height: int

    def to_dict(self) -> dict[str, Any]:
        """JSON data: the pose's fields plus ``width`` and ``height``."""
        return {**self.pose.to_dict(), "width": int(self.width), "height": int(self.height)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FrameGeometry:
        """Inverse of :meth:`to_dict`."""
        cx, cy = data["center_mm"]
        pose = Pose(
            (float(cx), float(cy)), float(data["pixel_size_mm"]), float(data["rotation_deg"])
        )
        return cls(pose, int(data["width"]), int(data["height"]))

    def scaled(self, factor: int) -> FrameGeometry:
        """The geometry of this frame reduced by ``factor`` (area blocks, as
        :func:`samplescout.coarse.make_coarse` makes it): block ``i`` covers pixels
        ``[i*factor, (i+1)*factor)``, trailing pixels that fill no block dropped."""
        cw, ch = self.width // factor, self.height // factor
        centre = self.pixel_to_holder(
            (
                (cw - 1) / 2.0 * factor + (factor - 1) / 2.0,
                (ch - 1) / 2.0 * factor + (factor - 1) / 2.0,
            )
        )
        pose = Pose(
            (float(centre[0]), float(centre[1])),
            self.pose.pixel_size_mm * factor,
            self.pose.rotation_deg,
        )
        return FrameGeometry(pose, cw, ch)

    @property
    def _matrix(self) -> FloatArray:
        return rotation_matrix(self.pose.rotation_deg) * self.pose.pixel_size_mm

    def pixel_to_holder(self, uv: ArrayLike) -> FloatArray:
        """Map pixel coordinates ``(..., 2)`` (u=column, v=row) to holder mm ``(..., 2)``."""
        p = np.asarray(uv, dtype=np.float64)
        d = p - np.array([(self.width - 1) / 2.0, (self.height - 1) / 2.0])
        return d @ self._matrix.T + np.asarray(self.pose.center_mm, dtype=np.float64)

    def holder_to_pixel(self, xy: ArrayLike) -> FloatArray:
        """Inverse of :meth:`pixel_to_holder`."""
        p = np.asarray(xy, dtype=np.float64) - np.asarray(self.pose.center_mm, dtype=np.float64)
        inv = rotation_matrix(-self.pose.rotation_deg) / self.pose.pixel_size_mm
        return p @ inv.T + np.array([(self.width - 1) / 2.0, (self.height - 1) / 2.0])

    def footprint_mm(self) -> FloatArray:
        """The frame's outline (4 corners of the pixel area) in holder mm."""
        w, h = self.width, self.height
        corners = np.array([[-0.5, -0.5], [w - 0.5, -0.5], [w - 0.5, h - 0.5], [-0.5, h - 0.5]])
        return self.pixel_to_holder(corners)

    def box_to_holder(self, x0: float, y0: float, x1: float, y1: float) -> FloatArray:
        """Outline of the pixel box ``[x0, x1) x [y0, y1)`` in holder mm (4 vertices)."""
        corners = np.array(
            [[x0 - 0.5, y0 - 0.5], [x1 - 0.5, y0 - 0.5], [x1 - 0.5, y1 - 0.5], [x0 - 0.5, y1 - 0.5]]
        )
        return self.pixel_to_holder(corners)


def rectangle_polygon(
    center: tuple[float, float], size: tuple[float, float], angle_deg: float
) -> FloatArray:
    """Corners of a rectangle of ``size = (w, h)`` turned by ``angle_deg`` about its centre."""
    w, h = size
    local = np.array([[-w / 2, -h / 2], [w / 2, -h / 2], [w / 2, h / 2], [-w / 2, h / 2]])
    return local @ rotation_matrix(angle_deg).T + np.asarray(center, dtype=np.float64)


def circle_polygon(center: tuple[float, float], diameter: float, n: int = 64) -> FloatArray:
    """``n`` (>= 32 per SPEC) vertices on a circle."""
    t = np.linspace(0.0, 2.0 * math.pi, n, endpoint=False)
    r = diameter / 2.0
    return np.stack([center[0] + r * np.cos(t), center[1] + r * np.sin(t)], axis=1)


def normalize_angle_deg(angle: float) -> float:
    """Map a rectangle angle to (-90, 90] (a rectangle turned by 180 deg is itself)."""
    a = math.fmod(angle, 180.0)
    if a <= -90.0:
        a += 180.0
    elif a > 90.0:
        a -= 180.0
    return a


def polygon_iou(a: ArrayLike, b: ArrayLike) -> float:
    """Intersection over union of two convex polygons (holder mm)."""
    area_a, area_b, inter = _areas(a, b)
    if area_a <= 0 or area_b <= 0:
        return 0.0
    union = area_a + area_b - inter
    return inter / union if union > 0 else 0.0


def covered_share(a: ArrayLike, b: ArrayLike) -> float:
    """Share of convex polygon ``b``'s area that convex polygon ``a`` covers."""
    _, area_b, inter = _areas(a, b)
    return inter / area_b if area_b > 0 else 0.0


def _areas(a: ArrayLike, b: ArrayLike) -> tuple[float, float, float]:
    """Areas of polygons ``a``, ``b`` and of their intersection.

    Shapely (GEOS) in float64: OpenCV's ``intersectConvexConvex`` loses most of the
    intersection of two nearly coincident polygons (seen: IoU 0.35 for two 64-gons of
    the same circle 3 um apart), which matters exactly where a result is right.
    """
    import shapely

    pa = shapely.Polygon(np.asarray(a, dtype=np.float64).reshape(-1, 2))
    pb = shapely.Polygon(np.asarray(b, dtype=np.float64).reshape(-1, 2))
    area_a, area_b = float(pa.area), float(pb.area)
    if area_a <= 0 or area_b <= 0:
        return area_a, area_b, 0.0
    return area_a, area_b, float(shapely.intersection(pa, pb).area)


def fit_circle(p: np.ndarray) -> tuple[float, float, float] | None:
    """Algebraic (Kasa) circle fit of points ``(n, 2)``, centred for numerical stability."""
    if len(p) < 3:
        return None
    c = p.mean(axis=0)
    q = p - c
    a = np.column_stack([q[:, 0], q[:, 1], np.ones(len(q))])
    b = -(q[:, 0] ** 2 + q[:, 1] ** 2)
    sol, *_ = np.linalg.lstsq(a, b, rcond=None)
    cx, cy = -sol[0] / 2.0, -sol[1] / 2.0
    r2 = cx * cx + cy * cy - sol[2]
    if not np.isfinite(r2) or r2 <= 0:
        return None
    return float(cx + c[0]), float(cy + c[1]), float(math.sqrt(r2))
