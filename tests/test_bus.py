"""The Bus contract, checked on the in-memory bus and on Redis Streams alike."""

from __future__ import annotations

import threading
import time

import pytest

from samplescout.bus import DEAD, Bus, InMemoryBus
from samplescout.redis_bus import RedisBus


@pytest.fixture(params=["memory", "redis"])
def bus(request: pytest.FixtureRequest) -> Bus:
    if request.param == "memory":
        return InMemoryBus()
    return RedisBus(request.getfixturevalue("redis_client"))


def test_meets_protocol(bus: Bus) -> None:
    assert isinstance(bus, Bus)


def test_each_entry_goes_to_one_consumer_of_a_group_and_to_every_group(bus: Bus) -> None:
    bus.ensure_group("s", "a")
    bus.ensure_group("s", "a")  # idempotent
    bus.ensure_group("s", "b")
    ids = [bus.publish("s", f"m{i}".encode()) for i in range(4)]
    got_a1 = bus.read("s", "a", "c1", count=2)
    got_a2 = bus.read("s", "a", "c2", count=10)
    assert [d.payload for d in got_a1] == [b"m0", b"m1"]
    assert [d.payload for d in got_a2] == [b"m2", b"m3"]
    assert [d.entry_id for d in bus.read("s", "b", "c1", count=10)] == ids
    assert bus.lag("s", "a") == 0


def test_unacked_entries_stay_pending_for_their_consumer(bus: Bus) -> None:
    bus.ensure_group("s", "g")
    bus.publish("s", b"x")
    (d,) = bus.read("s", "g", "c")
    assert bus.pending_count("s", "g") == 1
    assert bus.read("s", "g", "c") == []
    (again,) = bus.read_pending("s", "g", "c")
    assert again.payload == b"x" and again.entry_id == d.entry_id
    assert bus.read_pending("s", "g", "other") == []
    bus.ack("s", "g", d.entry_id)
    bus.ack("s", "g", d.entry_id)  # twice is harmless
    assert bus.pending_count("s", "g") == 0
    assert bus.read_pending("s", "g", "c") == []


def test_reclaim_takes_over_idle_entries_with_delivery_count(bus: Bus) -> None:
    bus.ensure_group("s", "g")
    bus.publish("s", b"job")
    bus.read("s", "g", "dead-worker")
    assert bus.reclaim("s", "g", "alive", min_idle_ms=60_000) == []
    time.sleep(0.05)
    (d,) = bus.reclaim("s", "g", "alive", min_idle_ms=20)
    assert d.payload == b"job" and d.deliveries == 2
    assert bus.read_pending("s", "g", "alive")[0].entry_id == d.entry_id


def test_dead_letter_acks(bus: Bus) -> None:
    bus.ensure_group("s", "g")
    bus.publish("s", b"poison")
    (d,) = bus.read("s", "g", "c")
    bus.dead_letter(d, "g", "bad payload")
    assert bus.pending_count("s", "g") == 0
    if isinstance(bus, RedisBus):
        (entry,) = bus._r.xrange(DEAD)  # type: ignore[attr-defined]
        assert entry[1][b"reason"] == b"bad payload"
        assert entry[1][b"p"] == b"poison"


def test_blocking_read_wakes_on_publish(bus: Bus) -> None:
    bus.ensure_group("s", "g")
    threading.Timer(0.1, lambda: bus.publish("s", b"late")).start()
    got = bus.read("s", "g", "c", block_ms=5000)
    assert [d.payload for d in got] == [b"late"]


def test_redis_stream_length_is_bounded(redis_client) -> None:
    bus = RedisBus(redis_client, maxlen=100)
    for i in range(1000):
        bus.publish("s", str(i).encode())
    assert redis_client.xlen("s") < 400


def test_redis_prune_keeps_consumers_that_own_entries(redis_client) -> None:
    bus = RedisBus(redis_client)
    bus.ensure_group("s", "g")
    bus.publish("s", b"a")
    bus.publish("s", b"b")
    bus.read("s", "g", "owner")
    (done,) = bus.read("s", "g", "idle")
    bus.ack("s", "g", done.entry_id)  # it finished its work and went away
    time.sleep(0.02)
    assert bus.prune_consumers("s", "g", min_idle_ms=1) == ["idle"]
    names = {c["name"] for c in redis_client.xinfo_consumers("s", "g")}
    assert names == {b"owner"}
