"""Composition root: builds the stages and runs sessions on the embedded default.

Services never import each other; this module is the one place that wires them
together (the distributed mode wires the same workers to Redis instead).
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from samplescout import bus as streams
from samplescout.acquire.drivers import open_microscope, open_source
from samplescout.acquire.sources import AcquiredFrame, FrameSource, FramesSource, UploadSource
from samplescout.acquire.worker import AcquireWorker, cancel_key, progressive_for
from samplescout.bus import Delivery, InMemoryBus
from samplescout.config import Method, Settings
from samplescout.consumer import StreamConsumer
from samplescout.contracts import CARRIER_TO_PROTO, PROTO_TO_CARRIER
from samplescout.control.adaptive import AdaptiveConfig, AdaptivePlanner, Step
from samplescout.errors import DeadlineExceeded, InputError, OperationalError, SampleScoutError
from samplescout.framestore import InMemoryFrameStore, frame_key
from samplescout.fuse.worker import FuseWorker, delete_state, done_key, result_key
from samplescout.geometry import Pose
from samplescout.identify.base import Identifier
from samplescout.identify.classical import ClassicalIdentifier
from samplescout.identify.worker import IdentifyWorker
from samplescout.logs import get_logger
from samplescout.microscope import Microscope
from samplescout.redis_bus import RedisBus
from samplescout.redis_store import RedisEventLog, RedisFrameStore, RedisStateStore
from samplescout.select.base import Selector
from samplescout.select.classical import ClassicalSelector
from samplescout.select.full_frame import FullFrameSelector
from samplescout.select.worker import SelectWorker
from samplescout.sessions import (
    TERMINAL_EVENTS,
    EventLog,
    EventSink,
    InMemoryStateStore,
    SessionRequest,
    SessionState,
)
from samplescout.v1 import pipeline_pb2

log = get_logger(component="pipeline")


class SessionCancelled(SampleScoutError):
    """The session was cancelled by its client."""


@dataclass(frozen=True)
class Stages:
    """The selectors and identifiers per method, loaded once at start-up."""

    selectors: Mapping[str, Selector]
    identifiers: Mapping[str, Identifier]


def load_stages(settings: Settings, context: Mapping[str, str] | None = None) -> Stages:
    """Models for every method; the learned ones come from the model registry.

    The settings' method comes first, so it is the default for sessions that name none.
    """
    from samplescout.identify.hybrid import load_hybrid_identifier
    from samplescout.registry import Registry
    from samplescout.select.net import load_selector

    if context and settings.method in (Method.COARSE_UNET, Method.COARSE_CNN):
        registry = Registry(settings.model_registry)
        for task in ("select", "identify"):
            record = registry.resolve(task, dict(context))
            if record.fallback:
                log.warning(
                    "no model for this context, using the default",
                    task=task,
                    context=dict(context),
                    model=record.ref,
                )
    classical = ClassicalIdentifier()
    unet = load_selector(settings.model_registry, dict(context or {}))
    selectors: dict[str, Selector] = {
        Method.COARSE.value: ClassicalSelector(),
        Method.COARSE_UNET.value: unet,
        Method.COARSE_CNN.value: unet,
        Method.CLASSICAL.value: FullFrameSelector(),
    }
    identifiers: dict[str, Identifier] = {
        Method.COARSE.value: classical,
        Method.COARSE_UNET.value: classical,
        Method.COARSE_CNN.value: load_hybrid_identifier(
            settings.model_registry, dict(context or {})
        ),
        Method.CLASSICAL.value: classical,
    }
    first = settings.method.value
    return Stages(
        selectors={first: selectors[first], **selectors},
        identifiers={first: identifiers[first], **identifiers},
    )


class EmbeddedPipeline:
    """All five stages in one process over an in-memory bus with the real message contracts.

    Safe to share between threads: each session feeds its frames, and one lock
    serialises the stage work, so models are loaded once and used by every session.
    """

    def __init__(
        self,
        *,
        settings: Settings,
        stages: Stages | None = None,
    ) -> None:
        self.settings = settings
        self.bus = InMemoryBus()
        self.store = InMemoryFrameStore()
        self.state = InMemoryStateStore()
        self.events = EventLog()
        self.acquire = AcquireWorker(
            bus=self.bus, store=self.store, events=self.events, coarse_factor=settings.coarse_factor
        )
        stages = stages or load_stages(settings)
        select = SelectWorker(
            bus=self.bus, store=self.store, events=self.events, selectors=stages.selectors
        )
        identify = IdentifyWorker(
            bus=self.bus,
            store=self.store,
            events=self.events,
            identifiers=stages.identifiers,
            top_k=settings.top_k,
            read_budget=settings.read_budget,
        )
        fuse = FuseWorker(state=self.state, events=self.events, store=self.store)
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
        progressive: bool = False,
    ) -> dict[str, Any]:
        """Localize the frames of ``source`` and return the SPEC result document.

        A source with ``frame_count == 0`` decides its frames as it goes (an adaptive
        overview path); ``progressive`` makes fuse publish the localization after
        every frame as a ``LOCALIZATION_UPDATED`` event carrying the result so far.

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
            progressive=progressive,
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
            count = 0
            for frame in source.frames():
                count += 1
                if cancel is not None and cancel.is_set():
                    raise SessionCancelled(f"{source.name}: session {sid} cancelled")
                spec.progressive = progressive_for(source, progressive)
                self.acquire.submit(
                    spec,
                    frame.index,
                    frame.image,
                    frame.pose,
                    file=frame.file,
                    decode_seconds=frame.decode_seconds,
                )
                index = frame.index
                del frame
                self._drain()
                # Drained: the frame's crops are read, so its full-res pixels can go (flat
                # memory); its coarse data stay for fusion's outline checks.
                self.store.release_full_res(frame_key(sid, index))
            if cancel is not None and cancel.is_set():
                raise SessionCancelled(f"{source.name}: session {sid} cancelled")
            if source.frame_count == 0:
                self.acquire.end_path(spec, source, count)
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
            delete_state(self.state, sid)

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
                            log.error(
                                "stage failed",
                                stream=stream,
                                session_id=sid,
                                error=f"{type(exc).__name__}: {exc}",
                            )
                            log.debug("stage failure traceback", exc_info=True)
                            self.state.set(
                                f"samplescout:failed:{sid}",
                                f"{group} stage failed: {type(exc).__name__}: {exc}".encode(),
                            )
                        finally:
                            self.bus.ack(stream, group, delivery.entry_id)


