"""Connection pool gauges on /metrics (issue 9, item 10): Redis connections in use, idle and
the pool's ceiling (REDIS_POOL_MAX), and the same for the Postgres pool, against real servers."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry

from server.app import create_app
from server.config import load_settings
from server.metrics import PoolMetrics
from storage.redis.client import create_redis

pytestmark = pytest.mark.integration


async def test_redis_pool_use_and_ceiling_are_gauges(redis_url: str) -> None:
    registry = CollectorRegistry()
    pools = PoolMetrics(registry)
    client = create_redis(redis_url, max_connections=3)
    pools.add_redis("main", client.connection_pool)

    def connections(state: str) -> float | None:
        return registry.get_sample_value("hubbub_redis_pool_connections",
                                         {"pool": "main", "state": state})

    async def pooled_ping() -> bool:
        # Plain commands and pipelines without a transaction share the client's multiplexed
        # connection (storage/redis/multiplexed.py); transactions, pub/sub and blocking
        # commands take pooled ones.
        return bool(await client.pipeline(transaction=True).ping().execute())

    try:
        assert registry.get_sample_value("hubbub_redis_pool_max_connections",
                                         {"pool": "main"}) == 3
        await pooled_ping()
        assert (connections("in_use"), connections("idle")) == (0, 1)
        pool = client.connection_pool
        held = [await pool.get_connection() for _ in range(3)]
        assert (connections("in_use"), connections("idle")) == (3, 0)
        waiting = asyncio.create_task(pooled_ping())  # the pool is exhausted: this one waits
        for connection in held:
            await pool.release(connection)
        assert await asyncio.wait_for(waiting, 10)
        assert (connections("in_use"), connections("idle")) == (0, 3)
        pools.remove_redis("main")
        assert connections("in_use") is None
    finally:
        await client.aclose()


async def test_the_app_exports_its_pools(database_dsn: str, redis_url: str,
                                         clean_redis_prefix: str) -> None:
    app = create_app(load_settings({
        "DATABASE_URL": database_dsn, "REDIS_URL": redis_url,
        "REDIS_KEY_PREFIX": clean_redis_prefix, "REDIS_POOL_MAX": "37", "DB_POOL_MAX": "7",
        "JWT_SECRET": "x" * 32}))
    async with (TestServer(app, host="127.0.0.1") as server, TestClient(server) as client,
                client.get("/metrics") as response):
        text = await response.text()
    assert 'hubbub_redis_pool_max_connections{pool="main"} 37.0' in text
    assert 'hubbub_redis_pool_connections{pool="main",state="in_use"}' in text
    assert "hubbub_db_pool_max_connections 7.0" in text
    assert 'hubbub_db_pool_connections{state="in_use"}' in text
    assert "hubbub_http_requests_in_flight 1.0" in text  # the /metrics request itself
