"""Cleanup contexts for the shared resources: the database and Redis.

Each is one `cleanup_ctx` generator: set up before `yield`, torn down after, registered by
`create_app()` in dependency order. A service that cannot be reached yet is waited for (within
server.startup.SERVICE_WAIT_SECONDS); one that cannot work stops startup with a StartupError
naming its variable.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import asyncpg
import redis.asyncio as redis
from aiohttp import web
from redis import exceptions as redis_errors

from server.faults import unavailable_cause
from server.keys import DB_POOL, LIFECYCLE, SETTINGS
from server.metrics import POOL_METRICS
from server.startup import StartupError, describe, redact, wait_for_service
from storage.postgres.embedded import EmbeddedPostgres
from storage.postgres.migrate import migrate
from storage.postgres.pool import create_pool
from storage.redis.client import create_redis

log = logging.getLogger("hubbub.resources")
REDIS = web.AppKey("redis", redis.Redis)


def postgres_retriable(exc: BaseException) -> bool:
    """Down, starting up, restarting, out of slots: wait. Wrong password, unknown database or
    role, malformed URL: do not."""
    return unavailable_cause(exc) is not None


def redis_retriable(exc: BaseException) -> bool:
    if isinstance(exc, redis_errors.AuthenticationError | redis_errors.AuthorizationError):
        return False
    return unavailable_cause(exc) is not None


def postgres_target(dsn: str) -> str:
    try:
        parts = urlsplit(dsn)
        return f"Postgres at {parts.hostname or 'localhost'}:{parts.port or 5432}" \
               f"{parts.path or ''}"
    except ValueError:
        return "Postgres"


async def database_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    lifecycle = app[LIFECYCLE]
    embedded: EmbeddedPostgres | None = None
    dsn = settings.database_url
    if dsn is None:
        embedded = EmbeddedPostgres(settings.data_dir)
        try:
            dsn = await embedded.start()
        except Exception as exc:
            raise StartupError("DATA_DIR", f"the embedded Postgres in {embedded.pgdata} did "
                                           f"not start: {describe(exc)}") from exc
        variable, target = "DATA_DIR", f"the embedded Postgres in {embedded.pgdata}"
    else:
        variable, target = "DATABASE_URL", postgres_target(dsn)
    lifecycle.adapters["database"] = "embedded-postgres" if embedded else "postgres"
    try:
        pool = await wait_for_service(
            variable, target,
            lambda: create_pool(dsn, min_size=settings.db_pool_min,
                                max_size=settings.db_pool_max),
            retriable=postgres_retriable,
            # asyncpg reports a malformed DSN as ValueError (or its ClientConfigurationError)
            fatal=(asyncpg.PostgresError, asyncpg.InterfaceError, ValueError, OSError))
        try:
            async with pool.acquire() as conn:
                await migrate(conn)
            app[DB_POOL] = pool
            app[POOL_METRICS].set_database(pool)

            async def check() -> None:
                await pool.fetchval("SELECT 1")

            lifecycle.readiness_checks["database"] = check
            yield
        finally:
            app[POOL_METRICS].set_database(None)
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
    target = redact(settings.redis_url)
    try:
        client = create_redis(settings.redis_url, max_connections=settings.redis_pool_max)
    except ValueError as exc:  # not a redis://, rediss:// or unix:// URL
        raise StartupError("REDIS_URL", f"{target} is not a Redis URL: {exc}") from exc
    try:
        await wait_for_service("REDIS_URL", target, client.ping, retriable=redis_retriable,
                               fatal=(redis_errors.RedisError, OSError, ValueError))
    except BaseException:
        await client.aclose()
        raise
    app[REDIS] = client
    app[POOL_METRICS].add_redis("main", client.connection_pool)
    lifecycle.adapters["redis"] = "redis"

    async def check() -> None:
        await client.ping()

    lifecycle.readiness_checks["redis"] = check
    try:
        yield
    finally:
        app[POOL_METRICS].remove_redis("main")
        await client.aclose()


def optional_redis(app: web.Application) -> redis.Redis | None:
    return app.get(REDIS)
