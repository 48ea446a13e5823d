"""The distributed adaptive path waits for the localization of its last frame."""

from __future__ import annotations

import json
import threading

import pytest

from samplescout.app import wait_for_localization
from samplescout.errors import OperationalError
from samplescout.sessions import EventLog
from samplescout.v1 import pipeline_pb2


def _update(events: EventLog, frames: int) -> None:
    event = pipeline_pb2.SessionEvent(
        session_id="s", kind=pipeline_pb2.SESSION_EVENT_KIND_LOCALIZATION_UPDATED
    )
    event.result.json = json.dumps({"samples": [], "stats": {"frames": frames}})
    events.emit(event)


def test_waits_for_the_frame_it_needs() -> None:
    events = EventLog()
    events.emit(
        pipeline_pb2.SessionEvent(session_id="s", kind=pipeline_pb2.SESSION_EVENT_KIND_STARTED)
    )
    _update(events, 1)
    assert wait_for_localization(events, "s", 0, timeout_s=1) is None
    assert wait_for_localization(events, "s", 1, timeout_s=1)["stats"]["frames"] == 1
    later = threading.Timer(0.2, _update, (events, 2))
    later.start()
    doc = wait_for_localization(events, "s", 2, timeout_s=5)
    assert doc is not None and doc["stats"]["frames"] == 2


def test_gives_up_when_fuse_is_silent_or_the_session_ended() -> None:
    events = EventLog()
    _update(events, 1)
    with pytest.raises(OperationalError, match="no localization of 2 frames"):
        wait_for_localization(events, "s", 2, timeout_s=0.3)
    events.emit(
        pipeline_pb2.SessionEvent(
            session_id="s", kind=pipeline_pb2.SESSION_EVENT_KIND_FAILED, message="boom"
        )
    )
    with pytest.raises(OperationalError, match="ended: boom"):
        wait_for_localization(events, "s", 2, timeout_s=5)
