"""Sessions on the embedded pipeline: microscope source, cancel, failure, events."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from samplescout.acquire.drivers import Microscope, MicroscopeSource, SimulatedMicroscope
from samplescout.app import EmbeddedPipeline, SessionManager, Stages, load_stages
from samplescout.config import Settings
from samplescout.errors import InputError
from samplescout.sessions import SessionRequest, SessionRunner, SessionState
from samplescout.v1 import pipeline_pb2

from conftest import assert_same_samples


def _wait(manager: SessionManager, sid: str, timeout: float = 120) -> SessionState:
    deadline = time.monotonic() + timeout
    while manager.state(sid)[0] is SessionState.RUNNING:
        assert time.monotonic() < deadline, "session did not end"
        time.sleep(0.05)
    return manager.state(sid)[0]


def test_manager_meets_protocol() -> None:
    assert isinstance(SessionManager(EmbeddedPipeline(settings=Settings())), SessionRunner)
    assert isinstance(SimulatedMicroscope(frame_scale=0.1), Microscope)


def test_simulated_microscope_raster_covers_holder() -> None:
    scope = SimulatedMicroscope(carrier="slide", profile="narrow", frame_scale=0.1)
    source = MicroscopeSource(scope)
    assert source.frame_count == 15
    frames = list(source.frames())
    assert [f.index for f in frames] == list(range(15))
    xs = [f.pose.center_mm[0] for f in frames]
    assert min(xs) < 10 and max(xs) > 70
    wide = MicroscopeSource(SimulatedMicroscope(carrier="slide", profile="wide", frame_scale=0.1))
    assert wide.frame_count == 1


def test_session_from_simulated_microscope() -> None:
    manager = SessionManager(EmbeddedPipeline(settings=Settings()))
    sid = manager.start(SessionRequest(microscope="sim:slide:wide"))
    assert _wait(manager, sid) is SessionState.DONE
    result = manager.result(sid)
    assert result is not None and result["carrier"] == "slide"
    assert result["samples"], "the simulated slide has at least one cover glass"


def test_unknown_microscope_is_input_error() -> None:
    manager = SessionManager(EmbeddedPipeline(settings=Settings()))
    with pytest.raises(InputError, match=r"microscope\.address"):
        manager.start(SessionRequest(microscope="sim:teapot"))
    with pytest.raises(InputError, match=r"microscope\.address"):
        manager.start(SessionRequest(microscope="ftp://scope"))


def test_cancel_stops_a_running_session(tmp_path: Path) -> None:
    manager = SessionManager(EmbeddedPipeline(settings=Settings()))
    sid = manager.start(SessionRequest(microscope="sim:multiwell:narrow"))
    time.sleep(0.2)
    assert manager.cancel(sid) is SessionState.RUNNING
    assert _wait(manager, sid) is SessionState.CANCELLED
    kinds = [e.kind for e in manager.events.events(sid)]
    assert kinds[-1] == pipeline_pb2.SESSION_EVENT_KIND_CANCELLED
    frames = kinds.count(pipeline_pb2.SESSION_EVENT_KIND_FRAME_ACQUIRED)
    assert frames < 56
    assert manager.result(sid) is None


def test_bundle_root_confines_paths(tmp_path: Path, easy_wide_slide: Path) -> None:
    manager = SessionManager(EmbeddedPipeline(settings=Settings()), bundle_root=tmp_path)
    with pytest.raises(InputError, match="bundle root"):
        manager.start(SessionRequest(bundle_path=str(easy_wide_slide)))


def test_a_failing_stage_fails_the_session_with_a_reason(easy_wide_slide: Path) -> None:
    class Broken:
        def identify(self, crops, geometry):
            raise RuntimeError("model exploded")

    stages = load_stages(Settings())
    broken = Stages(stages.selectors, {method: Broken() for method in stages.identifiers})
    manager = SessionManager(EmbeddedPipeline(settings=Settings(), stages=broken))
    sid = manager.start(SessionRequest(bundle_path=str(easy_wide_slide)))
    assert _wait(manager, sid) is SessionState.FAILED
    message = manager.state(sid)[1]
    assert "identify stage failed" in message and "model exploded" in message
    last = manager.events.events(sid)[-1]
    assert last.kind == pipeline_pb2.SESSION_EVENT_KIND_FAILED


def test_open_ended_progressive_session_matches_the_bundle(tmp_path: Path) -> None:
    import json

    from samplescout.acquire.simulator import simulate
    from samplescout.acquire.sources import BundleSource
    from samplescout.bundle import open_bundle

    bundle = simulate(tmp_path / "b", carrier="slide", profile="narrow", seed=6, frame_scale=0.3)
    reference = EmbeddedPipeline(settings=Settings()).run(BundleSource(open_bundle(bundle)))

    class OpenEnded:
        """Frames decided on the fly: the count is known only at the end."""

        def __init__(self) -> None:
            self.inner = BundleSource(open_bundle(bundle))
            self.name, self.carrier, self.context = "open", "slide", {}
            self.frame_count = 0

        def frames(self):
            return self.inner.frames()

    pipeline = EmbeddedPipeline(settings=Settings())
    result = pipeline.run(OpenEnded(), session_id="open-1", progressive=True)
    assert_same_samples(result, reference)
    assert result["stats"]["frames"] == reference["stats"]["frames"]
    updates = [
        e
        for e in pipeline.events.events("open-1")
        if e.kind == pipeline_pb2.SESSION_EVENT_KIND_LOCALIZATION_UPDATED and e.result.json
    ]
    assert len(updates) >= reference["stats"]["frames"] - 1
    partial = json.loads(updates[0].result.json)
    assert partial["stats"]["frames"] == 1 and "samples" in partial


def test_finished_sessions_are_forgotten_beyond_the_limit(easy_wide_slide: Path) -> None:
    manager = SessionManager(EmbeddedPipeline(settings=Settings()), keep_finished=2)
    sids = []
    for _ in range(3):
        sid = manager.start(SessionRequest(bundle_path=str(easy_wide_slide)))
        assert _wait(manager, sid) is SessionState.DONE
        sids.append(sid)
    deadline = time.monotonic() + 10
    while manager.state(sids[0])[0] is not SessionState.UNKNOWN:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert manager.result(sids[0]) is None and not manager.events.known(sids[0])
    assert manager.result(sids[2]) is not None
