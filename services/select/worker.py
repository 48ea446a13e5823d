"""Select stage worker: coarse data in, candidate structure regions out."""

from __future__ import annotations

import time
from collections.abc import Mapping

from samplescout import bus as streams
from samplescout import metrics
from samplescout.bus import Bus
from samplescout.contracts import model_name, pose_from_proto
from samplescout.framestore import FrameStore
from samplescout.geometry import FrameGeometry
from samplescout.select.base import Selector
from samplescout.sessions import EventSink
from samplescout.v1 import pipeline_pb2


class SelectWorker:
    """Reads only the coarse frame from the store and publishes ``RegionsSelected``.

    ``selectors`` maps a session's ``method`` to the selector used for it; the
    first entry is the default.
    """

    def __init__(
        self, *, bus: Bus, store: FrameStore, events: EventSink, selectors: Mapping[str, Selector]
    ) -> None:
        if not selectors:
            raise ValueError("at least one selector is needed")
        self._bus = bus
        self._store = store
        self._events = events
        self._selectors = dict(selectors)
        self._default = next(iter(self._selectors))

    def handle(self, payload: bytes) -> None:
        msg = pipeline_pb2.FrameAcquired.FromString(payload)
        frame = msg.frame
        key = frame.ref.store_key
        selector = self._selectors.get(msg.session.method or self._default)
        if selector is None:
            raise ValueError(f"unknown method {msg.session.method!r}")
        t0 = time.perf_counter()
        read_before = self._store.bytes_moved(key)[1]
        coarse = self._store.coarse(key)
        factor = self._store.info(key).factor
        geometry = FrameGeometry(pose_from_proto(frame.pose), frame.width, frame.height)
        regions = selector.select(coarse, frame_index=frame.index, geometry=geometry, factor=factor)
        stats = pipeline_pb2.FrameStats()
        stats.CopyFrom(msg.stats)
        stats.select_seconds = time.perf_counter() - t0
        stats.coarse_pixels = int(coarse.size)
        stats.regions = len(regions)
        stats.select_model = model_name(selector)
        stats.select_bytes_read = self._store.bytes_moved(key)[1] - read_before
        out = pipeline_pb2.RegionsSelected(
            session=msg.session,
            frame=frame,
            regions=[r.to_proto() for r in regions],
            stats=stats,
        )
        self._bus.publish(streams.REGIONS, out.SerializeToString())
        metrics.FRAMES.labels("select").inc()
        metrics.REGIONS.labels("select").inc(len(regions))
        self._events.emit(
            pipeline_pb2.SessionEvent(
                session_id=msg.session.session_id,
                kind=pipeline_pb2.SESSION_EVENT_KIND_REGIONS_SELECTED,
                frame_index=frame.index,
                count=len(regions),
            )
        )
