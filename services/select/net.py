"""Learned selection: the U-Net of :mod:`samplescout.select.model` behind the Selector protocol."""

from __future__ import annotations

import math

import cv2
import numpy as np
import torch

from samplescout.coarse import coarse_box_to_full
from samplescout.contracts import Region
from samplescout.geometry import FrameGeometry, normalize_angle_deg
from samplescout.inference import fuse_for_inference, pick_device
from samplescout.registry import ModelRecord, Registry
from samplescout.select.classical import ClassicalSelector
from samplescout.select.model import (
    ARCHITECTURES,
    MAX_COARSE_PIXEL_MM,
    input_channels,
    normalised_input,
    pad_to,
    pool_probabilities,
    upsample_factor,
)


def build_model(record: ModelRecord, device: torch.device) -> torch.nn.Module:
    """Instantiate the record's architecture and load its weights (eval mode)."""
    meta = record.metadata
    cls = ARCHITECTURES[meta["architecture"]]
    model = cls(**meta.get("hparams", {}))
    model.load_state_dict(record.load_state_dict(device))
    model.eval()
    if device.type == "cpu":
        model = fuse_for_inference(model)
    return model.to(device)


def orientation_map(coarse: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Structure-tensor components ``(jxx, jyy, jxy)`` of the coarse image."""
    g = cv2.GaussianBlur(coarse, (0, 0), 0.8)
    gx = cv2.Sobel(g, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(g, cv2.CV_32F, 0, 1, ksize=3)
    return gx * gx, gy * gy, gx * gy


def tile_angle(
    jxx: np.ndarray, jyy: np.ndarray, jxy: np.ndarray, ys: np.ndarray, xs: np.ndarray
) -> float:
    """Edge direction (deg, image axes) of the pixels ``(ys, xs)``: normal to the mean gradient."""
    sxx, syy, sxy = float(jxx[ys, xs].sum()), float(jyy[ys, xs].sum()), float(jxy[ys, xs].sum())
    return 0.5 * math.degrees(math.atan2(2.0 * sxy, sxx - syy)) + 90.0


#: A candidate on the coarse grid: (probability, coarse box, angle in px, kind).
Candidate = tuple[float, tuple[int, int, int, int], float, str]


def ranked_regions(
    found: list[Candidate],
    *,
    frame_index: int,
    geometry: FrameGeometry,
    factor: int,
    margin_px: int,
) -> list[Region]:
    """Candidates as :class:`Region` s, most probable first (ties by position, kind)."""
    order = sorted(found, key=lambda f: (-f[0], f[1][1], f[1][0], f[3]))
    return [
        _make_region(
            frame_index=frame_index,
            rank=rank,
            cbox=cbox,
            probability=pr,
            angle_px=angle,
            kind=kind,
            geometry=geometry,
            factor=factor,
            margin_px=margin_px,
        )
        for rank, (pr, cbox, angle, kind) in enumerate(order)
    ]


def _make_region(
    *,
    frame_index: int,
    rank: int,
    cbox: tuple[int, int, int, int],
    probability: float,
    angle_px: float,
    kind: str,
    geometry: FrameGeometry,
    factor: int,
    margin_px: int,
) -> Region:
    """A :class:`Region` from a coarse box (full-res box, holder polygon, holder angle)."""
    box = coarse_box_to_full(cbox, factor, geometry.width, geometry.height, margin_px)
    poly = geometry.box_to_holder(*box)
    return Region(
        frame_index=frame_index,
        region_index=rank,
        box_px=box,
        probability=float(min(1.0, max(0.0, probability))),
        orientation_deg=normalize_angle_deg(angle_px + geometry.pose.rotation_deg),
        kind=kind,
        polygon_mm=tuple((float(a), float(b)) for a, b in poly),
    )


#: Selector options a model's ``operating_point`` metadata may set.
OPERATING_POINT_KEYS = ("threshold", "label_threshold", "grow")

#: Decimals kept of the model's probabilities (SPEC: results independent of workers).
PROBABILITY_DECIMALS = 4


class NetSelector:
    """Selection by the coarse-frame U-Net: class map -> threshold -> connected regions.

    Parameters
    ----------
    model
        A :class:`~samplescout.select.model.SelectUNet` in eval mode.
    threshold
        Minimum structure probability of a coarse pixel to be part of a region.
    label_threshold
        Minimum label probability for label regions.
    tile_px
        Largest region side in full-resolution pixels (margin included).
    margin_px
        Full-resolution margin around every region.
    min_area
        Connected components smaller than this (coarse pixels) are dropped.
    device
        Where the model runs.
    name
        Provenance string (``name@version``).
    max_pixel_mm
        Largest coarse pixel (holder mm) the model was trained on: coarser inputs (a
        half-scale frame at factor 8, say) are upsampled by an integer factor before the
        model and its probabilities pooled back to the coarse grid, so the model always
        sees structures at the scale it learned. ``0`` turns this off.
    grow
        Coarse pixels added on each side of the thresholded structure map before the
        connected regions are cut: the model marks edges a pixel or two wide, and the
        identifier needs both sides of an edge in its crop to place and classify it.
    printed_codes
        Also call label what the classical selector's printed-code test finds
        (:meth:`~samplescout.select.classical.ClassicalSelector.code_blocks`): a label
        the model does not mark (seen: a whole label on a wide half-scale frame) would
        otherwise leave fusion free to put a cover glass on it.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        *,
        threshold: float = 0.5,
        label_threshold: float = 0.5,
        tile_px: int = 256,
        margin_px: int = 8,
        min_area: int = 3,
        device: torch.device | None = None,
        name: str = "select-unet",
        max_pixel_mm: float = MAX_COARSE_PIXEL_MM,
        grow: int = 0,
        printed_codes: bool = True,
    ) -> None:
        if grow < 0:
            raise ValueError("grow must be >= 0")
        if tile_px <= 2 * margin_px:
            raise ValueError("tile_px must exceed twice margin_px")
        self.device = device or pick_device()
        self.model = model.to(self.device).eval()
        self.threshold = threshold
        self.label_threshold = label_threshold
        self.tile_px = tile_px
        self.margin_px = margin_px
        self.min_area = min_area
        self.name = name
        self.max_pixel_mm = max_pixel_mm
        self.grow = int(grow)
        self.channels = input_channels(model)
        self.codes = ClassicalSelector() if printed_codes else None

    def upsample(self, coarse_pixel_mm: float | None) -> int:
        """The integer upsampling applied to a coarse frame of this pixel size."""
        if coarse_pixel_mm is None or self.max_pixel_mm <= 0:
            return 1
        return upsample_factor(coarse_pixel_mm, self.max_pixel_mm)

    def probabilities(self, coarse: np.ndarray, upsample: int = 1) -> np.ndarray:
        """Class probabilities ``(4, h, w)`` per coarse pixel (model run at ``upsample`` x)."""
        h, w = coarse.shape
        x = torch.from_numpy(normalised_input(coarse, upsample, self.channels))[None]
        x = x.to(self.device)
        x = pad_to(x).contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            logits = self.model.full_logits(x)[..., : h * upsample, : w * upsample]  # type: ignore[operator]
            prob = torch.softmax(logits, dim=1)[0]
        prob_np = pool_probabilities(prob.float().cpu().numpy(), upsample)
        # Float kernels differ in the last bits with thread count and device; rounding
        # keeps regions (and so the final answer) independent of where the model ran.
        return np.round(prob_np, PROBABILITY_DECIMALS)

    def select(
        self, coarse: np.ndarray, *, frame_index: int, geometry: FrameGeometry, factor: int
    ) -> list[Region]:
        """Candidate regions of one frame, most probable first (see ``Selector``)."""
        coarse = np.ascontiguousarray(coarse, dtype=np.float32)
        prob = self.probabilities(coarse, self.upsample(factor * geometry.pose.pixel_size_mm))
        tensor = orientation_map(coarse)
        found: list[Candidate] = []
        for cls_id, kind, thr in (
            (1, "structure", self.threshold),
            (2, "label", self.label_threshold),
        ):
            p = prob[cls_id]
            if kind == "label" and self.codes is not None:
                code = np.zeros(p.shape, bool)
                for x0, y0, x1, y1 in self.codes.code_blocks(
                    coarse, factor * geometry.pose.pixel_size_mm
                ):
                    code[y0:y1, x0:x1] = True
                p = np.where(code, 1.0, p)
            mask = p >= thr
            if self.grow and kind == "structure":
                side = 2 * self.grow + 1
                mask = cv2.dilate(mask.astype(np.uint8), np.ones((side, side), np.uint8)) > 0
            found.extend(self._components(p, mask, kind, tensor, factor))
        return ranked_regions(
            found,
            frame_index=frame_index,
            geometry=geometry,
            factor=factor,
            margin_px=self.margin_px,
        )

    def _components(
        self,
        prob: np.ndarray,
        mask: np.ndarray,
        kind: str,
        tensor: tuple[np.ndarray, np.ndarray, np.ndarray],
        factor: int,
    ) -> list[tuple[float, tuple[int, int, int, int], float, str]]:
        n, labels, stats, _ = cv2.connectedComponentsWithStats(
            mask.astype(np.uint8), connectivity=8
        )
        # A label is decoded whole (a code split over tiles reads as nothing), so label
        # components are not tiled.
        step = max(1, (self.tile_px - 2 * self.margin_px) // factor)
        out = []
        for lab in range(1, n):
            x, y, w, h, area = (int(v) for v in stats[lab])
            if area < self.min_area:
                continue
            if kind == "label":
                ys, xs = np.nonzero(labels[y : y + h, x : x + w] == lab)
                top = np.sort(prob[ys + y, xs + x])[-3:]
                out.append((float(top.mean()), (x, y, x + w, y + h), 0.0, kind))
                continue
            for ty in range(y, y + h, step):
                for tx in range(x, x + w, step):
                    sub = labels[ty : min(ty + step, y + h), tx : min(tx + step, x + w)] == lab
                    if not sub.any():
                        continue
                    ys, xs = np.nonzero(sub)
                    ys, xs = ys + ty, xs + tx
                    cbox = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
                    top = np.sort(prob[ys, xs])[-3:]
                    angle = tile_angle(*tensor, ys, xs)
                    out.append((float(top.mean()), cbox, angle, kind))
        return out


def load_selector(
    registry: Registry | str | None = None,
    context: dict[str, str] | None = None,
    variant: str = "unet",
    *,
    device: torch.device | None = None,
    **options: float,
) -> NetSelector:
    """A ready selector from the registry (``variant``: ``unet`` or ``patch``).

    The selector's thresholds come from the model's ``operating_point`` metadata where it
    has one (a model trained for recall may select at a probability under 0.5);
    ``options`` override them. The model is ``select-<variant>`` resolved by context
    when the registry has one for that context, else the ``select-default`` alias or
    ``select-patch``. The
    selector's ``name`` is the provenance string, e.g. ``select-unet@1``. It runs on
    ``device`` (default: CUDA when available).
    """
    reg = registry if isinstance(registry, Registry) else Registry(registry)
    if variant == "patch":
        from samplescout.select.patches import PatchSelector

        rec = reg.resolve("select-patch", context)
        device = device or pick_device()
        return PatchSelector(build_model(rec, device), device=device, name=rec.ref, **options)
    if variant != "unet":
        raise ValueError(f"unknown selection variant {variant!r} (unet or patch)")
    rec = reg.resolve("select", context)
    device = device or pick_device()
    opts: dict[str, float] = {
        "max_pixel_mm": float(
            rec.metadata.get("input", {}).get("max_coarse_pixel_mm", MAX_COARSE_PIXEL_MM)
        )
    }
    point = rec.metadata.get("operating_point") or {}
    opts.update({k: float(v) for k, v in point.items() if k in OPERATING_POINT_KEYS})
    opts.update(options)
    return NetSelector(build_model(rec, device), device=device, name=rec.ref, **opts)  # type: ignore[arg-type]