def check_bundle_root(request: SessionRequest, root: Path | None) -> None:
    """Refuse bundle paths outside ``root`` (when the server confines clients to one)."""
    inside = root is None or Path(request.bundle_path or ".").resolve().is_relative_to(root)
    if request.bundle_path and not inside:
        raise InputError("request", "bundle_path", "outside the server's bundle root")


class SessionManager:
    """:class:`~samplescout.sessions.SessionRunner` on an :class:`EmbeddedPipeline`.

    Parameters
    ----------
    bundle_root
        When set, only bundles inside this directory may be named by clients.
    keep_finished
        How many finished sessions (result, events) are kept for clients to fetch; the
        oldest are forgotten first, so a long-running server's memory stays bounded.
    """

    def __init__(
        self,
        pipeline: EmbeddedPipeline,
        *,
        bundle_root: Path | None = None,
        keep_finished: int = 1000,
    ) -> None:
        self.pipeline = pipeline
        self.events = pipeline.events
        self._root = bundle_root.resolve() if bundle_root else None
        self._keep = keep_finished
        self._finished: deque[str] = deque()
        self._states: dict[str, tuple[SessionState, str]] = {}
        self._cancel: dict[str, threading.Event] = {}
        self._uploads: dict[str, UploadSource] = {}
        self._owners: dict[str, str | None] = {}
        self._lock = threading.Lock()

    def _source(self, request: SessionRequest, session_id: str) -> FrameSource:
        if request.adaptive:
            return adaptive_source(request, self.events, session_id)
        if request.bundle_path or request.microscope:
            check_bundle_root(request, self._root)
            return open_source(bundle_path=request.bundle_path, microscope=request.microscope)
        if request.frames:
            return FramesSource(request.frames, carrier=request.carrier, context=request.context)
        if request.upload_frames:
            return UploadSource(
                request.upload_frames, carrier=request.carrier, context=request.context
            )
        raise InputError("request", "source", "give a bundle path, a microscope or frames")

    @staticmethod
    def _method(request: SessionRequest) -> Method | None:
        if not request.method:
            return None
        try:
            return Method(request.method)
        except ValueError:
            allowed = ", ".join(m.value for m in Method)
            raise InputError("request", "method", f"unknown method (one of {allowed})") from None

    def run(self, request: SessionRequest, *, timeout_s: float | None = None) -> dict[str, Any]:
        cancel = threading.Event()
        timer = threading.Timer(timeout_s, cancel.set) if timeout_s is not None else None
        if timer is not None:
            timer.start()
        sid = uuid.uuid4().hex
        try:
            return self.pipeline.run(
                self._source(request, sid),
                session_id=sid,
                carrier=request.carrier,
                context=request.context,
                method=self._method(request),
                cancel=cancel,
                progressive=request.adaptive,
            )
        except SessionCancelled:
            raise DeadlineExceeded(f"no result within {timeout_s:.1f} s") from None
        finally:
            if timer is not None:
                timer.cancel()

    def start(self, request: SessionRequest) -> str:
        sid = uuid.uuid4().hex
        source = self._source(request, sid)
        method = self._method(request)
        cancel = threading.Event()
        with self._lock:
            self._states[sid] = (SessionState.RUNNING, "")
            self._cancel[sid] = cancel
            self._owners[sid] = request.owner
            if isinstance(source, UploadSource):
                self._uploads[sid] = source

        def work() -> None:
            try:
                self.pipeline.run(
                    source,
                    session_id=sid,
                    carrier=request.carrier,
                    context=request.context,
                    method=method,
                    cancel=cancel,
                    progressive=request.adaptive,
                )
                outcome = (SessionState.DONE, "")
            except SessionCancelled as exc:
                outcome = (SessionState.CANCELLED, str(exc))
            except SampleScoutError as exc:
                outcome = (SessionState.FAILED, str(exc))
            except Exception as exc:  # reported to the client, never a silent hang
                outcome = (SessionState.FAILED, f"internal error: {type(exc).__name__}: {exc}")
                self.pipeline.emit_end(sid, pipeline_pb2.SESSION_EVENT_KIND_FAILED, outcome[1])
                log.error("session crashed", session_id=sid, error=outcome[1])
            with self._lock:
                self._states[sid] = outcome
                self._uploads.pop(sid, None)
                self._cancel.pop(sid, None)
                self._finished.append(sid)
                while len(self._finished) > self._keep:
                    self._forget(self._finished.popleft())

        threading.Thread(target=work, name=f"session-{sid[:8]}", daemon=True).start()
        return sid

    def cancel(self, session_id: str) -> SessionState:
        with self._lock:
            event = self._cancel.get(session_id)
            state = self._states.get(session_id, (SessionState.UNKNOWN, ""))[0]
        if event is not None and state is SessionState.RUNNING:
            event.set()
            upload = self._uploads.get(session_id)
            if upload is not None:
                upload.close()
        return state

    def owner(self, session_id: str) -> str | None:
        with self._lock:
            return self._owners.get(session_id)

    def _forget(self, session_id: str) -> None:
        self._states.pop(session_id, None)
        self._owners.pop(session_id, None)
        self.pipeline.state.delete(result_key(session_id))
        self.pipeline.state.delete(done_key(session_id))
        self.events.forget(session_id)

    def upload(self, session_id: str, index: int, image: np.ndarray, pose: Pose) -> int:
        with self._lock:
            source = self._uploads.get(session_id)
        if source is None:
            raise InputError("request", "session_id", f"no running upload session {session_id!r}")
        return source.push(index, image, pose)

    def state(self, session_id: str) -> tuple[SessionState, str]:
        with self._lock:
            known = self._states.get(session_id, (SessionState.UNKNOWN, ""))
        if known[0] is SessionState.RUNNING:
            # The terminal event comes before the worker thread records the outcome.
            events = self.events.events(session_id)
            if events and events[-1].kind in TERMINAL_STATE:
                return TERMINAL_STATE[events[-1].kind], events[-1].message
        return known

    def result(self, session_id: str) -> dict[str, Any] | None:
        return self.pipeline.result(session_id)


