"""Work queues between stages.

The :class:`Bus` protocol is the shape of Redis Streams with consumer groups
(``XADD`` / ``XREADGROUP`` / ``XACK``): the embedded default uses
:class:`InMemoryBus` in one process, the distributed mode a Redis-backed bus
with the same contract and the same ``samplescout.v1`` payload bytes.
"""

from __future__ import annotations

import itertools
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

#: Stream names; one per hop between stages.
FRAMES = "samplescout:frames"
REGIONS = "samplescout:regions"
STRUCTURES = "samplescout:structures"


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
    - ``publish`` appends ``payload`` to ``stream`` and returns its entry id; ids grow.
    - ``read`` hands each entry of a stream to exactly one consumer of a group, oldest
      first, and keeps it *pending* for that consumer until ``ack``; it returns at most
      ``count`` entries and waits up to ``block_ms`` (``None``: do not wait) for new ones.
    - An entry that is never acked is not lost: it stays pending (and a later reclaim
      may hand it to another consumer with a higher delivery count).
    - ``ack`` of an unknown or already acked id does nothing.
    """

    def ensure_group(self, stream: str, group: str) -> None: ...

    def publish(self, stream: str, payload: bytes) -> str: ...

    def read(
        self, stream: str, group: str, consumer: str, *, count: int = 1, block_ms: int | None = None
    ) -> list[Delivery]: ...

    def ack(self, stream: str, group: str, entry_id: str) -> None: ...

    def pending_count(self, stream: str, group: str) -> int: ...


@dataclass
class _Group:
    queue: deque[str] = field(default_factory=deque)
    pending: dict[str, tuple[str, int]] = field(default_factory=dict)


class InMemoryBus:
    """Thread-safe in-process :class:`Bus` for the embedded default and tests."""

    def __init__(self) -> None:
        self._entries: dict[str, dict[str, bytes]] = {}
        self._groups: dict[tuple[str, str], _Group] = {}
        self._ids = itertools.count(1)
        self._cond = threading.Condition()

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

    def read(
        self, stream: str, group: str, consumer: str, *, count: int = 1, block_ms: int | None = None
    ) -> list[Delivery]:
        with self._cond:
            grp = self._groups.get((stream, group))
            if grp is None:
                raise KeyError(f"no consumer group {group!r} on stream {stream!r}")
            if not grp.queue and block_ms:
                self._cond.wait_for(lambda: bool(grp.queue), timeout=block_ms / 1000.0)
            out: list[Delivery] = []
            while grp.queue and len(out) < count:
                entry_id = grp.queue.popleft()
                grp.pending[entry_id] = (consumer, 1)
                out.append(Delivery(stream, entry_id, self._entries[stream][entry_id]))
            return out

    def ack(self, stream: str, group: str, entry_id: str) -> None:
        with self._cond:
            grp = self._groups.get((stream, group))
            if grp is not None:
                grp.pending.pop(entry_id, None)
                if not any(
                    entry_id in g.pending or entry_id in g.queue
                    for (s, _), g in self._groups.items()
                    if s == stream
                ):
                    self._entries.get(stream, {}).pop(entry_id, None)

    def pending_count(self, stream: str, group: str) -> int:
        with self._cond:
            grp = self._groups.get((stream, group))
            return 0 if grp is None else len(grp.pending)

    def backlog(self, stream: str, group: str) -> int:
        """Entries not yet read by the group."""
        with self._cond:
            grp = self._groups.get((stream, group))
            return 0 if grp is None else len(grp.queue)
