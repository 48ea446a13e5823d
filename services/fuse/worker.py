"""Fuse stage worker: per-session state in a state store, result when all frames are in."""

from __future__ import annotations

import json
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from google.protobuf import json_format

from samplescout.contracts import PROTO_TO_CARRIER, Structure, pose_from_proto
from samplescout.framestore import FrameStore, frame_key
from samplescout.fuse.localize import localize
from samplescout.fuse.state import FuseState
from samplescout.geometry import FrameGeometry
from samplescout.result import assemble_result
from samplescout.sessions import EventSink, StateStore
from samplescout.v1 import pipeline_pb2

STAT_FIELDS = (
    "decode_seconds",
    "coarse_seconds",
    "select_seconds",
    "identify_seconds",
    "full_res_pixels",
    "coarse_pixels",
    "full_res_pixels_read",
    "regions",
    "regions_identified",
    "bytes_written",
    "select_bytes_read",
    "identify_bytes_read",
)


def state_key(session_id: str) -> str:
    return f"samplescout:fuse:{session_id}"


def part_key(session_id: str, frame_index: int | str) -> str:
    """Where one frame's part of the fuse state is kept (written once, never changed)."""
    return f"samplescout:fuse:{session_id}:frame:{frame_index}"


def delete_state(state: StateStore, session_id: str) -> None:
    """Remove a session's fuse state: its document and every frame's part."""
    raw = state.get(state_key(session_id))
    if raw:
        for index in json.loads(raw).get("frames", {}):
            state.delete(part_key(session_id, index))
    state.delete(state_key(session_id))


def result_key(session_id: str) -> str:
    return f"samplescout:result:{session_id}"


def done_key(session_id: str) -> str:
    return f"samplescout:done:{session_id}"


