"""Learned identification: the crop CNN of :mod:`samplescout.identify.model` as an Identifier."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from samplescout.annotate import ELEMENT_CLASSES, SIZE_CLASSES
from samplescout.contracts import STRUCTURE_CLASSES, Region, Structure
from samplescout.geometry import FrameGeometry
from samplescout.identify.model import IdentifyNet, crop_offset, prepare_crop
from samplescout.inference import fuse_for_inference, pick_device
from samplescout.registry import ModelRecord, Registry

_NO_GEOMETRY = frozenset({"no_structure", "label"})


def build_model(record: ModelRecord, device: torch.device) -> IdentifyNet:
    """Instantiate the record's network and load its weights (eval mode; on the CPU with
    its conv + batch-norm blocks folded, see :func:`fuse_for_inference`)."""
    model = IdentifyNet(**record.metadata.get("hparams", {}))
    model.load_state_dict(record.load_state_dict(device))
    model.eval()
    if device.type == "cpu":
        fuse_for_inference(model)  # in place
    return model.to(device)


def _clip_line(
    foot: np.ndarray, u: np.ndarray, w: int, h: int
) -> tuple[np.ndarray, np.ndarray] | None:
    """The part of the line through ``foot`` along ``u`` inside the crop (pixel edges)."""
    lo, hi = -math.inf, math.inf
    for k, (a, b) in enumerate(((-0.5, w - 0.5), (-0.5, h - 0.5))):
        if abs(u[k]) < 1e-9:
            if not a <= foot[k] <= b:
                return None
            continue
        t0, t1 = (a - foot[k]) / u[k], (b - foot[k]) / u[k]
        lo, hi = max(lo, min(t0, t1)), min(hi, max(t0, t1))
    if not hi > lo:
        return None
    return foot + lo * u, foot + hi * u


class NetIdentifier:
    """Identifies regions with the crop CNN, in batches.

    Parameters
    ----------
    model
        An :class:`~samplescout.identify.model.IdentifyNet`.
    top_k
        Process at most this many regions per call (highest selection probability first).
    min_region_probability
        Skip regions the selector scored below this.
    enough
        Stop once this many edge structures (not ``no_structure`` / ``label``) were
        found. Stopping is decided per batch in probability order, so what a region
        yields never depends on the others; only how many regions are read does.
    batch
        Crops per forward pass.
    """

    def __init__(
        self,
        model: IdentifyNet,
        *,
        top_k: int | None = None,
        min_region_probability: float = 0.0,
        enough: int | None = None,
        batch: int = 64,
        device: torch.device | None = None,
        name: str = "identify-cnn",
    ) -> None:
        self.device = device or pick_device()
        self.model = model.to(self.device).eval()
        self.size = int(model.hparams["size"])
        self.top_k = top_k
        self.min_region_probability = min_region_probability
        self.enough = enough
        self.batch = batch
        self.name = name

    def predict(self, crops: Sequence[np.ndarray]) -> dict[str, np.ndarray]:
        """Raw head outputs (probabilities, geometry) for a list of crops."""
        xs = [prepare_crop(c, self.size)[0] for c in crops]
        x = torch.from_numpy(np.stack(xs)).to(self.device)
        with torch.inference_mode():
            out = self.model(x.contiguous(memory_format=torch.channels_last))
        return {
            "shape": torch.softmax(out["shape"], 1).cpu().numpy(),
            "element": torch.softmax(out["element"], 1).cpu().numpy(),
            "size": torch.softmax(out["size"], 1).cpu().numpy(),
            "geometry": out["geometry"].cpu().numpy(),
            "round": torch.sigmoid(out["round"]).cpu().numpy(),
        }

    def identify(
        self, crops: Sequence[tuple[Region, np.ndarray]], geometry: FrameGeometry
    ) -> list[Structure]:
        """Structures of the given crops of one frame (see ``Identifier``)."""
        order = sorted(crops, key=lambda rc: (-rc[0].probability, rc[0].region_index))
        order = [rc for rc in order if rc[0].probability >= self.min_region_probability]
        if self.top_k is not None:
            order = order[: self.top_k]
        out: list[Structure] = []
        found = 0
        for i in range(0, len(order), self.batch):
            chunk = order[i : i + self.batch]
            pred = self.predict([c for _, c in chunk])
            for j, (region, crop) in enumerate(chunk):
                s = self._structure(
                    region, crop.shape[:2], {k: v[j] for k, v in pred.items()}, geometry
                )
                out.append(s)
                if s.shape_class not in _NO_GEOMETRY:
                    found += 1
            if self.enough is not None and found >= self.enough:
                break
        return out

    def _structure(
        self,
        region: Region,
        hw: tuple[int, ...],
        p: dict[str, np.ndarray],
        geometry: FrameGeometry,
    ) -> Structure:
        h, w = int(hw[0]), int(hw[1])
        k = int(np.argmax(p["shape"]))
        cls = STRUCTURE_CLASSES[k]
        element = ELEMENT_CLASSES[int(np.argmax(p["element"]))]
        size = SIZE_CLASSES[int(np.argmax(p["size"]))]
        base = {
            "region": region,
            "shape_class": cls,
            "probability": float(p["shape"][k]),
            "class_probabilities": {
                n: float(v) for n, v in zip(STRUCTURE_CLASSES, p["shape"], strict=True)
            },
            "element": "" if element == "none" else element,
            "size_class": "" if size == "unknown" else size,
        }
        if cls in _NO_GEOMETRY:
            return Structure(**base)  # type: ignore[arg-type]
        g = p["geometry"]
        half = max(h, w) / 2.0
        cx, cy = crop_offset(h, w)
        origin = np.array([region.box_px[0], region.box_px[1]], dtype=np.float64)
        foot = np.array([cx + g[0] * half, cy + g[1] * half])
        a = 0.5 * math.atan2(float(g[3]), float(g[2]))
        if p["round"] > 0.5:
            n = np.array([g[4], g[5]], dtype=np.float64)
            n /= max(float(np.hypot(*n)), 1e-9)
            r = float(math.exp(min(float(g[6]), 8.0))) * half
            centre = foot + r * n
            arc = self._arc(centre, r, w, h)
            if arc is not None:
                c_mm = geometry.pixel_to_holder(centre + origin)
                ps = geometry.pose.pixel_size_mm
                a0, a1 = arc
                rot = geometry.pose.rotation_deg
                return Structure(
                    **base,  # type: ignore[arg-type]
                    arc_mm=(float(c_mm[0]), float(c_mm[1]), r * ps, a0 + rot, a1 + rot),
                )
        seg = _clip_line(foot, np.array([math.cos(a), math.sin(a)]), w, h)
        if seg is None:
            return Structure(**base)  # type: ignore[arg-type]
        ends = geometry.pixel_to_holder(np.stack(seg) + origin)
        return Structure(
            **base,  # type: ignore[arg-type]
            segment_mm=(
                (float(ends[0, 0]), float(ends[0, 1])),
                (float(ends[1, 0]), float(ends[1, 1])),
            ),
        )

    @staticmethod
    def _arc(centre: np.ndarray, r: float, w: int, h: int) -> tuple[float, float] | None:
        """Angular span (deg, image axes) of the circle's part inside the crop."""
        t = np.radians(np.arange(0.0, 360.0, 0.5))
        x = centre[0] + r * np.cos(t)
        y = centre[1] + r * np.sin(t)
        inside = (x >= -0.5) & (x <= w - 0.5) & (y >= -0.5) & (y <= h - 0.5)
        if not inside.any():
            return None
        ang = np.degrees(t[inside])
        if inside.all():
            return 0.0, 360.0
        gaps = np.diff(np.concatenate([ang, [ang[0] + 360.0]]))
        kk = int(np.argmax(gaps))
        a0 = float(ang[(kk + 1) % len(ang)])
        return a0, a0 + 360.0 - float(gaps[kk])


def load_identifier(
    registry: Registry | str | None = None,
    context: dict[str, str] | None = None,
    *,
    device: torch.device | None = None,
    **options: float | int | None,
) -> NetIdentifier:
    """A ready identifier: ``identify`` resolved by context, else ``identify-default``,
    on ``device`` (default: CUDA when available)."""
    reg = registry if isinstance(registry, Registry) else Registry(registry)
    rec = reg.resolve("identify", context)
    device = device or pick_device()
    return NetIdentifier(build_model(rec, device), device=device, name=rec.ref, **options)  # type: ignore[arg-type]


__all__ = ["NetIdentifier", "load_identifier"]