# --- distributed mode -------------------------------------------------------------

STAGE_STREAMS: dict[str, tuple[str, type[Any]]] = {
    "acquire": (streams.ACQUIRE, pipeline_pb2.AcquireRequest),
    "select": (streams.FRAMES, pipeline_pb2.FrameAcquired),
    "identify": (streams.REGIONS, pipeline_pb2.RegionsSelected),
    "fuse": (streams.STRUCTURES, pipeline_pb2.StructuresIdentified),
}
WORKER_SERVICES = tuple(STAGE_STREAMS)
SERVICES = (*WORKER_SERVICES, "control")


@dataclass
class RedisBackends:
    client: Any
    bus: RedisBus
    store: RedisFrameStore
    state: RedisStateStore
    events: RedisEventLog


def connect_redis(settings: Settings) -> RedisBackends:
    """Connect to ``settings.redis_url`` or fail with one line naming the URL."""
    import redis

    url = settings.redis_url or ""
    from redis.backoff import ExponentialBackoff
    from redis.retry import Retry

    try:
        client = redis.Redis.from_url(
            url,
            socket_connect_timeout=5,
            health_check_interval=30,
            retry=Retry(ExponentialBackoff(), retries=1),
            retry_on_error=[redis.ConnectionError, redis.TimeoutError],
        )
        client.ping()  # fail fast at start-up: a wrong URL is a configuration error
        # From now on commands ride out a Redis restart or a network blip (about 20 s).
        client.set_retry(Retry(ExponentialBackoff(cap=2.0, base=0.1), retries=12))
    except (redis.RedisError, ValueError) as exc:
        raise OperationalError(
            f"cannot reach Redis at {redact_url(url)} ({exc}); run without --redis for the "
            "embedded mode"
        ) from None
    return RedisBackends(
        client=client,
        bus=RedisBus(client),
        store=RedisFrameStore(client, ttl_s=settings.frame_ttl_s),
        state=RedisStateStore(client, ttl_s=settings.frame_ttl_s),
        events=RedisEventLog(client, ttl_s=settings.frame_ttl_s),
    )


