"""Cleanup contexts for the shared resources: the database and Redis.

Each is one `cleanup_ctx` generator: set up before `yield`, torn down after, registered by
`create_app()` in dependency order.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import redis.asyncio as redis
from aiohttp import web

from server.keys import DB_POOL, LIFECYCLE, SETTINGS
from storage.postgres.embedded import EmbeddedPostgres
from storage.postgres.migrate import migrate
from storage.postgres.pool import create_pool
from storage.redis.client import create_redis

log = logging.getLogger("hubbub.resources")
REDIS = web.AppKey("redis", redis.Redis)


async def database_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    lifecycle = app[LIFECYCLE]
    embedded: EmbeddedPostgres | None = None
    dsn = settings.database_url
    if dsn is None:
        embedded = EmbeddedPostgres(settings.data_dir)
        dsn = await embedded.start()
    lifecycle.adapters["database"] = "embedded-postgres" if embedded else "postgres"
    try:
        pool = await create_pool(dsn, min_size=settings.db_pool_min,
                                 max_size=settings.db_pool_max)
        try:
            async with pool.acquire() as conn:
                await migrate(conn)
            app[DB_POOL] = pool

            async def check() -> None:
                await pool.fetchval("SELECT 1")

            lifecycle.readiness_checks["database"] = check
            yield
        finally:
            await pool.close()
    finally:
        if embedded is not None:
            await embedded.stop()


async def redis_ctx(app: web.Application) -> AsyncIterator[None]:
    """Connect Redis when REDIS_URL is set; otherwise in-process adapters stand in for it."""
    settings = app[SETTINGS]
    lifecycle = app[LIFECYCLE]
    if settings.redis_url is None:
        lifecycle.adapters["redis"] = "in-process"
        yield
        return
    client = create_redis(settings.redis_url, max_connections=settings.redis_pool_max)
    await client.ping()
    app[REDIS] = client
    lifecycle.adapters["redis"] = "redis"

    async def check() -> None:
        await client.ping()

    lifecycle.readiness_checks["redis"] = check
    try:
        yield
    finally:
        await client.aclose()


def optional_redis(app: web.Application) -> redis.Redis | None:
    return app.get(REDIS)
