"""Wire notifications into the app: routes, the consumer, and the live-delivery sinks.

The realtime gateway pushes new notifications to sockets by registering a sink:
`add_notification_sink(app, sink)` at its setup, in any order relative to ours.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from protocols.events import EventEnvelope
from server.events.wiring import EVENT_BUS
from server.keys import DB_POOL
from server.notifications import service
from server.notifications.ports import NotificationSink
from server.notifications.service import NotificationConsumer, NotificationService
from storage.postgres.notifications import PostgresNotificationStore

NOTIFICATION_SERVICE = web.AppKey("notification_service", NotificationService)
NOTIFICATION_CONSUMER = web.AppKey("notification_consumer", NotificationConsumer)
NOTIFICATION_SINKS = web.AppKey("notification_sinks", list[NotificationSink])


def add_notification_sink(app: web.Application, sink: NotificationSink) -> None:
    """Have `sink` called with every notification created from now on (see ports)."""
    notification_sinks(app).append(sink)


def notification_sinks(app: web.Application) -> list[NotificationSink]:
    if NOTIFICATION_SINKS not in app:
        app[NOTIFICATION_SINKS] = []
    return app[NOTIFICATION_SINKS]


async def notifications_ctx(app: web.Application) -> AsyncIterator[None]:
    store = PostgresNotificationStore(app[DB_POOL])
    app[NOTIFICATION_SERVICE] = NotificationService(store)
    app[NOTIFICATION_CONSUMER] = NotificationConsumer(store, notification_sinks(app))
    yield


def setup_notifications(app: web.Application) -> None:
    # Imported here: the handlers look the service up under NOTIFICATION_SERVICE above.
    from server.notifications.routes import api

    api.register(app)
    notification_sinks(app)

    async def handle(event: EventEnvelope) -> None:
        await app[NOTIFICATION_CONSUMER].handle(event)

    app[EVENT_BUS].subscribe(service.CONSUMER, service.TOPICS, handle)
    app.cleanup_ctx.append(notifications_ctx)
