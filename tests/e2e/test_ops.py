"""Operational endpoints of a real server process."""

from __future__ import annotations

import aiohttp

from tests.support.server import HubbubProcess


async def test_health_ready_info(http: aiohttp.ClientSession, hubbub: HubbubProcess) -> None:
    async with http.get("/health") as response:
        assert response.status == 200
        assert await response.json() == {"status": "ok"}
    async with http.get("/ready") as response:
        assert response.status == 200
        body = await response.json()
        assert body["checks"] == {"database": "ok", "redis": "ok", "cluster": "ok",
                                  "socketio": "ok", "room_channels": "ok"}
    async with http.get("/info") as response:
        info = await response.json()
        assert info["adapters"]["database"] == "postgres"
        assert info["adapters"]["redis"] == "redis"
        assert info["version"]
        # With REDIS_URL the server is a cluster of one (or more, when a test adds nodes).
        cluster = info["cluster"]
        assert cluster["mode"] == "cluster" and cluster["node_id"] == info["node_id"]
        assert info["node_id"] in cluster["nodes"] and cluster["version"] >= 1


async def test_request_id_is_echoed_and_logged(
    http: aiohttp.ClientSession, hubbub: HubbubProcess
) -> None:
    async with http.get("/health", headers={"X-Request-ID": "trace-abc-123"}) as response:
        assert response.headers["X-Request-ID"] == "trace-abc-123"
    access = [e for e in hubbub.logs() if e.get("request_id") == "trace-abc-123"]
    assert access and access[0]["route"] == "ops.health" and access[0]["status"] == 200


async def test_unknown_route_is_a_problem(http: aiohttp.ClientSession) -> None:
    async with http.get("/v1/nowhere") as response:
        assert response.status == 404
        assert response.content_type == "application/problem+json"
        body = await response.json()
        assert body["status"] == 404 and body["code"] == "not_found"
        assert {"type", "title", "status", "detail", "code"} <= body.keys()


async def test_metrics_are_prometheus_text(http: aiohttp.ClientSession) -> None:
    async with http.get("/health"):
        pass
    async with http.get("/metrics") as response:
        assert response.status == 200
        text = await response.text()
        assert 'hubbub_http_requests_total{method="GET",route="ops.health",status="200"}' in text
        # Every matched route has a name in the labels (Socket.IO's: tests/e2e/
        # test_socket_metrics.py), and the gateway's series are there.
        assert 'route="unnamed"' not in text
        for series in ("hubbub_sockets_connected", "hubbub_socket_outbound_queue_max_depth",
                       'hubbub_socket_events_total{event="message:send",result="ok"}',
                       'hubbub_socket_disconnects_total{reason="ping_timeout"}'):
            assert f"\n{series}" in text, series
        # The standard collectors: the process, the interpreter, its garbage collector.
        for series in ("process_resident_memory_bytes", "process_cpu_seconds_total",
                       "python_info", "python_gc_collections_total"):
            assert f"\n{series}" in text, series
