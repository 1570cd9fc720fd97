"""The scheduling area's app keys, below both its routes and its wiring (and other areas'
wiring, which plugs publishers in with `add_publisher`)."""

from __future__ import annotations

from aiohttp import web

from server.scheduling.ports import Publisher
from server.scheduling.rate_limits import RateLimitReporter
from server.scheduling.registry import ConnectionCheck, PublishingRegistry
from server.scheduling.scheduler import Scheduler
from server.scheduling.service import ScheduleService

SCHEDULE_SERVICE = web.AppKey("schedule_service", ScheduleService)
SCHEDULER = web.AppKey("scheduler", Scheduler)
PUBLISHING = web.AppKey("publishing_registry", PublishingRegistry)
# For publishers that see a rate limit on a success (server.scheduling.rate_limits).
RATE_LIMIT_REPORTER = web.AppKey("rate_limit_reporter", RateLimitReporter)


def publishing(app: web.Application) -> PublishingRegistry:
    """The registry of publishers by target kind, created on first use (so areas may plug
    in before or after setup_scheduling)."""
    if PUBLISHING not in app:
        app[PUBLISHING] = PublishingRegistry()
    return app[PUBLISHING]


def add_publisher(app: web.Application, publisher: Publisher, *,
                  connection_check: ConnectionCheck | None = None) -> None:
    """Publish targets of `publisher.kind` with it, on this node (every node must do the
    same). `connection_check(user_id, connection_id)` vets targets' connection ids at
    schedule time (see server.scheduling.registry). Call while the app is built or in a
    cleanup_ctx, before the app serves."""
    publishing(app).add(publisher, connection_check=connection_check)
