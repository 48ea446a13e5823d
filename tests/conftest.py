from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED_REDIS = ("127.0.0.1", 6379)


def _answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a real Redis: the machine's shared one, else a private ``redis-server``.

    Fails (never skips) when neither is available, so CI cannot go green silently.
    """
    if _answers(*SHARED_REDIS):
        yield f"redis://{SHARED_REDIS[0]}:{SHARED_REDIS[1]}/15"
        return
    exe = shutil.which("redis-server")
    if exe is None:
        pytest.fail("no Redis answers on 127.0.0.1:6379 and redis-server is not installed")
    port = _free_port()
    workdir = tmp_path_factory.mktemp("redis")
    proc = subprocess.Popen(
        [
            exe,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(workdir),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while not _answers("127.0.0.1", port):
            if time.monotonic() > deadline:
                pytest.fail(f"private redis-server on port {port} did not start")
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(scope="session")
def easy_wide_slide(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An easy simulated slide holder seen by the wide camera (reduced frame size)."""
    from samplescout.acquire.simulator import simulate

    return simulate(
        tmp_path_factory.mktemp("sim") / "wide-slide",
        carrier="slide",
        profile="wide",
        seed=3,
        difficulty="easy",
        frame_scale=0.5,
    )


def load_json(path: Path) -> dict:
    return json.loads(path.read_text())


@pytest.fixture()
def redis_client(redis_server: str):
    """A client on the test database, flushed before and after each test."""
    import redis

    client = redis.Redis.from_url(redis_server)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


def assert_same_samples(a: dict, b: dict, tol: float = 1e-6) -> None:
    """SPEC determinism: the same samples, coordinates within ``tol`` mm."""
    assert len(a["samples"]) == len(b["samples"])
    for x, y in zip(a["samples"], b["samples"], strict=True):
        assert (x["element"], x["shape"], x.get("label")) == (
            y["element"],
            y["shape"],
            y.get("label"),
        )
        assert x["center_mm"] == pytest.approx(y["center_mm"], abs=tol)
        assert x["size_mm"] == pytest.approx(y["size_mm"], abs=tol)
        assert x["angle_deg"] == pytest.approx(y["angle_deg"], abs=tol)
        for p, q in zip(x["polygon_mm"], y["polygon_mm"], strict=True):
            assert p == pytest.approx(q, abs=tol)


class StaticViews:
    """Fixed coarse frames as fusion's ``CoarseViews``."""

    def __init__(self, views: list[tuple[Any, Any]]) -> None:
        self._views = views

    def views(self) -> list[tuple[Any, Any]]:
        return self._views


def plate_frame(wells: int, a1_shift: tuple[float, float] = (0.0, 0.0)) -> tuple[Any, Any, Any]:
    """A 0.2 mm/px coarse frame of a plate of ``wells`` (dark plate, grey well floors),
    its body centred at (64, 43) mm, turned 0.5 degrees."""
    import numpy as np

    from samplescout.geometry import FrameGeometry, Pose, rotation_matrix
    from samplescout.standards import PLATE_FORMAT_BY_WELLS, SBS_SIZE_MM

    fmt = PLATE_FORMAT_BY_WELLS[wells]
    geometry = FrameGeometry(Pose((64.0, 43.0), 0.2, 0.0), 700, 500)
    rot = rotation_matrix(0.5)
    a1 = np.array([64.0, 43.0]) + rot @ (np.array(fmt.a1_offset) - np.array(SBS_SIZE_MM) / 2)
    a1 = a1 + np.asarray(a1_shift)
    yy, xx = np.mgrid[0:500, 0:700].astype(np.float64)
    xy = geometry.pixel_to_holder(np.stack([xx.ravel(), yy.ravel()], 1)).reshape(500, 700, 2)
    img = np.full((500, 700), 0.05, np.float32)
    for r in range(fmt.rows):
        for c in range(fmt.cols):
            center = a1 + rot @ np.array([c * fmt.pitch, r * fmt.pitch])
            inside = np.hypot(*(xy - center).transpose(2, 0, 1)) < fmt.well_size / 2
            img[inside] = 0.15
    rng = np.random.default_rng(1)
    return img + rng.normal(0.0, 0.01, img.shape).astype(np.float32), geometry, a1
