"""Training and evaluation of the selection models (``samplescout train select``).

Data: simulator frames (all carriers, easy + hard, wide + narrow cameras), annotated by
:mod:`samplescout.annotate`; the coarse target is made at the factor that gives the
same coarse pixel size as ``factor`` on a full-scale frame (wide frames are rendered at
half scale, so their coarse factor is half as large).
"""

from __future__ import annotations

import time
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from samplescout.annotate import (
    IGNORE,
    SELECT_CLASSES,
    annotate_frame,
    annotation_quality,
    render_frames,
)
from samplescout.coarse import DEFAULT_FACTOR, make_coarse
from samplescout.inference import pick_device
from samplescout.progress import progress
from samplescout.registry import ModelRecord, Registry, data_hash
from samplescout.select.model import (
    ARCHITECTURES,
    BASE_CHANNELS,
    EDGE_CHANNELS,
    PatchNet,
    normalised_input,
)
from samplescout.training import LossMonitor

CLASS_WEIGHTS = (1.0, 4.0, 1.0, 1.0)


@dataclass(slots=True)
class SelectData:
    inputs: list[np.ndarray]  # (channels, h, w)
    targets: list[np.ndarray]  # (h, w) uint8
    annotation: dict[str, float]
    description: dict[str, Any]


def build_data(
    seeds: list[int],
    *,
    carriers: tuple[str, ...] = ("slide", "multiwell", "chamber_slide", "petri_dish"),
    difficulties: tuple[str, ...] = ("easy", "hard"),
    narrow_frames: int = 3,
    wide_scale: float = 0.5,
    factor: int = DEFAULT_FACTOR,
    channels: int = 2,
    scales: tuple[int, ...] = (1,),
    ignore_markers: bool = False,
    ignore_band: int = 0,
    log: bool = True,
) -> SelectData:
    """Render and annotate the training frames (inputs of ``channels`` 2 or 3, see
    :func:`~samplescout.select.model.normalised_input`).

    Every frame is reduced by ``factor`` (scaled with the frame's rendering scale, so
    the coarse pixel size is that of a full-scale frame) times each of ``scales``: with
    ``(1, 2)`` the model also learns coarse pixels twice as large, as a half-scale frame
    at the full factor gives, and needs no upsampling there.

    ``ignore_markers``: marker-pen strokes are ignored, not background (see
    :func:`~samplescout.annotate.annotate_frame`). ``ignore_band``: background pixels
    within this many coarse pixels of a structure target are ignored, so a model is
    not taught the width of an edge's band (identification reads both sides anyway).
    """
    inputs, targets, stats = [], [], []
    max_pixel_mm = 0.0
    bars = ExitStack()
    bar = bars.enter_context(
        progress(None, "rendering training frames", enabled=None if log else False)
    )
    for fr in render_frames(
        seeds,
        carriers=carriers,
        difficulties=difficulties,
        wide_scale=wide_scale,
        narrow_frames=narrow_frames,
    ):
        for m in scales:
            f = max(1, round(factor * fr.scale)) * m
            ann = annotate_frame(
                fr.image,
                fr.scene,
                fr.pose,
                factor=f,
                with_hough=m == scales[0],
                ignore_markers=ignore_markers,
            )
            coarse = make_coarse(fr.image, f)
            inputs.append(normalised_input(coarse, 1, channels))
            targets.append(_band_ignored(ann.select, ignore_band))
            if m == scales[0]:
                stats.append(ann.stats)
            max_pixel_mm = max(max_pixel_mm, f * fr.pose.pixel_size_mm)
        bar.advance()
        bar.describe(f"rendering training frames: {len(inputs)}")
    bars.close()
    desc = {
        "seeds": list(seeds),
        "carriers": list(carriers),
        "difficulties": list(difficulties),
        "narrow_frames": narrow_frames,
        "wide_scale": wide_scale,
        "factor": factor,
    }
    # the first models' descriptions (and data hashes) stay as they were
    if channels != 2:
        desc["channels"] = channels
    if tuple(scales) != (1,):
        desc["scales"] = list(scales)
        desc["max_coarse_pixel_mm"] = round(max_pixel_mm, 4)
    if ignore_markers:
        desc["ignore_markers"] = True
    if ignore_band:
        desc["ignore_band"] = ignore_band
    return SelectData(inputs, targets, annotation_quality(stats), desc)


