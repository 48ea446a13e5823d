"""Prometheus metrics (``samplescout_*``) shared by all services."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, start_http_server

FRAMES = Counter("samplescout_frames_total", "Frames handled", ["stage"])
REGIONS = Counter(
    "samplescout_regions_total", "Structure regions selected or identified", ["stage"]
)
MESSAGES = Counter("samplescout_messages_total", "Stream entries handled", ["stage", "outcome"])
STAGE_SECONDS = Histogram(
    "samplescout_stage_seconds",
    "Time to handle one stream entry",
    ["stage"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
QUEUE_LAG = Gauge("samplescout_queue_lag", "Entries not yet read by the group", ["stream", "group"])
PENDING = Gauge("samplescout_queue_pending", "Entries read but not acked", ["stream", "group"])
SESSIONS = Counter("samplescout_sessions_total", "Sessions by outcome", ["outcome"])


def serve_metrics(port: int, addr: str = "0.0.0.0") -> None:
    """Expose ``/metrics`` on ``port`` (0: do not serve)."""
    if port:
        start_http_server(port, addr=addr)
