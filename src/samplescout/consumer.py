"""The consume loop every distributed worker runs on its stream."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import structlog

from samplescout import metrics
from samplescout.bus import Bus, Delivery
from samplescout.logs import get_logger

log = get_logger(component="consumer")

#: Consumers idle this long with nothing pending are forgotten (replicas long gone).
PRUNE_IDLE_MS = 3_600_000


class StreamConsumer:
    """Reads a stream as one consumer of a group and runs ``handler`` on each entry.

    At-least-once: an entry is acked only after ``handler`` returned (its output is
    written). On start the consumer first finishes its own pending entries (a restart
    after a crash); every ``reclaim_every_s`` it takes over entries that other
    consumers left pending for more than ``reclaim_idle_ms`` (they died). An entry
    delivered more than ``max_deliveries`` times goes to the dead-letter stream and
    ``on_dead`` is told, so its session can fail with a reason instead of hanging.

    Handlers must be idempotent: the same entry may be handled twice.
    """

    def __init__(
        self,
        *,
        bus: Bus,
        stream: str,
        group: str,
        consumer: str,
        handler: Callable[[bytes], None],
        on_dead: Callable[[Delivery, str], None] | None = None,
        describe: Callable[[bytes], dict[str, object]] | None = None,
        max_deliveries: int = 5,
        reclaim_idle_ms: int = 120_000,
        reclaim_every_s: float = 10.0,
        block_ms: int = 1000,
        batch: int = 8,
    ) -> None:
        self.bus = bus
        self.stream = stream
        self.group = group
        self.consumer = consumer
        self._handler = handler
        self._on_dead = on_dead
        self._describe = describe
        self.max_deliveries = max_deliveries
        self.reclaim_idle_ms = reclaim_idle_ms
        self.reclaim_every_s = reclaim_every_s
        self.block_ms = block_ms
        self.batch = batch
        self.handled = 0
        self.busy = threading.Event()

    def run(self, stop: threading.Event) -> None:
        """Consume until ``stop`` is set; the entry in hand is finished first (drain).

        When the bus is unreachable (its own retries exhausted), the consumer waits with
        exponential backoff and carries on where it was; nothing is acked meanwhile.
        """
        backoff = 0.5
        while not stop.is_set():
            try:
                self._consume(stop)
                return
            except Exception as exc:  # the bus, not a handler: handlers are guarded
                log.warning(
                    "bus unavailable, retrying",
                    stream=self.stream,
                    error=f"{type(exc).__name__}: {exc}",
                    retry_in_s=backoff,
                )
                stop.wait(backoff)
                backoff = min(backoff * 2, 10.0)

    def _consume(self, stop: threading.Event) -> None:
        self.bus.ensure_group(self.stream, self.group)
        for delivery in self.bus.read_pending(self.stream, self.group, self.consumer):
            if stop.is_set():
                return
            self.process(delivery)
        last_reclaim = 0.0
        while not stop.is_set():
            now = time.monotonic()
            if now - last_reclaim >= self.reclaim_every_s:
                last_reclaim = now
                for delivery in self.bus.reclaim(
                    self.stream, self.group, self.consumer, min_idle_ms=self.reclaim_idle_ms
                ):
                    self.process(delivery)
                    if stop.is_set():
                        return
                self.bus.prune_consumers(self.stream, self.group, min_idle_ms=PRUNE_IDLE_MS)
                metrics.QUEUE_LAG.labels(self.stream, self.group).set(
                    self.bus.lag(self.stream, self.group)
                )
                metrics.PENDING.labels(self.stream, self.group).set(
                    self.bus.pending_count(self.stream, self.group)
                )
            for delivery in self.bus.read(
                self.stream, self.group, self.consumer, count=self.batch, block_ms=self.block_ms
            ):
                self.process(delivery)
                if stop.is_set():
                    # The rest of the batch stays pending: this consumer (or a reclaim) finishes it.
                    return

    def process(self, delivery: Delivery) -> None:
        """Handle one entry with its session and frame bound to every log line."""
        fields: dict[str, object] = {"stage": self.group, "entry_id": delivery.entry_id}
        if self._describe is not None:
            try:
                fields.update(self._describe(delivery.payload))
            except Exception:  # undecodable: the handler will fail and say why
                fields["undecodable"] = True
        with structlog.contextvars.bound_contextvars(**fields):
            self._process(delivery)

    def _process(self, delivery: Delivery) -> None:
        bound = log.bind(stream=self.stream)
        if delivery.deliveries > self.max_deliveries:
            self._dead(delivery, f"delivered {delivery.deliveries} times without success")
            return
        self.busy.set()
        t0 = time.perf_counter()
        try:
            self._handler(delivery.payload)
        except Exception as exc:
            metrics.MESSAGES.labels(self.group, "error").inc()
            reason = f"{self.group} stage failed: {type(exc).__name__}: {exc}"
            bound.exception("handler failed", deliveries=delivery.deliveries)
            if delivery.deliveries >= self.max_deliveries:
                self._dead(delivery, reason)
            # Otherwise it stays pending and is retried after the reclaim threshold.
            return
        finally:
            self.busy.clear()
            metrics.STAGE_SECONDS.labels(self.group).observe(time.perf_counter() - t0)
        self.bus.ack(self.stream, self.group, delivery.entry_id)
        self.handled += 1
        metrics.MESSAGES.labels(self.group, "ok").inc()
        bound.info("handled", seconds=round(time.perf_counter() - t0, 4))

    def _dead(self, delivery: Delivery, reason: str) -> None:
        log.error("dead letter", stream=self.stream, entry_id=delivery.entry_id, reason=reason)
        self.bus.dead_letter(delivery, self.group, reason)
        metrics.MESSAGES.labels(self.group, "dead").inc()
        if self._on_dead is not None:
            self._on_dead(delivery, reason)
