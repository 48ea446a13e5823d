"""The fuse worker's session state: idempotent, order-free, resumable by another replica."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

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


def test_state_is_one_part_per_frame_and_goes_with_the_session(tmp_path: Path) -> None:
    """Each frame's part is written once under its own key, so the session document
    does not grow with the structures; a replica with no parts in memory reads them
    back to the same result; a session begun by an earlier version (one document with
    the first frames' state) is continued; deleting the state leaves no key behind."""
    from samplescout.acquire.simulator import simulate
    from samplescout.fuse.state import FuseState
    from samplescout.fuse.worker import delete_state, part_key, state_key

    bundle = simulate(tmp_path / "b", carrier="slide", profile="narrow", seed=3, frame_scale=0.4)
    messages = _structure_messages(bundle)
    frames = [pipeline_pb2.StructuresIdentified.FromString(m) for m in messages]
    state = InMemoryStateStore()
    worker = FuseWorker(state=state, events=EventLog(), clock=lambda: 0.0)
    sizes = []
    for payload in messages[:-1]:
        worker.handle(payload)
        sizes.append(len(state.get(state_key("s1")) or b""))
    parts = [state.get(part_key("s1", m.frame.index)) for m in frames[:-1] if not m.end_of_session]
    assert all(p is not None for p in parts)
    # the document holds per-frame statistics only: it grows by about as much each frame
    steps = np.diff(sizes)
    assert steps.max() < 2 * steps.min() + 200
    assert max(sizes) < sum(len(p or b"") for p in parts)
    # a fresh replica, nothing in memory, finishes the session from the store alone
    FuseWorker(state=state, events=EventLog(), clock=lambda: 0.0).handle(messages[-1])
    resumed = json.loads(state.get(result_key("s1")) or b"{}")
    reference_state = InMemoryStateStore()
    reference = FuseWorker(state=reference_state, events=EventLog(), clock=lambda: 0.0)
    for payload in messages:
        reference.handle(payload)
    expected = json.loads(reference_state.get(result_key("s1")) or b"{}")
    assert resumed["samples"] == expected["samples"]
    assert resumed["structures"] == expected["structures"]
    # an earlier version's document: the first frames' state in it, no parts for them
    legacy = InMemoryStateStore()
    first = FuseWorker(state=legacy, events=EventLog(), clock=lambda: 0.0)
    for payload in messages[:2]:
        first.handle(payload)
    doc = json.loads(legacy.get(state_key("s1")) or b"{}")
    merged = FuseState()
    for index in doc["frames"]:
        merged.merge(FuseState.from_dict(json.loads(legacy.get(part_key("s1", index)) or b"")))
        legacy.delete(part_key("s1", index))
    doc["fuse"] = merged.to_dict()
    legacy.set(state_key("s1"), json.dumps(doc).encode())
    later = FuseWorker(state=legacy, events=EventLog(), clock=lambda: 0.0)
    for payload in messages[2:]:
        later.handle(payload)
    assert json.loads(legacy.get(result_key("s1")) or b"{}")["samples"] == expected["samples"]
    delete_state(state, "s1")
    assert state.get(state_key("s1")) is None
    assert all(state.get(part_key("s1", m.frame.index)) is None for m in frames)
    # a replica that merged part of a session whose state was then deleted starts over
    # when the id comes again (nothing of the old session in the new result)
    again = InMemoryStateStore()
    replica = FuseWorker(state=again, events=EventLog(), clock=lambda: 0.0)
    other = _structure_messages(
        simulate(tmp_path / "o", carrier="slide", profile="narrow", seed=5, frame_scale=0.4)
    )
    assert len(other) > 2  # the other session does not end here
    for payload in other[:2]:
        msg = pipeline_pb2.StructuresIdentified.FromString(payload)
        msg.session.progressive = True
        replica.handle(msg.SerializeToString())
    delete_state(again, "s1")
    for payload in messages:
        replica.handle(payload)
    assert json.loads(again.get(result_key("s1")) or b"{}")["samples"] == expected["samples"]
