"""The event bus port. Adapters: in-process (embedded default) and Kafka (aiokafka).

Delivery is at least once: an event may reach a consumer twice (after a crash, a rebalance or
a relay retry), so every handler must be idempotent; see storage.postgres.processed for the
usual way (record the event id in the same transaction as the effect).

Tracing: an event may travel with a W3C `traceparent` (the trace its outbox row was written
in), never inside the envelope (its shape is a contract): as a Kafka record header, or next to
the event in the in-process bus's queues. The bus handles the event in a consumer span, child
of that context (storage/event_delivery.py).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta
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

    async def publish(self, events: Sequence[EventEnvelope],
                      traceparents: Sequence[str | None] | None = None) -> None:
        """Hand events to the bus; returns once they are durably accepted.

        Kafka: acknowledged by the brokers. In-process (nothing durable in memory): once every
        subscribed consumer has handled them. The outbox relay marks rows published only after
        this returns, so a crash before it leads to redelivery, not loss.

        `traceparents`, when given, runs parallel to `events`: the W3C trace context each
        event continues (None: none). The relay passes it only when one of them has one.
        """
        ...

    async def start(self) -> None:
        """Start consuming (called at app startup, after every subscribe)."""
        ...

    async def stop(self) -> None:
        """Stop consuming and release connections; in-flight handler calls finish first."""
        ...


class OutboxStore(Protocol):
    """The outbox relay's view of the transactional outbox (storage.postgres.outbox_relay).

    Leadership makes exactly one relay active per cluster: a lock held on a dedicated
    connection, released when that connection closes (resign(), or the node dying).
    The other methods are called by the leader only.
    """

    async def try_lead(self) -> bool:
        """Try to become the active relay; True while this store holds the leadership (cheap
        to call again). False when another node holds it: try again later."""
        ...

    async def resign(self) -> None:
        """Give the leadership up and release its connection; a no-op when not leading."""
        ...

    async def wait_for_events(self, timeout: float) -> None:
        """Return as soon as a transaction that appended events has committed since the last
        call returned, or after `timeout` seconds. Raises when the leadership was lost."""
        ...

    async def pending(self, limit: int) -> list[tuple[int, EventEnvelope]]:
        """The unpublished events of up to `limit` outbox rows as (seq, envelope), in seq
        order. A row may hold several events committed together (they share its seq), so
        there may be more than `limit` of them. An item may also have a `traceparent`
        attribute (storage.postgres.outbox_relay.PendingEvent): the W3C trace context its row
        was written in, or None."""
        ...

    async def mark_published(self, seqs: Sequence[int]) -> None:
        """Stamp these rows published, in one statement."""
        ...

    async def backlog(self) -> tuple[int, float]:
        """(unpublished events, age in seconds of the oldest of them; 0.0 when none)."""
        ...

    async def purge(self, *, published_before: timedelta, processed_before: timedelta,
                    limit: int) -> int:
        """Delete up to `limit` outbox rows published longer than `published_before` ago and
        up to `limit` processed_events claims older than `processed_before`, oldest first;
        returns how many rows went (call again while it returns > 0)."""
        ...
