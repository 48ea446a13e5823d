"""Per-session state and progress events, behind protocols a Redis backend also meets."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Protocol, runtime_checkable

import numpy as np

from samplescout.geometry import Pose
from samplescout.v1 import pipeline_pb2

TERMINAL_EVENTS = frozenset(
    {
        pipeline_pb2.SESSION_EVENT_KIND_DONE,
        pipeline_pb2.SESSION_EVENT_KIND_FAILED,
        pipeline_pb2.SESSION_EVENT_KIND_CANCELLED,
    }
)


@runtime_checkable
class StateStore(Protocol):
    """Small key/value store for serialised session state (fuse state, results).

    Contract: ``get`` returns the bytes last ``set`` under ``key`` or ``None``;
    ``set`` replaces them whole (readers never see a partial value); ``delete``
    removes them; ``lock(key)`` is a context manager that serialises read-modify-write
    cycles on ``key`` across all processes sharing the store, and expires by itself
    when its holder dies. Values survive the process that wrote them where the
    backend does.
    """

    def get(self, key: str) -> bytes | None: ...

    def set(self, key: str, value: bytes) -> None: ...

    def delete(self, key: str) -> None: ...

    def lock(self, key: str) -> AbstractContextManager[object]: ...


class InMemoryStateStore:
    def __init__(self) -> None:
        self._data: dict[str, bytes] = {}
        self._lock = threading.Lock()
        self._locks: dict[str, threading.RLock] = {}

    def get(self, key: str) -> bytes | None:
        with self._lock:
            return self._data.get(key)

    def set(self, key: str, value: bytes) -> None:
        with self._lock:
            self._data[key] = bytes(value)

    def delete(self, key: str) -> None:
        with self._lock:
            self._data.pop(key, None)

    def lock(self, key: str) -> AbstractContextManager[object]:
        with self._lock:
            return self._locks.setdefault(key, threading.RLock())


@runtime_checkable
class EventSink(Protocol):
    """Where stages report progress. ``emit`` assigns the event's ``sequence``."""

    def emit(self, event: pipeline_pb2.SessionEvent) -> pipeline_pb2.SessionEvent: ...


class EventLog:
    """In-memory per-session event history that watchers can follow."""

    def __init__(self) -> None:
        self._events: dict[str, list[pipeline_pb2.SessionEvent]] = {}
        self._cond = threading.Condition()

    def emit(self, event: pipeline_pb2.SessionEvent) -> pipeline_pb2.SessionEvent:
        with self._cond:
            log = self._events.setdefault(event.session_id, [])
            stamped = pipeline_pb2.SessionEvent()
            stamped.CopyFrom(event)
            stamped.sequence = len(log) + 1
            log.append(stamped)
            self._cond.notify_all()
            return stamped

    def events(self, session_id: str) -> list[pipeline_pb2.SessionEvent]:
        with self._cond:
            return list(self._events.get(session_id, []))

    def known(self, session_id: str) -> bool:
        with self._cond:
            return session_id in self._events

    def forget(self, session_id: str) -> None:
        """Drop a finished session's history."""
        with self._cond:
            self._events.pop(session_id, None)

    def follow(
        self,
        session_id: str,
        *,
        timeout_s: float | None = None,
        stop: threading.Event | None = None,
    ) -> Iterator[pipeline_pb2.SessionEvent]:
        """Yield past and future events of a session until a terminal one.

        Ends early when ``stop`` is set (e.g. the client went away) or when no new
        event arrives within ``timeout_s``.
        """
        seen = 0
        while True:
            with self._cond:
                deadline = None if timeout_s is None else time.monotonic() + timeout_s
                while len(self._events.get(session_id, [])) <= seen and not (
                    stop is not None and stop.is_set()
                ):
                    remaining = 0.5 if deadline is None else min(0.5, deadline - time.monotonic())
                    if remaining <= 0:
                        return
                    self._cond.wait(remaining)
                if stop is not None and stop.is_set():
                    return
                new = self._events.get(session_id, [])[seen:]
            for event in new:
                seen += 1
                yield event
                if event.kind in TERMINAL_EVENTS:
                    return


class SessionState(str, Enum):
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class SessionRequest:
    """What a client asks to localize: a bundle path, a microscope address, frames, or
    ``upload_frames`` frames that follow one by one (:meth:`SessionRunner.upload`)."""

    bundle_path: str | None = None
    microscope: str | None = None
    #: With ``microscope``: choose the overview path as it goes (adaptive path) instead
    #: of the full raster.
    adaptive: bool = False
    frames: tuple[tuple[np.ndarray, Pose], ...] = ()
    upload_frames: int = 0
    #: The authenticated identity that asked (``None`` when authentication is off).
    owner: str | None = None
    carrier: str | None = None
    context: Mapping[str, str] = field(default_factory=dict)
    method: str | None = None


@runtime_checkable
class SessionRunner(Protocol):
    """Runs localization sessions for the control front door.

    Contract
    --------
    - ``start`` validates the request (raising :class:`~samplescout.errors.InputError`
      before anything runs), starts the session in the background and returns its id.
    - ``events`` follows a session's :class:`EventLog` until a terminal event.
    - ``run`` localizes synchronously and returns the result document; past
      ``timeout_s`` it gives up with :class:`~samplescout.errors.DeadlineExceeded`.
    - ``upload`` adds frame ``index`` to a session started with ``upload_frames``
      (each index once, in any order) and returns how many frames it has received.
    - ``cancel`` asks a running session to stop; ``state``/``result`` report on it.
    - ``owner`` is the identity that started the session (``None``: nobody/unknown).
    """

    events: EventLog

    def start(self, request: SessionRequest) -> str: ...

    def run(self, request: SessionRequest, *, timeout_s: float | None = None) -> dict[str, Any]: ...

    def upload(self, session_id: str, index: int, image: np.ndarray, pose: Pose) -> int: ...

    def cancel(self, session_id: str) -> SessionState: ...

    def owner(self, session_id: str) -> str | None: ...

    def state(self, session_id: str) -> tuple[SessionState, str]: ...

    def result(self, session_id: str) -> dict[str, Any] | None: ...
