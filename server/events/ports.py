"""The event bus port. Adapters: in-process (embedded default) and Kafka (aiokafka).

Delivery is at least once: an event may reach a consumer twice (after a crash, a rebalance or
a relay retry), so every handler must be idempotent; see storage.postgres.processed for the
usual way (record the event id in the same transaction as the effect).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

from protocols.events import EventEnvelope

EventHandler = Callable[[EventEnvelope], Awaitable[None]]


class EventBus(Protocol):
    def subscribe(self, consumer: str, topics: Sequence[str], handler: EventHandler) -> None:
        """Register `handler` as consumer group `consumer` for `topics`, before start().

        Each consumer group sees every event of its topics; events with the same key reach it
        in publish order; one handler call at a time per consumer. A handler that raises is
        retried with backoff; after the retries are spent the event is parked (dead-lettered)
        and logged, never silently dropped.
        """
        ...

    async def publish(self, events: Sequence[EventEnvelope]) -> None:
        """Hand events to the bus; returns once they are durably accepted.

        Kafka: acknowledged by the brokers. In-process (nothing durable in memory): once every
        subscribed consumer has handled them. The outbox relay marks rows published only after
        this returns, so a crash before it leads to redelivery, not loss.
        """
        ...

    async def start(self) -> None:
        """Start consuming (called at app startup, after every subscribe)."""
        ...

    async def stop(self) -> None:
        """Stop consuming and release connections; in-flight handler calls finish first."""
        ...