def redact_url(url: str) -> str:
    """The URL without its password, for messages and logs."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password:
        host = parts.hostname or ""
        netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
        return urlunsplit(parts._replace(netloc=netloc))
    return url


def fail_session_on_dead(
    events: EventSink, message_type: type[Any]
) -> Callable[[Delivery, str], None]:
    """When an entry is dead-lettered, its session fails with the reason (never hangs)."""

    def on_dead(delivery: Delivery, reason: str) -> None:
        try:
            sid = message_type.FromString(delivery.payload).session.session_id
        except Exception:  # an undecodable entry belongs to no session we can name
            log.error("undecodable dead letter", stream=delivery.stream, entry_id=delivery.entry_id)
            return
        events.emit(
            pipeline_pb2.SessionEvent(
                session_id=sid, kind=pipeline_pb2.SESSION_EVENT_KIND_FAILED, message=reason
            )
        )

    return on_dead


def describe_entry(message_type: type[Any]) -> Callable[[bytes], dict[str, object]]:
    """Session id and frame index of a stream entry, for the log lines about it."""

    def describe(payload: bytes) -> dict[str, object]:
        msg = message_type.FromString(payload)
        out: dict[str, object] = {"session_id": msg.session.session_id}
        if hasattr(msg, "frame"):
            out["frame_index"] = msg.frame.index
        return out

    return describe


def build_stage_handler(
    name: str, backends: RedisBackends, settings: Settings
) -> Callable[[bytes], None]:
    """The handler of one worker service, with its models loaded once."""
    common = {"bus": backends.bus, "store": backends.store, "events": backends.events}
    if name == "acquire":
        return AcquireWorker(
            **common,
            coarse_factor=settings.coarse_factor,
            state=backends.state,
            adaptive=distributed_adaptive_source(backends.events, settings),
        ).handle
    if name == "select":
        return SelectWorker(**common, selectors=load_stages(settings).selectors).handle
    if name == "identify":
        return IdentifyWorker(
            **common,
            identifiers=load_stages(settings).identifiers,
            top_k=settings.top_k,
            read_budget=settings.read_budget,
        ).handle
    if name == "fuse":
        return FuseWorker(state=backends.state, events=backends.events, store=backends.store).handle
    raise ValueError(f"unknown service {name!r} (one of {', '.join(SERVICES)})")


class DistributedRunner:
    """:class:`~samplescout.sessions.SessionRunner` for the control front door over Redis.

    Sessions from a bundle or a microscope are handed to the acquire service; frames
    uploaded with ``LocalizeFrames`` are written to the frame store here. Session state
    is derived from the session's event stream, so any control replica can answer.
    """

    def __init__(
        self,
        backends: RedisBackends,
        *,
        settings: Settings,
        bundle_root: Path | None = None,
        result_timeout_s: float = 600.0,
    ) -> None:
        self._b = backends
        self.events = backends.events
        self._settings = settings
        self._root = bundle_root.resolve() if bundle_root else None
        self._timeout = result_timeout_s
        self._acquire = AcquireWorker(
            bus=backends.bus,
            store=backends.store,
            events=backends.events,
            coarse_factor=settings.coarse_factor,
        )

    def _spec(
        self, request: SessionRequest, frame_count: int, source: str
    ) -> pipeline_pb2.SessionSpec:
        method = SessionManager._method(request) or self._settings.method
        return pipeline_pb2.SessionSpec(
            session_id=uuid.uuid4().hex,
            carrier=CARRIER_TO_PROTO.get(request.carrier, CARRIER_TO_PROTO[None]),
            context=dict(request.context),
            frame_count=frame_count,
            method=method.value,
            started_unix=time.time(),
            source=source,
        )

    def start(self, request: SessionRequest) -> str:
        if request.upload_frames:
            if request.upload_frames < 1:
                raise InputError("request", "upload.frame_count", "must be >= 1")
            spec = self._spec(request, request.upload_frames, "upload")
            self._b.state.set(upload_key(spec.session_id), spec.SerializeToString())
            self._record_owner(spec.session_id, request.owner)
            self._started(spec)
            return spec.session_id
        if not (request.bundle_path or request.microscope):
            raise InputError("request", "source", "give a bundle path or a microscope address")
        # Validate here so the client gets INVALID_ARGUMENT, not a failed session.
        if request.adaptive:
            # The acquire service plans each frame from the localization fuse publishes
            # after the one before: a progressive session of unknown length.
            info = adaptive_microscope(request).describe()
            name, carrier, context, count = info.name, info.carrier, info.context, 0
        else:
            check_bundle_root(request, self._root)
            source = open_source(bundle_path=request.bundle_path, microscope=request.microscope)
            name, carrier, context = source.name, source.carrier, source.context
            count = source.frame_count
        spec = self._spec(request, count, name)
        spec.progressive = request.adaptive
        if carrier and not request.carrier:
            spec.carrier = CARRIER_TO_PROTO[carrier]
        spec.context.update({**context, **request.context})
        self._record_owner(spec.session_id, request.owner)
        self._started(spec)
        acquire = pipeline_pb2.AcquireRequest(session=spec, adaptive=request.adaptive)
        if request.bundle_path and not request.adaptive:
            acquire.bundle_path = str(Path(request.bundle_path).resolve())
        else:
            acquire.microscope = request.microscope or ""
        self._b.bus.publish(streams.ACQUIRE, acquire.SerializeToString())
        return spec.session_id

    def run(self, request: SessionRequest, *, timeout_s: float | None = None) -> dict[str, Any]:
        timeout = self._timeout if timeout_s is None else timeout_s
        if request.frames:
            spec = self._spec(request, len(request.frames), "request")
            sid = spec.session_id
            self._record_owner(sid, request.owner)
            self._started(spec)
            for index, (image, pose) in enumerate(request.frames):
                self._acquire.submit(spec, index, image, pose)
        else:
            sid = self.start(request)
        deadline = time.monotonic() + timeout
        for event in self.events.follow(sid, timeout_s=timeout):
            if event.kind == pipeline_pb2.SESSION_EVENT_KIND_DONE:
                return json.loads(event.result.json)
            if event.kind in (
                pipeline_pb2.SESSION_EVENT_KIND_FAILED,
                pipeline_pb2.SESSION_EVENT_KIND_CANCELLED,
            ):
                raise OperationalError(event.message or f"session {sid} failed")
            if time.monotonic() > deadline:
                break
        self._b.state.set(cancel_key(sid), b"1")
        raise DeadlineExceeded(f"session {sid}: no result within {timeout:.1f} s")

    def _record_owner(self, session_id: str, owner: str | None) -> None:
        if owner is not None:
            self._b.state.set(f"samplescout:owner:{session_id}", owner.encode())

    def owner(self, session_id: str) -> str | None:
        raw = self._b.state.get(f"samplescout:owner:{session_id}")
        return None if raw is None else raw.decode()

    def _started(self, spec: pipeline_pb2.SessionSpec) -> None:
        self.events.emit(
            pipeline_pb2.SessionEvent(
                session_id=spec.session_id,
                kind=pipeline_pb2.SESSION_EVENT_KIND_STARTED,
                count=spec.frame_count,
                message=spec.source,
            )
        )

    def cancel(self, session_id: str) -> SessionState:
        state = self.state(session_id)[0]
        if state is SessionState.RUNNING:
            self._b.state.set(cancel_key(session_id), b"1")
            if self._b.state.get(upload_key(session_id)) is not None:
                # Nobody else reads an upload session's frames: end it here.
                self.events.emit(
                    pipeline_pb2.SessionEvent(
                        session_id=session_id,
                        kind=pipeline_pb2.SESSION_EVENT_KIND_CANCELLED,
                        message=f"session {session_id} cancelled",
                    )
                )
        return state

    def upload(self, session_id: str, index: int, image: np.ndarray, pose: Pose) -> int:
        raw = self._b.state.get(upload_key(session_id))
        if raw is None or self.state(session_id)[0] is not SessionState.RUNNING:
            raise InputError("request", "session_id", f"no running upload session {session_id!r}")
        spec = pipeline_pb2.SessionSpec.FromString(raw)
        if not 0 <= index < spec.frame_count:
            raise InputError("upload", "frame.index", f"{index} not in [0, {spec.frame_count})")
        key = f"{upload_key(session_id)}:seen"
        with self._b.state.lock(key):
            seen = json.loads(self._b.state.get(key) or b"[]")
            if index in seen:
                raise InputError("upload", "frame.index", f"frame {index} was already uploaded")
            self._acquire.submit(spec, index, image, pose)
            seen.append(index)
            self._b.state.set(key, json.dumps(seen).encode())
        return len(seen)

    def state(self, session_id: str) -> tuple[SessionState, str]:
        events = self.events.events(session_id)
        if not events:
            return SessionState.UNKNOWN, ""
        for event in reversed(events):
            if event.kind in TERMINAL_STATE:
                return TERMINAL_STATE[event.kind], event.message
        return SessionState.RUNNING, ""

    def result(self, session_id: str) -> dict[str, Any] | None:
        raw = self._b.state.get(result_key(session_id))
        return None if raw is None else json.loads(raw)


def upload_key(session_id: str) -> str:
    return f"samplescout:upload:{session_id}"


TERMINAL_STATE = {
    pipeline_pb2.SESSION_EVENT_KIND_DONE: SessionState.DONE,
    pipeline_pb2.SESSION_EVENT_KIND_FAILED: SessionState.FAILED,
    pipeline_pb2.SESSION_EVENT_KIND_CANCELLED: SessionState.CANCELLED,
}


def run_worker_service(
    name: str,
    *,
    settings: Settings,
    grpc_address: str | None,
    stop: threading.Event,
) -> None:
    """Run one worker service until ``stop`` is set, with a gRPC health endpoint."""
    import socket

    from grpc_health.v1 import health_pb2

    from samplescout.health import start_health_server

    backends = connect_redis(settings)
    stream, message_type = STAGE_STREAMS[name]
    consumer = StreamConsumer(
        bus=backends.bus,
        stream=stream,
        group=name,
        consumer=settings.consumer or socket.gethostname(),
        handler=build_stage_handler(name, backends, settings),
        on_dead=fail_session_on_dead(backends.events, message_type),
        describe=describe_entry(message_type),
        max_deliveries=settings.max_deliveries,
        reclaim_idle_ms=settings.reclaim_idle_ms,
        reclaim_every_s=settings.reclaim_every_s,
    )
    health_server = None
    health_servicer = None
    if grpc_address:
        health_server, health_servicer = start_health_server(grpc_address)
    log.warning("worker started", service=name, consumer=consumer.consumer, stream=stream)
    try:
        consumer.run(stop)
    finally:
        if health_servicer is not None and health_server is not None:
            health_servicer.set("", health_pb2.HealthCheckResponse.NOT_SERVING)
            health_server.stop(5)
        log.warning("worker stopped", service=name, handled=consumer.handled)


# --- adaptive overview path ----------------------------------------------------------


def _localization_of(event: pipeline_pb2.SessionEvent) -> dict[str, Any] | None:
    """The result document an event carries when fuse published one, else ``None``."""
    if event.result.json and event.kind in (
        pipeline_pb2.SESSION_EVENT_KIND_LOCALIZATION_UPDATED,
        pipeline_pb2.SESSION_EVENT_KIND_DONE,
    ):
        doc: dict[str, Any] = json.loads(event.result.json)
        return doc
    return None


def latest_localization(events: EventLog, session_id: str) -> dict[str, Any] | None:
    """The newest result document a session's fuse stage published (``None``: none yet)."""
    for event in reversed(events.events(session_id)):
        doc = _localization_of(event)
        if doc is not None:
            return doc
    return None


