"""Wire analytics into the app: routes, the "analytics" consumer, the view-flush sink, and
the hook that extends a user's stats. Set up after posts (the view counter must exist when
our context starts, and its last flush at shutdown still reaches our sink)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from protocols.events import EventEnvelope
from protocols.posts import UserStats
from server.analytics import consumer
from server.analytics.consumer import AnalyticsConsumer
from server.analytics.service import AnalyticsService
from server.analytics.views import BucketViewSink
from server.events.wiring import EVENT_BUS
from server.keys import DB_POOL
from server.posts.wiring import VIEW_COUNTER
from storage.postgres.analytics import PostgresAnalyticsStore

ANALYTICS_SERVICE = web.AppKey("analytics_service", AnalyticsService)
ANALYTICS_CONSUMER = web.AppKey("analytics_consumer", AnalyticsConsumer)


async def extend_user_stats(app: web.Application, stats: UserStats) -> UserStats:
    """`stats` with the analytics fields, or as it is when analytics is not set up."""
    service = app.get(ANALYTICS_SERVICE)
    return await service.extend_stats(stats) if service is not None else stats


async def analytics_ctx(app: web.Application) -> AsyncIterator[None]:
    store = PostgresAnalyticsStore(app[DB_POOL])
    app[ANALYTICS_SERVICE] = AnalyticsService(store)
    app[ANALYTICS_CONSUMER] = AnalyticsConsumer(store)
    app[VIEW_COUNTER].add_sink(BucketViewSink(store))
    yield


def setup_analytics(app: web.Application) -> None:
    # Imported here: the handlers look the service up under ANALYTICS_SERVICE above.
    from server.analytics.routes import api

    api.register(app)

    async def handle(event: EventEnvelope) -> None:
        await app[ANALYTICS_CONSUMER].handle(event)

    app[EVENT_BUS].subscribe(consumer.CONSUMER, consumer.TOPICS, handle)
    app.cleanup_ctx.append(analytics_ctx)
