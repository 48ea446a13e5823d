"""Identify stage worker: full-resolution crops of the selected regions only."""

from __future__ import annotations

import time
from collections.abc import Mapping

from samplescout import bus as streams
from samplescout.bus import Bus
from samplescout.contracts import PROTO_TO_CARRIER, Region, model_name, pose_from_proto
from samplescout.framestore import FrameStore
from samplescout.geometry import FrameGeometry
from samplescout.identify.base import CarrierAware, Identifier
from samplescout.identify.labels import read_codes
from samplescout.sessions import EventSink
from samplescout.v1 import pipeline_pb2, types_pb2


class IdentifyWorker:
    """Fetches the crops of a frame's regions, highest probability first, and classifies them.

    Parameters
    ----------
    identifiers
        The identifier per session ``method``; the first entry is the default.
    top_k
        Identify at most this many regions per frame (0: all of them).
    read_budget
        Stop reading a frame's regions (highest probability first) before their crops
        would exceed this share of the frame's full-resolution pixels (0: no budget).
    """

    def __init__(
        self,
        *,
        bus: Bus,
        store: FrameStore,
        events: EventSink,
        identifiers: Mapping[str, Identifier],
        top_k: int = 0,
        read_budget: float = 0.0,
    ) -> None:
        if not identifiers:
            raise ValueError("at least one identifier is needed")
        self._bus = bus
        self._store = store
        self._events = events
        self._identifiers = dict(identifiers)
        self._default = next(iter(self._identifiers))
        self._top_k = top_k
        if not 0.0 <= read_budget <= 1.0:
            raise ValueError("read_budget must be in [0, 1]")
        self._read_budget = read_budget

    def handle(self, payload: bytes) -> None:
        msg = pipeline_pb2.RegionsSelected.FromString(payload)
        frame = msg.frame
        key = frame.ref.store_key
        geometry = FrameGeometry(pose_from_proto(frame.pose), frame.width, frame.height)
        regions = sorted(
            (Region.from_proto(r) for r in msg.regions),
            key=lambda r: (-r.probability, r.region_index),
        )
        if self._top_k:
            regions = regions[: self._top_k]
        if self._read_budget:
            regions = _within_budget(regions, self._read_budget * frame.width * frame.height)
        t0 = time.perf_counter()
        before = self._store.pixels_read(key)
        bytes_before = self._store.bytes_moved(key)[1]
        crops = [(r, self._store.crop(key, r.box_px)) for r in regions]
        identifier = self._identifiers.get(msg.session.method or self._default)
        if identifier is None:
            raise ValueError(f"unknown method {msg.session.method!r}")
        if isinstance(identifier, CarrierAware):
            identifier = identifier.for_carrier(
                PROTO_TO_CARRIER.get(msg.session.carrier) or "unknown"
            )
        structures = identifier.identify(crops, geometry)
        # Selection boxes printed codes as ``label`` regions, quiet zone included.
        codes = read_codes([(r.box_px, c) for r, c in crops if r.kind == "label"], geometry)
        stats = pipeline_pb2.FrameStats()
        stats.CopyFrom(msg.stats)
        stats.identify_seconds = time.perf_counter() - t0
        stats.full_res_pixels_read = self._store.pixels_read(key) - before
        stats.regions_identified = len(regions)
        stats.identify_bytes_read = self._store.bytes_moved(key)[1] - bytes_before
        stats.identify_model = model_name(identifier)
        out = pipeline_pb2.StructuresIdentified(
            session=msg.session,
            frame=frame,
            structures=[s.to_proto() for s in structures],
            stats=stats,
            barcodes=[
                types_pb2.Barcode(
                    format=c["format"],
                    text=c["text"],
                    polygon_mm=[types_pb2.Point2(x=x, y=y) for x, y in c["polygon_mm"]],
                )
                for c in codes
            ],
        )
        self._bus.publish(streams.STRUCTURES, out.SerializeToString())
        self._events.emit(
            pipeline_pb2.SessionEvent(
                session_id=msg.session.session_id,
                kind=pipeline_pb2.SESSION_EVENT_KIND_STRUCTURES_IDENTIFIED,
                frame_index=frame.index,
                count=len(structures),
            )
        )


def _within_budget(regions: list[Region], pixels: float) -> list[Region]:
    """The leading regions whose boxes together stay within ``pixels``."""
    kept: list[Region] = []
    total = 0
    for r in regions:
        x0, y0, x1, y1 = r.box_px
        total += max(0, x1 - x0) * max(0, y1 - y0)
        if total > pixels:
            break
        kept.append(r)
    return kept