class AdaptiveSource:
    """Frames along an adaptive overview path (a :class:`FrameSource` with ``frame_count`` 0).

    Before every frame it asks ``localization()`` for the result so far (with an
    :class:`EmbeddedPipeline` run ``progressive=True`` that is the newest
    ``LOCALIZATION_UPDATED`` event of the session), lets the
    :class:`~samplescout.control.adaptive.AdaptivePlanner` choose the next centre, moves
    the microscope there and snaps. It ends when the planner stops.

    Parameters
    ----------
    microscope
        Any :class:`~samplescout.microscope.Microscope` driver.
    localization
        Returns the latest result document of this session, or ``None``.
    carrier
        Overrides the microscope's carrier for planning.
    config
        Planner tuning (:class:`~samplescout.control.adaptive.AdaptiveConfig`).
    """

    frame_count = 0

    def __init__(
        self,
        microscope: Microscope,
        localization: Callable[[], Mapping[str, Any] | None],
        *,
        carrier: str | None = None,
        config: AdaptiveConfig | None = None,
    ) -> None:
        info = microscope.describe()
        self._microscope = microscope
        self._localization = localization
        self.name = info.name
        self.carrier = carrier or info.carrier
        self.context = dict(info.context)
        self.planner = AdaptivePlanner(info, carrier=self.carrier, config=config)
        self.taken: list[tuple[float, float]] = []

    @property
    def steps(self) -> list[Step]:
        """The planner's decisions so far (the last one is the stop)."""
        return self.planner.steps

    @property
    def needs_localization(self) -> bool:
        """Whether fuse should publish the localization after the coming frames."""
        return self.planner.needs_localization

    def path_summary(self) -> dict[str, Any]:
        """The path so far, as the result's ``stats.adaptive`` reports it."""
        return {
            "frames": len(self.taken),
            "raster_frames": self.planner.max_frames,
            "stop": self.steps[-1].reason if self.steps else "",
            "path_mm": [[round(x, 4), round(y, 4)] for x, y in self.taken],
            "reasons": [step.reason for step in self.steps],
            "gains_mm2": [round(step.gain, 1) for step in self.steps],
        }

    def frames(self) -> Iterator[AcquiredFrame]:
        index = 0
        while True:
            step = self.planner.next(self._localization() if self.needs_localization else None)
            if step.center_mm is None:
                log.info("adaptive path done", frames=index, reason=step.reason)
                return
            reached = self._microscope.move_to(step.center_mm)
            t0 = time.perf_counter()
            image, pose = self._microscope.snap()
            self.planner.record_frame(pose, int(image.shape[1]), int(image.shape[0]))
            self.taken.append((float(reached[0]), float(reached[1])))
            yield AcquiredFrame(index, image, pose, "", time.perf_counter() - t0)
            index += 1


