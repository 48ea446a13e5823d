from __future__ import annotations

import threading

from samplescout.bus import Bus, InMemoryBus


def test_in_memory_bus_meets_protocol() -> None:
    assert isinstance(InMemoryBus(), Bus)


def test_each_entry_goes_to_one_consumer_of_a_group_and_to_every_group() -> None:
    bus = InMemoryBus()
    bus.ensure_group("s", "a")
    bus.ensure_group("s", "b")
    ids = [bus.publish("s", f"m{i}".encode()) for i in range(4)]
    got_a1 = bus.read("s", "a", "c1", count=2)
    got_a2 = bus.read("s", "a", "c2", count=10)
    assert [d.payload for d in got_a1] == [b"m0", b"m1"]
    assert [d.payload for d in got_a2] == [b"m2", b"m3"]
    assert [d.entry_id for d in bus.read("s", "b", "c1", count=10)] == ids


def test_unacked_entries_stay_pending() -> None:
    bus = InMemoryBus()
    bus.ensure_group("s", "g")
    bus.publish("s", b"x")
    (d,) = bus.read("s", "g", "c")
    assert bus.pending_count("s", "g") == 1
    assert bus.read("s", "g", "c") == []
    bus.ack("s", "g", d.entry_id)
    bus.ack("s", "g", d.entry_id)  # twice is harmless
    assert bus.pending_count("s", "g") == 0


def test_blocking_read_wakes_on_publish() -> None:
    bus = InMemoryBus()
    bus.ensure_group("s", "g")
    threading.Timer(0.05, lambda: bus.publish("s", b"late")).start()
    got = bus.read("s", "g", "c", block_ms=5000)
    assert [d.payload for d in got] == [b"late"]
