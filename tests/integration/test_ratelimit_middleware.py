"""The rate-limit middleware in a small real app: buckets, exemptions, headers, fail-open."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
import redis.asyncio as redis
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from protocols.ops import Health
from server.config import load_settings
from server.http.endpoint import Endpoints
from server.http.middleware import problem_details
from server.keys import ENDPOINTS, LIFECYCLE, SETTINGS
from server.lifecycle import Lifecycle
from server.ratelimit.wiring import rate_limit_middleware, setup_ratelimit
from server.resources import REDIS
from tests.support.services import free_port

pytestmark = pytest.mark.integration

api = Endpoints("sample")


@api.get("/v1/things", name="things.list", auth=False, response=Health, summary="List")
async def things(request: web.Request) -> Health:
    return Health(status="ok")


@api.post("/v1/things", name="things.create", auth=False, response=Health, rate_limit=2,
          summary="Create")
async def create_thing(request: web.Request) -> Health:
    return Health(status="created")


@api.get("/probe", name="ops.probe", auth=False, response=Health, summary="Probe")
async def probe(request: web.Request) -> Health:
    return Health(status="ok")


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@asynccontextmanager
async def serve(env: dict[str, str], *, clock: Callable[[], float] | None = None,
                redis_client: redis.Redis | None = None) -> AsyncIterator[TestClient]:
    app = web.Application(middlewares=[problem_details, rate_limit_middleware])
    app[SETTINGS] = load_settings(env)
    app[LIFECYCLE] = Lifecycle(node_id="test")
    app[ENDPOINTS] = []
    if redis_client is not None:
        app[REDIS] = redis_client
    setup_ratelimit(app, clock=clock or FakeClock())
    api.register(app)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        yield client


async def statuses(client: TestClient, method: str, path: str, times: int,
                   **kwargs: Any) -> list[int]:
    result = []
    for _ in range(times):
        async with client.request(method, path, **kwargs) as response:
            result.append(response.status)
    return result


async def test_global_limit_refuses_with_a_problem_and_retry_after() -> None:
    async with serve({"RATE_LIMIT_PER_MINUTE": "3"}) as client:
        remaining = []
        for _ in range(3):
            async with client.get("/v1/things") as response:
                assert response.status == 200
                assert response.headers["RateLimit-Limit"] == "3"
                remaining.append(response.headers["RateLimit-Remaining"])
        assert remaining == ["2", "1", "0"]
        async with client.get("/v1/things") as response:
            assert response.status == 429
            assert response.content_type == "application/problem+json"
            body = await response.json()
            assert body["code"] == "rate_limited" and body["status"] == 429
            assert response.headers["Retry-After"] == "20"  # 3/min: one token per 20 s
            assert body["retry_after"] == 20
        assert client.app[LIFECYCLE].adapters["rate_limit"] == "memory"


async def test_ops_routes_and_unmatched_requests_are_exempt() -> None:
    async with serve({"RATE_LIMIT_PER_MINUTE": "1"}) as client:
        assert await statuses(client, "GET", "/v1/things", 2) == [200, 429]
        assert await statuses(client, "GET", "/probe", 3) == [200, 200, 200]
        assert await statuses(client, "GET", "/v1/nowhere", 2) == [404, 404]
        assert await statuses(client, "DELETE", "/v1/things", 1) == [405]
        async with client.get("/probe") as response:
            assert "RateLimit-Limit" not in response.headers


async def test_a_route_limit_applies_on_top_of_the_global_one() -> None:
    async with serve({"RATE_LIMIT_PER_MINUTE": "100"}) as client:
        async with client.post("/v1/things") as response:
            # The route bucket (2/min) is the tighter one, so the headers describe it.
            assert response.headers["RateLimit-Limit"] == "2"
            assert response.headers["RateLimit-Remaining"] == "1"
        assert await statuses(client, "POST", "/v1/things", 2) == [200, 429]
        assert await statuses(client, "GET", "/v1/things", 1) == [200]  # other route: fine


async def test_rate_limit_routes_overrides_the_declared_limit() -> None:
    env = {"RATE_LIMIT_PER_MINUTE": "100",
           "RATE_LIMIT_ROUTES": "things.create=4,things.list=1"}
    async with serve(env) as client:
        assert await statuses(client, "POST", "/v1/things", 5) == [200] * 4 + [429]
        assert await statuses(client, "GET", "/v1/things", 2) == [200, 429]


async def test_tokens_come_back_with_time() -> None:
    clock = FakeClock()
    async with serve({"RATE_LIMIT_PER_MINUTE": "2"}, clock=clock) as client:
        assert await statuses(client, "GET", "/v1/things", 3) == [200, 200, 429]
        clock.now += 30.0
        assert await statuses(client, "GET", "/v1/things", 2) == [200, 429]


async def test_forwarded_for_is_used_only_when_trusted() -> None:
    def as_client(ip: str) -> dict[str, Any]:
        return {"headers": {"X-Forwarded-For": f"{ip}, 10.0.0.1"}}

    async with serve({"RATE_LIMIT_PER_MINUTE": "1"}) as client:
        assert await statuses(client, "GET", "/v1/things", 1, **as_client("1.1.1.1")) == [200]
        # Not trusted: a spoofed header does not buy a fresh bucket.
        assert await statuses(client, "GET", "/v1/things", 1, **as_client("2.2.2.2")) == [429]
    async with serve({"RATE_LIMIT_PER_MINUTE": "1", "TRUST_PROXY_HEADERS": "true"}) as client:
        assert await statuses(client, "GET", "/v1/things", 2, **as_client("1.1.1.1")) == [
            200, 429]
        assert await statuses(client, "GET", "/v1/things", 1, **as_client("2.2.2.2")) == [200]


async def test_a_failing_redis_fails_open() -> None:
    dead = redis.Redis(host="127.0.0.1", port=free_port(), socket_connect_timeout=1,
                       retry=Retry(NoBackoff(), 0))
    try:
        async with serve({"RATE_LIMIT_PER_MINUTE": "1"}, redis_client=dead) as client:
            assert client.app[LIFECYCLE].adapters["rate_limit"] == "redis"
            assert await statuses(client, "GET", "/v1/things", 3) == [200, 200, 200]
    finally:
        await dead.aclose()
