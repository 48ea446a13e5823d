"""Training and evaluation of the identification CNN (``samplescout train identify``).

Crops are cut from annotated simulator frames (:mod:`samplescout.annotate`) the way the
selection stage cuts them: boxes of 64-256 full-resolution pixels (scaled with the
frame's render scale), anywhere around an edge. Each crop is labelled by the outline
nearest to its centre, when image processing confirmed that outline there (else the
crop is skipped); crops with no outline are ``no_structure`` or ``label``; Canny/Hough
lines that match no outline (scratches, fibres, print) are ``straight_structure``.
"""

from __future__ import annotations

import math
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from samplescout.annotate import (
    ELEMENT_CLASSES,
    SIZE_CLASSES,
    FrameAnnotation,
    annotate_frame,
    annotation_quality,
    render_frames,
)
from samplescout.coarse import to_gray_float
from samplescout.contracts import STRUCTURE_CLASSES
from samplescout.geometry import FrameGeometry
from samplescout.identify.model import IdentifyNet, prepare_crop
from samplescout.inference import pick_device
from samplescout.progress import progress
from samplescout.registry import ModelRecord, Registry, data_hash
from samplescout.training import LossMonitor

ROUND_CLASSES = frozenset({"round_cover_glass_edge", "round_structure", "well"})


@dataclass(slots=True)
class CropSet:
    """Prepared crops with their targets."""

    x: list[np.ndarray] = field(default_factory=list)  # (2, s, s)
    shape: list[int] = field(default_factory=list)
    element: list[int] = field(default_factory=list)
    size: list[int] = field(default_factory=list)
    geometry: list[np.ndarray] = field(default_factory=list)  # (7,), NaN where unknown
    round: list[float] = field(default_factory=list)  # 1 / 0 / NaN (no edge)
    meta: list[dict[str, Any]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.x)


class _OutlinesPx:
    """All outlines of a frame in pixel units, vectorised for nearest-edge queries."""

    def __init__(self, ann: FrameAnnotation, geometry: FrameGeometry) -> None:
        ps = geometry.pose.pixel_size_mm
        self.outlines = ann.outlines
        seg_i, segs, circ_i, circs = [], [], [], []
        for i, o in enumerate(ann.outlines):
            if o.circle is not None:
                c = geometry.holder_to_pixel(np.array(o.circle[:2]))
                circ_i.append(i)
                circs.append([c[0], c[1], o.circle[2] / ps])
            else:
                assert o.segment is not None
                a = geometry.holder_to_pixel(np.array(o.segment))
                seg_i.append(i)
                segs.append(a.reshape(4))
        self.seg_i = np.array(seg_i, int)
        self.segs = np.array(segs, float).reshape(-1, 4)
        self.circ_i = np.array(circ_i, int)
        self.circs = np.array(circs, float).reshape(-1, 3)
        self.pieces: dict[int, list[tuple[np.ndarray, bool]]] = {}
        for pc in ann.pieces:
            self.pieces.setdefault(pc.outline, []).append(((pc.p0 + pc.p1) / 2, pc.confirmed))

    def nearest(self, p: np.ndarray) -> tuple[int, float, np.ndarray, np.ndarray, float | None]:
        """``(outline, distance, foot, direction, radius)`` of the outline nearest ``p``."""
        best: tuple[int, float, np.ndarray, np.ndarray, float | None] = (
            -1,
            math.inf,
            p,
            np.array([1.0, 0.0]),
            None,
        )
        if len(self.segs):
            a, b = self.segs[:, :2], self.segs[:, 2:]
            d = b - a
            t = np.clip(((p - a) * d).sum(1) / np.maximum((d * d).sum(1), 1e-9), 0, 1)
            foot = a + t[:, None] * d
            dist = np.hypot(*(p - foot).T)
            k = int(np.argmin(dist))
            if dist[k] < best[1]:
                u = d[k] / max(float(np.hypot(*d[k])), 1e-9)
                best = (int(self.seg_i[k]), float(dist[k]), foot[k], u, None)
        if len(self.circs):
            c, r = self.circs[:, :2], self.circs[:, 2]
            v = p - c
            n = np.maximum(np.hypot(*v.T), 1e-9)
            dist = np.abs(n - r)
            k = int(np.argmin(dist))
            if dist[k] < best[1]:
                radial = v[k] / n[k]
                foot = c[k] + radial * r[k]
                best = (
                    int(self.circ_i[k]),
                    float(dist[k]),
                    foot,
                    np.array([-radial[1], radial[0]]),
                    float(r[k]),
                )
        return best

    def confirmed_at(self, outline: int, foot: np.ndarray) -> bool:
        ps = self.pieces.get(outline)
        if not ps:
            return False
        mids = np.array([m for m, _ in ps])
        k = int(np.argmin(np.hypot(*(mids - foot).T)))
        return ps[k][1]


