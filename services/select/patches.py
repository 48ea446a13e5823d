"""Learned selection, second variant: sliding-window patch classifier + non-maximum suppression."""

from __future__ import annotations

import numpy as np
import torch
from samplescout.select.model import PatchNet, pad_to, prepare_input
from samplescout.select.net import make_region, orientation_map, pick_device, tile_angle

from samplescout.contracts import Region
from samplescout.geometry import FrameGeometry


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> list[int]:
    """Greedy non-maximum suppression; ties broken by position (deterministic)."""
    order = sorted(range(len(scores)), key=lambda i: (-scores[i], boxes[i, 1], boxes[i, 0]))
    keep: list[int] = []
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    for i in order:
        ok = True
        for k in keep:
            ix = max(0, min(boxes[i, 2], boxes[k, 2]) - max(boxes[i, 0], boxes[k, 0]))
            iy = max(0, min(boxes[i, 3], boxes[k, 3]) - max(boxes[i, 1], boxes[k, 1]))
            inter = ix * iy
            if inter / (area[i] + area[k] - inter) > iou:
                ok = False
                break
        if ok:
            keep.append(i)
    return keep


class PatchSelector:
    """Windows of ``PatchNet.window`` coarse pixels, stride ``PatchNet.stride``, scored
    by the patch classifier; windows above ``threshold`` survive non-maximum suppression.

    Parameters
    ----------
    model
        A :class:`~samplescout.select.model.PatchNet` in eval mode.
    threshold
        Minimum structure (or label) probability of a window.
    nms_iou
        Windows overlapping a better one by more than this are dropped.
    margin_px
        Full-resolution margin around every window.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        *,
        threshold: float = 0.5,
        nms_iou: float = 0.3,
        margin_px: int = 8,
        device: torch.device | None = None,
        name: str = "select-patch",
    ) -> None:
        self.device = device or pick_device()
        self.model = model.to(self.device).eval()
        self.threshold = threshold
        self.nms_iou = nms_iou
        self.margin_px = margin_px
        self.name = name

    def window_probabilities(self, coarse: np.ndarray) -> np.ndarray:
        """Class probabilities ``(4, ceil(h/8), ceil(w/8))`` per window."""
        x = torch.from_numpy(prepare_input(coarse))[None].to(self.device)
        x = pad_to(x).contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            prob = torch.softmax(self.model(x), dim=1)[0]
        return prob.float().cpu().numpy()

    def select(
        self, coarse: np.ndarray, *, frame_index: int, geometry: FrameGeometry, factor: int
    ) -> list[Region]:
        """Candidate regions of one frame, most probable first (see ``Selector``)."""
        coarse = np.ascontiguousarray(coarse, dtype=np.float32)
        h, w = coarse.shape
        prob = self.window_probabilities(coarse)
        s, half = PatchNet.stride, (PatchNet.window - PatchNet.stride) // 2
        gh, gw = (h + s - 1) // s, (w + s - 1) // s
        prob = prob[:, :gh, :gw]
        tensor = orientation_map(coarse)
        found: list[tuple[float, tuple[int, int, int, int], float, str]] = []
        for cls_id, kind in ((1, "structure"), (2, "label")):
            ii, jj = np.nonzero(prob[cls_id] >= self.threshold)
            if len(ii) == 0:
                continue
            boxes = np.stack(
                [
                    np.maximum(jj * s - half, 0),
                    np.maximum(ii * s - half, 0),
                    np.minimum(jj * s + s + half, w),
                    np.minimum(ii * s + s + half, h),
                ],
                1,
            ).astype(np.int64)
            scores = prob[cls_id, ii, jj]
            for k in nms(boxes, scores, self.nms_iou):
                x0, y0, x1, y1 = (int(v) for v in boxes[k])
                yy, xx = np.mgrid[y0:y1, x0:x1]
                angle = tile_angle(*tensor, yy.ravel(), xx.ravel())
                found.append((float(scores[k]), (x0, y0, x1, y1), angle, kind))
        order = sorted(found, key=lambda f: (-f[0], f[1][1], f[1][0], f[3]))
        return [
            make_region(
                frame_index=frame_index,
                rank=rank,
                cbox=cbox,
                probability=pr,
                angle_px=angle,
                kind=kind,
                geometry=geometry,
                factor=factor,
                margin_px=self.margin_px,
            )
            for rank, (pr, cbox, angle, kind) in enumerate(order)
        ]
