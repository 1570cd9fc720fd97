"""End-to-end fixtures: a real `hubbub serve` subprocess and an HTTP client for it."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

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


def _lifted_route_limits(per_minute: int) -> str:
    """RATE_LIMIT_ROUTES raising every route's own limit (building the app starts nothing)."""
    app = create_app(load_settings({"JWT_SECRET": "x" * 32}))
    return ",".join(f"{e.name}={per_minute}" for e in app[ENDPOINTS] if e.rate_limit)


@pytest_asyncio.fixture(scope="session")
async def server_dsn(admin_pg_dsn: str) -> AsyncIterator[str]:
    dsn = await create_database(admin_pg_dsn, prefix="hubbub_e2e")
    yield dsn
    await drop_database(admin_pg_dsn, dsn)


@pytest.fixture(scope="session")
def hubbub(server_dsn: str, redis_url: str) -> Iterator[HubbubProcess]:
    """The shared server for e2e tests: real Postgres and Redis, generous rate limits."""
    server = HubbubProcess({
        "DATABASE_URL": server_dsn,
        "REDIS_URL": redis_url,
        "REDIS_KEY_PREFIX": f"hubbub-e2e:{uuid.uuid4().hex[:8]}:",
        "JWT_SECRET": JWT_SECRET,
        "RATE_LIMIT_PER_MINUTE": "100000",
        # Per-route limits (signup 20/min per IP, ...) would throttle a suite that signs up
        # hundreds of users from one address.
        "RATE_LIMIT_ROUTES": _lifted_route_limits(100_000),
        "PRESENCE_GRACE_SECONDS": "1",  # presence tests wait out the grace period
    }).start()
    yield server
    assert server.stop() == 0, "hubbub did not shut down cleanly on SIGTERM"


@pytest_asyncio.fixture
async def http(hubbub: HubbubProcess) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(base_url=hubbub.base_url) as session:
        yield session
