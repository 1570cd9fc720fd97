"""Wire the feed into the app: its routes, the fan-out consumer, and the feed service.

Timelines and the popular cache live in Redis when REDIS_URL is set (shared by every node),
in process memory otherwise. The consumer subscribes at setup (the bus takes subscriptions
before it starts); its collaborators need the database pool, so they are built at startup,
which completes before the bus delivers anything (server.events.wiring).

The home feed's circuit breaker (FEED_BREAKER_FAILURES, FEED_BREAKER_COOLDOWN_SECONDS) and
its metrics (server.feed.metrics) are made at setup, so /metrics shows them from the start.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

from aiohttp import web

from protocols.events import EventEnvelope
from server.events.wiring import EVENT_BUS
from server.feed import fanout
from server.feed.breaker import BreakerState, CircuitBreaker
from server.feed.fanout import FanOut
from server.feed.metrics import FeedMetrics
from server.feed.ports import RankingCache, TimelineStore
from server.feed.service import FeedPolicy, FeedService
from server.keys import DB_POOL, LIFECYCLE, SETTINGS
from server.metrics import METRICS
from server.resources import optional_redis
from storage.memory.popular import MemoryRankingCache
from storage.memory.timelines import MemoryTimelineStore
from storage.postgres.feed import PostgresFeedStore
from storage.redis.popular import RedisRankingCache
from storage.redis.timelines import RedisTimelineStore

log = logging.getLogger("hubbub.feed")
FEED_SERVICE = web.AppKey("feed_service", FeedService)
FEED_FANOUT = web.AppKey("feed_fanout", FanOut)
FEED_BREAKER = web.AppKey("feed_breaker", CircuitBreaker)
FEED_METRICS = web.AppKey("feed_metrics", FeedMetrics)

# Live push hook (added by the gateway engineer, issue 4): called with (user ids, post id)
# each time the fan-out puts a post into those users' home timelines, after the write. The
# realtime gateway registers one (server/gateway/setup.py) to push `feed:new` to the
# sockets of those who are connected. Best effort: a failing listener is logged, never
# fails the fan-out.
FeedListener = Callable[[Sequence[str], str], Awaitable[None]]
FEED_LISTENERS = web.AppKey("feed_listeners", list[FeedListener])


def add_feed_listener(app: web.Application, listener: FeedListener) -> None:
    """Have `listener` called for every post the fan-out pushes from now on."""
    app.setdefault(FEED_LISTENERS, []).append(listener)


class _AnnouncingTimelines:
    """The fan-out's TimelineStore, telling the FEED_LISTENERS about every add()."""

    def __init__(self, inner: TimelineStore, listeners: list[FeedListener]) -> None:
        self._inner = inner
        self._listeners = listeners

    async def add(self, user_ids: Sequence[str], post_id: str) -> None:
        await self._inner.add(user_ids, post_id)
        for listener in list(self._listeners):
            try:
                await listener(user_ids, post_id)
            except Exception:
                log.exception("feed listener failed")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


async def feed_ctx(app: web.Application) -> AsyncIterator[None]:
    # Imported here: the posts area registers its reader under this key at its own setup.
    from server.posts.wiring import POST_READER

    settings = app[SETTINGS]
    client = optional_redis(app)
    timelines: TimelineStore
    rankings: RankingCache
    retain = max(300, settings.feed_popular_ttl * 10)  # popular cursors outlive a ranking
    if client is not None:
        timelines = RedisTimelineStore(client, settings.redis_key_prefix,
                                       length=settings.feed_timeline_length,
                                       ttl=settings.feed_timeline_ttl)
        rankings = RedisRankingCache(client, settings.redis_key_prefix,
                                     ttl=settings.feed_popular_ttl, retain=retain)
        app[LIFECYCLE].adapters["timelines"] = "redis"
    else:
        timelines = MemoryTimelineStore(length=settings.feed_timeline_length,
                                        ttl=settings.feed_timeline_ttl)
        rankings = MemoryRankingCache(ttl=settings.feed_popular_ttl, retain=retain)
        app[LIFECYCLE].adapters["timelines"] = "memory"
    store = PostgresFeedStore(app[DB_POOL])
    app[FEED_SERVICE] = FeedService(
        timelines=timelines, source=store, posts=app[POST_READER], rankings=rankings,
        policy=FeedPolicy(push_threshold=settings.feed_push_threshold,
                          timeline_length=settings.feed_timeline_length,
                          popular_window_hours=settings.feed_popular_window_hours,
                          popular_ttl=settings.feed_popular_ttl),
        breaker=app[FEED_BREAKER], observer=app[FEED_METRICS])
    announcing: Any = _AnnouncingTimelines(timelines, app.setdefault(FEED_LISTENERS, []))
    app[FEED_FANOUT] = FanOut(timelines=announcing, followers=store,
                              push_threshold=settings.feed_push_threshold,
                              batch=settings.feed_fanout_batch,
                              backfill=settings.feed_timeline_length)
    yield


def setup_feed(app: web.Application) -> None:
    # Imported here: the handlers look the service up under FEED_SERVICE above.
    from server.feed.routes import api

    api.register(app)
    settings = app[SETTINGS]
    metrics = FeedMetrics(app[METRICS].registry)
    def changed(old: BreakerState, new: BreakerState) -> None:
        metrics.changed(old, new)
        level = logging.WARNING if new is BreakerState.OPEN else logging.INFO
        log.log(level, "home feed circuit breaker %s", new.name.lower(), extra={
            "from": old.name.lower(), "to": new.name.lower(),
            "cooldown_seconds": settings.feed_breaker_cooldown_seconds})

    breaker = CircuitBreaker(failure_threshold=settings.feed_breaker_failures,
                             cooldown=settings.feed_breaker_cooldown_seconds,
                             listener=changed)
    metrics.watch(breaker)
    app[FEED_METRICS] = metrics
    app[FEED_BREAKER] = breaker

    async def handle(event: EventEnvelope) -> None:
        await app[FEED_FANOUT].handle(event)

    app[EVENT_BUS].subscribe(fanout.CONSUMER, fanout.TOPICS, handle)
    app.cleanup_ctx.append(feed_ctx)
