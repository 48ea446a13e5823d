"""Frame sources: where a session's frames come from (a bundle on disk, a microscope)."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from samplescout.bundle import Bundle
from samplescout.errors import InputError
from samplescout.geometry import Pose


@dataclass(frozen=True, slots=True)
class AcquiredFrame:
    index: int
    image: np.ndarray
    pose: Pose
    file: str = ""
    decode_seconds: float = 0.0


@runtime_checkable
class FrameSource(Protocol):
    """Yields a session's frames in index order.

    Contract: ``frame_count`` is known before the first frame; ``frames()`` yields
    exactly that many :class:`AcquiredFrame` with indices ``0..frame_count-1`` and
    raises :class:`~samplescout.errors.InputError` for a frame that cannot be read.
    """

    name: str
    carrier: str | None
    context: dict[str, str]
    frame_count: int

    def frames(self) -> Iterator[AcquiredFrame]: ...


class BundleSource:
    """Frames of a validated frame bundle, decoded one at a time (memory stays flat)."""

    def __init__(self, bundle: Bundle) -> None:
        self._bundle = bundle
        self.name = bundle.name
        self.carrier = bundle.manifest.carrier
        self.context = dict(bundle.manifest.context)
        self.frame_count = len(bundle.manifest.frames)

    def frames(self) -> Iterator[AcquiredFrame]:
        for spec in self._bundle.manifest.frames:
            t0 = time.perf_counter()
            image = self._bundle.read_image(spec.index)
            yield AcquiredFrame(spec.index, image, spec.pose, spec.file, time.perf_counter() - t0)


class FramesSource:
    """Frames handed over in memory (e.g. the frames of a ``LocalizeFrames`` request)."""

    def __init__(
        self,
        frames: Sequence[tuple[np.ndarray, Pose]],
        *,
        name: str = "request",
        carrier: str | None = None,
        context: Mapping[str, str] | None = None,
    ) -> None:
        if not frames:
            raise InputError(name, "frames", "must not be empty")
        self._frames = list(frames)
        self.name = name
        self.carrier = carrier
        self.context = dict(context or {})
        self.frame_count = len(self._frames)

    def frames(self) -> Iterator[AcquiredFrame]:
        for i, (image, pose) in enumerate(self._frames):
            yield AcquiredFrame(i, image, pose)
