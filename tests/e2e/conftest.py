"""End-to-end fixtures: a real `hubbub serve` subprocess and an HTTP client for it."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager

import aiohttp
import pytest
import pytest_asyncio

from server.app import create_app
from server.config import load_settings
from server.keys import ENDPOINTS
from tests.support.databases import create_database, drop_database
from tests.support.server import HubbubProcess

pytestmark = pytest.mark.e2e

JWT_SECRET = "e2e-secret-" + uuid.uuid4().hex


def lifted_route_limits(per_minute: int) -> str:
    """RATE_LIMIT_ROUTES raising every route's own limit (building the app starts nothing)."""
    app = create_app(load_settings({"JWT_SECRET": "x" * 32}))
    return ",".join(f"{e.name}={per_minute}" for e in app[ENDPOINTS] if e.rate_limit)


def e2e_env(database_url: str, redis_url: str) -> dict[str, str]:
    """What every e2e server shares: its stores, a fresh Redis key prefix, the e2e JWT secret
    (so accounts made on one server work on another) and limits a test suite cannot hit."""
    return {
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "REDIS_KEY_PREFIX": f"hubbub-e2e:{uuid.uuid4().hex[:8]}:",
        "JWT_SECRET": JWT_SECRET,
        "RATE_LIMIT_PER_MINUTE": "100000",
        # Per-route limits (signup 20/min per IP, ...) would throttle a suite that signs up
        # hundreds of users from one address.
        "RATE_LIMIT_ROUTES": lifted_route_limits(100_000),
    }


@contextmanager
def sibling_server(hubbub: HubbubProcess, **overrides: str) -> Iterator[HubbubProcess]:
    """Another server next to the shared one: same database, Redis and JWT secret unless
    `overrides` (environment variables; "" unsets one) say otherwise. It must stop cleanly."""
    base = e2e_env(hubbub.env["DATABASE_URL"], hubbub.env["REDIS_URL"])
    server = HubbubProcess({**base, **overrides}).start()
    try:
        yield server
    finally:
        assert server.stop() == 0, "hubbub did not shut down cleanly on SIGTERM"


@pytest_asyncio.fixture(scope="session")
async def server_dsn(admin_pg_dsn: str) -> AsyncIterator[str]:
    dsn = await create_database(admin_pg_dsn, prefix="hubbub_e2e")
    yield dsn
    await drop_database(admin_pg_dsn, dsn)


@pytest.fixture(scope="session")
def hubbub(server_dsn: str, redis_url: str) -> Iterator[HubbubProcess]:
    """The shared server for e2e tests: real Postgres and Redis, generous rate limits."""
    server = HubbubProcess({
        **e2e_env(server_dsn, redis_url),
        "PRESENCE_GRACE_SECONDS": "1",  # presence tests wait out the grace period
    }).start()
    yield server
    assert server.stop() == 0, "hubbub did not shut down cleanly on SIGTERM"


@pytest_asyncio.fixture
async def http(hubbub: HubbubProcess) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(base_url=hubbub.base_url) as session:
        yield session
