"""What every event bus does with one event for one consumer: call the handler, retry it with
exponential backoff, and park the event as a dead letter once the retries are spent.

Shared by the in-process and the Kafka bus (storage.memory.event_bus, storage.kafka.event_bus)
so both apply one policy. Handlers match server.events.ports.EventHandler.

Tracing: an event that travels with a W3C traceparent (its outbox row's trace, see
server.events.ports) is handled inside a CONSUMER span `<consumer> <event type>`, child of
that context and current while the handler runs, retries included. Without one (tracing off
where the event was written) nothing is traced and nothing is paid.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, TypeVar

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from protocols.events import EVENT_TYPES, TOPICS, EventEnvelope

log = logging.getLogger("hubbub.events")
# A proxy: spans go to the TracerProvider server/tracing.py installs; a no-op until then.
_tracer = trace.get_tracer("hubbub.events")
_w3c = TraceContextTextMapPropagator()

EventHandler = Callable[[EventEnvelope], Awaitable[None]]
Sleep = Callable[[float], Awaitable[None]]
T = TypeVar("T")


class Stopped(Exception):
    """The bus is stopping: the event was neither handled nor parked, so it is not acknowledged
    (the relay or Kafka delivers it again later)."""


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 5  # handler calls per event, the first included; then it is dead-lettered
    base_delay: float = 0.1  # seconds before the second call; doubled before each later one
    max_delay: float = 5.0  # ceiling of one delay

    def delay(self, failures: int) -> float:
        """Seconds to wait after the `failures`-th failed call (1-based)."""
        return min(self.max_delay, self.base_delay * 2 ** (failures - 1))


class DeadLetters(Protocol):
    async def park(self, consumer: str, event: EventEnvelope, *, error: str,
                   attempts: int) -> None:
        """Durably record that `consumer` gave up on `event` after `attempts` calls.

        Idempotent per (consumer, event id): parking again replaces the error. Raises when the
        record could not be written; the bus then does not acknowledge the event.
        """
        ...


class DeliveryObserver(Protocol):
    """Counts outcomes (server.events.metrics implements it with Prometheus counters)."""

    def handled(self, consumer: str, event: EventEnvelope) -> None: ...

    def failed(self, consumer: str, event: EventEnvelope) -> None:
        """One handler call raised (retried or not)."""
        ...

    def dead_lettered(self, consumer: str, event: EventEnvelope) -> None: ...


class NoObserver:
    def handled(self, consumer: str, event: EventEnvelope) -> None:
        pass

    def failed(self, consumer: str, event: EventEnvelope) -> None:
        pass

    def dead_lettered(self, consumer: str, event: EventEnvelope) -> None:
        pass


def topic_of(event: EventEnvelope) -> str | None:
    """The topic of an event's type; None for a type this build does not know (an event
    written by a newer release during a rolling deploy)."""
    data = EVENT_TYPES.get(event.type)
    return data.TOPIC if data is not None else None


def check_subscription(consumer: str, topics: Sequence[str], known: set[str]) -> None:
    """Refuse an empty or duplicate consumer name and unknown topics (a typo would otherwise
    subscribe to nothing, silently)."""
    if not consumer:
        raise ValueError("consumer name must not be empty")
    if consumer in known:
        raise ValueError(f"consumer {consumer!r} is already subscribed")
    unknown = set(topics) - set(TOPICS)
    if not topics or unknown:
        raise ValueError(f"consumer {consumer!r}: unknown or no topics {sorted(unknown)}; "
                         f"known topics: {TOPICS}")


async def until_stopped(awaitable: Awaitable[T], stopping: asyncio.Event) -> T:
    """Await `awaitable`, abandoning (cancelling) it with Stopped as soon as `stopping` is set."""
    if stopping.is_set():
        if asyncio.iscoroutine(awaitable):
            awaitable.close()
        raise Stopped
    work = asyncio.ensure_future(awaitable)
    stop = asyncio.ensure_future(stopping.wait())
    try:
        await asyncio.wait({work, stop}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (work, stop):
            task.cancel()
        await asyncio.gather(work, stop, return_exceptions=True)
    if not work.cancelled() and work.done():
        return work.result()  # finished first (or together with the stop): keep its outcome
    raise Stopped


def describe(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text[:2000]


def trace_context(traceparent: str) -> otel_context.Context:
    """The OpenTelemetry context a W3C traceparent names (an empty one when it is malformed:
    a span started in it begins a new trace)."""
    return _w3c.extract({"traceparent": traceparent})


class Delivery:
    """Call one consumer's handler for one event under a RetryPolicy; park what keeps failing.

    `sleep` waits between attempts (tests inject one that returns at once and records the
    delays); a wait is abandoned when the bus starts stopping.
    """

    def __init__(self, *, dead_letters: DeadLetters, policy: RetryPolicy | None = None,
                 observer: DeliveryObserver | None = None, sleep: Sleep = asyncio.sleep) -> None:
        self.policy = policy or RetryPolicy()
        self.dead_letters = dead_letters
        self.observer: DeliveryObserver = observer or NoObserver()
        self.sleep = sleep

    async def deliver(self, consumer: str, handler: EventHandler, event: EventEnvelope,
                      stopping: asyncio.Event, traceparent: str | None = None,
                      ) -> Literal["handled", "dead_lettered"]:
        """Handled, or dead-lettered after the last retry. Raises Stopped when the bus stops
        during a backoff, and the dead-letter store's error when parking fails: in both cases
        the event must not be acknowledged. `traceparent`: the trace the event continues (a
        consumer span is made in it), None for none."""
        if traceparent is None:
            return await self._deliver(consumer, handler, event, stopping, None)
        topic = topic_of(event)
        with _tracer.start_as_current_span(
                f"{consumer} {event.type}", context=trace_context(traceparent),
                kind=trace.SpanKind.CONSUMER, attributes={
                    "messaging.operation.type": "process",
                    "messaging.consumer.group.name": consumer,
                    "messaging.destination.name": topic or "",
                    "messaging.message.id": event.id,
                    "hubbub.event.type": event.type,
                    "hubbub.event.key": event.key}) as span:
            outcome = await self._deliver(consumer, handler, event, stopping, span)
            if outcome == "dead_lettered":
                span.set_status(trace.StatusCode.ERROR, "dead-lettered")
            span.set_attribute("hubbub.event.outcome", outcome)
            return outcome

    async def _deliver(self, consumer: str, handler: EventHandler, event: EventEnvelope,
                       stopping: asyncio.Event, span: trace.Span | None,
                       ) -> Literal["handled", "dead_lettered"]:
        policy = self.policy
        failure: Exception | None = None
        for attempt in range(1, policy.attempts + 1):
            try:
                await handler(event)
            except Exception as exc:  # any handler error is retried, then parked
                failure = exc
                self.observer.failed(consumer, event)
                if span is not None:
                    span.record_exception(exc)
                if attempt == policy.attempts:
                    break
                log.warning("event handler failed; retrying", extra={
                    "consumer": consumer, "event_id": event.id, "event_type": event.type,
                    "attempt": attempt, "error": describe(exc)})
                await until_stopped(self.sleep(policy.delay(attempt)), stopping)
            else:
                self.observer.handled(consumer, event)
                return "handled"
        assert failure is not None
        await self.dead_letters.park(consumer, event, error=describe(failure),
                                     attempts=policy.attempts)
        self.observer.dead_lettered(consumer, event)
        log.error("event dead-lettered after %d attempts", policy.attempts, extra={
            "consumer": consumer, "event_id": event.id, "event_type": event.type,
            "error": describe(failure)}, exc_info=failure)
        return "dead_lettered"
