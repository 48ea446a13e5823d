"""The worker consume loop: ack after handling, own pending first, retries, dead letters."""

from __future__ import annotations

import logging
import threading
import time

import structlog
from structlog.testing import LogCapture

from samplescout.bus import Delivery, InMemoryBus
from samplescout.consumer import StreamConsumer
from samplescout.logs import configure_logging


def _consumer(bus: InMemoryBus, handler, **kw) -> StreamConsumer:
    return StreamConsumer(
        bus=bus, stream="s", group="g", consumer="c", handler=handler, block_ms=50, **kw
    )


def _run_until(consumer: StreamConsumer, done, timeout: float = 10.0) -> None:
    stop = threading.Event()
    t = threading.Thread(target=consumer.run, args=(stop,))
    t.start()
    deadline = time.monotonic() + timeout
    while not done() and time.monotonic() < deadline:
        time.sleep(0.01)
    stop.set()
    t.join(5)
    assert done()


def test_acks_after_handling_and_finishes_own_pending_first() -> None:
    bus = InMemoryBus()
    bus.ensure_group("s", "g")
    bus.publish("s", b"old")
    bus.read("s", "g", "c")  # read before a crash, never acked
    bus.publish("s", b"new")
    seen: list[bytes] = []
    consumer = _consumer(bus, seen.append)
    _run_until(consumer, lambda: len(seen) == 2)
    assert seen == [b"old", b"new"]
    assert bus.pending_count("s", "g") == 0


def test_failing_entry_is_retried_then_dead_lettered_with_reason() -> None:
    bus = InMemoryBus()
    bus.ensure_group("s", "g")
    bus.publish("s", b"poison")
    calls: list[int] = []
    dead: list[tuple[Delivery, str]] = []

    def handler(payload: bytes) -> None:
        calls.append(1)
        raise ValueError("cannot parse")

    consumer = _consumer(
        bus,
        handler,
        on_dead=lambda d, r: dead.append((d, r)),
        max_deliveries=3,
        reclaim_idle_ms=10,
        reclaim_every_s=0.02,
    )
    _run_until(consumer, lambda: bool(dead))
    assert len(calls) == 3
    delivery, reason = dead[0]
    assert delivery.payload == b"poison" and "ValueError: cannot parse" in reason
    assert bus.pending_count("s", "g") == 0
    assert bus.dead[0][2] == reason


def test_log_lines_carry_stage_and_session() -> None:
    bus = InMemoryBus()
    bus.ensure_group("s", "g")
    bus.publish("s", b"x")
    handled = threading.Event()
    consumer = _consumer(
        bus, lambda p: handled.set(), describe=lambda p: {"session_id": "abc", "frame_index": 4}
    )
    capture = LogCapture()
    structlog.configure(
        processors=[structlog.contextvars.merge_contextvars, capture],
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
    )
    try:
        _run_until(consumer, handled.is_set)
    finally:
        configure_logging()
    logs = capture.entries
    line = next(entry for entry in logs if entry["event"] == "handled")
    assert line["session_id"] == "abc" and line["frame_index"] == 4 and line["stage"] == "g"


def test_stop_leaves_unhandled_entries_pending_not_lost() -> None:
    bus = InMemoryBus()
    bus.ensure_group("s", "g")
    for i in range(5):
        bus.publish("s", str(i).encode())
    stop = threading.Event()
    seen: list[bytes] = []

    def handler(payload: bytes) -> None:
        seen.append(payload)
        stop.set()  # SIGTERM arrives while the first entry is in hand

    consumer = _consumer(bus, handler, batch=5)
    consumer.run(stop)
    assert seen == [b"0"]
    left = bus.read_pending("s", "g", "c")
    assert [d.payload for d in left] == [b"1", b"2", b"3", b"4"]


def test_logging_survives_a_closed_stderr(monkeypatch) -> None:
    import io
    import sys

    from samplescout.logs import get_logger

    configure_logging()
    closed = io.StringIO()
    closed.close()
    monkeypatch.setattr(sys, "stderr", closed)
    get_logger(component="test").error("must not raise")
