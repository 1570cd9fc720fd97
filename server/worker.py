"""`hubbub worker`: the consumer-only process, and RUN_CONSUMERS for `hubbub serve`.

A worker runs what `hubbub serve` runs in the background, and nothing that faces clients:

- the event consumers of every area, in their Kafka consumer groups (`feed.fanout`,
  `notifications`, `analytics`): the same groups as the serve nodes', so workers and serve
  nodes share the partitions, and serve nodes started with RUN_CONSUMERS=false leave them all
  to the workers;
- the outbox relay (one active per cluster, whichever process holds its lock) and its cleanup;
- the scheduler and its publishers (`hubbub`, `webhook`, `x`), unless SCHEDULER_ENABLED=false.

No REST API, no Socket.IO, no actor system and no cluster membership: the areas are built on
an aiohttp Application that is started (its cleanup contexts and startup hooks run) but never
listened on. A second, tiny app answers `/health`, `/ready`, `/info` and `/metrics` on
HOST:WORKER_HTTP_PORT (default 8081; 0: none) for probes and Prometheus.

It needs Kafka (KAFKA_BOOTSTRAP_SERVERS): without it events are delivered in process by the
serve node that holds the outbox relay's lock, so no other process could receive them. It
also needs the serve nodes' Postgres (DATABASE_URL: an embedded Postgres is one process's own)
and Redis (REDIS_URL: the home timelines the fan-out writes are read by the serve nodes).
Each missing one stops it at start with exit code 2 and one line naming the variable.

What consumers do on a worker: their effects (timelines, notification rows, analytics). The
live pushes that a serve node's gateway adds (`notification` and `feed:new` to open sockets)
need a gateway and are not made by a worker: clients see those items on their next read.

Shutdown (SIGTERM, SIGINT, SIGHUP; later signals are only logged): /ready answers 503, the
relay stops, each consumer finishes the event in hand and commits its offset (within the
bus's stop timeout, 10 s, after which a handler still running is cancelled and its event is
redelivered), the scheduler stops (its claims' leases let another node take over what it did
not finish), then the pools close and the health endpoint goes last.
"""

from __future__ import annotations

import logging

from aiohttp import web

from protocols.events import EventEnvelope
from server.analytics.wiring import setup_analytics
from server.config import Settings
from server.events.wiring import EVENT_BUS, EVENT_METRICS, setup_events
from server.feed.wiring import setup_feed
from server.http.middleware import problem_details
from server.keys import ENDPOINTS, LIFECYCLE, SETTINGS
from server.lifecycle import Lifecycle
from server.media.wiring import setup_media
from server.metrics import METRICS, metrics_handler, setup_metrics
from server.notifications.wiring import setup_notifications
from server.ops.routes import api as ops_api
from server.posts.wiring import setup_posts
from server.publishing.wiring import setup_publishing
from server.resources import database_ctx, redis_ctx
from server.scheduling.wiring import setup_scheduling
from server.signals import Stop, run_until_stopped, until_signal
from server.startup import (
    StartupError,
    check_data_dir,
    check_kafka_servers,
    check_listen,
    data_dir_needed,
    listen_error,
)
from server.tracing import traced_app
from server.users.wiring import setup_users
from storage.kafka.event_bus import KafkaEventBus

log = logging.getLogger("hubbub.worker")


def create_worker_app(settings: Settings) -> web.Application:
    """The worker's composition root: resources, the event pipeline, and the areas whose
    consumers and background work run here (with what those need: users, media, posts)."""
    app = web.Application()
    app[SETTINGS] = settings
    app[LIFECYCLE] = Lifecycle(node_id=settings.effective_node_id)
    app[ENDPOINTS] = []  # the areas register their routes; nothing serves them
    app.cleanup_ctx.append(database_ctx)
    app.cleanup_ctx.append(redis_ctx)
    setup_metrics(app)
    setup_events(app)  # before the areas: they subscribe their consumers to app[EVENT_BUS]
    setup_users(app)
    setup_media(app)
    setup_posts(app)
    setup_feed(app)
    setup_notifications(app)
    setup_analytics(app)
    setup_publishing(app)  # before scheduling, as in create_app
    setup_scheduling(app)
    return app


def create_health_app(worker: web.Application) -> web.Application:
    """`/health`, `/ready`, `/info` and `/metrics` of a worker app (its lifecycle, readiness
    checks and metrics registry), on an app of their own."""
    app = web.Application(middlewares=[problem_details])
    app[SETTINGS] = worker[SETTINGS]
    app[LIFECYCLE] = worker[LIFECYCLE]
    app[METRICS] = worker[METRICS]
    app[ENDPOINTS] = []
    ops_api.register(app)
    app.router.add_get("/metrics", metrics_handler, name="ops.metrics")
    return app


