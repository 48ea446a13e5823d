"""Faults against real Redis and real processes: the result equals the undisturbed run's,
or the session ends with an explicit failure — never a hang, never silent loss."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
import redis
from test_distributed import Cluster, _control, _run_session

from samplescout.acquire.sources import BundleSource
from samplescout.app import (
    EmbeddedPipeline,
    SessionManager,
    connect_redis,
    describe_entry,
    load_stages,
)
from samplescout.bundle import open_bundle
from samplescout.bus import REGIONS, STRUCTURES
from samplescout.config import Settings
from samplescout.consumer import StreamConsumer
from samplescout.control.server import build_server
from samplescout.identify.worker import IdentifyWorker
from samplescout.v1 import control_pb2, control_pb2_grpc, pipeline_pb2

from conftest import _answers, _free_port, assert_same_samples


@pytest.fixture(scope="module")
def narrow_slide(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from samplescout.acquire.simulator import simulate

    return simulate(
        tmp_path_factory.mktemp("sim") / "narrow",
        carrier="slide",
        profile="narrow",
        seed=8,
        frame_scale=0.5,
    )


@pytest.fixture(scope="module")
def reference(narrow_slide: Path) -> dict:
    return EmbeddedPipeline(settings=Settings()).run(BundleSource(open_bundle(narrow_slide)))


class PrivateRedis:
    """A redis-server of the test's own (another port, append-only file), restartable."""

    def __init__(self, workdir: Path) -> None:
        exe = shutil.which("redis-server")
        assert exe is not None, "redis-server is needed for the restart test"
        self.exe, self.dir, self.port = exe, workdir, _free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                self.exe,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.dir),
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--save",
                "",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while not _answers("127.0.0.1", self.port):
            assert time.monotonic() < deadline, "private redis-server did not start"
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=20)
            self.proc = None


@pytest.fixture()
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _wait_for(predicate, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.05)


def _finish(stub: control_pb2_grpc.ControlServiceStub, sid: str) -> dict:
    events = list(stub.WatchSession(control_pb2.WatchSessionRequest(session_id=sid), timeout=240))
    assert events[-1].event.kind == pipeline_pb2.SESSION_EVENT_KIND_DONE, events[-1]
    return json.loads(stub.GetResult(control_pb2.GetResultRequest(session_id=sid)).result.json)


def test_redis_restart_mid_session(
    private_redis: PrivateRedis, tmp_path: Path, narrow_slide: Path, reference: dict
) -> None:
    cluster = Cluster(private_redis.url, tmp_path)
    try:
        for service in ("acquire", "select", "identify", "fuse", "control"):
            cluster.start(service)
        stub = _control(cluster)
        sid = stub.StartSession(
            control_pb2.StartSessionRequest(bundle_path=str(narrow_slide)), timeout=30
        ).session_id
        client = redis.Redis.from_url(private_redis.url)
        _wait_for(lambda: client.exists(STRUCTURES) and client.xlen(STRUCTURES) >= 3)
        private_redis.stop()  # the AOF keeps streams, groups and state
        time.sleep(1.0)
        private_redis.start()
        assert_same_samples(_finish(stub, sid), reference)
    finally:
        cluster.stop_all()


def test_sigterm_during_work_drains_and_loses_nothing(
    redis_client,
    redis_server: str,
    tmp_path: Path,
    narrow_slide: Path,
    reference: dict,
) -> None:
    cluster = Cluster(redis_server, tmp_path)
    try:
        for service in ("acquire", "select", "fuse", "control"):
            cluster.start(service)
        cluster.start("identify", "identify-1")
        stub = _control(cluster)
        sid = stub.StartSession(
            control_pb2.StartSessionRequest(bundle_path=str(narrow_slide)), timeout=30
        ).session_id
        _wait_for(lambda: redis_client.exists(STRUCTURES) and redis_client.xlen(STRUCTURES) >= 2)
        assert cluster.stop("identify-1", signal.SIGTERM) == 0  # drained, clean exit
        cluster.start("identify", "identify-2")
        assert_same_samples(_finish(stub, sid), reference)
        _wait_for(lambda: redis_client.xpending(REGIONS, "identify")["pending"] == 0, 30)
    finally:
        cluster.stop_all()


def test_slow_worker_beyond_the_reclaim_threshold_changes_nothing(
    redis_client,
    redis_server: str,
    tmp_path: Path,
    narrow_slide: Path,
    reference: dict,
) -> None:
    cluster = Cluster(redis_server, tmp_path)
    stop = threading.Event()
    threads: list[threading.Thread] = []
    try:
        for service in ("acquire", "select", "fuse", "control"):
            cluster.start(service)
        settings = Settings(redis_url=redis_server)
        backends = connect_redis(settings)
        worker = IdentifyWorker(
            bus=backends.bus,
            store=backends.store,
            events=backends.events,
            identifiers=load_stages(settings).identifiers,
        )
        slow_calls: list[int] = []

        def slow(payload: bytes) -> None:
            slow_calls.append(1)
            time.sleep(2.5)  # far beyond the 0.5 s reclaim threshold
            worker.handle(payload)

        for name, handler in (("slow", slow), ("quick", worker.handle)):
            consumer = StreamConsumer(
                bus=backends.bus,
                stream=REGIONS,
                group="identify",
                consumer=name,
                handler=handler,
                reclaim_idle_ms=500,
                reclaim_every_s=0.2,
                block_ms=100,
                describe=describe_entry(pipeline_pb2.RegionsSelected),
            )
            t = threading.Thread(target=consumer.run, args=(stop,), daemon=True)
            t.start()
            threads.append(t)
        result = _run_session(_control(cluster), narrow_slide)
        assert slow_calls, "the slow worker took part"
        assert_same_samples(result, reference)
        events = backends.events.events(_only_session(redis_client))
        done = [e for e in events if e.kind == pipeline_pb2.SESSION_EVENT_KIND_DONE]
        assert len(done) == 1
    finally:
        stop.set()
        for t in threads:
            t.join(10)
        cluster.stop_all()


def _only_session(client: redis.Redis) -> str:
    keys = [
        k.decode()
        for k in client.scan_iter(match="samplescout:events:*")
        if not k.endswith(b":seq")
    ]
    assert len(keys) == 1
    return keys[0].removeprefix("samplescout:events:")


def test_client_disconnect_during_watch_leaves_the_session_running(narrow_slide: Path) -> None:
    runner = SessionManager(EmbeddedPipeline(settings=Settings()))
    server, port, _ = build_server(runner, "127.0.0.1:0")
    server.start()
    try:
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        stub = control_pb2_grpc.ControlServiceStub(channel)
        sid = stub.StartSession(
            control_pb2.StartSessionRequest(bundle_path=str(narrow_slide)), timeout=30
        ).session_id
        call = stub.WatchSession(control_pb2.WatchSessionRequest(session_id=sid), timeout=120)
        next(call)
        call.cancel()  # the LIMS goes away mid-stream
        channel.close()
        fresh = control_pb2_grpc.ControlServiceStub(grpc.insecure_channel(f"127.0.0.1:{port}"))
        result = _finish(fresh, sid)
        assert result["stats"]["frames"] == len(open_bundle(narrow_slide).manifest.frames)
    finally:
        server.stop(None)
