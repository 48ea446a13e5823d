"""Acquire stage: put decoded frames into the frame store and announce them."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from samplescout import bus as streams
from samplescout import metrics
from samplescout.acquire.drivers import open_source
from samplescout.acquire.sources import FrameSource
from samplescout.bus import Bus
from samplescout.contracts import pose_to_proto
from samplescout.errors import InputError, SampleScoutError
from samplescout.framestore import FrameStore, frame_key
from samplescout.geometry import Pose
from samplescout.sessions import EventSink, StateStore
from samplescout.v1 import pipeline_pb2, types_pb2


def progressive_for(source: FrameSource, requested: bool) -> bool:
    """Whether fuse publishes the localization after the source's next frame: when the
    session asks for it, unless the source (an adaptive path that does not read it
    now) says it need not."""
    return requested and bool(getattr(source, "needs_localization", True))


def path_summary(source: FrameSource) -> dict[str, Any] | None:
    """What a source that decides its frames as it goes reports about its path (its
    ``path_summary()``), else ``None``."""
    summary = getattr(source, "path_summary", None)
    return dict(summary()) if callable(summary) else None


def cancel_key(session_id: str) -> str:
    return f"samplescout:cancel:{session_id}"


class AcquireWorker:
    """Writes each frame once to the store (full-res + coarse) and publishes ``FrameAcquired``.

    In the distributed mode it also consumes ``AcquireRequest`` entries (:meth:`handle`):
    it reads the session's bundle or drives its microscope, frame by frame, and stops
    early when the session is cancelled. ``adaptive`` builds the frame source of a
    request with ``adaptive`` set (an overview path steered by the session's
    localization; the composition layer provides it).
    """

    def __init__(
        self,
        *,
        bus: Bus,
        store: FrameStore,
        events: EventSink,
        coarse_factor: int = 8,
        state: StateStore | None = None,
        adaptive: Callable[[pipeline_pb2.AcquireRequest], FrameSource] | None = None,
    ) -> None:
        self._bus = bus
        self._store = store
        self._events = events
        self._factor = coarse_factor
        self._state = state
        self._adaptive = adaptive

    def handle(self, payload: bytes) -> None:
        msg = pipeline_pb2.AcquireRequest.FromString(payload)
        session = pipeline_pb2.SessionSpec()
        session.CopyFrom(msg.session)
        sid = session.session_id
        try:
            if msg.adaptive:
                if self._adaptive is None:
                    raise InputError(
                        "request",
                        "microscope.adaptive",
                        "this acquire service has no adaptive path",
                    )
                source = self._adaptive(msg)
            else:
                source = open_source(
                    bundle_path=msg.bundle_path
                    if msg.WhichOneof("source") == "bundle_path"
                    else None,
                    microscope=msg.microscope if msg.WhichOneof("source") == "microscope" else None,
                )
            session.frame_count = source.frame_count
            count = 0
            for frame in source.frames():
                if self._state is not None and self._state.get(cancel_key(sid)) is not None:
                    self._events.emit(
                        pipeline_pb2.SessionEvent(
                            session_id=sid,
                            kind=pipeline_pb2.SESSION_EVENT_KIND_CANCELLED,
                            message=f"{source.name}: session {sid} cancelled",
                        )
                    )
                    return
                session.progressive = progressive_for(source, msg.session.progressive)
                self.submit(
                    session,
                    frame.index,
                    frame.image,
                    frame.pose,
                    file=frame.file,
                    decode_seconds=frame.decode_seconds,
                )
                count += 1
            if source.frame_count == 0:
                self.end_path(session, source, count)
        except SampleScoutError as exc:
            self._events.emit(
                pipeline_pb2.SessionEvent(
                    session_id=sid, kind=pipeline_pb2.SESSION_EVENT_KIND_FAILED, message=str(exc)
                )
            )

    def end_path(
        self,
        session: pipeline_pb2.SessionSpec,
        source: FrameSource,
        count: int,
    ) -> None:
        """End a session whose frames ``source`` decided as they came (``frame_count``
        0): fuse learns the final count now, and the path taken (see
        :func:`path_summary`) for the result's ``stats.adaptive``.

        Raises
        ------
        InputError
            The path took no frame.
        """
        if count == 0:
            raise InputError(source.name, "frames", "the session took no frame")
        session.frame_count = count
        path = path_summary(source)
        end = pipeline_pb2.StructuresIdentified(
            session=session, end_of_session=True, path_json=json.dumps(path) if path else ""
        )
        self._bus.publish(streams.STRUCTURES, end.SerializeToString())

    def submit(
        self,
        session: pipeline_pb2.SessionSpec,
        index: int,
        image: np.ndarray,
        pose: Pose,
        *,
        file: str = "",
        decode_seconds: float = 0.0,
    ) -> None:
        key = frame_key(session.session_id, index)
        t0 = time.perf_counter()
        info = self._store.put(key, image, self._factor)
        coarse_seconds = time.perf_counter() - t0
        msg = pipeline_pb2.FrameAcquired(
            session=session,
            frame=types_pb2.Frame(
                index=index,
                pose=pose_to_proto(pose),
                width=info.width,
                height=info.height,
                ref=types_pb2.FrameRef(store_key=key),
                file=file,
            ),
            stats=pipeline_pb2.FrameStats(
                decode_seconds=decode_seconds,
                coarse_seconds=coarse_seconds,
                full_res_pixels=info.width * info.height,
                bytes_written=self._store.bytes_moved(key)[0],
            ),
        )
        self._bus.publish(streams.FRAMES, msg.SerializeToString())
        metrics.FRAMES.labels("acquire").inc()
        self._events.emit(
            pipeline_pb2.SessionEvent(
                session_id=session.session_id,
                kind=pipeline_pb2.SESSION_EVENT_KIND_FRAME_ACQUIRED,
                frame_index=index,
                message=file,
            )
        )
