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


def _ridge(z: np.ndarray, jxx: np.ndarray, jyy: np.ndarray, jxy: np.ndarray) -> np.ndarray:
    """Pixels where ``z`` is a maximum across the local edge (along the dominant
    gradient direction, quantised to 45 degrees), as in Canny's non-maximum suppression.

    ``z`` rather than the probability: the logistic saturates on strong edges, and a
    flat top would keep the whole band.
    """
    phi = 0.5 * np.arctan2(2.0 * jxy, jxx - jyy)
    q = np.round(phi / (np.pi / 4)).astype(np.int64) % 4
    h, w = z.shape
    pad = np.pad(z, 1, mode="edge")
    keep = np.zeros(z.shape, bool)
    for d, (dy, dx) in enumerate(((0, 1), (1, 1), (1, 0), (1, -1))):
        fwd = pad[1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w]
        bwd = pad[1 - dy : 1 - dy + h, 1 - dx : 1 - dx + w]
        keep |= (q == d) & (z >= fwd) & (z >= bwd)
    return keep


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
    code_window_mm, code_contrast, code_min_mm, code_margin_mm
        Printed codes (barcodes, 2D codes) are blocks of dense two-tone print: where the
        local standard deviation over ``code_window_mm`` exceeds ``code_contrast`` of the
        frame's grey range (and ten times its noise) throughout a square of
        ``code_min_mm`` (a morphological opening removes edges and text strokes), a
        ``label`` region is emitted around the block, grown by ``code_margin_mm`` (the
        code's quiet zone).
    code_module_mm, code_contrast_coarse, code_paper
        A coarse pixel larger than ``code_module_mm`` averages a code's modules, so its
        contrast drops: there ``code_contrast_coarse`` is enough for a block whose
        brightest tenth lies in the top ``1 - code_paper`` of the frame's grey range
        (print on paper; edges and texture elsewhere are not that bright).
    noise_floor
        Lower bound of the noise estimate (grey levels in [0, 1]).
    background_window
        Side (coarse pixels) of the window over which texture energy is measured; edges
        count relative to it, so a textured surface does not light up as structure.
    ridge_width
        Regions cover the ridge of the structure map (its maximum across the edge,
        Canny-style non-maximum suppression) grown by this many coarse pixels on each
        side, not the whole blurred band above the threshold: identification then
        reads a thin strip along each edge. ``None`` (default) keeps the whole band:
        thin strips read about a quarter fewer pixels, but the classical identifier
        then misplaces some cover glasses (docs/benchmarks.md).
    length_scale_mm
        A region's probability is its peak pixel probability times
        ``1 - exp(-extent / length_scale_mm)`` of its connected structure: sample
        edges are long, specks and tissue texture short, so identification (highest
        probability first, with a top-k or pixel budget) reads the long ones first.
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
        code_window_mm: float = 1.0,
        code_contrast: float = 0.2,
        code_min_mm: float = 2.5,
        code_margin_mm: float = 1.0,
        code_module_mm: float = 0.3,
        code_contrast_coarse: float = 0.1,
        code_paper: float = 0.75,
        noise_floor: float = 1e-6,
        background_window: int = 33,
        ridge_width: int | None = None,
        length_scale_mm: float = 5.0,
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
        self.code_window_mm = code_window_mm
        self.code_contrast = code_contrast
        self.code_min_mm = code_min_mm
        self.code_margin_mm = code_margin_mm
        self.code_module_mm = code_module_mm
        self.code_contrast_coarse = code_contrast_coarse
        self.code_paper = code_paper
        self.noise_floor = noise_floor
        self.background_window = background_window
        if ridge_width is not None and ridge_width < 0:
            raise ValueError("ridge_width must be >= 0 or None")
        self.ridge_width = ridge_width
        self.length_scale_mm = length_scale_mm

    def probability_map(
        self, coarse: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, tuple[np.ndarray, ...]]:
        """Structure probability per coarse pixel, its noise z-score, and the structure
        tensor ``(jxx, jyy, jxy)``."""
        img = np.ascontiguousarray(coarse, dtype=np.float32)
        sn = max(noise_sigma(img), self.noise_floor)
        tensor = _tensor(img, self.sigma, self.rho)
        mu, sd, trace0 = _noise_reference(self.sigma, self.rho)
        jxx, jyy, _ = tensor
        level = _background_level((jxx + jyy) / (sn * sn * trace0), self.background_window)
        z = (_coherent_energy(*tensor) / (sn * sn * level) - mu) / sd
        p = 1.0 / (1.0 + np.exp(-(z - self.z_mid) / self.z_scale))
        return p.astype(np.float32), z.astype(np.float32), tensor

    def select(
        self, coarse: np.ndarray, *, frame_index: int, geometry: FrameGeometry, factor: int
    ) -> list[Region]:
        """Candidate regions of one frame, most probable first (see :class:`Selector`)."""
        prob, z, (jxx, jyy, jxy) = self.probability_map(coarse)
        full = (prob >= self.threshold).astype(np.uint8)
        _, labels, stats, _ = cv2.connectedComponentsWithStats(full, connectivity=8)
        coarse_mm = geometry.pose.pixel_size_mm * factor
        extent = np.maximum(stats[:, cv2.CC_STAT_WIDTH], stats[:, cv2.CC_STAT_HEIGHT])
        big = stats[:, cv2.CC_STAT_AREA] >= self.min_area
        big[0] = False
        ys, xs = np.nonzero(big[labels])
        if len(ys) == 0:
            return []
        lab = labels[ys, xs]
        if self.ridge_width is None:
            thin = np.ones(len(ys), bool)
        else:
            ridge = _ridge(z, jxx, jyy, jxy) & (full > 0)
            if self.ridge_width:
                k = 2 * self.ridge_width + 1
                ridge = cv2.dilate(ridge.astype(np.uint8), np.ones((k, k), np.uint8)) > 0
            thin = ridge[ys, xs]
        # Tiles of each component on a grid anchored at its bounding box: a tile holds
        # the component's pixels in one step x step cell.
        step = max(1, (self.tile_px - 2 * self.margin_px) // factor)
        tx = (xs - stats[lab, cv2.CC_STAT_LEFT]) // step
        ty = (ys - stats[lab, cv2.CC_STAT_TOP]) // step
        span = int(max(coarse.shape)) // step + 1
        keys = (lab.astype(np.int64) * span + ty) * span + tx
        _, tile = np.unique(keys, return_inverse=True)
        nt = int(tile.max()) + 1
        sxx = np.bincount(tile, jxx[ys, xs], nt)
        syy = np.bincount(tile, jyy[ys, xs], nt)
        sxy = np.bincount(tile, jxy[ys, xs], nt)
        # The tensor's main axis is the gradient normal; the edge runs perpendicular to it.
        angle = 0.5 * np.degrees(np.arctan2(2.0 * sxy, sxx - syy)) + 90.0
        ys, xs, tile = ys[thin], xs[thin], tile[thin]
        x0 = np.full(nt, np.iinfo(np.int64).max)
        y0 = np.full(nt, np.iinfo(np.int64).max)
        x1 = np.full(nt, -1, np.int64)
        y1 = np.zeros(nt, np.int64)
        pmax = np.zeros(nt, np.float64)
        np.minimum.at(x0, tile, xs)
        np.minimum.at(y0, tile, ys)
        np.maximum.at(x1, tile, xs + 1)
        np.maximum.at(y1, tile, ys + 1)
        np.maximum.at(pmax, tile, prob[ys, xs])
        length = np.zeros(nt, np.float64)
        length[tile] = extent[lab[thin]] * coarse_mm
        pmax *= 1.0 - np.exp(-length / self.length_scale_mm)
        codes = self.code_blocks(coarse, coarse_mm)
        kept = np.flatnonzero(x1 >= 0)
        found = [
            (
                (int(x0[t]), int(y0[t]), int(x1[t]), int(y1[t])),
                float(pmax[t]),
                float(angle[t]),
                False,
            )
            for t in kept
        ] + [(box, 1.0, 0.0, True) for box in codes]
        found.sort(key=lambda f: (-f[1], f[0][1], f[0][0]))
        if not found:
            return []
        boxes = [
            coarse_box_to_full(box, factor, geometry.width, geometry.height, self.margin_px)
            for box, *_ in found
        ]
        corners = np.array([[[a, b], [c, b], [c, d], [a, d]] for a, b, c, d in boxes]) - 0.5
        polys = geometry.pixel_to_holder(corners)
        rot = geometry.pose.rotation_deg
        return [
            Region(
                frame_index=frame_index,
                region_index=rank,
                box_px=box,
                probability=prob_t,
                orientation_deg=normalize_angle_deg(angle_t + rot),
                kind="label" if is_code else "structure",
                polygon_mm=tuple((float(a), float(b)) for a, b in poly),
            )
            for rank, ((_, prob_t, angle_t, is_code), box, poly) in enumerate(
                zip(found, boxes, polys, strict=True)
            )
        ]

    def code_blocks(self, coarse: np.ndarray, coarse_mm: float) -> list[tuple[int, int, int, int]]:
        """Coarse boxes ``(x0, y0, x1, y1)`` of printed-code blocks (see ``code_*``)."""
        img = np.ascontiguousarray(coarse, dtype=np.float32)
        win = max(3, round(self.code_window_mm / coarse_mm) | 1)
        mean = cv2.blur(img, (win, win))
        var = cv2.blur(img * img, (win, win)) - mean * mean
        lo, hi = np.percentile(img, [1.0, 99.9])
        # Print is far above the noise, and takes a good part of the frame's range.
        noise = 10.0 * noise_sigma(img)
        sd = np.sqrt(np.maximum(var, 0.0))
        k = max(3, round(self.code_min_mm / coarse_mm))
        if min(img.shape) < k:
            return []
        square = np.ones((k, k), np.uint8)
        floor = max(self.code_contrast * float(hi - lo), noise, 1e-6)
        strong = cv2.morphologyEx((sd >= floor).astype(np.uint8), cv2.MORPH_OPEN, square)
        block = strong
        if coarse_mm > self.code_module_mm:
            floor = max(self.code_contrast_coarse * float(hi - lo), noise, 1e-6)
            block = cv2.morphologyEx((sd >= floor).astype(np.uint8), cv2.MORPH_OPEN, square)
        paper = float(lo + self.code_paper * (hi - lo))
        # Pieces of one code (a barcode's sparse stretches fall below the threshold)
        # closer than twice ``code_min_mm`` are one code; its box gets the quiet zone.
        grow = max(1, round(self.code_margin_mm / coarse_mm))
        near = cv2.dilate(block, np.ones((k + 1, k + 1), np.uint8), iterations=2)
        n, labels, _, _ = cv2.connectedComponentsWithStats(near, connectivity=8)
        ys, xs = np.nonzero(block)
        lab = labels[ys, xs]
        h, w = img.shape
        out = []
        for i in range(1, n):
            sel = lab == i
            if not sel.any():
                continue
            x0, x1 = int(xs[sel].min()), int(xs[sel].max()) + 1
            y0, y1 = int(ys[sel].min()), int(ys[sel].max()) + 1
            box = (max(0, x0 - grow), max(0, y0 - grow), min(w, x1 + grow), min(h, y1 + grow))
            # found at the lower contrast only: print on paper (quiet zone included), or
            # nothing
            if (
                block is not strong
                and not strong[y0:y1, x0:x1].any()
                and float(np.percentile(img[box[1] : box[3], box[0] : box[2]], 90)) < paper
            ):
                continue
            out.append(box)
        return out
