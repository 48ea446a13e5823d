"""ControlService over real gRPC on loopback, embedded pipeline behind it."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import cv2
import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status

from samplescout.acquire.drivers import open_microscope
from samplescout.acquire.sources import BundleSource
from samplescout.app import EmbeddedPipeline, SessionManager
from samplescout.bundle import open_bundle
from samplescout.config import Settings
from samplescout.contracts import pose_to_proto
from samplescout.control.adaptive import raster_frame_count
from samplescout.control.server import build_server
from samplescout.v1 import control_pb2, control_pb2_grpc, pipeline_pb2, types_pb2


@pytest.fixture(scope="module")
def channel() -> Iterator[grpc.Channel]:
    runner = SessionManager(EmbeddedPipeline(settings=Settings()))
    server, port, _ = build_server(runner, "127.0.0.1:0")
    server.start()
    with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
        yield ch
    server.stop(None)


def _bad_request_field(err: grpc.RpcError) -> str:
    status = rpc_status.from_call(err)
    assert status is not None
    detail = error_details_pb2.BadRequest()
    assert status.details[0].Unpack(detail)
    return detail.field_violations[0].field


def test_health_serving(channel: grpc.Channel) -> None:
    stub = health_pb2_grpc.HealthStub(channel)
    for service in ("", "samplescout.v1.ControlService"):
        reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_session_from_bundle_events_and_result(
    channel: grpc.Channel, easy_wide_slide: Path
) -> None:
    stub = control_pb2_grpc.ControlServiceStub(channel)
    sid = stub.StartSession(
        control_pb2.StartSessionRequest(bundle_path=str(easy_wide_slide)), timeout=10
    ).session_id
    kinds = [
        r.event.kind
        for r in stub.WatchSession(control_pb2.WatchSessionRequest(session_id=sid), timeout=120)
    ]
    assert kinds[0] == pipeline_pb2.SESSION_EVENT_KIND_STARTED
    assert pipeline_pb2.SESSION_EVENT_KIND_FRAME_ACQUIRED in kinds
    assert pipeline_pb2.SESSION_EVENT_KIND_STRUCTURES_IDENTIFIED in kinds
    assert kinds[-1] == pipeline_pb2.SESSION_EVENT_KIND_DONE
    got = stub.GetResult(control_pb2.GetResultRequest(session_id=sid), timeout=10)
    assert got.state == control_pb2.SESSION_STATE_DONE
    doc = json.loads(got.result.json)
    direct = EmbeddedPipeline(settings=Settings()).run(BundleSource(open_bundle(easy_wide_slide)))
    assert doc["samples"] == direct["samples"]
    assert len(got.result.samples) == len(doc["samples"]) >= 1
    assert [s.center_mm.x for s in got.result.samples] == [
        s["center_mm"][0] for s in doc["samples"]
    ]
    assert got.result.carrier == types_pb2.CARRIER_SLIDE
    assert got.result.stats["frames"] == 1


def test_localize_frames_matches_bundle_result(
    channel: grpc.Channel, easy_wide_slide: Path
) -> None:
    stub = control_pb2_grpc.ControlServiceStub(channel)
    bundle = open_bundle(easy_wide_slide)
    frames = []
    for spec in bundle.manifest.frames:
        frames.append(
            types_pb2.Frame(
                index=spec.index,
                pose=pose_to_proto(spec.pose),
                image=(easy_wide_slide / spec.file).read_bytes(),
            )
        )
    reply = stub.LocalizeFrames(
        control_pb2.LocalizeFramesRequest(frames=frames, carrier=types_pb2.CARRIER_SLIDE),
        timeout=120,
    )
    doc = json.loads(reply.result.json)
    sid = stub.StartSession(
        control_pb2.StartSessionRequest(bundle_path=str(easy_wide_slide)), timeout=10
    ).session_id
    list(stub.WatchSession(control_pb2.WatchSessionRequest(session_id=sid), timeout=120))
    ref = json.loads(stub.GetResult(control_pb2.GetResultRequest(session_id=sid)).result.json)
    assert len(doc["samples"]) == len(ref["samples"]) >= 1
    for a, b in zip(doc["samples"], ref["samples"], strict=True):
        assert a["center_mm"] == pytest.approx(b["center_mm"], abs=1e-6)


def test_invalid_bundle_is_invalid_argument_with_field(
    channel: grpc.Channel, tmp_path: Path, easy_wide_slide: Path
) -> None:
    stub = control_pb2_grpc.ControlServiceStub(channel)
    bad = tmp_path / "bad"
    shutil.copytree(easy_wide_slide, bad)
    manifest = json.loads((easy_wide_slide / "manifest.json").read_text())
    manifest["frames"][0]["pixel_size_mm"] = 0
    (bad / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(grpc.RpcError) as info:
        stub.StartSession(control_pb2.StartSessionRequest(bundle_path=str(bad)), timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert _bad_request_field(info.value) == "frames[0].pixel_size_mm"


def test_localize_frames_bad_image_and_pose(channel: grpc.Channel) -> None:
    stub = control_pb2_grpc.ControlServiceStub(channel)
    ok, png = cv2.imencode(
        ".png",
        (255 * (cv2.getGaussianKernel(64, 8) @ cv2.getGaussianKernel(64, 8).T)).astype("uint8"),
    )
    assert ok
    good_pose = types_pb2.Pose(center_mm=types_pb2.Point2(x=1, y=1), pixel_size_mm=0.1)
    cases = [
        (types_pb2.Frame(pose=good_pose, image=b"not an image"), "frames[0].image"),
        (
            types_pb2.Frame(pose=types_pb2.Pose(pixel_size_mm=-1), image=png.tobytes()),
            "frames[0].pose.pixel_size_mm",
        ),
        (
            types_pb2.Frame(
                pose=types_pb2.Pose(center_mm=types_pb2.Point2(x=float("nan")), pixel_size_mm=1),
                image=png.tobytes(),
            ),
            "frames[0].pose",
        ),
    ]
    for frame, field in cases:
        with pytest.raises(grpc.RpcError) as info:
            stub.LocalizeFrames(control_pb2.LocalizeFramesRequest(frames=[frame]), timeout=10)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert _bad_request_field(info.value) == field
    with pytest.raises(grpc.RpcError) as info:
        stub.LocalizeFrames(control_pb2.LocalizeFramesRequest(), timeout=10)
    assert _bad_request_field(info.value) == "frames"


def test_unknown_session_not_found(channel: grpc.Channel) -> None:
    stub = control_pb2_grpc.ControlServiceStub(channel)
    for call, req in (
        (stub.GetResult, control_pb2.GetResultRequest(session_id="nope")),
        (stub.CancelSession, control_pb2.CancelSessionRequest(session_id="nope")),
    ):
        with pytest.raises(grpc.RpcError) as info:
            call(req, timeout=5)
        assert info.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as info:
        list(stub.WatchSession(control_pb2.WatchSessionRequest(session_id="nope"), timeout=5))
    assert info.value.code() == grpc.StatusCode.NOT_FOUND


def test_lims_client_example(channel: grpc.Channel, easy_wide_slide: Path, capsys) -> None:
    import importlib.util

    from conftest import ROOT

    spec = importlib.util.spec_from_file_location(
        "lims_client", ROOT / "examples" / "lims_client.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    target = channel._channel.target().decode()  # type: ignore[attr-defined]
    assert module.main(["--server", target, "--bundle", str(easy_wide_slide)]) == 0
    out = capsys.readouterr().out
    assert "frame_acquired" in out and "done" in out and "carrier: slide" in out
    assert module.main(["--server", target, "--bundle", "/nonexistent"]) == 2


def test_deadline_is_honoured_and_server_stays_usable(
    channel: grpc.Channel, easy_wide_slide: Path
) -> None:
    stub = control_pb2_grpc.ControlServiceStub(channel)
    spec = open_bundle(easy_wide_slide).manifest.frames[0]
    frame = types_pb2.Frame(
        pose=pose_to_proto(spec.pose), image=(easy_wide_slide / spec.file).read_bytes()
    )
    request = control_pb2.LocalizeFramesRequest(frames=[frame] * 3)
    with pytest.raises(grpc.RpcError) as info:
        stub.LocalizeFrames(request, timeout=0.3)
    assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    reply = stub.LocalizeFrames(control_pb2.LocalizeFramesRequest(frames=[frame]), timeout=120)
    assert json.loads(reply.result.json)["stats"]["frames"] == 1


def _upload_requests(sid: str, bundle: Path, order: list[int]):
    b = open_bundle(bundle)
    for i in order:
        spec = b.manifest.frames[i]
        yield control_pb2.UploadFramesRequest(
            session_id=sid,
            frame=types_pb2.Frame(
                index=i, pose=pose_to_proto(spec.pose), image=(bundle / spec.file).read_bytes()
            ),
        )


def upload_session(stub, bundle: Path, order: list[int]) -> dict:
    """Start an upload session, stream the frames in ``order``, return the result."""
    sid = stub.StartSession(
        control_pb2.StartSessionRequest(upload=control_pb2.UploadSource(frame_count=len(order))),
        timeout=10,
    ).session_id
    sent = stub.UploadFrames(_upload_requests(sid, bundle, order), timeout=120)
    assert sent.frames_received == len(order)
    events = list(stub.WatchSession(control_pb2.WatchSessionRequest(session_id=sid), timeout=120))
    assert events[-1].event.kind == pipeline_pb2.SESSION_EVENT_KIND_DONE
    return json.loads(stub.GetResult(control_pb2.GetResultRequest(session_id=sid)).result.json)


def test_upload_frames_session(channel: grpc.Channel, easy_wide_slide: Path) -> None:
    stub = control_pb2_grpc.ControlServiceStub(channel)
    doc = upload_session(stub, easy_wide_slide, [0])
    direct = EmbeddedPipeline(settings=Settings()).run(BundleSource(open_bundle(easy_wide_slide)))
    assert doc["samples"] == direct["samples"]


def test_upload_rejects_bad_index_and_duplicates(
    channel: grpc.Channel, easy_wide_slide: Path
) -> None:
    stub = control_pb2_grpc.ControlServiceStub(channel)
    sid = stub.StartSession(
        control_pb2.StartSessionRequest(upload=control_pb2.UploadSource(frame_count=2)), timeout=10
    ).session_id
    requests = list(_upload_requests(sid, easy_wide_slide, [0]))
    with pytest.raises(grpc.RpcError) as info:
        stub.UploadFrames(iter([requests[0], requests[0]]), timeout=30)
    assert _bad_request_field(info.value) == "frame.index"
    bad = control_pb2.UploadFramesRequest(session_id=sid, frame=types_pb2.Frame(index=5))
    bad.frame.CopyFrom(requests[0].frame)
    bad.frame.index = 5
    with pytest.raises(grpc.RpcError) as info:
        stub.UploadFrames(iter([bad]), timeout=30)
    assert _bad_request_field(info.value) == "frame.index"
    assert stub.CancelSession(control_pb2.CancelSessionRequest(session_id=sid)).state == (
        control_pb2.SESSION_STATE_RUNNING
    )
    with pytest.raises(grpc.RpcError) as info:
        stub.StartSession(
            control_pb2.StartSessionRequest(upload=control_pb2.UploadSource(frame_count=0)),
            timeout=10,
        )
    assert _bad_request_field(info.value) == "upload.frame_count"


def test_adaptive_microscope_session_snaps_fewer_frames_than_the_raster(
    channel: grpc.Channel,
) -> None:
    stub = control_pb2_grpc.ControlServiceStub(channel)
    address = "sim:petri_dish"
    source = control_pb2.MicroscopeSource(address=address, adaptive=True)
    sid = stub.StartSession(
        control_pb2.StartSessionRequest(microscope=source), timeout=10
    ).session_id
    events = [
        r.event
        for r in stub.WatchSession(control_pb2.WatchSessionRequest(session_id=sid), timeout=120)
    ]
    kinds = [e.kind for e in events]
    assert kinds[-1] == pipeline_pb2.SESSION_EVENT_KIND_DONE
    # the path was planned from the localization after every frame
    assert pipeline_pb2.SESSION_EVENT_KIND_LOCALIZATION_UPDATED in kinds
    reply = stub.GetResult(control_pb2.GetResultRequest(session_id=sid), timeout=10)
    assert reply.state == control_pb2.SESSION_STATE_DONE
    doc = json.loads(reply.result.json)
    raster = raster_frame_count(open_microscope(address).describe())
    assert 0 < doc["stats"]["frames"] < raster
    # the path itself is in the result, as `localize --adaptive` reports it
    path = doc["stats"]["adaptive"]
    assert path["frames"] == doc["stats"]["frames"] == len(path["path_mm"])
    assert path["raster_frames"] == raster and path["stop"] == path["reasons"][-1]
    assert [s.element for s in reply.result.samples] == ["dish_glass"]


def test_adaptive_session_needs_a_microscope_address(channel: grpc.Channel) -> None:
    stub = control_pb2_grpc.ControlServiceStub(channel)
    source = control_pb2.MicroscopeSource(address="", adaptive=True)
    with pytest.raises(grpc.RpcError) as err:
        stub.StartSession(control_pb2.StartSessionRequest(microscope=source), timeout=10)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert _bad_request_field(err.value) == "microscope.address"
    source = control_pb2.MicroscopeSource(address="sim:nothing", adaptive=True)
    with pytest.raises(grpc.RpcError) as err:
        stub.StartSession(control_pb2.StartSessionRequest(microscope=source), timeout=10)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
