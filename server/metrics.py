"""Prometheus metrics: HTTP request counts and latencies per route, served at /metrics.

Each app gets its own CollectorRegistry (no process-global state), so tests can build many apps.
"""

from __future__ import annotations

import time

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import generate_latest

from server.http.middleware import route_name


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


METRICS = web.AppKey("metrics", HttpMetrics)


@web.middleware
async def metrics_middleware(request: web.Request, handler: web.Handler) -> web.StreamResponse:
    metrics = request.app[METRICS]
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    finally:
        route = route_name(request)
        metrics.requests.labels(request.method, route, str(status)).inc()
        metrics.latency.labels(request.method, route).observe(time.perf_counter() - started)


async def metrics_handler(request: web.Request) -> web.Response:
    body = generate_latest(request.app[METRICS].registry)
    response = web.Response(body=body)
    response.content_type = CONTENT_TYPE_LATEST.split(";")[0]
    return response


def setup_metrics(app: web.Application) -> None:
    app[METRICS] = HttpMetrics(CollectorRegistry())
    app.router.add_get("/metrics", metrics_handler, name="ops.metrics")