def wait_for_localization(
    events: EventLog | RedisEventLog, session_id: str, frames: int, *, timeout_s: float
) -> dict[str, Any] | None:
    """The session's localization once fuse has taken ``frames`` frames.

    In the distributed mode fuse runs elsewhere: an adaptive path must not plan its
    next frame from a localization that lacks the last one (the path would depend on
    timing). Waits at most ``timeout_s`` without news.

    Raises
    ------
    OperationalError
        The session ended, or fuse published nothing for ``timeout_s``.
    """
    if frames == 0:
        return None
    for event in events.follow(session_id, timeout_s=timeout_s):
        doc = _localization_of(event)
        if doc is not None:
            if int((doc.get("stats") or {}).get("frames", 0)) >= frames:
                return doc
        elif event.kind in TERMINAL_EVENTS:
            raise OperationalError(f"session {session_id} ended: {event.message}")
    raise OperationalError(
        f"session {session_id}: no localization of {frames} frames within {timeout_s:g} s"
    )


def distributed_adaptive_source(
    events: EventLog | RedisEventLog, settings: Settings
) -> Callable[[pipeline_pb2.AcquireRequest], AdaptiveSource]:
    """What the acquire service of the distributed mode runs for an adaptive request."""
    wait_s = 30.0 + settings.reclaim_idle_ms / 1000.0

    def make(msg: pipeline_pb2.AcquireRequest) -> AdaptiveSource:
        sid = msg.session.session_id
        source = AdaptiveSource(
            open_microscope(msg.microscope),
            lambda: wait_for_localization(events, sid, len(source.taken), timeout_s=wait_s),
            carrier=PROTO_TO_CARRIER.get(msg.session.carrier),
        )
        return source

    return make


