"""Work queues between stages.

The :class:`Bus` protocol is the shape of Redis Streams with consumer groups
(``XADD`` / ``XREADGROUP`` / ``XACK`` / ``XAUTOCLAIM``): the embedded default uses
:class:`InMemoryBus` in one process, the distributed mode
:class:`samplescout.redis_bus.RedisBus`, with the same ``samplescout.v1`` payloads.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

#: Stream names; one per hop between stages.
ACQUIRE = "samplescout:acquire"
FRAMES = "samplescout:frames"
REGIONS = "samplescout:regions"
STRUCTURES = "samplescout:structures"
#: Entries that failed too often, with the reason.
DEAD = "samplescout:dead"


@dataclass(frozen=True, slots=True)
class Delivery:
    """One entry handed to a consumer: its stream id, payload and delivery count."""

    stream: str
    entry_id: str
    payload: bytes
    deliveries: int = 1


@runtime_checkable
class Bus(Protocol):
    """At-least-once work queue with consumer groups.

    Contract
    --------
    - ``publish`` appends ``payload`` to ``stream`` and returns its entry id.
    - ``read`` hands each new entry of a stream to exactly one consumer of a group,
      oldest first, and keeps it *pending* for that consumer until ``ack``; it returns
      at most ``count`` entries and waits up to ``block_ms`` (``None``: no wait).
    - ``read_pending`` returns the entries still pending for ``consumer`` (what a
      restarted worker must finish first), with their delivery counts.
    - ``reclaim`` takes over entries pending longer than ``min_idle_ms`` for any
      consumer of the group (a dead worker's) and hands them to ``consumer``, counting
      one more delivery.
    - ``dead_letter`` copies an entry with a reason to the :data:`DEAD` stream and acks it.
    - ``ack`` of an unknown or already acked id does nothing. Nothing is lost unacked.
    - ``prune_consumers`` forgets consumers idle for ``min_idle_ms`` that own no pending
      entry (replicas that went away); a consumer that still owns entries is kept.
    """

    def ensure_group(self, stream: str, group: str) -> None: ...

    def publish(self, stream: str, payload: bytes) -> str: ...

    def read(
        self, stream: str, group: str, consumer: str, *, count: int = 1, block_ms: int | None = None
    ) -> list[Delivery]: ...

    def read_pending(
        self, stream: str, group: str, consumer: str, *, count: int = 100
    ) -> list[Delivery]: ...

    def reclaim(
        self, stream: str, group: str, consumer: str, *, min_idle_ms: int, count: int = 100
    ) -> list[Delivery]: ...

    def dead_letter(self, delivery: Delivery, group: str, reason: str) -> None: ...

    def ack(self, stream: str, group: str, entry_id: str) -> None: ...

    def pending_count(self, stream: str, group: str) -> int: ...

    def lag(self, stream: str, group: str) -> int: ...

    def prune_consumers(self, stream: str, group: str, *, min_idle_ms: int) -> list[str]: ...


@dataclass
class _Pending:
    consumer: str
    deliveries: int
    since: float


@dataclass
class _Group:
    queue: deque[str] = field(default_factory=deque)
    pending: dict[str, _Pending] = field(default_factory=dict)


class InMemoryBus:
    """Thread-safe in-process :class:`Bus` for the embedded default and tests."""

    def __init__(self) -> None:
        self._entries: dict[str, dict[str, bytes]] = {}
        self._groups: dict[tuple[str, str], _Group] = {}
        self._ids = itertools.count(1)
        self._cond = threading.Condition()
        self.dead: list[tuple[Delivery, str, str]] = []

    def ensure_group(self, stream: str, group: str) -> None:
        with self._cond:
            self._entries.setdefault(stream, {})
            self._groups.setdefault((stream, group), _Group())

    def publish(self, stream: str, payload: bytes) -> str:
        with self._cond:
            entry_id = f"{next(self._ids)}-0"
            self._entries.setdefault(stream, {})[entry_id] = payload
            for (s, _), grp in self._groups.items():
                if s == stream:
                    grp.queue.append(entry_id)
            self._cond.notify_all()
            return entry_id

    def _group(self, stream: str, group: str) -> _Group:
        grp = self._groups.get((stream, group))
        if grp is None:
            raise KeyError(f"no consumer group {group!r} on stream {stream!r}")
        return grp

    def read(
        self, stream: str, group: str, consumer: str, *, count: int = 1, block_ms: int | None = None
    ) -> list[Delivery]:
        with self._cond:
            grp = self._group(stream, group)
            if not grp.queue and block_ms:
                self._cond.wait_for(lambda: bool(grp.queue), timeout=block_ms / 1000.0)
            out: list[Delivery] = []
            while grp.queue and len(out) < count:
                entry_id = grp.queue.popleft()
                grp.pending[entry_id] = _Pending(consumer, 1, time.monotonic())
                out.append(Delivery(stream, entry_id, self._entries[stream][entry_id]))
            return out

    def read_pending(
        self, stream: str, group: str, consumer: str, *, count: int = 100
    ) -> list[Delivery]:
        with self._cond:
            grp = self._group(stream, group)
            return [
                Delivery(stream, eid, self._entries[stream][eid], p.deliveries)
                for eid, p in list(grp.pending.items())[:count]
                if p.consumer == consumer
            ]

    def reclaim(
        self, stream: str, group: str, consumer: str, *, min_idle_ms: int, count: int = 100
    ) -> list[Delivery]:
        with self._cond:
            grp = self._group(stream, group)
            now = time.monotonic()
            out: list[Delivery] = []
            for eid, p in grp.pending.items():
                if len(out) >= count:
                    break
                if (now - p.since) * 1000.0 >= min_idle_ms:
                    p.consumer, p.deliveries, p.since = consumer, p.deliveries + 1, now
                    out.append(Delivery(stream, eid, self._entries[stream][eid], p.deliveries))
            return out

    def dead_letter(self, delivery: Delivery, group: str, reason: str) -> None:
        with self._cond:
            self.dead.append((delivery, group, reason))
        self.ack(delivery.stream, group, delivery.entry_id)

    def ack(self, stream: str, group: str, entry_id: str) -> None:
        with self._cond:
            grp = self._groups.get((stream, group))
            if grp is None or grp.pending.pop(entry_id, None) is None:
                return
            still_needed = any(
                entry_id in g.pending or entry_id in g.queue
                for (s, _), g in self._groups.items()
                if s == stream
            )
            if not still_needed:
                self._entries.get(stream, {}).pop(entry_id, None)

    def pending_count(self, stream: str, group: str) -> int:
        with self._cond:
            grp = self._groups.get((stream, group))
            return 0 if grp is None else len(grp.pending)

    def lag(self, stream: str, group: str) -> int:
        """Entries the group has not read yet."""
        with self._cond:
            grp = self._groups.get((stream, group))
            return 0 if grp is None else len(grp.queue)

    def prune_consumers(self, stream: str, group: str, *, min_idle_ms: int) -> list[str]:
        """Consumers exist here only through their pending entries: nothing to forget."""
        return []
