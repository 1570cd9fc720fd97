"""Session-wide servers and per-session databases shared by every test layer."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest
import pytest_asyncio
import redis.asyncio as redis

from storage.postgres.migrate import migrate
from storage.postgres.pool import create_pool
from tests.support import redis_keys
from tests.support.databases import create_database, drop_database
from tests.support.services import postgres_server, redis_server

# Fixtures shared by test folders that have no conftest in common.
pytest_plugins = ["tests.support.tracing"]


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Every server is stopped by now: delete the Redis keys they wrote under the prefixes
    this session gave them (tests/support/redis_keys.py)."""
    redis_keys.forget_remembered()


@pytest.fixture(scope="session")
def admin_pg_dsn() -> Iterator[str]:
    """DSN of a reachable Postgres server (started for the session when none runs)."""
    with postgres_server() as dsn:
        yield dsn


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """URL of a reachable Redis server (started for the session when none runs)."""
    with redis_server() as url:
        yield url


@pytest_asyncio.fixture(scope="session")
async def database_dsn(admin_pg_dsn: str) -> AsyncIterator[str]:
    """A fresh, migrated database for this test session; dropped at the end."""
    dsn = await create_database(admin_pg_dsn)
    conn = await asyncpg.connect(dsn)
    try:
        await migrate(conn)
    finally:
        await conn.close()
    yield dsn
    await drop_database(admin_pg_dsn, dsn)


@pytest_asyncio.fixture(scope="session")
async def db_pool(database_dsn: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(database_dsn, min_size=1, max_size=10)
    yield pool
    await pool.close()


@pytest_asyncio.fixture(scope="session")
async def redis_client(redis_url: str) -> AsyncIterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    await client.aclose()


@pytest.fixture
def key_prefix() -> str:
    """A Redis key prefix unique to one test, so tests never see each other's keys."""
    return f"hubbub-test:{uuid.uuid4().hex[:10]}:"


@pytest_asyncio.fixture
async def clean_redis_prefix(redis_client: redis.Redis, key_prefix: str) -> AsyncIterator[str]:
    """key_prefix, with every key under it deleted after the test."""
    yield key_prefix
    keys = [k async for k in redis_client.scan_iter(match=f"{key_prefix}*")]
    if keys:
        await redis_client.delete(*keys)
