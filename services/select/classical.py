"""Classical (no learning) selection: coherent-gradient energy on the coarse image.

The structure "probability" of a coarse pixel comes from the structure tensor: the
coherent part of the local gradient energy, ``lambda1 - lambda2``, in units of the
image's own noise (a robust Laplacian estimate), turned into a z-score against the
same statistic on pure noise. Long faint edges add up coherently over the
integration window while noise does not, so they survive where a plain gradient
threshold would lose them.
"""

from __future__ import annotations

import math
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
        n, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
        step = max(1, (self.tile_px - 2 * self.margin_px) // factor)
        found: list[tuple[float, tuple[int, int, int, int], float, str]] = []
        for lab in range(1, n):
            x, y, w, h, area = (int(v) for v in stats[lab])
            if area < self.min_area:
                continue
            for ty in range(y, y + h, step):
                for tx in range(x, x + w, step):
                    sub = labels[ty : min(ty + step, y + h), tx : min(tx + step, x + w)] == lab
                    if not sub.any():
                        continue
                    found.append(self._tile(sub, tx, ty, prob, jxx, jyy, jxy, step))
        regions: list[Region] = []
        order = sorted(found, key=lambda f: (-f[0], f[1][1], f[1][0]))
        for rank, (p, cbox, angle, kind) in enumerate(order):
            box = coarse_box_to_full(cbox, factor, geometry.width, geometry.height, self.margin_px)
            poly = geometry.box_to_holder(*box)
            regions.append(
                Region(
                    frame_index=frame_index,
                    region_index=rank,
                    box_px=box,
                    probability=p,
                    orientation_deg=normalize_angle_deg(angle + geometry.pose.rotation_deg),
                    kind=kind,
                    polygon_mm=tuple((float(a), float(b)) for a, b in poly),
                )
            )
        return regions

    def _tile(
        self,
        sub: np.ndarray,
        tx: int,
        ty: int,
        prob: np.ndarray,
        jxx: np.ndarray,
        jyy: np.ndarray,
        jxy: np.ndarray,
        step: int,
    ) -> tuple[float, tuple[int, int, int, int], float, str]:
        ys, xs = np.nonzero(sub)
        ys = ys + ty
        xs = xs + tx
        cbox = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
        p = np.sort(prob[ys, xs])[-3:]
        sxx, syy, sxy = float(jxx[ys, xs].sum()), float(jyy[ys, xs].sum()), float(jxy[ys, xs].sum())
        # The tensor's main axis is the gradient normal; the edge runs perpendicular to it.
        angle = 0.5 * math.degrees(math.atan2(2.0 * sxy, sxx - syy)) + 90.0
        coherence = math.hypot(sxx - syy, 2.0 * sxy) / max(sxx + syy, 1e-12)
        density = len(ys) / float(step * step)
        kind = (
            "label"
            if density > self.label_density and coherence < self.label_coherence
            else "structure"
        )
        return float(p.mean()), cbox, angle, kind
