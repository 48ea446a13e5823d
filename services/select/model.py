"""Selection networks on the coarse frame: a small U-Net and a sliding-window patch classifier.

Both read the same two-channel input made by :func:`prepare_input` and classify into
:data:`samplescout.annotate.SELECT_CLASSES` (no_structure, structure, label, non_sample).
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

#: Inputs are padded to a multiple of this (four stride-2 stages).
ALIGN = 16


#: Input channels of the first models (metadata ``input.channels``).
BASE_CHANNELS = ("robust_intensity", "noise_highpass")
#: With the classical selector's coherent-edge evidence as a third channel.
EDGE_CHANNELS = (*BASE_CHANNELS, "coherent_edge_z")
#: The edge channel is the z-score divided by this (the classical selector's midpoint).
EDGE_Z_SCALE = 6.0


def input_channels(model: nn.Module) -> int:
    """How many input channels a selection network reads (2 for models from before the
    edge channel, whose hyper-parameters do not say)."""
    return int(getattr(model, "hparams", {}).get("in_channels", 2))


def edge_evidence(coarse: np.ndarray) -> np.ndarray:
    """The classical selector's coherent-gradient z-score of ``coarse``, as a network input.

    Long faint edges add up coherently in the structure tensor where a 3x3 kernel sees
    only noise; giving the network that statistic lets it spend its capacity on telling
    sample edges from clutter. Clipped to [-3, 24] and divided by 6 (the classical
    selector's midpoint), so strong edges saturate.
    """
    from samplescout.select.classical import ClassicalSelector

    _, z, _ = ClassicalSelector().probability_map(coarse)
    return np.clip(z, -3.0, 24.0) / EDGE_Z_SCALE


def prepare_input(
    coarse: np.ndarray,
    noise_ref: np.ndarray | None = None,
    *,
    edge: np.ndarray | None = None,
) -> np.ndarray:
    """Two channels ``(2, h, w)`` float32 from a coarse grey image in [0, 1], three with
    ``edge`` (:func:`edge_evidence`, same shape) appended.

    Channel 0: the image minus its median over its robust range, so 16-bit frames that
    hold 12-bit data (values up to 1/16) look like any other. Channel 1: the local
    high-pass in units of the frame's own noise, which is what makes faint edges visible
    whatever the exposure.

    ``noise_ref``: the image whose Laplacian gives the noise level, when ``coarse`` was
    resampled (an upsampled image's own Laplacian underestimates the noise).
    """
    img = np.ascontiguousarray(coarse, dtype=np.float32)
    ref = img if noise_ref is None else np.ascontiguousarray(noise_ref, dtype=np.float32)
    sub = img[::2, ::2]
    lo, med, hi = np.percentile(sub, (0.5, 50.0, 99.5))
    scale = max(float(hi - lo), 1e-6)
    c0 = np.clip((img - med) / scale, -3.0, 3.0)
    hp = img - cv2.GaussianBlur(img, (0, 0), 2.0)
    lap = cv2.Laplacian(ref, cv2.CV_32F, ksize=1)
    sigma = max(float(np.median(np.abs(lap[::2, ::2]))) * 1.4826 / 2.83, 1e-7)
    c1 = np.clip(hp / (4.0 * sigma), -4.0, 4.0)
    chans = [c0, c1] if edge is None else [c0, c1, edge]
    return np.stack(chans).astype(np.float32)


#: Largest coarse pixel (holder mm) the shipped selectors were trained on; a coarser
#: input is upsampled by an integer factor first (see :func:`upsample_factor`).
MAX_COARSE_PIXEL_MM = 0.3


def upsample_factor(coarse_pixel_mm: float, max_pixel_mm: float = MAX_COARSE_PIXEL_MM) -> int:
    """Smallest integer ``k`` that brings a coarse pixel of ``coarse_pixel_mm`` to <= the max."""
    if not coarse_pixel_mm > 0 or not max_pixel_mm > 0:
        return 1
    return max(1, int(np.ceil(coarse_pixel_mm / max_pixel_mm - 1e-6)))


def normalised_input(coarse: np.ndarray, k: int, channels: int = 2) -> np.ndarray:
    """:func:`prepare_input` of ``coarse`` upsampled ``k`` times (bilinear; ``k=1``: as is),
    with :func:`edge_evidence` when ``channels`` is 3.

    Noise and edge evidence are measured on the original coarse image, so the high-pass
    channel keeps its meaning (edge contrast over the coarse noise).
    """
    if channels not in (2, 3):
        raise ValueError(f"selection models read 2 or 3 input channels, not {channels}")
    img = np.ascontiguousarray(coarse, dtype=np.float32)
    edge = edge_evidence(img) if channels == 3 else None
    if k <= 1:
        return prepare_input(img, edge=edge)
    h, w = img.shape
    up = cv2.resize(img, (w * k, h * k), interpolation=cv2.INTER_LINEAR)
    if edge is not None:
        edge = cv2.resize(edge, (w * k, h * k), interpolation=cv2.INTER_LINEAR)
    return prepare_input(up, noise_ref=img, edge=edge)


def pool_probabilities(
    prob: np.ndarray, k: int, max_classes: tuple[int, ...] = (1, 2)
) -> np.ndarray:
    """``(c, h*k, w*k)`` -> ``(c, h, w)``: max over each ``k x k`` block for ``max_classes``
    (thin structures must not be averaged away), mean for the others."""
    if k <= 1:
        return prob
    c, hk, wk = prob.shape
    blocks = prob.reshape(c, hk // k, k, wk // k, k)
    out = blocks.mean(axis=(2, 4))
    for i in max_classes:
        out[i] = blocks[i].max(axis=(1, 3))
    return out


def pad_to(x: torch.Tensor, align: int = ALIGN) -> torch.Tensor:
    """Replicate-pad the last two dims up to a multiple of ``align``."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % align, (-w) % align
    if ph or pw:
        x = F.pad(x, (0, pw, 0, ph), mode="replicate")
    return x


def _block(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)
    )


class SelectUNet(nn.Module):
    """A light U-Net: four stride-2 stages, additive skips, logits at 1/2 resolution.

    Parameters
    ----------
    width
        Channels of the first stage; later stages use 2x, 4x, 6x.
    classes
        Output classes.
    """

    def __init__(self, width: int = 8, classes: int = 4, in_channels: int = 2) -> None:
        super().__init__()
        c1, c2, c3, c4 = width, 2 * width, 4 * width, 6 * width
        self.hparams: dict[str, float] = {
            "width": width,
            "classes": classes,
            "in_channels": in_channels,
        }
        self.e1 = nn.Sequential(_block(in_channels, c1, 2), _block(c1, c1))
        self.e2 = nn.Sequential(_block(c1, c2, 2), _block(c2, c2))
        self.e3 = nn.Sequential(_block(c2, c3, 2), _block(c3, c3))
        self.e4 = nn.Sequential(_block(c3, c4, 2), _block(c4, c4), _block(c4, c4))
        self.l4 = nn.Conv2d(c4, c3, 1)
        self.d3 = _block(c3, c3)
        self.l3 = nn.Conv2d(c3, c2, 1)
        self.d2 = _block(c2, c2)
        self.l2 = nn.Conv2d(c2, c1, 1)
        self.d1 = _block(c1, c1)
        self.head = nn.Conv2d(c1, classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits at half the input resolution, ``(n, classes, h/2, w/2)``."""
        e1 = self.e1(x)
        e2 = self.e2(e1)
        e3 = self.e3(e2)
        e4 = self.e4(e3)
        d3 = self.d3(e3 + F.interpolate(self.l4(e4), scale_factor=2.0, mode="nearest"))
        d2 = self.d2(e2 + F.interpolate(self.l3(d3), scale_factor=2.0, mode="nearest"))
        d1 = self.d1(e1 + F.interpolate(self.l2(d2), scale_factor=2.0, mode="nearest"))
        return self.head(d1)

    def full_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Logits at the input resolution."""
        return F.interpolate(
            self.forward(x), scale_factor=2.0, mode="bilinear", align_corners=False
        )


class SelectPriorUNet(SelectUNet):
    """The U-Net as a learned correction of the classical coherent-edge evidence.

    Reads the three channels of :data:`EDGE_CHANNELS`. The structure logit is
    ``(z - z_mid) / z_scale`` of the edge channel's z-score (the classical selector's
    calibration) plus the network's output; the other classes' logits are the network's
    alone. The head starts at zero (label and non-sample at -6), so an untrained model
    selects what the classical selector selects, and training moves it only where the
    auto-annotated targets disagree: clutter the statistic calls an edge, faint sample
    edges it misses, labels and the area outside the carrier. Training penalises the
    size of the structure / no-structure correction (:meth:`residual_logits`), so where
    the data say nothing the model keeps the classical answer.

    Parameters
    ----------
    width, classes
        As :class:`SelectUNet`.
    in_channels
        Must be 3 (intensity, high-pass, edge z-score / 6).
    z_mid, z_scale
        Logistic calibration of the z-score.
    """

    def __init__(
        self,
        width: int = 8,
        classes: int = 4,
        in_channels: int = 3,
        z_mid: float = 6.0,
        z_scale: float = 1.5,
    ) -> None:
        if in_channels != len(EDGE_CHANNELS):
            raise ValueError(f"the prior U-Net reads 3 channels, not {in_channels}")
        super().__init__(width, classes, in_channels)
        self.hparams.update({"z_mid": z_mid, "z_scale": z_scale})
        self.z_mid = z_mid
        self.z_scale = z_scale
        nn.init.zeros_(self.head.weight)
        bias = self.head.bias
        assert bias is not None
        with torch.no_grad():
            bias.zero_()
            bias[2:] = -6.0

    def residual_logits(self, x: torch.Tensor) -> torch.Tensor:
        """The network's correction at the input resolution."""
        return super().full_logits(x)

    def prior_logits(self, x: torch.Tensor) -> torch.Tensor:
        """The classical structure logit as a class map ``(n, classes, h, w)``."""
        z = x[:, 2:3] * EDGE_Z_SCALE
        prior = torch.zeros(
            (x.shape[0], int(self.hparams["classes"]), *x.shape[-2:]),
            dtype=x.dtype,
            device=x.device,
        )
        prior[:, 1:2] = (z - self.z_mid) / self.z_scale
        return prior

    def full_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Logits at the input resolution: prior plus correction."""
        return self.residual_logits(x) + self.prior_logits(x)


class PatchNet(nn.Module):
    """Patch classifier applied as a sliding window (fully convolutionally).

    Output cell ``(i, j)`` classifies the window of ``window`` coarse pixels centred on
    coarse block ``[stride*j, stride*(j+1)) x [stride*i, stride*(i+1))``: the same result
    as cutting the windows out one by one, at a fraction of the cost.
    """

    window = 16
    stride = 8

    def __init__(self, width: int = 12, classes: int = 4, in_channels: int = 2) -> None:
        super().__init__()
        c1, c2, c3 = width, 2 * width, 4 * width
        self.hparams = {"width": width, "classes": classes, "in_channels": in_channels}
        self.body = nn.Sequential(
            _block(in_channels, c1, 2),
            _block(c1, c1),
            _block(c1, c2, 2),
            _block(c2, c2),
            _block(c2, c3, 2),
            _block(c3, c3),
        )
        self.head = nn.Conv2d(c3, classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits per window, ``(n, classes, h/8, w/8)``."""
        return self.head(self.body(x))


ARCHITECTURES: dict[str, type[nn.Module]] = {
    "unet": SelectUNet,
    "prior-unet": SelectPriorUNet,
    "patch": PatchNet,
}
