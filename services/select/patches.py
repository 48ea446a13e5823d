"""Learned selection, second variant: sliding-window patch classifier + non-maximum suppression."""

from __future__ import annotations

import numpy as np
import torch

from samplescout.contracts import Region
from samplescout.geometry import FrameGeometry
from samplescout.inference import pick_device
from samplescout.select.model import PatchNet, input_channels, normalised_input, pad_to
from samplescout.select.net import (
    Candidate,
    orientation_map,
    ranked_regions,
    tile_angle,
)


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> list[int]:
    """Greedy non-maximum suppression; ties broken by position (deterministic)."""
    if len(scores) == 0:
        return []
    b = boxes.astype(np.float64)
    order = np.lexsort((b[:, 0], b[:, 1], -np.asarray(scores, np.float64)))
    area = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    keep: list[int] = []
    while len(order):
        i = int(order[0])
        keep.append(i)
        rest = order[1:]
        ix = np.clip(np.minimum(b[i, 2], b[rest, 2]) - np.maximum(b[i, 0], b[rest, 0]), 0, None)
        iy = np.clip(np.minimum(b[i, 3], b[rest, 3]) - np.maximum(b[i, 1], b[rest, 1]), 0, None)
        inter = ix * iy
        order = rest[inter / (area[i] + area[rest] - inter) <= iou]
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
        threshold: float = 0.6,
        nms_iou: float = 0.2,
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
        self.channels = input_channels(model)

    def window_probabilities(self, coarse: np.ndarray) -> np.ndarray:
        """Class probabilities ``(4, ceil(h/8), ceil(w/8))`` per window."""
        x = torch.from_numpy(normalised_input(coarse, 1, self.channels))[None].to(self.device)
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
        found: list[Candidate] = []
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
        return ranked_regions(
            found,
            frame_index=frame_index,
            geometry=geometry,
            factor=factor,
            margin_px=self.margin_px,
        )