def preflight(settings: Settings) -> None:
    """What a worker needs before anything starts; a StartupError names the variable."""
    if not settings.kafka_bootstrap_servers:
        raise StartupError(
            "KAFKA_BOOTSTRAP_SERVERS",
            "not set, and `hubbub worker` needs Kafka: without it events are delivered in "
            "process by the `hubbub serve` node that relays the outbox, so only serve nodes "
            "can run the consumers (run `hubbub serve` alone, or set KAFKA_BOOTSTRAP_SERVERS)")
    check_kafka_servers(settings.kafka_bootstrap_servers)
    if settings.database_url is None:
        raise StartupError("DATABASE_URL", "not set, and `hubbub worker` must use the serve "
                                           "nodes' database (an embedded Postgres is one "
                                           "process's own)")
    if settings.redis_url is None:
        raise StartupError("REDIS_URL", "not set, and `hubbub worker` must use the serve "
                                        "nodes' Redis (the home timelines it writes live in "
                                        "each process's memory without it)")
    if data_dir_needed(settings.database_url, settings.jwt_secret, settings.s3_endpoint_url):
        check_data_dir(settings.data_dir)
    if settings.worker_http_port:
        try:
            check_listen(settings.host, settings.worker_http_port)
        except StartupError as exc:
            raise _as_worker_port(exc) from exc


def _as_worker_port(exc: StartupError) -> StartupError:
    if exc.variable != "PORT":
        return exc
    return StartupError("WORKER_HTTP_PORT", str(exc).removeprefix("PORT: "))


def _warn_about_unshared(settings: Settings) -> None:
    """Settings a worker must share with the serve nodes but may generate on its own."""
    local = [name for name, value in (("JWT_SECRET", settings.jwt_secret),
                                      ("PUBLISHING_ENCRYPTION_KEY",
                                       settings.publishing_encryption_key),
                                      ("S3_ENDPOINT_URL", settings.s3_endpoint_url))
             if value is None]
    if local:
        log.warning("unset, so kept in DATA_DIR: the serve nodes must use the same DATA_DIR",
                    extra={"variables": local, "data_dir": settings.data_dir})
    if not settings.run_consumers:
        log.info("RUN_CONSUMERS=false is for `hubbub serve`; a worker always runs the consumers")


async def run_worker(settings: Settings) -> None:
    """Run until SIGTERM/SIGINT/SIGHUP, then drain and stop."""

    def checks() -> None:
        preflight(settings)
        _warn_about_unshared(settings)

    await run_until_stopped(settings, checks=checks, run=_run)


async def _run(settings: Settings, stop: Stop) -> None:
    app = traced_app(create_worker_app, settings)
    lifecycle = app[LIFECYCLE]
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    health: web.AppRunner | None = None
    try:
        # Pools, migrations, the bus (consumers join their groups in the background), the
        # relay, the scheduler; a signal abandons it.
        await until_signal(stop, runner.setup())
        if stop.count:
            log.info("stopped while starting")
            return
        if settings.worker_http_port:
            health = web.AppRunner(create_health_app(app), handle_signals=False,
                                   access_log=None)
            await health.setup()
            site = web.TCPSite(health, settings.host, settings.worker_http_port)
            try:
                await site.start()
            except OSError as exc:
                raise _as_worker_port(listen_error(settings.host, settings.worker_http_port,
                                                   exc)) from exc
        log.info("worker running", extra={
            "consumers": list(getattr(app[EVENT_BUS], "consumers", [])),
            "scheduler": settings.scheduler_enabled, "host": settings.host,
            "http_port": settings.worker_http_port or None, "adapters": lifecycle.adapters})
        await stop.wait()
        lifecycle.draining = True
        log.info("draining: stopping the consumers, the relay and the scheduler")
    finally:
        # on_shutdown (the relay, then the bus: each consumer finishes the event in hand,
        # within its stop timeout), then the contexts in reverse (the scheduler, the pools);
        # also undoes a partial startup.
        await runner.cleanup()
        if health is not None:
            await health.cleanup()
        log.info("stopped")


# RUN_CONSUMERS=false on `hubbub serve`

class _NoDeadLetters:
    """A publish-only bus consumes nothing, so it never parks an event."""

    async def park(self, consumer: str, event: EventEnvelope, *, error: str,
                   attempts: int) -> None:
        raise RuntimeError("a publish-only event bus has no consumers")


def check_consumer_role(settings: Settings) -> None:
    """RUN_CONSUMERS=false needs Kafka: without it the in-process bus is the only way events
    reach their consumers."""
    if not settings.run_consumers and not settings.kafka_bootstrap_servers:
        raise StartupError(
            "RUN_CONSUMERS", "false needs KAFKA_BOOTSTRAP_SERVERS: without Kafka events are "
                             "delivered in process, so the serve nodes must run the consumers")


def apply_consumer_role(app: web.Application) -> None:
    """RUN_CONSUMERS=false for an app built by create_app (call it before the app starts):
    its event bus becomes a Kafka bus with no subscriptions, so the outbox relay still
    publishes from here but no consumer group is joined (`hubbub worker` processes consume).
    The areas' consumers are still built; nothing calls them. A no-op with RUN_CONSUMERS on."""
    settings = app[SETTINGS]
    if settings.run_consumers:
        return
    check_consumer_role(settings)
    assert settings.kafka_bootstrap_servers is not None
    app[EVENT_BUS] = KafkaEventBus(
        settings.kafka_bootstrap_servers, dead_letters=_NoDeadLetters(),
        observer=app[EVENT_METRICS], client_id=f"hubbub-{settings.effective_node_id}",
        topic_partitions=settings.kafka_topic_partitions,
        replication_factor=settings.kafka_replication_factor)
    app[LIFECYCLE].adapters["consumers"] = "off"
    log.info("RUN_CONSUMERS is off: this node publishes events and consumes none")
