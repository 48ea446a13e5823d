"""Property-based checks: malformed input is refused with a named field, never a crash."""

from __future__ import annotations

import json
import math
from pathlib import Path

import grpc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from samplescout import fuzz
from samplescout.app import EmbeddedPipeline, SessionManager
from samplescout.bundle import MAX_FRAME_PIXELS
from samplescout.config import Settings
from samplescout.control.server import build_server
from samplescout.errors import InputError
from samplescout.v1 import control_pb2, control_pb2_grpc, types_pb2

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)
frame_entries = st.fixed_dictionaries(
    {},
    optional={
        "file": st.one_of(st.text(max_size=20), st.sampled_from(["a.png", "/x.png", "../a.png"])),
        "center_mm": st.one_of(json_values, st.lists(st.floats(), min_size=2, max_size=2)),
        "pixel_size_mm": st.one_of(st.floats(), st.integers(), st.text(max_size=3)),
        "rotation_deg": st.one_of(st.floats(), st.none()),
    },
)
manifests = st.fixed_dictionaries(
    {},
    optional={
        "version": st.one_of(st.integers(-2, 3), json_values),
        "carrier": st.one_of(st.sampled_from(["slide", "unknown", "plate"]), json_values),
        "context": st.one_of(st.dictionaries(st.text(max_size=5), json_values), json_values),
        "frames": st.one_of(st.lists(frame_entries, max_size=4), json_values),
    },
)


@settings(max_examples=300, deadline=None)
@given(manifests)
def test_manifest_parsing_never_crashes(doc: dict) -> None:
    fuzz.check_manifest(doc)


@settings(max_examples=100, deadline=None)
@given(json_values)
def test_any_json_is_a_manifest_or_an_input_error(doc: object) -> None:
    fuzz.check_manifest(doc)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2048))
def test_random_bytes_are_refused_cleanly(data: bytes) -> None:
    fuzz.check_image_bytes(data)


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_mutated_pngs_are_refused_or_decoded(data: st.DataObject) -> None:
    seed = bytearray(fuzz.png_bytes(32, 24, data.draw(st.sampled_from([8, 16]))))
    for _ in range(data.draw(st.integers(1, 6))):
        pos = data.draw(st.integers(0, len(seed) - 1))
        seed[pos] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(1, len(seed)))
    fuzz.check_image_bytes(bytes(seed[:cut]))


def test_huge_dimensions_are_refused_before_decoding() -> None:
    with pytest.raises(InputError, match=f"more than {MAX_FRAME_PIXELS} pixels|not a readable"):
        from samplescout.bundle import decode_image_bytes

        decode_image_bytes(fuzz.png_with_header(100_000, 100_000), "x", "image")


def test_truncated_zero_size_and_non_image_files(tmp_path: Path) -> None:
    import numpy as np

    from samplescout.bundle import open_bundle, write_bundle
    from samplescout.geometry import Pose

    bundle = write_bundle(tmp_path / "b", [(np.zeros((32, 32), np.uint8), Pose((0, 0), 0.1))])
    for content in (b"", fuzz.png_bytes(32, 24)[:30], b"GIF89a" + b"\x00" * 40, b"%PDF-1.4"):
        (bundle / "frame_000.png").write_bytes(content)
        with pytest.raises(InputError) as info:
            open_bundle(bundle)
        assert info.value.field == "frames[0].file"


def test_duplicate_and_interleaved_frames_keep_sessions_apart(easy_wide_slide: Path) -> None:
    """Two sessions uploading interleaved frames; a duplicate index is refused."""
    from samplescout.bundle import open_bundle
    from samplescout.contracts import pose_to_proto

    runner = SessionManager(EmbeddedPipeline(settings=Settings()))
    server, port, _ = build_server(runner, "127.0.0.1:0")
    server.start()
    try:
        stub = control_pb2_grpc.ControlServiceStub(grpc.insecure_channel(f"127.0.0.1:{port}"))
        spec = open_bundle(easy_wide_slide).manifest.frames[0]
        image = (easy_wide_slide / spec.file).read_bytes()
        start = control_pb2.StartSessionRequest(upload=control_pb2.UploadSource(frame_count=1))
        a = stub.StartSession(start, timeout=10).session_id
        b = stub.StartSession(start, timeout=10).session_id
        frame = types_pb2.Frame(index=0, pose=pose_to_proto(spec.pose), image=image)
        reqs = [control_pb2.UploadFramesRequest(session_id=s, frame=frame) for s in (a, b)]
        assert stub.UploadFrames(iter(reqs), timeout=60).frames_received == 1
        results = []
        for sid in (a, b):
            list(stub.WatchSession(control_pb2.WatchSessionRequest(session_id=sid), timeout=120))
            got = stub.GetResult(control_pb2.GetResultRequest(session_id=sid), timeout=10)
            assert got.state == control_pb2.SESSION_STATE_DONE
            results.append(json.loads(got.result.json)["samples"])
        assert results[0] == results[1]
    finally:
        server.stop(None)


@pytest.mark.parametrize(
    ("pose", "field"),
    [
        (types_pb2.Pose(pixel_size_mm=math.inf), "frames[0].pose"),
        (types_pb2.Pose(pixel_size_mm=0.0), "frames[0].pose.pixel_size_mm"),
        (
            types_pb2.Pose(center_mm=types_pb2.Point2(y=-math.inf), pixel_size_mm=1),
            "frames[0].pose",
        ),
    ],
)
def test_non_finite_or_negative_poses(pose: types_pb2.Pose, field: str) -> None:
    from samplescout.control.servicer import frame_from_proto

    with pytest.raises(InputError) as info:
        frame_from_proto(types_pb2.Frame(pose=pose, image=fuzz.png_bytes(32, 24)), "frames[0]")
    assert info.value.field == field


def test_bounded_fuzz_run_finds_nothing() -> None:
    counts = fuzz.run(iterations=60, seed=1)
    assert counts == {"images": 60, "manifests": 60}
