"""Hybrid identification: the crop CNN classifies, the classical line/arc fit measures.

Fusion needs exact edges (segments and arcs in holder mm, to a few pixels); the CNN's
geometry regression is not that exact, while the classical fit in the crop is. So per
crop:

1. the CNN (:class:`~samplescout.identify.net.NetIdentifier`) gives shape-class
   probabilities (batched, in selection-probability order);
2. a crop the CNN is sure holds nothing (``no_structure`` >= ``skip_probability``) is
   reported as ``no_structure`` without fitting;
3. otherwise the classical identifier fits up to two lines/arcs in the same crop (no
   extra pixels are read), and each fitted edge gets the CNN's most probable class among
   those compatible with its geometry (straight classes for a line, round classes for an
   arc) when the CNN is confident (>= ``override_probability`` of the compatible mass),
   else the classical class. ``class_probabilities`` always carry the CNN's output.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import torch

from samplescout.contracts import STRUCTURE_CLASSES, Region, Structure
from samplescout.geometry import FrameGeometry
from samplescout.identify.classical import ClassicalIdentifier
from samplescout.identify.net import NetIdentifier, load_identifier
from samplescout.registry import Registry

#: Classes a fitted straight line may take.
LINE_CLASSES = (
    "straight_structure",
    "straight_cover_glass_edge",
    "sample_carrier_edge",
    "spacer",
    "holding_frame",
    "plate_edge",
    "sample_chamber_edge",
)
#: Classes a fitted arc may take.
ROUND_CLASSES = ("round_structure", "round_cover_glass_edge", "well")


class HybridIdentifier:
    """CNN classification + classical geometry (see the module docstring).

    Parameters
    ----------
    net
        The CNN identifier (its ``top_k``, ``min_region_probability``, ``enough`` and
        ``batch`` apply).
    classical
        The geometry fitter (default: :class:`ClassicalIdentifier` with defaults).
    skip_probability
        ``no_structure`` probability at which a crop is not fitted at all (> 1: never).
    override_probability
        Share of the compatible classes' probability the CNN's best compatible class
        needs to replace the classical class (> 1: classes always classical).
    """

    def __init__(
        self,
        net: NetIdentifier,
        classical: ClassicalIdentifier | None = None,
        *,
        skip_probability: float = 0.98,
        override_probability: float = 0.9,
    ) -> None:
        self.net = net
        self.classical = classical or ClassicalIdentifier()
        self.skip_probability = skip_probability
        self.override_probability = override_probability
        self.name = f"hybrid({net.name}+{self.classical.name})"
        self._index = {c: i for i, c in enumerate(STRUCTURE_CLASSES)}
        self._variants: dict[str, HybridIdentifier] = {}

    def for_carrier(self, carrier: str) -> HybridIdentifier:
        """The same CNN with the classical fitter's settings for ``carrier``."""
        fitter = self.classical.for_carrier(carrier)
        if fitter is self.classical:
            return self
        cached = self._variants.get(carrier)
        if cached is None:
            cached = HybridIdentifier(
                self.net,
                fitter,
                skip_probability=self.skip_probability,
                override_probability=self.override_probability,
            )
            self._variants[carrier] = cached
        return cached

    def classify(self, structure: Structure, probs: np.ndarray) -> Structure:
        """``structure`` (classical) with the CNN's class where it is confident."""
        cnn = {n: float(v) for n, v in zip(STRUCTURE_CLASSES, probs, strict=True)}
        allowed: tuple[str, ...]
        if structure.segment_mm is not None:
            allowed = LINE_CLASSES
        elif structure.arc_mm is not None:
            allowed = ROUND_CLASSES
        else:
            return replace(structure, class_probabilities=cnn)
        p = np.array([cnn[c] for c in allowed])
        total = float(p.sum())
        best = int(np.argmax(p))
        cls = structure.shape_class
        if total > 0 and p[best] / total >= self.override_probability:
            cls = allowed[best]
        return replace(structure, shape_class=cls, class_probabilities=cnn)

    def identify(
        self, crops: Sequence[tuple[Region, np.ndarray]], geometry: FrameGeometry
    ) -> list[Structure]:
        """Structures of the given crops of one frame (see ``Identifier``)."""
        net = self.net
        order = sorted(crops, key=lambda rc: (-rc[0].probability, rc[0].region_index))
        order = [rc for rc in order if rc[0].probability >= net.min_region_probability]
        if net.top_k is not None:
            order = order[: net.top_k]
        out: list[Structure] = []
        found = 0
        no_structure = self._index["no_structure"]
        for i in range(0, len(order), net.batch):
            chunk = order[i : i + net.batch]
            shape = net.predict([c for _, c in chunk])["shape"]
            for j, (region, crop) in enumerate(chunk):
                if region.kind != "label" and shape[j][no_structure] >= self.skip_probability:
                    out.append(
                        Structure(
                            region=region,
                            shape_class="no_structure",
                            probability=float(shape[j][no_structure]),
                        )
                    )
                    continue
                for s in self.classical.identify_one(region, crop, geometry):
                    if s.shape_class in ("no_structure", "label"):
                        out.append(s)
                        continue
                    out.append(self.classify(s, shape[j]))
                    found += 1
            if net.enough is not None and found >= net.enough:
                break
        return out


def load_hybrid_identifier(
    registry: Registry | str | None = None,
    context: dict[str, str] | None = None,
    *,
    device: torch.device | None = None,
    **options: float | int | None,
) -> HybridIdentifier:
    """The registry's identification CNN (as :func:`load_identifier`) + classical geometry.

    ``skip_probability`` / ``override_probability`` go to :class:`HybridIdentifier`,
    every other option to the CNN identifier. The model's metadata may set defaults
    under ``hybrid`` (``{"skip_probability": ..., "override_probability": ...}``).
    """
    reg = registry if isinstance(registry, Registry) else Registry(registry)
    hyb = dict(reg.resolve("identify", context).metadata.get("hybrid", {}))
    for key in ("skip_probability", "override_probability"):
        if key in options:
            hyb[key] = options.pop(key)
    net = load_identifier(reg, context, device=device, **options)
    return HybridIdentifier(net, **{k: float(v) for k, v in hyb.items() if v is not None})


__all__ = ["LINE_CLASSES", "ROUND_CLASSES", "HybridIdentifier", "load_hybrid_identifier"]
