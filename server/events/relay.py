"""The outbox relay: moves committed domain events from the outbox table to the event bus.

Every node runs one; exactly one of them is active (OutboxStore.try_lead), the others try to
take over every `leader_retry` seconds. The active one reads unpublished rows in seq order, in
batches, publishes each batch, then marks it published. It wakes on NOTIFY the moment a
transaction with events commits, and polls every `poll_interval` as a safety net. A failed
publish is retried with backoff and its rows stay unpublished: delivery is at least once.
The leader also runs the cleanup job (old published rows, old consumer claims).

Tracing: a row written inside a trace keeps its W3C traceparent (storage.postgres.outbox).
The relay publishes its events in that trace: one PRODUCER span `publish <topic>` per row
trace and topic in a batch (a chat batch row is one), child of the row's context, lasting
the bus's publish; the bus gets that span's traceparent with each event (a Kafka header, or
next to the event in process) and consumers continue from it. Rows without one cost nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

from opentelemetry import trace

from protocols.events import EventEnvelope
from server.events.metrics import EventMetrics
from server.events.ports import EventBus, OutboxStore
from storage.event_delivery import (
    Sleep,
    Stopped,
    describe,
    topic_of,
    trace_context,
    until_stopped,
)

log = logging.getLogger("hubbub.events.relay")
_tracer = trace.get_tracer("hubbub.events.relay")  # a no-op until tracing is set up

RelayState = Literal["stopped", "standby", "publishing", "waiting"]


@dataclass(frozen=True)
class RelayOptions:
    batch_size: int = 200  # events per publish and per UPDATE
    poll_interval: float = 1.0  # seconds; the NOTIFY usually wakes the relay long before
    # Seconds the relay lets commits gather after a wake-up before it reads: under a steady
    # stream of commits (chat messages, each batch of them a commit) it then reads, publishes
    # and marks many events per round instead of one or two (each round is two statements
    # and a wake-up: at 0.02 s they were a fifth of the Postgres CPU of chat traffic, at
    # 0.05 s still 40-60 us per chat message).
    coalesce: float = 0.1
    leader_retry: float = 2.0  # how often a standby node tries to take over
    backoff_base: float = 0.5  # first wait after a failure; doubles up to backoff_max
    backoff_max: float = 30.0
    lag_interval: float = 1.0  # refresh the lag gauges at most this often
    cleanup_interval: float = 60.0
    outbox_retention: timedelta = timedelta(hours=24)  # published rows kept this long
    processed_retention: timedelta = timedelta(days=7)  # consumer claims kept this long
    cleanup_batch: int = 1000  # rows per DELETE
    cleanup_max_batches: int = 20  # per cleanup round, so publishing never waits long
    stop_timeout: float = 10.0  # for an in-flight publish at stop, then it is cancelled

    def backoff(self, failures: int) -> float:
        return min(self.backoff_max, self.backoff_base * 2 ** (failures - 1))


class OutboxRelay:
    """`sleep` is the backoff's sleep (injectable for tests)."""

    def __init__(self, store: OutboxStore, bus: EventBus, *, metrics: EventMetrics | None = None,
                 options: RelayOptions | None = None, sleep: Sleep = asyncio.sleep) -> None:
        self._store = store
        self._bus = bus
        self._metrics = metrics
        self.options = options or RelayOptions()
        self._sleep = sleep
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        # "waiting": the leader has published everything it saw and waits for a commit.
        self.state: RelayState = "stopped"

    @property
    def leading(self) -> bool:
        return self.state in ("publishing", "waiting")

    async def start(self) -> None:
        if self._task is None:
            self._stopping.clear()
            self._task = asyncio.create_task(self._run(), name="events:outbox-relay")

    async def stop(self) -> None:
        """Stop after the batch in flight (cancelled after stop_timeout), then resign."""
        self._stopping.set()
        task, self._task = self._task, None
        if task is None:
            return
        _, late = await asyncio.wait({task}, timeout=self.options.stop_timeout)
        if late:
            log.warning("outbox relay still publishing at stop; cancelled")
            task.cancel()
            await asyncio.wait({task})
        if not task.cancelled() and task.exception() is not None:
            log.error("outbox relay ended with an error", exc_info=task.exception())

    async def _run(self) -> None:
        failures = 0
        try:
            while not self._stopping.is_set():
                try:
                    if await self._store.try_lead():
                        failures = 0
                        self._lead_changed(True)
                        await self._lead()
                    else:
                        self.state = "standby"
                        await self._pause(self.options.leader_retry)
                except Stopped:
                    return
                except Exception as exc:  # connection lost, database down: retry, never die
                    failures += 1
                    delay = self.options.backoff(failures)
                    log.warning("outbox relay failed; retrying", extra={
                        "error": describe(exc), "retry_in": delay})
                    await self._resign()
                    await self._pause(delay)
        except Stopped:
            return
        finally:
            await self._resign()
            self.state = "stopped"

    async def _lead(self) -> None:
        options = self.options
        failures = 0
        next_lag = next_cleanup = time.monotonic()
        while True:
            if self._stopping.is_set():
                raise Stopped
            self.state = "publishing"
            now = time.monotonic()
            if self._metrics and now >= next_lag:
                self._metrics.backlog(*await self._store.backlog())
                next_lag = now + options.lag_interval
            if now >= next_cleanup:
                await self._cleanup()
                next_cleanup = time.monotonic() + options.cleanup_interval
            rows = await self._store.pending(options.batch_size)
            if rows:
                events = [event for _, event in rows]
                traced = _PublishSpans.of(rows, events)
                try:
                    if traced is None:
                        await self._bus.publish(events)
                    else:
                        await self._bus.publish(events, traced.traceparents)
                except Exception as exc:  # the bus refused: keep the rows, retry later
                    if traced is not None:
                        traced.end(exc)
                    if self._stopping.is_set():
                        raise Stopped from exc
                    failures += 1
                    delay = options.backoff(failures)
                    if self._metrics:
                        self._metrics.publish_failures_total.inc()
                    log.warning("publishing outbox events failed; retrying", extra={
                        "events": len(events), "first_seq": rows[0][0],
                        "error": describe(exc), "retry_in": delay})
                    await self._pause(delay)
                    continue
                if traced is not None:
                    traced.end()
                failures = 0
                await self._store.mark_published([seq for seq, _ in rows])
                if self._metrics:
                    self._metrics.published(events)
            if len(rows) >= options.batch_size:
                continue  # more may be waiting: no need for a wake-up
            self.state = "waiting"
            await until_stopped(self._store.wait_for_events(options.poll_interval),
                                self._stopping)
            if options.coalesce > 0:
                await until_stopped(asyncio.sleep(options.coalesce), self._stopping)

    async def _cleanup(self) -> None:
        options = self.options
        total = 0
        for _ in range(options.cleanup_max_batches):
            deleted = await self._store.purge(published_before=options.outbox_retention,
                                              processed_before=options.processed_retention,
                                              limit=options.cleanup_batch)
            total += deleted
            if deleted == 0:
                break
        if total:
            if self._metrics:
                self._metrics.purged_total.inc(total)
            log.info("outbox cleanup", extra={"deleted": total})

    async def _pause(self, seconds: float) -> None:
        await until_stopped(self._sleep(seconds), self._stopping)

    async def _resign(self) -> None:
        if self.leading:
            log.info("outbox relay resigning")
            self.state = "standby"
        self._lead_changed(False)
        with contextlib.suppress(Exception):  # the connection may be gone; so is the lock
            await self._store.resign()

    def _lead_changed(self, leading: bool) -> None:
        if leading:
            log.info("outbox relay leading")
            self.state = "publishing"
        if self._metrics:
            self._metrics.relay_leader.set(1 if leading else 0)
            if not leading:
                self._metrics.backlog(0, 0.0)  # only the leader reports the lag


