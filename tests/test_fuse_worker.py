"""The fuse worker's session state: idempotent, order-free, resumable by another replica."""

from __future__ import annotations

import json
from pathlib import Path

from samplescout.acquire.sources import BundleSource
from samplescout.app import EmbeddedPipeline
from samplescout.bundle import open_bundle
from samplescout.bus import STRUCTURES
from samplescout.config import Settings
from samplescout.fuse.worker import FuseWorker, result_key
from samplescout.redis_store import RedisEventLog, RedisStateStore
from samplescout.sessions import EventLog, InMemoryStateStore
from samplescout.v1 import pipeline_pb2


def _structure_messages(bundle: Path) -> list[bytes]:
    """The StructuresIdentified entries the embedded pipeline produces for a bundle."""
    pipeline = EmbeddedPipeline(settings=Settings())
    captured: list[bytes] = []
    original = pipeline.bus.publish

    def spy(stream: str, payload: bytes) -> str:
        if stream == STRUCTURES:
            captured.append(payload)
        return original(stream, payload)

    pipeline.bus.publish = spy  # type: ignore[method-assign]
    pipeline.run(BundleSource(open_bundle(bundle)), session_id="s1")
    return captured


def test_redelivery_and_order_do_not_change_the_result(tmp_path: Path) -> None:
    from samplescout.acquire.simulator import simulate

    bundle = simulate(tmp_path / "b", carrier="slide", profile="narrow", seed=2, frame_scale=0.4)
    messages = _structure_messages(bundle)
    assert len(messages) == len(open_bundle(bundle).manifest.frames)

    def run(order: list[bytes]) -> tuple[dict, list[int]]:
        state, events = InMemoryStateStore(), EventLog()
        worker = FuseWorker(state=state, events=events, clock=lambda: 0.0)
        for payload in order:
            worker.handle(payload)
        raw = state.get(result_key("s1"))
        assert raw is not None
        return json.loads(raw), [e.kind for e in events.events("s1")]

    forward, kinds = run(messages)
    twice, kinds_twice = run(messages[:3] + messages + messages[-2:])
    backward, _ = run(messages[::-1])
    assert kinds.count(pipeline_pb2.SESSION_EVENT_KIND_DONE) == 1
    assert kinds_twice == kinds
    for other in (twice, backward):
        assert other["samples"] == forward["samples"]
        assert other["structures"] == forward["structures"]


def test_a_second_replica_continues_a_session(tmp_path: Path, redis_client) -> None:
    from samplescout.acquire.simulator import simulate

    bundle = simulate(tmp_path / "b", carrier="slide", profile="narrow", seed=4, frame_scale=0.4)
    messages = _structure_messages(bundle)
    first = FuseWorker(state=RedisStateStore(redis_client), events=RedisEventLog(redis_client))
    half = len(messages) // 2
    for payload in messages[:half]:
        first.handle(payload)
    del first  # the replica dies; its state is in Redis
    second = FuseWorker(state=RedisStateStore(redis_client), events=RedisEventLog(redis_client))
    for payload in messages[half - 1 :]:  # one redelivered frame included
        second.handle(payload)
    result = json.loads(redis_client.get(result_key("s1")))
    reference = InMemoryStateStore()
    ref_worker = FuseWorker(state=reference, events=EventLog())
    for payload in messages:
        ref_worker.handle(payload)
    assert result["samples"] == json.loads(reference.get(result_key("s1")) or b"{}")["samples"]
