"""Prometheus metrics of the event pipeline, on the app's registry (server.metrics)."""

from __future__ import annotations

from collections.abc import Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge

from protocols.events import EventEnvelope
from storage.event_delivery import topic_of


class EventMetrics:
    """Relay counters and lag gauges, and per-consumer handler outcomes (the buses call the
    last three as their storage.event_delivery.DeliveryObserver)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.published_total = Counter(
            "hubbub_events_published", "Events the outbox relay handed to the bus",
            ["topic"], registry=registry)
        self.publish_failures_total = Counter(
            "hubbub_events_publish_failures", "Relay publish attempts that failed (retried)",
            registry=registry)
        self.handled_total = Counter(
            "hubbub_events_handled", "Events a consumer handled", ["consumer"],
            registry=registry)
        self.failed_total = Counter(
            "hubbub_events_failed", "Handler calls that raised (each retry counts)",
            ["consumer"], registry=registry)
        self.dead_lettered_total = Counter(
            "hubbub_events_dead_lettered", "Events a consumer gave up on after every retry",
            ["consumer"], registry=registry)
        self.outbox_pending = Gauge(
            "hubbub_outbox_pending_events", "Unpublished outbox events (seen by the leader)",
            registry=registry)
        self.outbox_oldest_age = Gauge(
            "hubbub_outbox_oldest_pending_seconds",
            "Age of the oldest unpublished outbox event: the relay's lag", registry=registry)
        self.relay_leader = Gauge(
            "hubbub_outbox_relay_leader", "1 while this node runs the cluster's outbox relay",
            registry=registry)
        self.purged_total = Counter(
            "hubbub_outbox_purged_rows",
            "Published outbox rows and old consumer claims deleted by the cleanup job",
            registry=registry)

    def published(self, events: Sequence[EventEnvelope]) -> None:
        # One labels() lookup per topic of the batch, not per event: a relay round carries
        # a chat message.sent per message, and labels() costs more than the increment.
        counts: dict[str, int] = {}
        for event in events:
            topic = topic_of(event) or "unknown"
            counts[topic] = counts.get(topic, 0) + 1
        for topic, count in counts.items():
            self.published_total.labels(topic).inc(count)

    def backlog(self, pending: int, oldest_age: float) -> None:
        self.outbox_pending.set(pending)
        self.outbox_oldest_age.set(oldest_age)

    def handled(self, consumer: str, event: EventEnvelope) -> None:
        self.handled_total.labels(consumer).inc()

    def failed(self, consumer: str, event: EventEnvelope) -> None:
        self.failed_total.labels(consumer).inc()

    def dead_lettered(self, consumer: str, event: EventEnvelope) -> None:
        self.dead_lettered_total.labels(consumer).inc()
