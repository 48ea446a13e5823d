"""A small load test: concurrent sessions through the Control API all complete correctly."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc

from samplescout.acquire.sources import BundleSource
from samplescout.app import EmbeddedPipeline, SessionManager
from samplescout.bundle import open_bundle
from samplescout.config import Settings
from samplescout.control.server import build_server
from samplescout.v1 import control_pb2, control_pb2_grpc, pipeline_pb2

from conftest import assert_same_samples

SESSIONS = 8


def test_concurrent_sessions_complete_with_the_right_result(easy_wide_slide: Path) -> None:
    reference = EmbeddedPipeline(settings=Settings()).run(
        BundleSource(open_bundle(easy_wide_slide))
    )
    runner = SessionManager(EmbeddedPipeline(settings=Settings()))
    server, port, _ = build_server(runner, "127.0.0.1:0")
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    stub = control_pb2_grpc.ControlServiceStub(channel)

    def one(_: int) -> dict:
        sid = stub.StartSession(
            control_pb2.StartSessionRequest(bundle_path=str(easy_wide_slide)), timeout=30
        ).session_id
        watch = control_pb2.WatchSessionRequest(session_id=sid)
        events = list(stub.WatchSession(watch, timeout=300))
        assert events[-1].event.kind == pipeline_pb2.SESSION_EVENT_KIND_DONE
        got = stub.GetResult(control_pb2.GetResultRequest(session_id=sid), timeout=30)
        assert got.state == control_pb2.SESSION_STATE_DONE
        return json.loads(got.result.json)

    try:
        with ThreadPoolExecutor(SESSIONS) as pool:
            results = list(pool.map(one, range(SESSIONS)))
    finally:
        channel.close()
        server.stop(None)
    assert len(results) == SESSIONS
    for result in results:
        assert_same_samples(result, reference)
    # Nothing of the finished sessions is left in the frame store.
    assert not runner.pipeline.store._full  # type: ignore[attr-defined]
