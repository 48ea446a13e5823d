"""Classical (no learning) selection: coherent-gradient energy on the coarse image.

The structure "probability" of a coarse pixel comes from the structure tensor: the
coherent part of the local gradient energy, ``lambda1 - lambda2``, in units of the
image's own noise (a robust Laplacian estimate), turned into a z-score against the
same statistic on pure noise. Long faint edges add up coherently over the
integration window while noise does not, so they survive where a plain gradient
threshold would lose them.
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

from samplescout.coarse import coarse_box_to_full
from samplescout.contracts import Region
from samplescout.geometry import FrameGeometry, normalize_angle_deg

_LAPLACE_3X3 = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], dtype=np.float32)


def noise_sigma(image: np.ndarray) -> float:
    """Robust standard deviation of white noise in ``image`` (median of a 3x3 Laplacian).

    The Laplacian cancels smooth shading and the median ignores the few pixels on
    edges; the kernel has L2 norm 6, and 1.4826 * median(|x|) is the sigma of a
    zero-mean Gaussian.
    """
    lap = cv2.filter2D(image, cv2.CV_32F, _LAPLACE_3X3, borderType=cv2.BORDER_REFLECT)
    return float(1.4826 * np.median(np.abs(lap[1:-1, 1:-1])) / 6.0)


def _tensor(image: np.ndarray, sigma: float, rho: float) -> tuple[np.ndarray, ...]:
    g = cv2.GaussianBlur(image, (0, 0), sigma) if sigma > 0 else image
    gx = cv2.Sobel(g, cv2.CV_32F, 1, 0, ksize=3, scale=0.125)
    gy = cv2.Sobel(g, cv2.CV_32F, 0, 1, ksize=3, scale=0.125)
    jxx = cv2.GaussianBlur(gx * gx, (0, 0), rho)
    jyy = cv2.GaussianBlur(gy * gy, (0, 0), rho)
    jxy = cv2.GaussianBlur(gx * gy, (0, 0), rho)
    return jxx, jyy, jxy


def _coherent_energy(jxx: np.ndarray, jyy: np.ndarray, jxy: np.ndarray) -> np.ndarray:
    d = jxx - jyy
    return np.sqrt(d * d + 4.0 * jxy * jxy)


@lru_cache(maxsize=16)
def _noise_reference(sigma: float, rho: float) -> tuple[float, float, float]:
    """Mean and sd of the coherent energy, and mean of the tensor trace, of unit white
    noise (fixed seed: reproducible)."""
    rng = np.random.default_rng(12345)
    noise = rng.standard_normal((192, 192)).astype(np.float32)
    jxx, jyy, jxy = (t[16:-16, 16:-16] for t in _tensor(noise, sigma, rho))
    e = _coherent_energy(jxx, jyy, jxy)
    return float(e.mean()), float(e.std()), float((jxx + jyy).mean())


def _background_level(trace: np.ndarray, window: int) -> np.ndarray:
    """Local median of the gradient energy (in units of pure noise), at least 1.

    Textured surfaces (a machined holder, frosted glass) are rich in gradient energy
    everywhere; an isolated edge is not. The median over a window much wider than an
    edge follows the first and ignores the second. It is taken on a 4x reduced log
    map (8-bit median filter), which is plenty for a slowly varying level.
    """
    h, w = trace.shape
    small = cv2.resize(trace, (max(1, w // 4), max(1, h // 4)), interpolation=cv2.INTER_AREA)
    logs = np.clip(np.log2(np.maximum(small, 1.0)) * 16.0, 0, 255).astype(np.uint8)
    k = max(3, (window // 4) | 1)
    med = cv2.medianBlur(logs, k) if min(logs.shape) >= k else logs
    level = np.exp2(med.astype(np.float32) / 16.0)
    return cv2.resize(level, (w, h), interpolation=cv2.INTER_LINEAR)


class ClassicalSelector:
    """Selects edge-bearing regions of a frame from its coarse image.

    Parameters
    ----------
    threshold
        Minimum structure probability of a coarse pixel to be part of a region.
    sigma, rho
        Gradient smoothing and structure-tensor integration scales, coarse pixels.
    z_mid, z_scale
        Logistic calibration of the noise z-score: ``p = 1 / (1 + exp(-(z - z_mid) / z_scale))``.
    tile_px
        Largest region side in full-resolution pixels (margin included).
    margin_px
        Full-resolution margin added around every region.
    min_area
        Connected components smaller than this (coarse pixels) are dropped.
    label_density, label_coherence
        A tile counts as ``label`` when more than ``label_density`` of it is structure
        and its summed tensor has coherence below ``label_coherence`` (dense isotropic
        texture such as print, not an edge).
    noise_floor
        Lower bound of the noise estimate (grey levels in [0, 1]).
    background_window
        Side (coarse pixels) of the window over which texture energy is measured; edges
        count relative to it, so a textured surface does not light up as structure.
    """

    name = "classical-select@1"

    def __init__(
        self,
        *,
        threshold: float = 0.5,
        sigma: float = 0.8,
        rho: float = 1.5,
        z_mid: float = 6.0,
        z_scale: float = 1.5,
        tile_px: int = 256,
        margin_px: int = 8,
        min_area: int = 3,
        label_density: float = 0.8,
        label_coherence: float = 0.35,
        noise_floor: float = 1e-6,
        background_window: int = 33,
    ) -> None:
        if not 0.0 < threshold < 1.0:
            raise ValueError("threshold must be in (0, 1)")
        if tile_px <= 2 * margin_px:
            raise ValueError("tile_px must exceed twice margin_px")
        self.threshold = threshold
        self.sigma = sigma
        self.rho = rho
        self.z_mid = z_mid
        self.z_scale = z_scale
        self.tile_px = tile_px
        self.margin_px = margin_px
        self.min_area = min_area
        self.label_density = label_density
        self.label_coherence = label_coherence
        self.noise_floor = noise_floor
        self.background_window = background_window

    def probability_map(self, coarse: np.ndarray) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
        """Structure probability per coarse pixel, and the structure tensor ``(jxx, jyy, jxy)``."""
        img = np.ascontiguousarray(coarse, dtype=np.float32)
        sn = max(noise_sigma(img), self.noise_floor)
        tensor = _tensor(img, self.sigma, self.rho)
        mu, sd, trace0 = _noise_reference(self.sigma, self.rho)
        jxx, jyy, _ = tensor
        level = _background_level((jxx + jyy) / (sn * sn * trace0), self.background_window)
        z = (_coherent_energy(*tensor) / (sn * sn * level) - mu) / sd
        p = 1.0 / (1.0 + np.exp(-(z - self.z_mid) / self.z_scale))
        return p.astype(np.float32), tensor

    def select(
        self, coarse: np.ndarray, *, frame_index: int, geometry: FrameGeometry, factor: int
    ) -> list[Region]:
        """Candidate regions of one frame, most probable first (see :class:`Selector`)."""
        prob, (jxx, jyy, jxy) = self.probability_map(coarse)
        mask = (prob >= self.threshold).astype(np.uint8)
        _, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
        ys, xs = np.nonzero(mask)
        lab = labels[ys, xs]
        keep = stats[lab, cv2.CC_STAT_AREA] >= self.min_area
        ys, xs, lab = ys[keep], xs[keep], lab[keep]
        if len(ys) == 0:
            return []
        # Tiles of each component on a grid anchored at its bounding box: a tile holds
        # the component's pixels in one step x step cell.
        step = max(1, (self.tile_px - 2 * self.margin_px) // factor)
        tx = (xs - stats[lab, cv2.CC_STAT_LEFT]) // step
        ty = (ys - stats[lab, cv2.CC_STAT_TOP]) // step
        span = int(max(coarse.shape)) // step + 1
        keys = (lab.astype(np.int64) * span + ty) * span + tx
        _, tile, count = np.unique(keys, return_inverse=True, return_counts=True)
        nt = len(count)
        x0 = np.full(nt, np.iinfo(np.int64).max)
        y0 = np.full(nt, np.iinfo(np.int64).max)
        x1 = np.zeros(nt, np.int64)
        y1 = np.zeros(nt, np.int64)
        pmax = np.zeros(nt, np.float64)
        np.minimum.at(x0, tile, xs)
        np.minimum.at(y0, tile, ys)
        np.maximum.at(x1, tile, xs + 1)
        np.maximum.at(y1, tile, ys + 1)
        np.maximum.at(pmax, tile, prob[ys, xs])
        sxx = np.bincount(tile, jxx[ys, xs], nt)
        syy = np.bincount(tile, jyy[ys, xs], nt)
        sxy = np.bincount(tile, jxy[ys, xs], nt)
        # The tensor's main axis is the gradient normal; the edge runs perpendicular to it.
        angle = 0.5 * np.degrees(np.arctan2(2.0 * sxy, sxx - syy)) + 90.0
        coherence = np.hypot(sxx - syy, 2.0 * sxy) / np.maximum(sxx + syy, 1e-12)
        label = (count / float(step * step) > self.label_density) & (
            coherence < self.label_coherence
        )
        order = np.lexsort((x0, y0, -pmax))
        boxes = [
            coarse_box_to_full(
                (int(x0[t]), int(y0[t]), int(x1[t]), int(y1[t])),
                factor,
                geometry.width,
                geometry.height,
                self.margin_px,
            )
            for t in order
        ]
        corners = np.array([[[a, b], [c, b], [c, d], [a, d]] for a, b, c, d in boxes]) - 0.5
        polys = geometry.pixel_to_holder(corners)
        rot = geometry.pose.rotation_deg
        return [
            Region(
                frame_index=frame_index,
                region_index=rank,
                box_px=box,
                probability=float(pmax[t]),
                orientation_deg=normalize_angle_deg(float(angle[t]) + rot),
                kind="label" if label[t] else "structure",
                polygon_mm=tuple((float(a), float(b)) for a, b in poly),
            )
            for rank, (t, box, poly) in enumerate(zip(order, boxes, polys, strict=True))
        ]
