"""Redis frame store, state store and event log against a real Redis."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from samplescout.framestore import FrameStore, InMemoryFrameStore
from samplescout.redis_store import RedisEventLog, RedisFrameStore, RedisStateStore
from samplescout.sessions import StateStore
from samplescout.v1 import pipeline_pb2


@pytest.mark.parametrize("image_kind", ["grey8", "bgr16"])
def test_redis_frame_store_matches_in_memory(redis_client, image_kind: str) -> None:
    rng = np.random.default_rng(1)
    if image_kind == "grey8":
        image = rng.integers(0, 255, (700, 900), dtype=np.uint8)
    else:
        image = rng.integers(0, 4095, (700, 900, 3), dtype=np.uint16)
    store = RedisFrameStore(redis_client, tile=128, ttl_s=60)
    ref = InMemoryFrameStore()
    assert isinstance(store, FrameStore)
    for s in (store, ref):
        info = s.put("sess/0", image, 8)
        assert (info.width, info.height, info.factor) == (900, 700, 8)
    np.testing.assert_array_equal(store.coarse("sess/0"), ref.coarse("sess/0"))
    for box in [(0, 0, 50, 50), (100, 120, 356, 376), (850, 650, 1000, 800), (127, 127, 129, 129)]:
        np.testing.assert_array_equal(store.crop("sess/0", box), ref.crop("sess/0", box))
    assert store.pixels_read("sess/0") == ref.pixels_read("sess/0")
    assert 0 < redis_client.ttl("samplescout:frame:sess/0:meta") <= 60


def test_crop_fetches_only_the_tiles_it_needs(redis_client) -> None:
    image = np.zeros((1024, 1024), np.uint8)
    store = RedisFrameStore(redis_client, tile=256)
    store.put("s/1", image, 8)
    written = store.bytes_written["s/1"]
    assert written >= image.nbytes
    store.crop("s/1", (10, 10, 100, 100))
    assert store.bytes_read["s/1"] == 256 * 256
    store.crop("s/1", (200, 200, 300, 300))  # four tiles, one of them already fetched
    assert store.bytes_read["s/1"] == 4 * 256 * 256
    store.crop("s/1", (0, 0, 512, 512))  # all four cached: nothing more crosses the network
    assert store.bytes_read["s/1"] == 4 * 256 * 256


def test_delete_session_removes_frames(redis_client) -> None:
    store = RedisFrameStore(redis_client, tile=64)
    store.put("gone/0", np.zeros((100, 100), np.uint8), 4)
    store.put("kept/0", np.zeros((100, 100), np.uint8), 4)
    store.delete_session("gone")
    assert not list(redis_client.scan_iter(match="samplescout:frame:gone/*"))
    assert list(redis_client.scan_iter(match="samplescout:frame:kept/*"))
    with pytest.raises(KeyError, match="not in the frame store"):
        store.coarse("gone/0")


def test_state_store_lock_serialises_updates(redis_client) -> None:
    state = RedisStateStore(redis_client, ttl_s=60)
    assert isinstance(state, StateStore)
    state.set("k", b"0")

    def bump() -> None:
        for _ in range(20):
            with state.lock("k"):
                value = int(state.get("k") or b"0")
                state.set("k", str(value + 1).encode())

    threads = [threading.Thread(target=bump) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert state.get("k") == b"80"


def test_event_log_follow_until_terminal(redis_client) -> None:
    log = RedisEventLog(redis_client, ttl_s=60)
    got: list[int] = []

    def watch() -> None:
        got.extend(e.kind for e in log.follow("s1", timeout_s=10))

    t = threading.Thread(target=watch)
    t.start()
    for kind in (
        pipeline_pb2.SESSION_EVENT_KIND_STARTED,
        pipeline_pb2.SESSION_EVENT_KIND_FRAME_ACQUIRED,
        pipeline_pb2.SESSION_EVENT_KIND_DONE,
        pipeline_pb2.SESSION_EVENT_KIND_FRAME_ACQUIRED,  # after the end: not followed
    ):
        log.emit(pipeline_pb2.SessionEvent(session_id="s1", kind=kind))
    t.join(10)
    assert got == [
        pipeline_pb2.SESSION_EVENT_KIND_STARTED,
        pipeline_pb2.SESSION_EVENT_KIND_FRAME_ACQUIRED,
        pipeline_pb2.SESSION_EVENT_KIND_DONE,
    ]
    assert [e.sequence for e in log.events("s1")] == [1, 2, 3, 4]
    assert log.known("s1") and not log.known("s2")