def _band_ignored(target: np.ndarray, band: int) -> np.ndarray:
    """``target`` with background (class 0) within ``band`` pixels of structure ignored."""
    if band <= 0:
        return target
    side = 2 * band + 1
    near = cv2.dilate((target == 1).astype(np.uint8), np.ones((side, side), np.uint8)) > 0
    out = target.copy()
    out[near & (target == 0)] = IGNORE
    return out


def _augment(
    x: np.ndarray, t: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    k = int(rng.integers(0, 4))
    x, t = np.rot90(x, k, axes=(1, 2)), np.rot90(t, k)
    if rng.random() < 0.5:
        x, t = x[:, :, ::-1], t[:, ::-1]
    # contrast jitter on the intensity channel (exposure, 12-bit data)
    x = x.copy()
    x[0] *= float(rng.uniform(0.7, 1.3))
    return x, np.ascontiguousarray(t)


def _crop(
    x: np.ndarray, t: np.ndarray, size: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    _, h, w = x.shape
    if h < size or w < size:
        ph, pw = max(0, size - h), max(0, size - w)
        x = np.pad(x, ((0, 0), (0, ph), (0, pw)), mode="edge")
        t = np.pad(t, ((0, ph), (0, pw)), constant_values=IGNORE)
        h, w = t.shape
    # bias crops towards structure so the rare class is seen often
    ys, xs = np.nonzero(t[::4, ::4] == 1)
    if len(ys) and rng.random() < 0.7:
        k = int(rng.integers(0, len(ys)))
        cy, cx = (
            ys[k] * 4 + int(rng.integers(-size // 3, size // 3)),
            xs[k] * 4 + int(rng.integers(-size // 3, size // 3)),
        )
        y0 = int(np.clip(cy - size // 2, 0, h - size))
        x0 = int(np.clip(cx - size // 2, 0, w - size))
    else:
        y0, x0 = int(rng.integers(0, h - size + 1)), int(rng.integers(0, w - size + 1))
    return x[:, y0 : y0 + size, x0 : x0 + size], t[y0 : y0 + size, x0 : x0 + size]


def patch_targets(t: torch.Tensor) -> torch.Tensor:
    """Window targets for :class:`PatchNet` from pixel targets ``(n, h, w)`` (h, w % 8 == 0).

    A window is ``structure`` when >= 3 of its pixels are, else its majority class;
    ``IGNORE`` when most of it is ignored.
    """
    n_cls = len(SELECT_CLASSES)
    valid = t != IGNORE
    onehot = F.one_hot(torch.where(valid, t, 0).long(), n_cls).permute(0, 3, 1, 2).float()
    onehot = onehot * valid[:, None].float()
    pad = (PatchNet.window - PatchNet.stride) // 2
    counts = F.avg_pool2d(onehot, PatchNet.window, PatchNet.stride, pad, count_include_pad=True)
    counts = counts * PatchNet.window**2
    cls = counts.argmax(1)
    cls = torch.where(counts[:, 1] >= 3, torch.ones_like(cls), cls)
    valid_frac = counts.sum(1) / PatchNet.window**2
    cls = torch.where((valid_frac < 0.5) & (counts[:, 1] < 3), torch.full_like(cls, IGNORE), cls)
    return cls


def train_model(
    data: SelectData,
    *,
    architecture: str = "unet",
    width: int | None = None,
    steps: int = 1500,
    loss_threshold: float = 0.0,
    batch: int = 12,
    crop: int = 96,
    lr: float = 3e-3,
    seed: int = 0,
    residual_weight: float = 0.01,
    device: torch.device | None = None,
    log: bool = True,
) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Adam on random crops until the smoothed loss reaches ``loss_threshold`` or ``steps``.

    Runs on ``device`` (default: CUDA when available); the model comes back on it. Crops
    are drawn on the CPU from a seeded generator, so the batches do not depend on it.
    For ``prior-unet`` the mean square of the network's correction of the no-structure
    and structure logits, times ``residual_weight``, is added to the loss.
    """
    device = device or pick_device()
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    cls = ARCHITECTURES[architecture]
    hp: dict[str, Any] = {"in_channels": int(data.inputs[0].shape[0])}
    if width is not None:
        hp["width"] = width
    model = cls(**hp).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)
    weight = torch.tensor(CLASS_WEIGHTS, device=device)
    model.train()
    with LossMonitor(steps, loss_threshold=loss_threshold, log=log) as monitor:
        for _ in range(steps):
            xs, ts = [], []
            for _ in range(batch):
                i = int(rng.integers(0, len(data.inputs)))
                x, t = _crop(data.inputs[i], data.targets[i], crop, rng)
                x, t = _augment(x, t, rng)
                xs.append(x)
                ts.append(t)
            xb = torch.from_numpy(np.stack(xs).astype(np.float32)).to(device)
            tb = torch.from_numpy(np.stack(ts).astype(np.int64)).to(device)
            penalty = None
            if architecture == "patch":
                logits = model(xb)
                tb = patch_targets(tb)
            elif architecture == "prior-unet":
                residual = model.residual_logits(xb)
                logits = residual + model.prior_logits(xb)
                # only the structure decision is kept near the classical evidence;
                # label and non-sample are the network's alone
                penalty = residual_weight * residual[:, :2].square().mean()
            else:
                logits = model.full_logits(xb)
            loss = F.cross_entropy(logits, tb, weight=weight, ignore_index=IGNORE)
            if penalty is not None:
                loss = loss + penalty
            if monitor.step(loss, opt, sched):
                break
    model.eval()
    return model, {**monitor.summary(), "hparams": model.hparams}


def train(
    registry: Registry | str | None,
    *,
    architecture: str = "unet",
    data_seeds: list[int] | None = None,
    steps: int = 1500,
    loss_threshold: float = 0.0,
    seed: int = 0,
    context: dict[str, Any] | None = None,
    name: str | None = None,
    aliases: tuple[str, ...] | None = None,
    narrow_frames: int = 3,
    width: int | None = None,
    channels: int = 2,
    scales: tuple[int, ...] = (1,),
    ignore_markers: bool = False,
    ignore_band: int = 0,
    residual_weight: float = 0.01,
    device: torch.device | None = None,
    log: bool = True,
) -> ModelRecord:
    """Render data, train (on ``device``, default CUDA when available), and register a
    selection model; returns its record."""
    reg = registry if isinstance(registry, Registry) else Registry(registry)
    seeds = list(data_seeds) if data_seeds is not None else list(range(1000, 1006))
    t0 = time.perf_counter()
    if architecture == "prior-unet" and channels != len(EDGE_CHANNELS):
        raise ValueError("the prior U-Net reads 3 input channels (the edge evidence)")
    data = build_data(
        seeds,
        narrow_frames=narrow_frames,
        channels=channels,
        scales=scales,
        ignore_markers=ignore_markers,
        ignore_band=ignore_band,
        log=log,
    )
    model, info = train_model(
        data,
        architecture=architecture,
        steps=steps,
        loss_threshold=loss_threshold,
        seed=seed,
        width=width,
        residual_weight=residual_weight,
        device=device,
        log=log,
    )
    task = "select-patch" if architecture == "patch" else "select"
    name = name or f"select-{architecture}"
    meta = {
        "task": task,
        "architecture": architecture,
        "hparams": info["hparams"],
        "input": {
            "coarse_factor": DEFAULT_FACTOR,
            "channels": list(EDGE_CHANNELS if channels == 3 else BASE_CHANNELS),
            **(
                {"max_coarse_pixel_mm": data.description["max_coarse_pixel_mm"]}
                if "max_coarse_pixel_mm" in data.description
                else {}
            ),
        },
        "classes": list(SELECT_CLASSES),
        "context": context or {"microscope": "", "camera": "", "light": "", "carriers": []},
        "training": {
            "data": data.description,
            "data_hash": data_hash(data.description),
            "frames": len(data.inputs),
            "steps": info["steps"],
            "seed": seed,
            "device": next(model.parameters()).device.type,
            "first_loss": info["first_loss"],
            "final_loss": info["final_loss"],
            "seconds": round(time.perf_counter() - t0, 1),
            **({"residual_weight": residual_weight} if architecture == "prior-unet" else {}),
        },
        "annotation_quality": data.annotation,
        "metrics": {},
    }
    al = aliases if aliases is not None else (f"{task}-default",)
    return reg.save(name, model.state_dict(), meta, aliases=al)


def evaluate(
    selectors: dict[str, Any],
    seeds: list[int],
    *,
    carriers: tuple[str, ...] = ("slide", "multiwell", "chamber_slide", "petri_dish"),
    difficulties: tuple[str, ...] = ("hard",),
    narrow_frames: int = 2,
    factor: int = DEFAULT_FACTOR,
) -> dict[str, dict[str, float]]:
    """Selection recall on full-scale simulator frames, per selector.

    A true structure is an outline piece (~64 px) of a sample-relevant element (holder
    clips excluded); it is recalled when its midpoint lies inside a ``structure`` region.
    ``recall_visible`` counts only pieces the annotation's image processing confirmed.
    ``read_fraction``: share of the frame's pixels inside regions.
    """
    from samplescout.annotate import outline_pieces, scene_outlines
    from samplescout.geometry import FrameGeometry

    acc: dict[str, dict[str, float]] = {k: {} for k in selectors}
    for fr in render_frames(
        seeds,
        carriers=carriers,
        difficulties=difficulties,
        wide_scale=1.0,
        narrow_frames=narrow_frames,
    ):
        h, w = fr.image.shape[:2]
        geom = FrameGeometry(fr.pose, w, h)
        outlines = scene_outlines(fr.scene)
        ann = annotate_frame(fr.image, fr.scene, fr.pose, factor=factor, with_hough=False)
        conf = {
            (p.outline, round(float(p.p0[0]), 3), round(float(p.p0[1]), 3)): p.confirmed
            for p in ann.pieces
        }
        pieces = [
            (i, (a + b) / 2, conf.get((i, round(float(a[0]), 3), round(float(a[1]), 3)), False))
            for i, a, b in outline_pieces(outlines, geom)
            if outlines[i].element != "holder"
        ]
        coarse = make_coarse(fr.image, factor)
        for name, sel in selectors.items():
            regions = sel.select(coarse, frame_index=0, geometry=geom, factor=factor)
            boxes = np.array([r.box_px for r in regions if r.kind == "structure"], float).reshape(
                -1, 4
            )
            hit = [
                bool(
                    (
                        (boxes[:, 0] <= m[0])
                        & (m[0] < boxes[:, 2])
                        & (boxes[:, 1] <= m[1])
                        & (m[1] < boxes[:, 3])
                    ).any()
                )
                for _, m, _ in pieces
            ]
            a = acc[name]
            a["pieces"] = a.get("pieces", 0) + len(pieces)
            a["hits"] = a.get("hits", 0) + sum(hit)
            a["visible"] = a.get("visible", 0) + sum(c for _, _, c in pieces)
            a["visible_hits"] = a.get("visible_hits", 0) + sum(
                hh and c for hh, (_, _, c) in zip(hit, pieces, strict=True)
            )
            a["regions"] = a.get("regions", 0) + len(regions)
            area = sum((r.box_px[2] - r.box_px[0]) * (r.box_px[3] - r.box_px[1]) for r in regions)
            a["read"] = a.get("read", 0) + area
            a["pixels"] = a.get("pixels", 0) + w * h
            a["frames"] = a.get("frames", 0) + 1
    out = {}
    for name, a in acc.items():
        out[name] = {
            "recall": a["hits"] / max(a["pieces"], 1),
            "recall_visible": a["visible_hits"] / max(a["visible"], 1),
            "regions_per_frame": a["regions"] / max(a["frames"], 1),
            "read_fraction": a["read"] / max(a["pixels"], 1),
            "frames": a["frames"],
            "pieces": a["pieces"],
        }
    return out
