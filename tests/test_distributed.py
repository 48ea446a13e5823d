"""The five services as separate processes over a real Redis and real gRPC on loopback."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from samplescout.acquire.drivers import open_microscope
from samplescout.acquire.sources import BundleSource
from samplescout.app import EmbeddedPipeline, localize_adaptive
from samplescout.bundle import open_bundle
from samplescout.bus import FRAMES, REGIONS
from samplescout.config import Settings
from samplescout.control.adaptive import raster_frame_count
from samplescout.v1 import control_pb2, control_pb2_grpc, pipeline_pb2, types_pb2

from conftest import _free_port, assert_same_samples
from test_control_grpc import upload_session

ENV = {
    "SAMPLESCOUT_RECLAIM_IDLE_MS": "1500",
    "SAMPLESCOUT_RECLAIM_EVERY_S": "0.5",
    "SAMPLESCOUT_MAX_DELIVERIES": "3",
    "SAMPLESCOUT_LOG_FORMAT": "json",
}


class Cluster:
    def __init__(self, redis_url: str, tmp: Path) -> None:
        self.redis_url = redis_url
        self.tmp = tmp
        self.procs: dict[str, tuple[subprocess.Popen[bytes], int, int]] = {}

    def start(self, service: str, name: str | None = None) -> int:
        name = name or service
        port, metrics = _free_port(), _free_port()
        log = open(self.tmp / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "samplescout",
                "serve",
                service,
                "--redis",
                self.redis_url,
                "--grpc",
                f"127.0.0.1:{port}",
                "--consumer",
                name,
                "--metrics-port",
                str(metrics),
            ],
            env={**os.environ, **ENV},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.procs[name] = (proc, port, metrics)
        self._wait_healthy(name, port)
        return port

    def _wait_healthy(self, name: str, port: int) -> None:
        deadline = time.monotonic() + 60
        with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
            stub = health_pb2_grpc.HealthStub(ch)
            while True:
                proc = self.procs[name][0]
                assert proc.poll() is None, (self.tmp / f"{name}.log").read_text()
                try:
                    reply = stub.Check(health_pb2.HealthCheckRequest(), timeout=1)
                    if reply.status == health_pb2.HealthCheckResponse.SERVING:
                        return
                except grpc.RpcError:
                    pass
                assert time.monotonic() < deadline, f"{name} did not become healthy"
                time.sleep(0.2)

    def handled(self, name: str, stage: str) -> float:
        metrics = self.procs[name][2]
        text = urllib.request.urlopen(f"http://127.0.0.1:{metrics}/metrics", timeout=5).read()
        m = re.search(
            rf'samplescout_messages_total{{outcome="ok",stage="{stage}"}} ([0-9.e+]+)',
            text.decode(),
        )
        return float(m.group(1)) if m else 0.0

    def stop(self, name: str, sig: int = signal.SIGTERM) -> int:
        proc = self.procs.pop(name)[0]
        proc.send_signal(sig)
        return proc.wait(timeout=30)

    def stop_all(self) -> None:
        for name in list(self.procs):
            self.stop(name, signal.SIGKILL)


@pytest.fixture()
def cluster(redis_client, redis_server: str, tmp_path: Path) -> Iterator[Cluster]:
    c = Cluster(redis_server, tmp_path)
    try:
        yield c
    finally:
        c.stop_all()


def _control(cluster: Cluster) -> control_pb2_grpc.ControlServiceStub:
    port = cluster.procs["control"][1]
    return control_pb2_grpc.ControlServiceStub(grpc.insecure_channel(f"127.0.0.1:{port}"))


def _run_session(stub: control_pb2_grpc.ControlServiceStub, bundle: Path) -> dict:
    sid = stub.StartSession(
        control_pb2.StartSessionRequest(bundle_path=str(bundle)), timeout=30
    ).session_id
    events = list(stub.WatchSession(control_pb2.WatchSessionRequest(session_id=sid), timeout=180))
    assert events[-1].event.kind == pipeline_pb2.SESSION_EVENT_KIND_DONE, events[-1]
    reply = stub.GetResult(control_pb2.GetResultRequest(session_id=sid), timeout=30)
    assert reply.state == control_pb2.SESSION_STATE_DONE
    return json.loads(reply.result.json)


@pytest.fixture(scope="module")
def narrow_slide(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from samplescout.acquire.simulator import simulate

    return simulate(
        tmp_path_factory.mktemp("sim") / "narrow-slide",
        carrier="slide",
        profile="narrow",
        seed=5,
        frame_scale=0.5,
    )


def test_five_processes_give_the_embedded_result(cluster: Cluster, easy_wide_slide: Path) -> None:
    for service in ("acquire", "select", "identify", "fuse", "control"):
        cluster.start(service)
    stub = _control(cluster)
    distributed = _run_session(stub, easy_wide_slide)
    embedded = EmbeddedPipeline(settings=Settings()).run(BundleSource(open_bundle(easy_wide_slide)))
    assert_same_samples(distributed, embedded)
    assert distributed["stats"]["frames"] == 1
    # Frames uploaded in the request take the same path.
    bundle = open_bundle(easy_wide_slide)
    spec = bundle.manifest.frames[0]
    frame = types_pb2.Frame(image=(easy_wide_slide / spec.file).read_bytes())
    frame.pose.center_mm.x, frame.pose.center_mm.y = spec.pose.center_mm
    frame.pose.pixel_size_mm, frame.pose.rotation_deg = (
        spec.pose.pixel_size_mm,
        spec.pose.rotation_deg,
    )
    reply = stub.LocalizeFrames(
        control_pb2.LocalizeFramesRequest(frames=[frame], carrier=types_pb2.CARRIER_SLIDE),
        timeout=120,
    )
    assert_same_samples(json.loads(reply.result.json), embedded)
    # An adaptive path: acquire plans every frame from the localization fuse (another
    # process) published after the one before, so it takes the embedded path exactly.
    source = control_pb2.MicroscopeSource(address="sim:petri_dish", adaptive=True)
    sid = stub.StartSession(
        control_pb2.StartSessionRequest(microscope=source), timeout=30
    ).session_id
    events = list(stub.WatchSession(control_pb2.WatchSessionRequest(session_id=sid), timeout=180))
    assert events[-1].event.kind == pipeline_pb2.SESSION_EVENT_KIND_DONE, events[-1]
    adaptive = json.loads(
        stub.GetResult(control_pb2.GetResultRequest(session_id=sid), timeout=30).result.json
    )
    local, frames = localize_adaptive(open_microscope("sim:petri_dish"), Settings())
    assert (
        adaptive["stats"]["frames"]
        == frames
        < raster_frame_count(open_microscope("sim:petri_dish").describe())
    )
    assert_same_samples(adaptive, local)
    assert adaptive["stats"]["adaptive"] == local["stats"]["adaptive"]  # the same path
    # SIGTERM drains and exits cleanly.
    assert cluster.stop("select") == 0


def test_two_identify_workers_share_the_work(cluster: Cluster, narrow_slide: Path) -> None:
    for service in ("acquire", "select", "fuse", "control"):
        cluster.start(service)
    cluster.start("identify", "identify-a")
    cluster.start("identify", "identify-b")
    result = _run_session(_control(cluster), narrow_slide)
    a, b = cluster.handled("identify-a", "identify"), cluster.handled("identify-b", "identify")
    frames = len(open_bundle(narrow_slide).manifest.frames)
    assert a + b == frames
    assert a > 0 and b > 0
    embedded = EmbeddedPipeline(settings=Settings()).run(BundleSource(open_bundle(narrow_slide)))
    assert_same_samples(result, embedded)
    # Frames uploaded one by one, in reverse order, give the same answer.
    uploaded = upload_session(_control(cluster), narrow_slide, list(range(frames))[::-1])
    assert_same_samples(uploaded, embedded)


def test_worker_dying_between_read_and_ack_is_reclaimed(
    cluster: Cluster, redis_client, easy_wide_slide: Path
) -> None:
    for service in ("acquire", "select", "fuse", "control"):
        cluster.start(service)
    stub = _control(cluster)
    sid = stub.StartSession(
        control_pb2.StartSessionRequest(bundle_path=str(easy_wide_slide)), timeout=30
    ).session_id
    # A worker that read the entry and died before acking it.
    redis_client.xgroup_create(REGIONS, "identify", id="0", mkstream=True)
    deadline = time.monotonic() + 60
    taken = []
    while not taken:
        assert time.monotonic() < deadline, "no regions were published"
        taken = redis_client.xreadgroup("identify", "ghost", {REGIONS: ">"}, count=10, block=500)
    cluster.start("identify")
    events = list(stub.WatchSession(control_pb2.WatchSessionRequest(session_id=sid), timeout=120))
    assert events[-1].event.kind == pipeline_pb2.SESSION_EVENT_KIND_DONE
    result = json.loads(stub.GetResult(control_pb2.GetResultRequest(session_id=sid)).result.json)
    embedded = EmbeddedPipeline(settings=Settings()).run(BundleSource(open_bundle(easy_wide_slide)))
    assert_same_samples(result, embedded)
    assert redis_client.xpending(REGIONS, "identify")["pending"] == 0


def test_poison_message_goes_to_dead_letters_and_fails_the_session(
    cluster: Cluster, redis_client
) -> None:
    cluster.start("select")
    cluster.start("control")
    poison = pipeline_pb2.FrameAcquired(
        session=pipeline_pb2.SessionSpec(session_id="poisoned", frame_count=1),
        frame=types_pb2.Frame(
            index=0, width=100, height=100, ref=types_pb2.FrameRef(store_key="poisoned/0")
        ),
    )
    redis_client.xadd(FRAMES, {b"p": poison.SerializeToString()})
    stub = _control(cluster)
    deadline = time.monotonic() + 60
    while True:
        try:
            events = list(
                stub.WatchSession(
                    control_pb2.WatchSessionRequest(session_id="poisoned"), timeout=30
                )
            )
            break
        except grpc.RpcError as err:
            assert err.code() == grpc.StatusCode.NOT_FOUND
            assert time.monotonic() < deadline, "the poison message never failed its session"
            time.sleep(0.3)
    last = events[-1].event
    assert last.kind == pipeline_pb2.SESSION_EVENT_KIND_FAILED
    assert "select stage failed" in last.message and "poisoned/0" in last.message
    (dead,) = redis_client.xrange("samplescout:dead")
    assert dead[1][b"stream"] == FRAMES.encode()
    state = stub.GetResult(control_pb2.GetResultRequest(session_id="poisoned"), timeout=10)
    assert state.state == control_pb2.SESSION_STATE_FAILED
