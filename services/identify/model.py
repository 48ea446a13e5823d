"""Identification CNN on full-resolution crops: shape, element and size classes plus edge geometry.

Crops are padded to a square (edge replicate, centred) and resized to ``size`` x
``size``. Geometry is in *normalised crop coordinates*: ``(p - centre) / (S / 2)``
with ``S`` the padded square side in full-resolution pixels and ``centre`` the crop
centre, so ``[-1, 1]`` spans the square.

Geometry head (7 numbers): ``foot`` (2) the point of the edge nearest to the crop
centre; ``cos 2a, sin 2a`` (2) the edge direction ``a`` at that point (undirected);
``n`` (2) the unit vector from the foot towards the circle centre; ``log r`` (1) the
circle radius. ``n`` and ``log r`` matter for round edges only; the separate
``round`` logit says which.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
from torch import nn

from samplescout.annotate import ELEMENT_CLASSES, SIZE_CLASSES
from samplescout.contracts import STRUCTURE_CLASSES

GEOMETRY_DIM = 7


def prepare_crop(crop: np.ndarray, size: int = 64) -> tuple[np.ndarray, float]:
    """``((2, size, size) float32, S)``: robust intensity + noise-normalised high-pass.

    ``S`` is the side in full-resolution pixels of the padded square.
    """
    img: np.ndarray = np.ascontiguousarray(crop, dtype=np.float32)
    h, w = img.shape[:2]
    s = max(h, w)
    top, left = (s - h) // 2, (s - w) // 2
    if s != h or s != w:
        img = cv2.copyMakeBorder(img, top, s - h - top, left, s - w - left, cv2.BORDER_REPLICATE)
    interp = cv2.INTER_AREA if s > size else cv2.INTER_LINEAR
    small = cv2.resize(img, (size, size), interpolation=interp)
    lo, med, hi = np.percentile(small, (1.0, 50.0, 99.0))
    c0 = np.clip((small - med) / max(float(hi - lo), 1e-6), -3.0, 3.0)
    hp = small - cv2.GaussianBlur(small, (0, 0), 1.5)
    lap = cv2.Laplacian(small, cv2.CV_32F, ksize=1)
    sigma = max(float(np.median(np.abs(lap))) * 1.4826 / 2.83, 1e-7)
    c1 = np.clip(hp / (4.0 * sigma), -4.0, 4.0)
    return np.stack([c0, c1]).astype(np.float32), float(s)


def crop_offset(h: int, w: int) -> tuple[float, float]:
    """Crop-pixel coordinates ``(x, y)`` of the normalised origin (the crop centre)."""
    return (w - 1) / 2.0, (h - 1) / 2.0


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)
    )


class IdentifyNet(nn.Module):
    """A small VGG-style CNN with classification and geometry heads.

    Parameters
    ----------
    width
        Channels of the first stage (then 2x, 4x).
    size
        Input side in pixels (a multiple of 8).
    """

    def __init__(self, width: int = 12, size: int = 64, in_channels: int = 2) -> None:
        super().__init__()
        self.hparams = {"width": width, "size": size, "in_channels": in_channels}
        c1, c2, c3 = width, 2 * width, 4 * width
        self.features = nn.Sequential(
            _block(in_channels, c1),
            nn.MaxPool2d(2),
            _block(c1, c2),
            _block(c2, c2),
            nn.MaxPool2d(2),
            _block(c2, c3),
            _block(c3, c3),
            nn.MaxPool2d(2),
            nn.Conv2d(c3, 32, 1),
            nn.ReLU(inplace=True),
        )
        cells = (size // 8) ** 2
        self.trunk = nn.Sequential(nn.Flatten(), nn.Linear(32 * cells, 256), nn.ReLU(inplace=True))
        self.shape_head = nn.Linear(256, len(STRUCTURE_CLASSES))
        self.element_head = nn.Linear(256, len(ELEMENT_CLASSES))
        self.size_head = nn.Linear(256, len(SIZE_CLASSES))
        self.geometry_head = nn.Linear(256, GEOMETRY_DIM)
        self.round_head = nn.Linear(256, 1)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        z = self.trunk(self.features(x))
        return {
            "shape": self.shape_head(z),
            "element": self.element_head(z),
            "size": self.size_head(z),
            "geometry": self.geometry_head(z),
            "round": self.round_head(z)[:, 0],
        }