def _geometry_target(
    foot: np.ndarray,
    direction: np.ndarray,
    radius: float | None,
    centre_px: np.ndarray,
    half: float,
    circle_c: np.ndarray | None,
) -> np.ndarray:
    f = (foot - centre_px) / half
    a = math.atan2(direction[1], direction[0])
    g = np.full(7, np.nan, np.float32)
    g[0:2] = f
    g[2], g[3] = math.cos(2 * a), math.sin(2 * a)
    if radius is not None and circle_c is not None:
        n = circle_c - foot
        n = n / max(float(np.hypot(*n)), 1e-9)
        g[4:6] = n
        g[6] = math.log(max(radius / half, 1e-3))
    return g


def crops_from_frame(
    image: np.ndarray,
    ann: FrameAnnotation,
    geometry: FrameGeometry,
    scale: float,
    rng: np.random.Generator,
    *,
    n_pos: int = 24,
    n_neg: int = 8,
    n_distractor: int = 6,
    size: int = 64,
    out: CropSet | None = None,
) -> CropSet:
    """Cut labelled crops from one annotated frame (see module doc)."""
    cs = out if out is not None else CropSet()
    gray = to_gray_float(image)
    h, w = gray.shape
    op = _OutlinesPx(ann, geometry)
    confirmed = [pc for pc in ann.pieces if pc.confirmed]
    distractors = [s for s, m in ann.hough if not m]

    def cut(centre: np.ndarray) -> tuple[np.ndarray, tuple[int, int, int, int]] | None:
        side = float(rng.uniform(64, 256)) * scale
        sw = side if rng.random() < 0.7 else side * float(rng.uniform(0.5, 1.0))
        sh = side if rng.random() < 0.7 else side * float(rng.uniform(0.5, 1.0))
        x0, y0 = round(centre[0] - sw / 2), round(centre[1] - sh / 2)
        x1, y1 = round(centre[0] + sw / 2), round(centre[1] + sh / 2)
        x0, y0, x1, y1 = max(0, x0), max(0, y0), min(w, x1), min(h, y1)
        if x1 - x0 < 12 or y1 - y0 < 12:
            return None
        return gray[y0:y1, x0:x1], (x0, y0, x1, y1)

    def add(
        crop: np.ndarray,
        shape: str,
        element: str,
        size_c: str,
        g: np.ndarray,
        rnd: float,
        meta: dict[str, Any],
    ) -> None:
        x, _ = prepare_crop(crop, size)
        cs.x.append(x)
        cs.shape.append(STRUCTURE_CLASSES.index(shape))
        cs.element.append(ELEMENT_CLASSES.index(element))
        cs.size.append(SIZE_CLASSES.index(size_c))
        cs.geometry.append(g)
        cs.round.append(rnd)
        cs.meta.append(meta)

    for _ in range(n_pos if confirmed else 0):
        pc = confirmed[int(rng.integers(0, len(confirmed)))]
        p = pc.p0 + float(rng.uniform(0, 1)) * (pc.p1 - pc.p0)
        c = p + rng.uniform(-0.35, 0.35, 2) * 128 * scale
        got = cut(c)
        if got is None:
            continue
        crop, (x0, y0, x1, y1) = got
        centre = np.array([(x0 + x1 - 1) / 2, (y0 + y1 - 1) / 2])
        k, _dist, foot, direction, radius = op.nearest(centre)
        if k < 0 or not (x0 <= foot[0] <= x1 - 1 and y0 <= foot[1] <= y1 - 1):
            continue
        if not op.confirmed_at(k, foot):
            continue
        o = op.outlines[k]
        circle_c = None
        if radius is not None:
            circle_c = op.circs[int(np.nonzero(op.circ_i == k)[0][0]), :2]
        half = max(x1 - x0, y1 - y0) / 2
        g = _geometry_target(foot, direction, radius, centre, half, circle_c)
        add(
            crop,
            o.shape_class,
            o.element,
            o.size_class,
            g,
            1.0 if radius is not None else 0.0,
            {"outline": k, "box": (x0, y0, x1, y1)},
        )
    for _ in range(n_neg):
        c = rng.uniform([0, 0], [w, h])
        got = cut(c)
        if got is None:
            continue
        crop, (x0, y0, x1, y1) = got
        centre = np.array([(x0 + x1 - 1) / 2, (y0 + y1 - 1) / 2])
        _k, dist, _f, _d, _r = op.nearest(centre)
        if dist < 0.75 * max(x1 - x0, y1 - y0):
            continue
        lm = ann.label_mask
        on_label = bool(
            lm[min(lm.shape[0] - 1, int(centre[1]) // 4), min(lm.shape[1] - 1, int(centre[0]) // 4)]
        )
        cls, el = ("label", "label") if on_label else ("no_structure", "none")
        add(
            crop,
            cls,
            el,
            "unknown",
            np.full(7, np.nan, np.float32),
            math.nan,
            {"box": (x0, y0, x1, y1)},
        )
    for _ in range(min(n_distractor, len(distractors))):
        s = distractors[int(rng.integers(0, len(distractors)))]
        p = s[:2] + float(rng.uniform(0, 1)) * (s[2:] - s[:2])
        c = p + rng.uniform(-0.3, 0.3, 2) * 128 * scale
        got = cut(c)
        if got is None:
            continue
        crop, (x0, y0, x1, y1) = got
        centre = np.array([(x0 + x1 - 1) / 2, (y0 + y1 - 1) / 2])
        _k, dist, _f, _d, _r = op.nearest(centre)
        if dist < 0.75 * max(x1 - x0, y1 - y0):
            continue
        a, b = s[:2], s[2:]
        d = b - a
        t = float(np.clip((centre - a) @ d / max(float(d @ d), 1e-9), 0, 1))
        foot = a + t * d
        if not (x0 <= foot[0] <= x1 - 1 and y0 <= foot[1] <= y1 - 1):
            continue
        g = _geometry_target(
            foot, d / max(float(np.hypot(*d)), 1e-9), None, centre, max(x1 - x0, y1 - y0) / 2, None
        )
        add(crop, "straight_structure", "none", "unknown", g, 0.0, {"box": (x0, y0, x1, y1)})
    return cs


def build_data(
    seeds: list[int],
    *,
    carriers: tuple[str, ...] = ("slide", "multiwell", "chamber_slide", "petri_dish"),
    difficulties: tuple[str, ...] = ("easy", "hard"),
    narrow_frames: int = 3,
    wide_scale: float = 0.5,
    size: int = 64,
    seed: int = 0,
    log: bool = True,
) -> tuple[CropSet, dict[str, float], dict[str, Any]]:
    """Render, annotate and cut the training crops."""
    cs = CropSet()
    rng = np.random.default_rng(seed)
    stats = []
    bars = ExitStack()
    bar = bars.enter_context(
        progress(None, "rendering training frames", enabled=None if log else False)
    )
    frames = render_frames(
        seeds,
        carriers=carriers,
        difficulties=difficulties,
        wide_scale=wide_scale,
        narrow_frames=narrow_frames,
    )
    for n, fr in enumerate(frames, 1):
        ann = annotate_frame(fr.image, fr.scene, fr.pose, factor=8)
        geom = FrameGeometry(fr.pose, fr.image.shape[1], fr.image.shape[0])
        crops_from_frame(fr.image, ann, geom, fr.scale, rng, size=size, out=cs)
        stats.append(ann.stats)
        bar.advance()
        bar.describe(f"rendering training frames: {n}, {len(cs)} crops")
    bars.close()
    desc = {
        "seeds": list(seeds),
        "carriers": list(carriers),
        "difficulties": list(difficulties),
        "narrow_frames": narrow_frames,
        "wide_scale": wide_scale,
        "size": size,
        "crop_seed": seed,
    }
    return cs, annotation_quality(stats), desc


def tensors(cs: CropSet) -> dict[str, torch.Tensor]:
    return {
        "x": torch.from_numpy(np.stack(cs.x)),
        "shape": torch.tensor(cs.shape),
        "element": torch.tensor(cs.element),
        "size": torch.tensor(cs.size),
        "geometry": torch.from_numpy(np.stack(cs.geometry)),
        "round": torch.tensor(cs.round, dtype=torch.float32),
    }


def loss_fn(out: dict[str, torch.Tensor], t: dict[str, torch.Tensor]) -> torch.Tensor:
    """Classification (shape, element, size) + geometry + round-vs-straight."""
    loss = F.cross_entropy(out["shape"], t["shape"])
    loss = loss + 0.5 * F.cross_entropy(out["element"], t["element"])
    loss = loss + 0.3 * F.cross_entropy(out["size"], t["size"])
    g, pg = t["geometry"], out["geometry"]
    m = ~torch.isnan(g)
    if m.any():
        loss = loss + 2.0 * F.smooth_l1_loss(pg[m], g[m], beta=0.1)
    r = t["round"]
    mr = ~torch.isnan(r)
    if mr.any():
        loss = loss + 0.5 * F.binary_cross_entropy_with_logits(out["round"][mr], r[mr])
    return loss


def _augment(
    x: torch.Tensor, g: torch.Tensor, gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random flips of the batch, with the geometry targets flipped to match."""
    g = g.clone()
    if bool(torch.rand(1, generator=gen) < 0.5):  # flip x
        x = x.flip(-1)
        g[:, 0] = -g[:, 0]
        g[:, 3] = -g[:, 3]
        g[:, 4] = -g[:, 4]
    if bool(torch.rand(1, generator=gen) < 0.5):  # flip y
        x = x.flip(-2)
        g[:, 1] = -g[:, 1]
        g[:, 3] = -g[:, 3]
        g[:, 5] = -g[:, 5]
    x = x.clone()
    x[:, 0] *= 0.7 + 0.6 * torch.rand(x.shape[0], 1, 1, generator=gen)
    return x, g


def train_model(
    cs: CropSet,
    *,
    steps: int = 1200,
    loss_threshold: float = 0.0,
    batch: int = 48,
    lr: float = 2e-3,
    seed: int = 0,
    width: int | None = None,
    balanced: bool = False,
    device: torch.device | None = None,
    log: bool = True,
) -> tuple[IdentifyNet, dict[str, Any]]:
    """Adam until the smoothed loss reaches ``loss_threshold`` or ``steps``.

    ``balanced`` draws crops with probability ~ 1/sqrt(class count) (rare classes more
    often); the shipped model was trained without it. Runs on ``device`` (default: CUDA
    when available); batches are drawn on the CPU from a seeded generator.
    """
    device = device or pick_device()
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    size = int(cs.x[0].shape[-1])
    model = IdentifyNet(size=size, **({} if width is None else {"width": width})).to(device)
    data = tensors(cs)
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=1e-5)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)
    model.train()
    n = len(cs)
    # Rare classes (a slide shows few cover-glass edges, many wells) are drawn more often.
    counts = torch.bincount(data["shape"], minlength=len(STRUCTURE_CLASSES)).float()
    weights = 1.0 / counts[data["shape"]].sqrt()
    with LossMonitor(steps, loss_threshold=loss_threshold, log=log) as monitor:
        for _ in range(steps):
            if balanced:
                idx = torch.multinomial(weights, min(batch, n), replacement=True, generator=gen)
            else:
                idx = torch.randint(0, n, (min(batch, n),), generator=gen)
            t = {k: v[idx] for k, v in data.items()}
            t["x"], t["geometry"] = _augment(t["x"], t["geometry"], gen)
            t = {k: v.to(device) for k, v in t.items()}
            loss = loss_fn(model(t["x"]), t)
            if monitor.step(loss, opt, sched):
                break
    model.eval()
    return model, {**monitor.summary(), "hparams": model.hparams}


def accuracy(model: IdentifyNet, cs: CropSet) -> dict[str, Any]:
    """Per-class accuracy (recall) of the shape head, and overall element/size accuracy."""
    data = tensors(cs)
    device = next(model.parameters()).device
    with torch.inference_mode():
        out = {k: v.cpu() for k, v in model(data["x"].to(device)).items()}
    pred = out["shape"].argmax(1)
    per: dict[str, Any] = {}
    for ci, name in enumerate(STRUCTURE_CLASSES):
        m = data["shape"] == ci
        if int(m.sum()):
            per[name] = {"n": int(m.sum()), "accuracy": float((pred[m] == ci).float().mean())}
    el = float((out["element"].argmax(1) == data["element"]).float().mean())
    known = data["size"] != 0
    sz = (
        float((out["size"].argmax(1)[known] == data["size"][known]).float().mean())
        if known.any()
        else math.nan
    )
    return {
        "shape_accuracy": float((pred == data["shape"]).float().mean()),
        "per_class": per,
        "element_accuracy": el,
        "size_accuracy_known": sz,
        "n": len(cs),
    }


#: Written into the metadata: how :class:`~samplescout.identify.hybrid.HybridIdentifier`
#: uses this model (CNN class only when confident; geometry always from the fit).
HYBRID_DEFAULTS = {"skip_probability": 0.98, "override_probability": 0.9}


def train(
    registry: Registry | str | None,
    *,
    data_seeds: list[int] | None = None,
    steps: int = 1200,
    loss_threshold: float = 0.0,
    seed: int = 0,
    context: dict[str, Any] | None = None,
    name: str = "identify-cnn",
    aliases: tuple[str, ...] = ("identify-default",),
    narrow_frames: int = 3,
    balanced: bool = False,
    width: int | None = None,
    eval_seeds: list[int] | None = None,
    device: torch.device | None = None,
    log: bool = True,
) -> ModelRecord:
    """Render data, train, and register an identification model; returns its record.

    ``balanced`` draws rare classes more often (identify-cnn@1 was trained without it).
    With ``eval_seeds``, the accuracy on crops of those scenes (hard, full scale, see
    :func:`held_out_crops`; use seeds the data never saw) goes into the metadata's
    ``metrics``.
    """
    reg = registry if isinstance(registry, Registry) else Registry(registry)
    seeds = list(data_seeds) if data_seeds is not None else list(range(1000, 1006))
    t0 = time.perf_counter()
    cs, quality, desc = build_data(seeds, narrow_frames=narrow_frames, seed=seed, log=log)
    model, info = train_model(
        cs,
        steps=steps,
        loss_threshold=loss_threshold,
        seed=seed,
        balanced=balanced,
        width=width,
        device=device,
        log=log,
    )
    counts = {
        name_: int(np.sum(np.array(cs.shape) == i)) for i, name_ in enumerate(STRUCTURE_CLASSES)
    }
    meta = {
        "task": "identify",
        "architecture": "cnn",
        "hparams": info["hparams"],
        "classes": {
            "shape": list(STRUCTURE_CLASSES),
            "element": list(ELEMENT_CLASSES),
            "size": list(SIZE_CLASSES),
        },
        "context": context or {"microscope": "", "camera": "", "light": "", "carriers": []},
        "training": {
            "data": desc,
            "data_hash": data_hash(desc),
            "crops": len(cs),
            "class_counts": counts,
            "steps": info["steps"],
            "seed": seed,
            "balanced": balanced,
            "device": next(model.parameters()).device.type,
            "first_loss": info["first_loss"],
            "final_loss": info["final_loss"],
            "seconds": round(time.perf_counter() - t0, 1),
        },
        "annotation_quality": quality,
        "metrics": held_out_metrics(model, eval_seeds) if eval_seeds else {},
        # defaults of samplescout.identify.hybrid.HybridIdentifier for this model
        "hybrid": dict(HYBRID_DEFAULTS),
    }
    return reg.save(name, model.state_dict(), meta, aliases=aliases)


def held_out_crops(
    seeds: list[int],
    *,
    carriers: tuple[str, ...] = ("slide", "multiwell", "chamber_slide", "petri_dish"),
    difficulties: tuple[str, ...] = ("hard",),
    narrow_frames: int = 2,
    size: int = 64,
    seed: int = 99,
) -> CropSet:
    """Crops from full-scale frames (wide and narrow) for evaluation."""
    cs = CropSet()
    rng = np.random.default_rng(seed)
    for fr in render_frames(
        seeds,
        carriers=carriers,
        difficulties=difficulties,
        wide_scale=1.0,
        narrow_frames=narrow_frames,
    ):
        ann = annotate_frame(fr.image, fr.scene, fr.pose, factor=8)
        geom = FrameGeometry(fr.pose, fr.image.shape[1], fr.image.shape[0])
        crops_from_frame(fr.image, ann, geom, fr.scale, rng, size=size, out=cs)
    return cs


def held_out_metrics(model: IdentifyNet, seeds: list[int]) -> dict[str, Any]:
    """:func:`accuracy` on :func:`held_out_crops` of ``seeds``, as stored in ``metrics``."""
    acc = accuracy(model, held_out_crops(seeds))
    return {"held_out_seeds": list(seeds), **acc}
