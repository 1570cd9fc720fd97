"""Wire the event pipeline: the bus (in-process, or Kafka when KAFKA_BOOTSTRAP_SERVERS is set),
the outbox relay, dead letters and metrics.

Areas subscribe their consumers while the app is built or in their own cleanup_ctx:
`app[EVENT_BUS].subscribe("feed.fanout", ["hubbub.posts"], handler)`. The bus starts consuming
and the relay starts publishing only once the whole startup has run (every subscription made,
every consumer's resources up); both stop at shutdown, before any cleanup context tears its
resources down, so a handler never runs against a closed pool.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator
from datetime import timedelta

from aiohttp import web
from aiokafka.errors import KafkaConnectionError, KafkaError, KafkaTimeoutError

from protocols.events import EventEnvelope
from server.events.metrics import EventMetrics
from server.events.ports import EventBus
from server.events.relay import OutboxRelay, RelayOptions
from server.keys import DB_POOL, LIFECYCLE, SETTINGS
from server.metrics import METRICS
from server.startup import wait_for_service
from storage.kafka.event_bus import KafkaEventBus
from storage.memory.event_bus import InProcessEventBus
from storage.postgres.dead_letters import PostgresDeadLetters
from storage.postgres.outbox_relay import PostgresOutboxStore

log = logging.getLogger("hubbub.events")

EVENT_BUS = web.AppKey("event_bus", EventBus)
EVENT_METRICS = web.AppKey("event_metrics", EventMetrics)
OUTBOX_RELAY = web.AppKey("outbox_relay", OutboxRelay)


class _AppDeadLetters:
    """Dead letters in Postgres, through the pool that exists once database_ctx has run (the
    bus is built before it)."""

    def __init__(self, app: web.Application) -> None:
        self._app = app

    async def park(self, consumer: str, event: EventEnvelope, *, error: str,
                   attempts: int) -> None:
        await PostgresDeadLetters(self._app[DB_POOL]).park(consumer, event, error=error,
                                                          attempts=attempts)


def setup_events(app: web.Application) -> None:
    """Build the bus now (after setup_metrics, before the areas that subscribe to it)."""
    settings = app[SETTINGS]
    metrics = EventMetrics(app[METRICS].registry)
    app[EVENT_METRICS] = metrics
    bus: EventBus
    if settings.kafka_bootstrap_servers:
        bus = KafkaEventBus(
            settings.kafka_bootstrap_servers, dead_letters=_AppDeadLetters(app),
            observer=metrics, client_id=f"hubbub-{settings.effective_node_id}",
            topic_partitions=settings.kafka_topic_partitions,
            replication_factor=settings.kafka_replication_factor)
    else:
        bus = InProcessEventBus(dead_letters=_AppDeadLetters(app), observer=metrics)
    app[EVENT_BUS] = bus
    app.cleanup_ctx.append(_events_ctx)  # after database_ctx: create_app appends that first
    app.on_startup.append(_start)  # runs after every cleanup_ctx has started
    app.on_shutdown.append(_stop)  # runs before any cleanup_ctx tears down


async def _events_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    lifecycle = app[LIFECYCLE]
    bus = app[EVENT_BUS]
    app[OUTBOX_RELAY] = OutboxRelay(
        PostgresOutboxStore(app[DB_POOL]), bus, metrics=app[EVENT_METRICS],
        options=RelayOptions(outbox_retention=timedelta(hours=settings.outbox_retention_hours)))
    if isinstance(bus, KafkaEventBus):
        lifecycle.adapters["events"] = "kafka"
        lifecycle.readiness_checks["kafka"] = bus.check
    else:
        lifecycle.adapters["events"] = "in-process"
    try:
        yield
    finally:
        await _stop(app)  # a no-op after on_shutdown; the stop when startup failed later on


async def _start(app: web.Application) -> None:
    bus = app[EVENT_BUS]
    if isinstance(bus, KafkaEventBus):
        # Brokers still starting are waited for (boundedly); consumers join their groups in
        # the background, each reported on /ready until it has joined (without failing it:
        # the node serves everything that does not need that consumer meanwhile).
        await wait_for_service("KAFKA_BOOTSTRAP_SERVERS", app[SETTINGS].kafka_bootstrap_servers
                               or "", bus.start, retriable=_kafka_retriable,
                               fatal=(KafkaError, ValueError, OSError))
        checks = app[LIFECYCLE].advisory_checks
        for consumer in bus.consumers:
            checks[f"kafka_consumer:{consumer}"] = functools.partial(bus.consumer_check,
                                                                     consumer)
    else:
        await bus.start()
    await app[OUTBOX_RELAY].start()


def _kafka_retriable(exc: BaseException) -> bool:
    return isinstance(exc, KafkaConnectionError | KafkaTimeoutError)


async def _stop(app: web.Application) -> None:
    relay = app.get(OUTBOX_RELAY)
    if relay is not None:
        await relay.stop()
    await app[EVENT_BUS].stop()