def adaptive_microscope(request: SessionRequest) -> Microscope:
    """The microscope of a session request with ``adaptive`` set."""
    if not request.microscope:
        raise InputError("request", "microscope.address", "an adaptive session needs a microscope")
    return open_microscope(request.microscope)


def adaptive_source(request: SessionRequest, events: EventLog, session_id: str) -> AdaptiveSource:
    """The :class:`AdaptiveSource` of a session request with ``adaptive`` set: its
    microscope along a path planned from the session's own localization events (run
    the session with ``progressive=True``)."""
    return AdaptiveSource(
        adaptive_microscope(request),
        lambda: latest_localization(events, session_id),
        carrier=request.carrier,
    )


def localize_adaptive(
    microscope: Microscope,
    settings: Settings,
    *,
    carrier: str | None = None,
    config: AdaptiveConfig | None = None,
    pipeline: EmbeddedPipeline | None = None,
    session_id: str | None = None,
) -> tuple[dict[str, Any], int]:
    """Localize a live holder along an adaptive overview path.

    Returns
    -------
    tuple
        The SPEC result document and the number of frames snapped.
    """
    pipe = pipeline or EmbeddedPipeline(settings=settings)
    sid = session_id or uuid.uuid4().hex
    source = AdaptiveSource(
        microscope,
        lambda: latest_localization(pipe.events, sid),
        carrier=carrier,
        config=config,
    )
    result = pipe.run(source, session_id=sid, carrier=carrier, progressive=True)
    return result, len(source.taken)
