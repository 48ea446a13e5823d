"""Microscope drivers: simulator in-process, the same over gRPC, replay of a bundle."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import grpc
import numpy as np
import pytest

from samplescout.acquire.drivers import (
    Microscope,
    MicroscopeSource,
    ReplayMicroscope,
    SimulatedMicroscope,
    open_microscope,
    open_source,
)
from samplescout.acquire.remote import (
    GrpcMicroscope,
    build_microscope_server,
    decode_frame,
    encode_frame,
)
from samplescout.acquire.sources import BundleSource
from samplescout.app import EmbeddedPipeline
from samplescout.bundle import open_bundle
from samplescout.config import Settings
from samplescout.errors import InputError
from samplescout.v1 import microscope_pb2

from conftest import _free_port, assert_same_samples


def _run(source) -> dict:
    return EmbeddedPipeline(settings=Settings()).run(source)


@pytest.mark.parametrize(
    ("dtype", "shape", "encoding"),
    [
        (np.uint8, (40, 60), "raw-zlib"),
        (np.uint16, (40, 60, 3), "raw-zlib"),
        (np.uint16, (40, 60), "png"),
        (np.uint8, (40, 60, 3), "tiff"),
    ],
)
def test_frame_encodings_round_trip(dtype, shape, encoding: str) -> None:
    image = np.random.default_rng(0).integers(0, 4000, shape).astype(dtype)
    data, used = encode_frame(image, encoding)
    header = microscope_pb2.SnapHeader(
        width=shape[1],
        height=shape[0],
        encoding=used,
        dtype=image.dtype.str,
        channels=1 if len(shape) == 2 else 3,
    )
    np.testing.assert_array_equal(decode_frame(data, header), image)


def test_remote_driver_gives_the_in_process_result() -> None:
    local = SimulatedMicroscope(carrier="slide", profile="narrow", seed=7, frame_scale=0.3)
    served = SimulatedMicroscope(carrier="slide", profile="narrow", seed=7, frame_scale=0.3)
    server, port = build_microscope_server(served, "127.0.0.1:0")
    server.start()
    try:
        remote = GrpcMicroscope(f"127.0.0.1:{port}")
        assert isinstance(remote, Microscope)
        info = remote.describe()
        assert info == local.describe()
        remote_result = _run(MicroscopeSource(remote))
        remote.close()
    finally:
        server.stop(None)
    local_result = _run(MicroscopeSource(local))
    assert remote_result["samples"] == local_result["samples"]
    assert remote_result["stats"]["frames"] == local_result["stats"]["frames"] == 15


def test_snap_streams_large_frames_in_chunks() -> None:
    scope = SimulatedMicroscope(carrier="multiwell", profile="wide", seed=1, frame_scale=0.5)
    server, port = build_microscope_server(scope, "127.0.0.1:0")
    server.start()
    try:
        remote = GrpcMicroscope(f"127.0.0.1:{port}", encoding="png")
        remote.move_to((60.0, 40.0))
        image, pose = remote.snap()
        assert image.shape[:2] == (1500, 2000)
        assert pose.center_mm == pytest.approx((60.0, 40.0))
        stub_replies = list(
            __import__("samplescout.v1.microscope_pb2_grpc", fromlist=["x"])
            .MicroscopeServiceStub(grpc.insecure_channel(f"127.0.0.1:{port}"))
            .Snap(microscope_pb2.SnapRequest(), timeout=30)
        )
        assert len(stub_replies) > 2  # a header, then several chunks
        assert all(len(r.chunk) <= 1 << 20 for r in stub_replies[1:])
    finally:
        server.stop(None)


def test_replay_reproduces_a_recorded_session(tmp_path: Path) -> None:
    from samplescout.acquire.simulator import simulate

    bundle_dir = simulate(
        tmp_path / "rec", carrier="slide", profile="narrow", seed=9, frame_scale=0.3
    )
    recorded = _run(BundleSource(open_bundle(bundle_dir)))
    replay = open_source(microscope=f"replay:{bundle_dir}")
    assert replay.frame_count == len(open_bundle(bundle_dir).manifest.frames)
    replayed = _run(replay)
    assert_same_samples(replayed, recorded)
    assert [(s["class"], s["frames"]) for s in replayed["structures"]] == [
        (s["class"], s["frames"]) for s in recorded["structures"]
    ]
    scope = ReplayMicroscope(open_bundle(bundle_dir))
    x, y = scope.positions()[4]
    assert scope.move_to((x + 0.3, y - 0.2)) == (x, y)


def test_unknown_addresses_are_input_errors(tmp_path: Path) -> None:
    for address in ("teapot:1", "grpc://", "replay:"):
        with pytest.raises(InputError, match="unsupported microscope"):
            open_microscope(address)
    with pytest.raises(InputError, match="not a bundle directory"):
        open_microscope(f"replay:{tmp_path / 'none'}")


def test_driver_side_needs_neither_torch_nor_opencv() -> None:
    code = (
        "import sys, samplescout.acquire.remote as r; "
        "bad = [m for m in ('torch', 'cv2') if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_cli_serve_microscope_and_localize_against_it(tmp_path: Path) -> None:
    port = _free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "samplescout",
            "serve",
            "microscope",
            "--sim",
            "slide:wide",
            "--grpc",
            f"127.0.0.1:{port}",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        assert server.stdout is not None
        line = server.stdout.readline().decode()
        assert "MicroscopeService" in line, line
        out = tmp_path / "r.json"
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "samplescout",
                "localize",
                "--microscope",
                f"grpc://127.0.0.1:{port}",
                "--out",
                str(out),
            ],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert proc.returncode == 0, proc.stderr
        doc = json.loads(out.read_text())
        assert doc["carrier"] == "slide" and doc["samples"]
        assert doc["provenance"]["context"]["camera"] == "wide"
    finally:
        server.terminate()
        assert server.wait(timeout=30) == 0
    time.sleep(0.1)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "samplescout",
            "localize",
            "--microscope",
            f"grpc://127.0.0.1:{port}",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1 and "UNAVAILABLE" in proc.stderr
    assert "Traceback" not in proc.stderr
