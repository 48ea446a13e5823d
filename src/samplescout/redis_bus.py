"""Redis Streams implementation of :class:`samplescout.bus.Bus`."""

from __future__ import annotations

import time
from typing import Any

import redis

from samplescout.bus import DEAD, Delivery

#: Streams are trimmed to about this many entries (``XADD MAXLEN ~``).
DEFAULT_MAXLEN = 100_000
PAYLOAD = b"p"


class RedisBus:
    """:class:`~samplescout.bus.Bus` over Redis Streams with consumer groups.

    Parameters
    ----------
    client
        A ``redis.Redis`` client (bytes responses: ``decode_responses=False``).
    maxlen
        Approximate bound on each stream's length.
    """

    def __init__(self, client: redis.Redis, *, maxlen: int = DEFAULT_MAXLEN) -> None:
        self._r: Any = client
        self._maxlen = maxlen

    def ensure_group(self, stream: str, group: str) -> None:
        try:
            # From id 0: entries published before the group existed are still worked on.
            self._r.xgroup_create(stream, group, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def publish(self, stream: str, payload: bytes) -> str:
        entry_id = self._r.xadd(stream, {PAYLOAD: payload}, maxlen=self._maxlen, approximate=True)
        return _s(entry_id)

    def read(
        self, stream: str, group: str, consumer: str, *, count: int = 1, block_ms: int | None = None
    ) -> list[Delivery]:
        reply = self._r.xreadgroup(group, consumer, {stream: ">"}, count=count, block=block_ms)
        return self._deliveries(stream, reply, deliveries=1)

    def read_pending(
        self, stream: str, group: str, consumer: str, *, count: int = 100
    ) -> list[Delivery]:
        reply = self._r.xreadgroup(group, consumer, {stream: "0"}, count=count)
        out = self._deliveries(stream, reply, deliveries=0)
        if not out:
            return out
        counts = self._delivery_counts(stream, group, consumer, [d.entry_id for d in out])
        return [Delivery(d.stream, d.entry_id, d.payload, counts.get(d.entry_id, 1)) for d in out]

    def reclaim(
        self, stream: str, group: str, consumer: str, *, min_idle_ms: int, count: int = 100
    ) -> list[Delivery]:
        reply = self._r.xautoclaim(stream, group, consumer, min_idle_ms, "0-0", count=count)
        claimed = reply[1]
        out = [
            Delivery(stream, _s(eid), fields[PAYLOAD], 0)
            for eid, fields in claimed
            if fields and PAYLOAD in fields
        ]
        # Entries trimmed away while pending come back without fields: nothing to do for them.
        for eid, fields in claimed:
            if not fields:
                self._r.xack(stream, group, eid)
        if not out:
            return out
        counts = self._delivery_counts(stream, group, consumer, [d.entry_id for d in out])
        return [Delivery(d.stream, d.entry_id, d.payload, counts.get(d.entry_id, 1)) for d in out]

    def dead_letter(self, delivery: Delivery, group: str, reason: str) -> None:
        pipe = self._r.pipeline(transaction=True)
        pipe.xadd(
            DEAD,
            {
                b"stream": delivery.stream,
                b"group": group,
                b"id": delivery.entry_id,
                b"deliveries": str(delivery.deliveries),
                b"reason": reason[:2000],
                PAYLOAD: delivery.payload,
                b"at": f"{time.time():.3f}",
            },
            maxlen=self._maxlen,
            approximate=True,
        )
        pipe.xack(delivery.stream, group, delivery.entry_id)
        pipe.execute()

    def ack(self, stream: str, group: str, entry_id: str) -> None:
        self._r.xack(stream, group, entry_id)

    def pending_count(self, stream: str, group: str) -> int:
        info = self._r.xpending(stream, group)
        return int(info["pending"]) if info else 0

    def lag(self, stream: str, group: str) -> int:
        for g in self._r.xinfo_groups(stream):
            if _s(g["name"]) == group:
                lag = g.get("lag")
                return int(lag) if lag is not None else 0
        return 0

    def prune_consumers(self, stream: str, group: str, *, min_idle_ms: int) -> list[str]:
        """Delete consumers idle for ``min_idle_ms`` that own no pending entries."""
        removed = []
        for c in self._r.xinfo_consumers(stream, group):
            if int(c["pending"]) == 0 and int(c["idle"]) >= min_idle_ms:
                self._r.xgroup_delconsumer(stream, group, c["name"])
                removed.append(_s(c["name"]))
        return removed

    def _deliveries(self, stream: str, reply: Any, *, deliveries: int) -> list[Delivery]:
        out: list[Delivery] = []
        for _name, entries in reply or []:
            for eid, fields in entries:
                if fields and PAYLOAD in fields:
                    out.append(Delivery(stream, _s(eid), fields[PAYLOAD], deliveries))
        return out

    def _delivery_counts(
        self, stream: str, group: str, consumer: str, ids: list[str]
    ) -> dict[str, int]:
        rows = self._r.xpending_range(
            stream,
            group,
            min=min(ids, key=_id_key),
            max=max(ids, key=_id_key),
            count=len(ids) + 100,
            consumername=consumer,
        )
        return {_s(r["message_id"]): int(r["times_delivered"]) for r in rows}


def _s(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _id_key(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)
