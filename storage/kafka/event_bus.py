"""The Kafka event bus (server.events.ports.EventBus) on aiokafka.

Publishing: one idempotent producer (acks="all"); the record key is the envelope's key, so one
aggregate's events share a partition and keep their order; the value is the envelope as JSON.
An event published with a traceparent (its outbox row's trace) carries it as the record
header `traceparent` (W3C); the envelope itself never changes. With OpenTelemetry's aiokafka
instrumentation on, the send runs in that trace and the instrumentation writes the header (of
its send span); without it, the header is written here.

Consuming: one AIOKafkaConsumer per consumer group (group id "hubbub." + consumer name), one
task each, handling records one at a time in partition order with the shared retry and
dead-letter policy (storage.event_delivery). Offsets are committed only after the handler
succeeded or the event was parked, so a crash or a rebalance redelivers instead of losing
(at least once; handlers are idempotent). A new group starts from the earliest offset. A
record's `traceparent` header is handed to the delivery, which continues that trace in a
consumer span.

Starting: `start()` creates missing topics and starts the producer, and raises when the
brokers cannot be reached (the caller may retry it). Each consumer then joins its group in its
own task, in the background: one that cannot join (the coordinator is not available yet, an
ACL refuses the group, a rebalance failed) is retried with backoff while the rest of the node
keeps working; `consumer_check(name)` fails until it has joined (readiness).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError
from opentelemetry import context as otel_context

from protocols.events import TOPICS, EventEnvelope
from storage.event_delivery import (
    DeadLetters,
    Delivery,
    DeliveryObserver,
    EventHandler,
    RetryPolicy,
    Sleep,
    Stopped,
    check_subscription,
    topic_of,
    trace_context,
    until_stopped,
)
from storage.kafka.topics import ensure_topics

log = logging.getLogger("hubbub.events.kafka")
GROUP_PREFIX = "hubbub."
_POLL_MS = 1000
_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(EventEnvelope).decode
TRACE_HEADER = "traceparent"


def _instrumented() -> bool:
    """Whether OpenTelemetry's aiokafka instrumentation wraps AIOKafkaProducer.send now (it
    then puts the send span's context into the record headers itself)."""
    from opentelemetry.instrumentation.aiokafka import AIOKafkaInstrumentor

    return AIOKafkaInstrumentor().is_instrumented_by_opentelemetry


def _traceparent(record: ConsumerRecord) -> str | None:
    for name, value in record.headers or ():
        if name == TRACE_HEADER and value:
            return value.decode("ascii", "replace")
    return None


@dataclass(frozen=True)
class _Subscription:
    consumer: str
    topics: tuple[str, ...]
    handler: EventHandler


class ConsumerNotJoined(Exception):
    """The consumer has not joined its group (yet): it is retrying in the background."""


