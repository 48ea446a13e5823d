"""Composition root: builds the stages and runs sessions on the embedded default.

Services never import each other; this module is the one place that wires them
together (the distributed mode wires the same workers to Redis instead).
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from samplescout import bus as streams
from samplescout.acquire.drivers import MicroscopeSource, open_microscope
from samplescout.acquire.sources import BundleSource, FrameSource, FramesSource
from samplescout.acquire.worker import AcquireWorker
from samplescout.bundle import open_bundle
from samplescout.bus import InMemoryBus
from samplescout.config import Method, Settings
from samplescout.contracts import CARRIER_TO_PROTO
from samplescout.errors import InputError, OperationalError, SampleScoutError
from samplescout.framestore import InMemoryFrameStore
from samplescout.fuse.worker import FuseWorker, result_key, state_key
from samplescout.identify.base import Identifier
from samplescout.identify.classical import ClassicalIdentifier
from samplescout.identify.worker import IdentifyWorker
from samplescout.logs import get_logger
from samplescout.select.base import Selector
from samplescout.select.classical import ClassicalSelector
from samplescout.select.full_frame import FullFrameSelector
from samplescout.select.worker import SelectWorker
from samplescout.sessions import EventLog, InMemoryStateStore, SessionRequest, SessionState
from samplescout.v1 import pipeline_pb2

log = get_logger(component="pipeline")


class SessionCancelled(SampleScoutError):
    """The session was cancelled by its client."""


def default_selectors() -> dict[str, Selector]:
    return {Method.COARSE.value: ClassicalSelector(), Method.CLASSICAL.value: FullFrameSelector()}


def default_models() -> dict[str, str]:
    return {"select": "classical-select@1", "identify": "classical-identify@1"}


class EmbeddedPipeline:
    """All five stages in one process over an in-memory bus with the real message contracts.

    Safe to share between threads: each session feeds its frames, and one lock
    serialises the stage work, so models are loaded once and used by every session.
    """

    def __init__(
        self,
        *,
        settings: Settings,
        selectors: Mapping[str, Selector] | None = None,
        identifier: Identifier | None = None,
        models: Mapping[str, str] | None = None,
    ) -> None:
        self.settings = settings
        self.bus = InMemoryBus()
        self.store = InMemoryFrameStore()
        self.state = InMemoryStateStore()
        self.events = EventLog()
        self.acquire = AcquireWorker(
            bus=self.bus, store=self.store, events=self.events, coarse_factor=settings.coarse_factor
        )
        select = SelectWorker(
            bus=self.bus,
            store=self.store,
            events=self.events,
            selectors=selectors or default_selectors(),
        )
        identify = IdentifyWorker(
            bus=self.bus,
            store=self.store,
            events=self.events,
            identifier=identifier or ClassicalIdentifier(),
            top_k=settings.top_k,
        )
        fuse = FuseWorker(state=self.state, events=self.events, models=models or default_models())
        self._stages: list[tuple[str, str, Callable[[bytes], None], type[Any]]] = [
            (streams.FRAMES, "select", select.handle, pipeline_pb2.FrameAcquired),
            (streams.REGIONS, "identify", identify.handle, pipeline_pb2.RegionsSelected),
            (streams.STRUCTURES, "fuse", fuse.handle, pipeline_pb2.StructuresIdentified),
        ]
        for stream, group, _, _ in self._stages:
            self.bus.ensure_group(stream, group)
        self._lock = threading.Lock()

    def run(
        self,
        source: FrameSource,
        *,
        session_id: str | None = None,
        carrier: str | None = None,
        context: Mapping[str, str] | None = None,
        method: Method | None = None,
        cancel: threading.Event | None = None,
    ) -> dict[str, Any]:
        """Localize the frames of ``source`` and return the SPEC result document.

        Raises
        ------
        InputError
            A frame could not be read (nothing is written).
        SessionCancelled
            ``cancel`` was set before the last frame.
        """
        sid = session_id or uuid.uuid4().hex
        chosen_carrier = carrier or source.carrier
        spec = pipeline_pb2.SessionSpec(
            session_id=sid,
            carrier=CARRIER_TO_PROTO.get(chosen_carrier, CARRIER_TO_PROTO[None]),
            context={**source.context, **(context or {})},
            frame_count=source.frame_count,
            method=(method or self.settings.method).value,
            started_unix=time.time(),
            source=source.name,
        )
        bound = log.bind(session_id=sid, source=source.name)
        self.events.emit(
            pipeline_pb2.SessionEvent(
                session_id=sid,
                kind=pipeline_pb2.SESSION_EVENT_KIND_STARTED,
                count=source.frame_count,
                message=source.name,
            )
        )
        try:
            for frame in source.frames():
                if cancel is not None and cancel.is_set():
                    raise SessionCancelled(f"{source.name}: session {sid} cancelled")
                self.acquire.submit(
                    spec,
                    frame.index,
                    frame.image,
                    frame.pose,
                    file=frame.file,
                    decode_seconds=frame.decode_seconds,
                )
                del frame
                self._drain()
            failure = self.state.get(f"samplescout:failed:{sid}")
            if failure is not None:
                raise OperationalError(failure.decode())
            raw = self.state.get(result_key(sid))
            if raw is None:
                raise OperationalError(f"{source.name}: session {sid} ended without a result")
            bound.info("session done")
            return json.loads(raw)
        except SessionCancelled as exc:
            self.emit_end(sid, pipeline_pb2.SESSION_EVENT_KIND_CANCELLED, str(exc))
            raise
        except SampleScoutError as exc:
            self.emit_end(sid, pipeline_pb2.SESSION_EVENT_KIND_FAILED, str(exc))
            raise
        finally:
            self.store.delete_session(sid)
            self.state.delete(state_key(sid))

    def result(self, session_id: str) -> dict[str, Any] | None:
        raw = self.state.get(result_key(session_id))
        return None if raw is None else json.loads(raw)

    def emit_end(self, sid: str, kind: pipeline_pb2.SessionEventKind, message: str) -> None:
        events = self.events.events(sid)
        if events and events[-1].kind in (
            pipeline_pb2.SESSION_EVENT_KIND_DONE,
            pipeline_pb2.SESSION_EVENT_KIND_FAILED,
            pipeline_pb2.SESSION_EVENT_KIND_CANCELLED,
        ):
            return
        self.events.emit(pipeline_pb2.SessionEvent(session_id=sid, kind=kind, message=message))

    def _drain(self) -> None:
        """Run every stage until no work is left on any stream."""
        with self._lock:
            busy = True
            while busy:
                busy = False
                for stream, group, handle, msg_type in self._stages:
                    for delivery in self.bus.read(stream, group, "embedded", count=16):
                        busy = True
                        try:
                            handle(delivery.payload)
                        except Exception as exc:  # a failing frame fails its session only
                            sid = msg_type.FromString(delivery.payload).session.session_id
                            log.exception("stage failed", stream=stream, session_id=sid)
                            self.state.set(
                                f"samplescout:failed:{sid}",
                                f"{group} stage failed: {type(exc).__name__}: {exc}".encode(),
                            )
                        finally:
                            self.bus.ack(stream, group, delivery.entry_id)


class SessionManager:
    """:class:`~samplescout.sessions.SessionRunner` on an :class:`EmbeddedPipeline`.

    Parameters
    ----------
    bundle_root
        When set, only bundles inside this directory may be named by clients.
    """

    def __init__(self, pipeline: EmbeddedPipeline, *, bundle_root: Path | None = None) -> None:
        self.pipeline = pipeline
        self.events = pipeline.events
        self._root = bundle_root.resolve() if bundle_root else None
        self._states: dict[str, tuple[SessionState, str]] = {}
        self._cancel: dict[str, threading.Event] = {}
        self._lock = threading.Lock()

    def _source(self, request: SessionRequest) -> FrameSource:
        if request.bundle_path:
            path = Path(request.bundle_path)
            if self._root is not None and not path.resolve().is_relative_to(self._root):
                raise InputError("request", "bundle_path", "outside the server's bundle root")
            return BundleSource(open_bundle(path))
        if request.microscope:
            return MicroscopeSource(open_microscope(request.microscope))
        if request.frames:
            return FramesSource(request.frames, carrier=request.carrier, context=request.context)
        raise InputError("request", "source", "give a bundle path, a microscope or frames")

    def _method(self, request: SessionRequest) -> Method | None:
        if not request.method:
            return None
        try:
            return Method(request.method)
        except ValueError:
            allowed = ", ".join(m.value for m in Method)
            raise InputError("request", "method", f"unknown method (one of {allowed})") from None

    def run(self, request: SessionRequest) -> dict[str, Any]:
        return self.pipeline.run(
            self._source(request),
            carrier=request.carrier,
            context=request.context,
            method=self._method(request),
        )

    def start(self, request: SessionRequest) -> str:
        source = self._source(request)
        method = self._method(request)
        sid = uuid.uuid4().hex
        cancel = threading.Event()
        with self._lock:
            self._states[sid] = (SessionState.RUNNING, "")
            self._cancel[sid] = cancel

        def work() -> None:
            try:
                self.pipeline.run(
                    source,
                    session_id=sid,
                    carrier=request.carrier,
                    context=request.context,
                    method=method,
                    cancel=cancel,
                )
                outcome = (SessionState.DONE, "")
            except SessionCancelled as exc:
                outcome = (SessionState.CANCELLED, str(exc))
            except SampleScoutError as exc:
                outcome = (SessionState.FAILED, str(exc))
            except Exception as exc:  # reported to the client, never a silent hang
                log.exception("session crashed", session_id=sid)
                outcome = (SessionState.FAILED, f"internal error: {type(exc).__name__}")
                self.pipeline.emit_end(sid, pipeline_pb2.SESSION_EVENT_KIND_FAILED, outcome[1])
            with self._lock:
                self._states[sid] = outcome

        threading.Thread(target=work, name=f"session-{sid[:8]}", daemon=True).start()
        return sid

    def cancel(self, session_id: str) -> SessionState:
        with self._lock:
            event = self._cancel.get(session_id)
            state = self._states.get(session_id, (SessionState.UNKNOWN, ""))[0]
        if event is not None and state is SessionState.RUNNING:
            event.set()
        return state

    def state(self, session_id: str) -> tuple[SessionState, str]:
        with self._lock:
            return self._states.get(session_id, (SessionState.UNKNOWN, ""))

    def result(self, session_id: str) -> dict[str, Any] | None:
        return self.pipeline.result(session_id)