def models_used(frames: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    """Provenance: the select/identify models named in the frames' stats."""
    out: dict[str, str] = {}
    for stage in ("select", "identify"):
        names = sorted({str(fr.get(f"{stage}_model", "")) for fr in frames.values()} - {""})
        if names:
            out[stage] = ",".join(names)
    return out


class FuseWorker:
    """Adds each frame's structures to the session's fuse state and localizes.

    The state is serialisable data kept in ``state`` (a :class:`StateStore`), so any
    replica can continue a session. A frame delivered twice changes nothing. Each
    frame's part (its structures, outline and codes) is written once under its own
    key and the session's document holds only the frames' statistics, so a frame
    costs the same whether it is the 2nd or the 200th; the state merged so far is kept
    in memory for the sessions this replica is working on (``cached_sessions``), so a
    frame merges only what is new.

    With a frame ``store``, localization also reads the frames' coarse data (whole
    cover-glass outlines are checked on them, see :mod:`samplescout.fuse.outline`);
    without one it works from the identified structures alone.
    """

    def __init__(
        self,
        *,
        state: StateStore,
        events: EventSink,
        store: FrameStore | None = None,
        clock: Callable[[], float] = time.time,
        cached_sessions: int = 32,
    ) -> None:
        self._state = state
        self._events = events
        self._store = store
        self._clock = clock
        self._cached_sessions = cached_sessions
        self._sessions: OrderedDict[str, _Merged] = OrderedDict()

    def _views(self, session_id: str, fuse: FuseState) -> StoredCoarseViews | None:
        return None if self._store is None else StoredCoarseViews(self._store, session_id, fuse)

    def handle(self, payload: bytes) -> None:
        msg = pipeline_pb2.StructuresIdentified.FromString(payload)
        session = msg.session
        sid = session.session_id
        with self._state.lock(state_key(sid)):
            raw = self._state.get(state_key(sid))
            # ``epoch`` tells this session from an earlier one under the same id whose
            # state was deleted (what a replica still holds of that one is stale).
            doc: dict[str, Any] = (
                json.loads(raw) if raw else {"frames": {}, "epoch": uuid.uuid4().hex}
            )
            index = str(msg.frame.index)
            if msg.end_of_session:
                doc["total"] = session.frame_count
                if msg.path_json:
                    doc["path"] = json.loads(msg.path_json)
            finished = self._state.get(result_key(sid))
            if finished is not None:
                if self._state.get(done_key(sid)) is None:
                    self._announce(sid, finished.decode())  # the replica before died here
                return
            if not msg.end_of_session:
                if index in doc["frames"]:
                    return  # a redelivered frame changes nothing
                part = FuseState()
                part.add([Structure.from_proto(s) for s in msg.structures])
                f = msg.frame
                part.add_frame(f.index, FrameGeometry(pose_from_proto(f.pose), f.width, f.height))
                part.add_barcodes(
                    f.index,
                    [
                        {
                            "format": b.format,
                            "text": b.text,
                            "polygon_mm": [(p.x, p.y) for p in b.polygon_mm],
                        }
                        for b in msg.barcodes
                    ],
                )
                # The part first: a replica dying in between leaves a part that the
                # redelivered frame writes again, never a frame counted without one.
                self._state.set(part_key(sid, index), json.dumps(part.to_dict()).encode())
                self._cache(sid, doc).fresh[index] = part
                doc["frames"][index] = json_format.MessageToDict(
                    msg.stats,
                    preserving_proto_field_name=True,
                    always_print_fields_with_no_presence=True,
                )
            self._state.set(state_key(sid), json.dumps(doc).encode())
            total = session.frame_count or doc.get("total", 0)
            if not total or len(doc["frames"]) < total:
                if session.progressive and not msg.end_of_session:
                    self._progress(session, self._fused(sid, doc), doc)
                return
            self._finish(session, self._fused(sid, doc), doc)
            self._sessions.pop(sid, None)

    def _cache(self, sid: str, doc: Mapping[str, Any]) -> _Merged:
        """What this replica holds of session ``sid`` as described by ``doc`` (anything
        held of an earlier session under that id is dropped); least recent go first."""
        epoch = str(doc.get("epoch", ""))
        merged = self._sessions.get(sid)
        if merged is None or merged.epoch != epoch:
            merged = self._sessions[sid] = _Merged(epoch=epoch)
        self._sessions.move_to_end(sid)
        while len(self._sessions) > self._cached_sessions:
            self._sessions.popitem(last=False)
        return merged

    def _fused(self, sid: str, doc: Mapping[str, Any]) -> FuseState:
        """The session's fuse state: every frame's part, merged (only the parts not
        merged yet are read, from this replica's memory or else from the store)."""
        cache = self._cache(sid, doc)
        if not cache.frames and doc.get("fuse"):
            # A session begun by an earlier version keeps its first frames in one document.
            cache.state = FuseState.from_dict(doc["fuse"])
            cache.frames.update(cache.state.footprints)
        for index in sorted(set(doc["frames"]) - cache.frames, key=int):
            part = cache.fresh.pop(index, None)
            if part is None:
                raw = self._state.get(part_key(sid, index))
                if raw is None:
                    raise RuntimeError(f"session {sid}: the fuse state of frame {index} is gone")
                part = FuseState.from_dict(json.loads(raw))
            cache.state.merge(part)
            cache.frames.add(index)
        return cache.state

    def _progress(
        self, session: pipeline_pb2.SessionSpec, fuse: FuseState, doc: dict[str, Any]
    ) -> None:
        """Publish the localization so far (an adaptive overview path steers by it)."""
        # Without the outline search: this runs after every frame and must stay cheap.
        fused = localize(fuse, PROTO_TO_CARRIER.get(session.carrier))
        event = pipeline_pb2.SessionEvent(
            session_id=session.session_id,
            kind=pipeline_pb2.SESSION_EVENT_KIND_LOCALIZATION_UPDATED,
            count=len(fused.get("samples", [])),
        )
        event.result.json = json.dumps(
            assemble_result(
                fused,
                models=models_used(doc["frames"]),
                context={},
                stats={"frames": len(doc["frames"])},
            )
        )
        self._events.emit(event)

    def _finish(
        self, session: pipeline_pb2.SessionSpec, fuse: FuseState, doc: dict[str, Any]
    ) -> None:
        sid = session.session_id
        carrier = PROTO_TO_CARRIER.get(session.carrier)
        views = self._views(sid, fuse)
        t0 = time.perf_counter()
        fused = localize(fuse, carrier, views=views)
        stats = self._stats(doc["frames"], session)
        stats["stage_seconds"]["fuse"] = round(time.perf_counter() - t0, 4)
        stats["bytes_moved"]["fuse_read"] = views.bytes_read if views is not None else 0
        result = assemble_result(
            fused, models=models_used(doc["frames"]), context=dict(session.context), stats=stats
        )
        if doc.get("path"):
            result["stats"]["adaptive"] = doc["path"]
        text = json.dumps(result)
        self._state.set(result_key(sid), text.encode())
        self._announce(sid, text)

    def _announce(self, sid: str, text: str) -> None:
        count = len(json.loads(text)["samples"])
        self._events.emit(
            pipeline_pb2.SessionEvent(
                session_id=sid,
                kind=pipeline_pb2.SESSION_EVENT_KIND_LOCALIZATION_UPDATED,
                count=count,
            )
        )
        done = pipeline_pb2.SessionEvent(
            session_id=sid, kind=pipeline_pb2.SESSION_EVENT_KIND_DONE, count=count
        )
        done.result.json = text
        self._events.emit(done)
        self._state.set(done_key(sid), b"1")

    def _stats(self, frames: Mapping[str, Mapping[str, Any]], session: Any) -> dict[str, Any]:
        totals = {f: sum(float(fr.get(f, 0)) for fr in frames.values()) for f in STAT_FIELDS}
        return {
            "frames": len(frames),
            "full_res_pixels": int(totals["full_res_pixels"]),
            "coarse_pixels": int(totals["coarse_pixels"]),
            "full_res_pixels_read": int(totals["full_res_pixels_read"]),
            "regions_selected": int(totals["regions"]),
            "regions_identified": int(totals["regions_identified"]),
            "method": session.method or "coarse",
            "seconds": round(max(0.0, self._clock() - session.started_unix), 4)
            if session.started_unix
            else 0.0,
            "bytes_moved": {
                "acquire_written": int(totals["bytes_written"]),
                "select_read": int(totals["select_bytes_read"]),
                "identify_read": int(totals["identify_bytes_read"]),
            },
            "stage_seconds": {
                "decode": round(totals["decode_seconds"], 4),
                "coarse": round(totals["coarse_seconds"], 4),
                "select": round(totals["select_seconds"], 4),
                "identify": round(totals["identify_seconds"], 4),
            },
        }


@dataclass
class _Merged:
    """One session's fuse state as far as this replica has merged it (``frames``), and
    parts written here that are not merged yet (``fresh``)."""

    epoch: str = ""
    state: FuseState = field(default_factory=FuseState)
    frames: set[str] = field(default_factory=set)
    fresh: dict[str, FuseState] = field(default_factory=dict)


class StoredCoarseViews:
    """:class:`CoarseViews` of one session's frames in a frame store (coarse data only),
    read when first asked for; ``bytes_read`` counts what that took."""

    def __init__(self, store: FrameStore, session_id: str, fuse: FuseState) -> None:
        self._store = store
        self._session = session_id
        self._geometries = fuse.geometries
        self._views: list[tuple[np.ndarray, FrameGeometry]] | None = None
        self.bytes_read = 0

    def views(self) -> list[tuple[np.ndarray, FrameGeometry]]:
        if self._views is None:
            self._views = self._read()
            self.bytes_read = sum(c.nbytes for c, _ in self._views)
        return self._views

    def _read(self) -> list[tuple[np.ndarray, FrameGeometry]]:
        out = []
        for index, data in sorted(self._geometries.items(), key=lambda kv: int(kv[0])):
            key = frame_key(self._session, int(index))
            try:
                factor = self._store.info(key).factor
                coarse = self._store.coarse(key)
            except KeyError:
                continue  # expired or never stored: fusion goes on without its pixels
            geometry = FrameGeometry.from_dict(data).scaled(factor)
            if coarse.shape != (geometry.height, geometry.width):
                continue  # not the frame this geometry describes: its pixels would mislead
            out.append((coarse, geometry))
        return out
