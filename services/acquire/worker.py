"""Acquire stage: put decoded frames into the frame store and announce them."""

from __future__ import annotations

import time

import numpy as np

from samplescout import bus as streams
from samplescout.bus import Bus
from samplescout.contracts import pose_to_proto
from samplescout.framestore import FrameStore, frame_key
from samplescout.geometry import Pose
from samplescout.sessions import EventSink
from samplescout.v1 import pipeline_pb2, types_pb2


class AcquireWorker:
    """Writes each frame once to the store (full-res + coarse) and publishes ``FrameAcquired``."""

    def __init__(self, *, bus: Bus, store: FrameStore, events: EventSink, coarse_factor: int = 8):
        self._bus = bus
        self._store = store
        self._events = events
        self._factor = coarse_factor

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
            ),
        )
        self._bus.publish(streams.FRAMES, msg.SerializeToString())
        self._events.emit(
            pipeline_pb2.SessionEvent(
                session_id=session.session_id,
                kind=pipeline_pb2.SESSION_EVENT_KIND_FRAME_ACQUIRED,
                frame_index=index,
                message=file,
            )
        )