class _PublishSpans:
    """The publish spans of one batch: one per (row traceparent, topic)."""

    def __init__(self, spans: list[trace.Span], traceparents: list[str | None]) -> None:
        self._spans = spans
        self.traceparents = traceparents  # parallel to the batch's events

    @classmethod
    def of(cls, rows: Sequence[tuple[int, EventEnvelope]],
           events: Sequence[EventEnvelope]) -> _PublishSpans | None:
        """None when no row of the batch has a traceparent (tracing off where they were
        written): nothing to do."""
        row_parents = [getattr(row, "traceparent", None) for row in rows]
        if not any(row_parents):
            return None
        by_trace: dict[tuple[str, str], str | None] = {}
        spans: list[trace.Span] = []
        traceparents: list[str | None] = []
        for (seq, _), event, parent in zip(rows, events, row_parents, strict=True):
            if parent is None:
                traceparents.append(None)
                continue
            topic = topic_of(event) or "unknown"
            key = (parent, topic)
            if key not in by_trace:
                span = _tracer.start_span(
                    f"publish {topic}", context=trace_context(parent),
                    kind=trace.SpanKind.PRODUCER, attributes={
                        "messaging.operation.type": "publish",
                        "messaging.destination.name": topic, "hubbub.outbox.seq": seq})
                spans.append(span)
                # With tracing off here (a no-op span), pass the row's own context on.
                by_trace[key] = _traceparent_of(span) or parent
            traceparents.append(by_trace[key])
        return cls(spans, traceparents)

    def end(self, error: BaseException | None = None) -> None:
        for span in self._spans:
            if error is not None:
                span.record_exception(error)
                span.set_status(trace.StatusCode.ERROR, describe(error))
            span.end()


def _traceparent_of(span: trace.Span) -> str | None:
    context = span.get_span_context()
    if not context.is_valid:
        return None
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{context.trace_flags:02x}"
