"""Frame sources: where a session's frames come from (a bundle on disk, a microscope)."""

from __future__ import annotations

import queue
import threading
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


class UploadSource:
    """Frames pushed by a client one at a time (``UploadFrames``), in any index order.

    ``push`` validates the index (in range, not seen before) and queues the frame;
    ``frames()`` yields them as they arrive and raises :class:`InputError` when no frame
    came for ``idle_timeout_s`` or the upload was closed early.
    """

    def __init__(
        self,
        frame_count: int,
        *,
        name: str = "upload",
        carrier: str | None = None,
        context: Mapping[str, str] | None = None,
        idle_timeout_s: float = 300.0,
    ) -> None:
        if frame_count < 1:
            raise InputError(name, "upload.frame_count", "must be >= 1")
        self.name = name
        self.carrier = carrier
        self.context = dict(context or {})
        self.frame_count = frame_count
        self._idle = idle_timeout_s
        self._queue: queue.Queue[AcquiredFrame | None] = queue.Queue()
        self._seen: set[int] = set()
        self._lock = threading.Lock()

    def push(self, index: int, image: np.ndarray, pose: Pose) -> int:
        with self._lock:
            if not 0 <= index < self.frame_count:
                raise InputError(
                    self.name, "frame.index", f"{index} not in [0, {self.frame_count})"
                )
            if index in self._seen:
                raise InputError(self.name, "frame.index", f"frame {index} was already uploaded")
            self._seen.add(index)
            self._queue.put(AcquiredFrame(index, image, pose))
            return len(self._seen)

    def close(self) -> None:
        """Stop waiting for frames (the session was cancelled)."""
        self._queue.put(None)

    def frames(self) -> Iterator[AcquiredFrame]:
        for _ in range(self.frame_count):
            try:
                frame = self._queue.get(timeout=self._idle)
            except queue.Empty:
                raise InputError(
                    self.name, "frames", f"no frame uploaded for {self._idle:.0f} s"
                ) from None
            if frame is None:
                return
            yield frame