class KafkaEventBus:
    """`consumer_options` go to every AIOKafkaConsumer (tests shorten session timeouts);
    `sleep` is the retry backoff's sleep, injectable for tests; `join_backoff` is (first,
    longest) wait in seconds between attempts of a consumer to join its group."""

    def __init__(self, bootstrap_servers: str, *, dead_letters: DeadLetters,
                 policy: RetryPolicy | None = None, observer: DeliveryObserver | None = None,
                 sleep: Sleep = asyncio.sleep, client_id: str = "hubbub",
                 topic_partitions: int = 6, replication_factor: int = 1,
                 consumer_options: Mapping[str, Any] | None = None,
                 stop_timeout: float = 10.0,
                 join_backoff: tuple[float, float] = (1.0, 30.0)) -> None:
        self._servers = bootstrap_servers
        self._delivery = Delivery(dead_letters=dead_letters, policy=policy, observer=observer,
                                  sleep=sleep)
        self._client_id = client_id
        self._partitions = topic_partitions
        self._replication = replication_factor
        self._consumer_options = dict(consumer_options or {})
        self._stop_timeout = stop_timeout
        self._join_backoff = join_backoff
        self._subscriptions: dict[str, _Subscription] = {}
        self._joined: set[str] = set()  # consumers that are members of their group
        self._join_errors: dict[str, str] = {}  # consumer -> why its last join failed
        self._producer: AIOKafkaProducer | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._started = False
        self._stopping = asyncio.Event()

    def subscribe(self, consumer: str, topics: Sequence[str], handler: EventHandler) -> None:
        if self._started:
            raise RuntimeError(f"subscribe({consumer!r}) after the bus started")
        check_subscription(consumer, topics, set(self._subscriptions))
        self._subscriptions[consumer] = _Subscription(consumer, tuple(topics), handler)

    @property
    def consumers(self) -> list[str]:
        return list(self._subscriptions)

    async def start(self) -> None:
        """Create missing topics and start the producer; raises (KafkaConnectionError when no
        broker answers) with nothing left running, so it may be called again. Then every
        consumer joins its group in the background."""
        if self._started:
            return
        await ensure_topics(self._servers, TOPICS, partitions=self._partitions,
                            replication_factor=self._replication, client_id=self._client_id)
        producer = AIOKafkaProducer(bootstrap_servers=self._servers, client_id=self._client_id,
                                    acks="all", enable_idempotence=True)
        try:
            await producer.start()
            for topic in TOPICS:  # wait for their metadata (auto-created where that is how)
                await producer.partitions_for(topic)
        except BaseException:
            with contextlib.suppress(Exception):
                await producer.stop()
            raise
        self._producer = producer
        self._started = True
        self._stopping.clear()
        self._tasks = [asyncio.create_task(self._run_consumer(s), name=f"events:{s.consumer}")
                       for s in self._subscriptions.values()]
        log.info("kafka event bus started", extra={
            "consumers": list(self._subscriptions), "bootstrap_servers": self._servers})

    async def publish(self, events: Sequence[EventEnvelope],
                      traceparents: Sequence[str | None] | None = None) -> None:
        producer = self._producer
        if producer is None or self._stopping.is_set():
            raise Stopped("the Kafka event bus is not running")
        instrumented = traceparents is not None and _instrumented()
        # send() only appends to the partition's batch, in call order; then await the acks.
        acks = []
        for index, event in enumerate(events):
            topic = topic_of(event)
            if topic is None:
                log.error("event of unknown type not published",
                          extra={"event_id": event.id, "event_type": event.type})
                continue
            traceparent = traceparents[index] if traceparents is not None else None
            if traceparent is None:
                acks.append(await producer.send(topic, value=_encode(event),
                                                key=event.key.encode()))
                continue
            headers = [] if instrumented else [(TRACE_HEADER, traceparent.encode())]
            token = otel_context.attach(trace_context(traceparent))
            try:
                acks.append(await producer.send(topic, value=_encode(event),
                                                key=event.key.encode(), headers=headers))
            finally:
                otel_context.detach(token)
        await asyncio.gather(*acks)

    async def check(self) -> None:
        """Readiness: the brokers answer a metadata request."""
        producer = self._producer
        if producer is None:
            raise ConnectionError("the Kafka producer is not running")
        await producer.client.fetch_all_metadata()

    async def consumer_check(self, consumer: str) -> None:
        """Readiness of one consumer: raises ConsumerNotJoined until it is in its group."""
        if consumer not in self._joined:
            reason = self._join_errors.get(consumer, "joining")
            raise ConsumerNotJoined(f"{consumer}: {reason}")

    def joined(self, consumer: str) -> bool:
        return consumer in self._joined

    async def stop(self) -> None:
        self._stopping.set()
        tasks, self._tasks = self._tasks, []
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=self._stop_timeout)
            for task in late:
                log.warning("event handler still running at stop; cancelled",
                            extra={"task": task.get_name()})
                task.cancel()
            if late:
                await asyncio.wait(late)
        producer, self._producer = self._producer, None
        if producer is not None:
            await producer.stop()
        self._joined.clear()
        self._join_errors.clear()

    async def _start_consumer(self, subscription: _Subscription) -> AIOKafkaConsumer:
        consumer = AIOKafkaConsumer(
            *subscription.topics, bootstrap_servers=self._servers,
            group_id=GROUP_PREFIX + subscription.consumer, client_id=self._client_id,
            enable_auto_commit=False, auto_offset_reset="earliest", **self._consumer_options)
        try:
            await consumer.start()
        except BaseException:
            with contextlib.suppress(Exception):
                await consumer.stop()
            raise
        return consumer

    async def _run_consumer(self, subscription: _Subscription) -> None:
        """Join the group (retrying with backoff until it works or the bus stops), then
        consume until the bus stops."""
        name = subscription.consumer
        first, longest = self._join_backoff
        failures = 0
        while True:
            try:
                consumer = await until_stopped(self._start_consumer(subscription),
                                               self._stopping)
            except Stopped:
                return
            except Exception as exc:
                failures += 1
                delay = min(longest, first * 2 ** (failures - 1))
                self._join_errors[name] = f"{type(exc).__name__}: {exc}"[:300]
                log.warning("kafka consumer could not join its group; retrying", extra={
                    "consumer": name, "group": GROUP_PREFIX + name, "attempt": failures,
                    "error": self._join_errors[name], "retry_in": delay})
                try:
                    await until_stopped(asyncio.sleep(delay), self._stopping)
                except Stopped:
                    return
                continue
            break
        self._joined.add(name)
        self._join_errors.pop(name, None)
        if failures:
            log.info("kafka consumer joined its group", extra={
                "consumer": name, "group": GROUP_PREFIX + name, "attempts": failures + 1})
        try:
            await self._consume(subscription, consumer)
        finally:
            self._joined.discard(name)

    async def _consume(self, subscription: _Subscription, consumer: AIOKafkaConsumer) -> None:
        failures = 0
        try:
            while not self._stopping.is_set():
                try:
                    batch = await until_stopped(consumer.getmany(timeout_ms=_POLL_MS),
                                                self._stopping)
                    handled = [await self._handle(subscription, consumer, partition, records)
                               for partition, records in batch.items()]
                    if all(handled):
                        failures = 0
                        continue
                    # A partition was rewound to an event that could not be parked.
                    failures += 1
                except Stopped:
                    return
                except Exception:  # never die silently: log, back off, poll again
                    failures += 1
                    log.exception("kafka consumer failed; retrying",
                                  extra={"consumer": subscription.consumer})
                await until_stopped(
                    self._delivery.sleep(self._delivery.policy.delay(failures)), self._stopping)
        except Stopped:
            return
        finally:
            with contextlib.suppress(Exception):
                await consumer.stop()

    async def _handle(self, subscription: _Subscription, consumer: AIOKafkaConsumer,
                      partition: TopicPartition, records: list[ConsumerRecord]) -> bool:
        """Handle one partition's records in order, then commit past the last one done.
        False when an event could be neither handled nor parked: the partition is rewound to
        it, so it comes again."""
        done: int | None = None
        ok = True
        try:
            for record in records:
                if self._stopping.is_set():
                    break
                try:
                    event = _decode(record.value or b"")
                except msgspec.DecodeError as exc:  # nothing to retry: skip, loudly
                    log.error("undecodable record skipped", extra={
                        "consumer": subscription.consumer, "topic": record.topic,
                        "partition": record.partition, "offset": record.offset,
                        "error": str(exc)})
                    done = record.offset
                    continue
                try:
                    await self._delivery.deliver(subscription.consumer, subscription.handler,
                                                 event, self._stopping, _traceparent(record))
                except Stopped:
                    break
                except Exception:  # parking failed (e.g. the database is down): retry later
                    log.exception("event neither handled nor parked; will retry", extra={
                        "consumer": subscription.consumer, "event_id": event.id})
                    with contextlib.suppress(KafkaError):  # unless it was revoked meanwhile
                        consumer.seek(partition, record.offset)
                    ok = False
                    break
                done = record.offset
        finally:
            if done is not None:
                await self._commit(subscription, consumer, partition, done + 1)
        return ok

    async def _commit(self, subscription: _Subscription, consumer: AIOKafkaConsumer,
                      partition: TopicPartition, offset: int) -> None:
        try:
            await consumer.commit({partition: offset})
        except KafkaError as exc:
            # Typically the partition moved to another member in a rebalance: it will see
            # these events again (at least once), which the handlers tolerate.
            log.warning("offset commit failed", extra={
                "consumer": subscription.consumer, "topic": partition.topic,
                "partition": partition.partition, "error": f"{type(exc).__name__}: {exc}"})
