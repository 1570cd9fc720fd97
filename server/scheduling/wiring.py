"""Wire scheduled posts into the app: routes, the service, the `hubbub` publisher, and this
node's scheduler, started and stopped with the app (scheduling_ctx).

Call setup_scheduling after setup_posts (the hubbub publisher creates posts through the posts
service) and setup_notifications. Other areas add publishers for their target kinds with
server.scheduling.keys.add_publisher, before or after this.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from datetime import timedelta

from aiohttp import web

from actors.clock import LoopClock
from server.http.problems import NotFound
from server.keys import DB_POOL, SETTINGS
from server.media.service import invalid_media
from server.media.wiring import MEDIA_SERVICE
from server.metrics import METRICS
from server.posts.wiring import POST_SERVICE
from server.scheduling.backoff import RetryPolicy
from server.scheduling.hubbub_publisher import HubbubPublisher
from server.scheduling.keys import (
    RATE_LIMIT_REPORTER,
    SCHEDULE_SERVICE,
    SCHEDULER,
    publishing,
)
from server.scheduling.metrics import SchedulerMetrics
from server.scheduling.rate_limits import RateLimitReporter
from server.scheduling.rules import ScheduleRules
from server.scheduling.scheduler import Scheduler, SchedulerOptions
from server.scheduling.service import MediaCheck, ScheduleService
from storage.postgres.schedule_claims import PostgresClaimStore
from storage.postgres.schedule_listener import PostgresScheduleSignals
from storage.postgres.scheduled_posts import PostgresScheduleStore

log = logging.getLogger("hubbub.scheduling")


def _media_check(app: web.Application) -> MediaCheck:
    async def check(user_id: str, media_ids: Sequence[str]) -> None:
        media = app[MEDIA_SERVICE]
        for index, media_id in enumerate(media_ids):
            try:
                item = await media.get(user_id, media_id)
            except NotFound:
                raise invalid_media(index, media_id, "no such media of yours") from None
            if item.status != "ready":
                raise invalid_media(index, media_id, "the upload is not completed")

    return check


async def scheduling_ctx(app: web.Application) -> AsyncIterator[None]:
    """After database_ctx, media_ctx and posts_ctx: builds the service and the hubbub
    publisher, then runs this node's scheduler until shutdown."""
    settings = app[SETTINGS]
    pool = app[DB_POOL]
    clock = LoopClock()
    registry = publishing(app)
    registry.add(HubbubPublisher(pool, app[POST_SERVICE]))
    claims = PostgresClaimStore(pool)
    app[SCHEDULE_SERVICE] = ScheduleService(
        PostgresScheduleStore(pool), clock=clock, registry=registry, media=_media_check(app),
        rules=ScheduleRules(
            max_pending=settings.schedule_max_pending,
            min_interval=timedelta(seconds=settings.schedule_min_interval_seconds),
            max_per_hour=settings.schedule_max_per_hour,
            max_per_day=settings.schedule_max_per_day))
    app[RATE_LIMIT_REPORTER] = RateLimitReporter(claims, clock)
    metrics = SchedulerMetrics(app[METRICS].registry)
    scheduler = Scheduler(
        claims, registry.publishers, node_id=settings.effective_node_id, clock=clock,
        signals=PostgresScheduleSignals(pool), observer=metrics,
        options=SchedulerOptions(
            batch_size=settings.scheduler_batch_size,
            concurrency=settings.scheduler_concurrency,
            lease=settings.scheduler_lease_seconds, tick=settings.scheduler_tick_seconds,
            publish_timeout=settings.scheduler_publish_timeout,
            retry=RetryPolicy(max_attempts=settings.schedule_max_attempts,
                              base=settings.schedule_retry_base_seconds,
                              cap=settings.schedule_retry_max_seconds)))
    app[SCHEDULER] = scheduler
    metrics.watch(scheduler)
    if settings.scheduler_enabled:
        await scheduler.start()
    else:
        log.info("SCHEDULER_ENABLED is off: this node publishes no scheduled posts")
    try:
        yield
    finally:
        await scheduler.stop()


def setup_scheduling(app: web.Application) -> None:
    # Imported here: the handlers look the service up under SCHEDULE_SERVICE.
    from server.scheduling.routes import api

    publishing(app)
    api.register(app)
    app.cleanup_ctx.append(scheduling_ctx)
