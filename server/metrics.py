"""Prometheus metrics: HTTP request counts and latencies per route, served at /metrics.

Each app gets its own CollectorRegistry (no process-global state), so tests can build many apps.
Socket.IO's requests (`/socket.io/`) are counted under route="socket.io", and by transport in
`hubbub_socketio_requests_total`, but never timed: a long poll lasts up to 25 s, a websocket as
long as it is open. They do not pass the middlewares; server/gateway/endpoint.py counts
them. The gateway's own metrics (events, acks, disconnects, queues) are in
server/gateway/metrics.py.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector

from server.http.middleware import route_name
from server.keys import LIFECYCLE

SOCKET_IO_ROUTE = "socket.io"  # the route label of its requests
UNMATCHED = "unmatched"  # the route label of requests no route matched (404, 405)
# Engine.IO's `transport` query parameter; anything else is counted as "other".
SOCKET_IO_TRANSPORTS = ("websocket", "polling")


class HttpMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.requests = Counter(
            "hubbub_http_requests", "HTTP requests handled",
            ["method", "route", "status"], registry=registry,
        )
        self.latency = Histogram(
            "hubbub_http_request_duration_seconds", "HTTP request latency",
            ["method", "route"], registry=registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.socketio_requests = Counter(
            "hubbub_socketio_requests",
            "Socket.IO HTTP requests as they arrive, by Engine.IO transport (websocket: a "
            "websocket opened or upgraded to; polling: a long-polling GET or POST)",
            ["transport"], registry=registry,
        )
        self._transports = {name: self.socketio_requests.labels(name)
                            for name in (*SOCKET_IO_TRANSPORTS, "other")}

    def socketio_request(self, transport: str | None) -> None:
        self._transports.get(transport or "other", self._transports["other"]).inc()


def route_label(request: web.Request) -> str:
    """The route label of a request: the route's name, its pattern should a matched route
    have no name (never "unnamed"), or "unmatched"."""
    match_info = request.match_info
    if match_info.http_exception is not None:
        return UNMATCHED
    name = route_name(request)
    if name != "unnamed":
        return name
    resource = match_info.route.resource
    return resource.canonical if resource is not None else UNMATCHED


class PoolMetrics(Collector):
    """Connection pools, read when /metrics is scraped: how many connections are in use, idle,
    and the most there may be. `hubbub_redis_pool_connections{pool,state}` and
    `hubbub_redis_pool_max_connections{pool}` per redis.asyncio pool (a BlockingConnectionPool
    makes a command wait when all are in use), `hubbub_db_pool_connections{state}` and
    `hubbub_db_pool_max_connections` for the asyncpg pool."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._redis: dict[str, Any] = {}
        self._db: Any = None
        registry.register(self)

    def add_redis(self, name: str, pool: Any) -> None:
        """Watch a redis.asyncio ConnectionPool under the label pool=<name>."""
        self._redis[name] = pool

    def remove_redis(self, name: str) -> None:
        self._redis.pop(name, None)

    def set_database(self, pool: Any) -> None:
        """Watch the asyncpg pool (None: stop watching)."""
        self._db = pool

    def collect(self) -> Iterator[Metric]:
        used = GaugeMetricFamily("hubbub_redis_pool_connections",
                                 "Redis connections of this node's pool, by state",
                                 labels=["pool", "state"])
        most = GaugeMetricFamily("hubbub_redis_pool_max_connections",
                                 "Redis connections this node's pool may open at most",
                                 labels=["pool"])
        for name, pool in list(self._redis.items()):
            # redis-py keeps these as private attributes; a missing one reads as 0.
            used.add_metric([name, "in_use"], len(getattr(pool, "_in_use_connections", ())))
            used.add_metric([name, "idle"], len(getattr(pool, "_available_connections", ())))
            most.add_metric([name], getattr(pool, "max_connections", 0) or 0)
        yield used
        yield most
        db = self._db
        if db is not None:
            size, idle = db.get_size(), db.get_idle_size()
            conns = GaugeMetricFamily("hubbub_db_pool_connections",
                                      "Postgres connections of this node's pool, by state",
                                      labels=["state"])
            conns.add_metric(["in_use"], size - idle)
            conns.add_metric(["idle"], idle)
            yield conns
            yield GaugeMetricFamily("hubbub_db_pool_max_connections",
                                    "Postgres connections this node's pool may open at most",
                                    value=db.get_max_size())


METRICS = web.AppKey("metrics", HttpMetrics)
POOL_METRICS = web.AppKey("pool_metrics", PoolMetrics)


@web.middleware
async def metrics_middleware(request: web.Request, handler: web.Handler) -> web.StreamResponse:
    """Count and time every request; keep the in-flight count that shutdown waits on (and,
    once the server is draining, end each connection after its response, so keep-alive
    clients reconnect to another node)."""
    metrics = request.app[METRICS]
    lifecycle = request.app[LIFECYCLE]
    lifecycle.request_started()
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        if lifecycle.draining:
            response.force_close()
        return response
    except web.HTTPException as exc:  # raised, not returned: its own status, not a 500
        status = exc.status
        raise
    finally:
        route = route_label(request)
        metrics.requests.labels(request.method, route, str(status)).inc()
        lifecycle.request_finished()
        metrics.latency.labels(request.method, route).observe(time.perf_counter() - started)


async def metrics_handler(request: web.Request) -> web.Response:
    body = generate_latest(request.app[METRICS].registry)
    response = web.Response(body=body)
    response.content_type = CONTENT_TYPE_LATEST.split(";")[0]
    return response


def setup_metrics(app: web.Application) -> None:
    app[METRICS] = HttpMetrics(CollectorRegistry())
    # The standard process_* (CPU, memory, open files), python_info and python_gc_* series.
    for collector in (ProcessCollector, PlatformCollector, GCCollector):
        collector(registry=app[METRICS].registry)
    app[POOL_METRICS] = PoolMetrics(app[METRICS].registry)
    lifecycle = app[LIFECYCLE]
    Gauge("hubbub_http_requests_in_flight",
          "HTTP requests being handled (Socket.IO's websockets and long polls excepted)",
          registry=app[METRICS].registry).set_function(lambda: lifecycle.requests_in_flight)
    app.router.add_get("/metrics", metrics_handler, name="ops.metrics")
