"""Check the learned stages on a CUDA machine: same answers as on the CPU, and training.

Usage: ``python scripts/device_check.py [OUT.json]`` on a machine with a GPU (the
project's tests never need one). It

1. runs the shipped U-Net selector and identification CNN on one simulated full-size
   wide frame, on CUDA and on the CPU, and compares the regions and the classes;
2. times both (median of repeats, after warm-up);
3. trains the selector and the identifier a few dozen steps on CUDA and checks that the
   loss falls and the weights stay on the GPU.

Exits 1 (with the reason) when anything disagrees, else prints and writes a JSON summary.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from typing import Any

import numpy as np
import torch

from samplescout.annotate import annotate_frame, render_frames
from samplescout.coarse import make_coarse, to_gray_float
from samplescout.geometry import FrameGeometry
from samplescout.identify import train as identify_train
from samplescout.identify.net import load_identifier
from samplescout.select import train as select_train
from samplescout.select.model import prepare_input
from samplescout.select.net import load_selector


def _median_ms(fn: Any, repeats: int = 10) -> float:
    fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append((time.perf_counter() - t) * 1000.0)
    return round(statistics.median(times), 2)


def main(out: str | None) -> int:
    if not torch.cuda.is_available():
        print("no CUDA device: nothing to check", file=sys.stderr)
        return 1
    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    report: dict[str, Any] = {
        "torch": torch.__version__,
        "device": torch.cuda.get_device_name(0),
    }
    fr = next(render_frames([11], carriers=("slide",), difficulties=("hard",), profiles=("wide",)))
    h, w = fr.image.shape[:2]
    geom = FrameGeometry(fr.pose, w, h)
    coarse = make_coarse(fr.image, 8)
    gray = to_gray_float(fr.image)
    problems: list[str] = []

    regions = {}
    timings: dict[str, float] = {}
    for name, dev in (("cpu", cpu), ("cuda", cuda)):
        sel = load_selector(device=dev)
        regions[name] = sel.select(coarse, frame_index=0, geometry=geom, factor=8)
        timings[f"select_{name}_ms"] = _median_ms(
            lambda sel=sel: sel.select(coarse, frame_index=0, geometry=geom, factor=8)
        )
    a, b = regions["cpu"], regions["cuda"]
    report["regions"] = {"cpu": len(a), "cuda": len(b)}
    same_boxes = sum(r.box_px == s.box_px for r, s in zip(a, b, strict=False))
    if len(a) != len(b) or same_boxes < 0.95 * len(a):
        problems.append(f"selection differs: {len(a)} vs {len(b)} regions, {same_boxes} same")

    crops = [(r, gray[r.box_px[1] : r.box_px[3], r.box_px[0] : r.box_px[2]]) for r in a]
    classes = {}
    for name, dev in (("cpu", cpu), ("cuda", cuda)):
        ident = load_identifier(device=dev)
        classes[name] = [s.shape_class for s in ident.identify(crops, geom)]
        timings[f"identify_{name}_ms"] = _median_ms(
            lambda ident=ident: ident.identify(crops, geom), repeats=5
        )
    agree = sum(x == y for x, y in zip(classes["cpu"], classes["cuda"], strict=False))
    report["identify_agreement"] = f"{agree}/{len(classes['cpu'])}"
    if len(classes["cpu"]) != len(classes["cuda"]) or agree < 0.95 * len(classes["cpu"]):
        problems.append(f"identification differs: {report['identify_agreement']} classes agree")
    report["timings"] = timings

    small = next(
        render_frames(
            [11], carriers=("slide",), difficulties=("easy",), profiles=("wide",), wide_scale=0.25
        )
    )
    ann = annotate_frame(small.image, small.scene, small.pose, factor=2)
    data = select_train.SelectData(
        [prepare_input(make_coarse(small.image, 2))], [ann.select], {}, {"check": True}
    )
    model, info = select_train.train_model(
        data, steps=60, batch=4, crop=64, lr=5e-3, device=cuda, log=False
    )
    report["select_training"] = {k: info[k] for k in ("first_loss", "last_loss", "steps")}
    if next(model.parameters()).device.type != cuda.type:
        problems.append("the selector trained off the GPU")
    if not info["last_loss"] < 0.8 * info["first_loss"]:
        problems.append(f"selector loss did not fall on CUDA: {info}")
    ann8 = annotate_frame(small.image, small.scene, small.pose, factor=8)
    sgeom = FrameGeometry(small.pose, small.image.shape[1], small.image.shape[0])
    cs = identify_train.crops_from_frame(
        small.image, ann8, sgeom, small.scale, np.random.default_rng(0), n_pos=48, n_neg=16
    )
    net, info = identify_train.train_model(cs, steps=60, batch=16, lr=3e-3, device=cuda, log=False)
    report["identify_training"] = {k: info[k] for k in ("first_loss", "last_loss", "steps")}
    report["identify_training"]["accuracy"] = identify_train.accuracy(net, cs)["shape_accuracy"]
    if not info["last_loss"] < 0.8 * info["first_loss"]:
        problems.append(f"identifier loss did not fall on CUDA: {info}")

    report["problems"] = problems
    text = json.dumps(report, indent=2)
    print(text)
    if out:
        with open(out, "w") as fh:
            fh.write(text + "\n")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else None))
