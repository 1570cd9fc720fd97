"""A Hubbub cluster for end-to-end tests: three `hubbub serve` nodes on one fresh database and
one Redis key prefix.

`cluster` (package scope) serves the tests that leave every node running; `make_cluster`
builds one per test (its own database) for the tests that kill or restart nodes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest
import pytest_asyncio

from tests.e2e.cluster.clients import Rest
from tests.support.cluster import RUNNING, HubbubCluster
from tests.support.databases import create_database, drop_database

SIZE = 3
# The shared cluster rings for 2 s only: its call tests wait out a ring timeout.
SHARED_ENV = {"CALL_RING_TIMEOUT": "2"}


async def _started(admin_pg_dsn: str, redis_url: str,
                   env: dict[str, str]) -> tuple[HubbubCluster, str]:
    dsn = await create_database(admin_pg_dsn, prefix="hubbub_e2e_cluster")
    cluster = HubbubCluster(SIZE, dsn, redis_url, env)
    try:
        await cluster.start()
    except BaseException:
        await cluster.close()
        await drop_database(admin_pg_dsn, dsn)
        raise
    return cluster, dsn


@pytest_asyncio.fixture(scope="package")
async def cluster(admin_pg_dsn: str, redis_url: str) -> AsyncIterator[HubbubCluster]:
    started, dsn = await _started(admin_pg_dsn, redis_url, SHARED_ENV)
    try:
        yield started
    finally:
        try:
            await started.close()
        finally:
            await drop_database(admin_pg_dsn, dsn)


@pytest_asyncio.fixture
async def rest(cluster: HubbubCluster) -> AsyncIterator[Rest]:
    client = Rest(cluster)
    yield client
    await client.close()


MakeCluster = Callable[..., Awaitable[HubbubCluster]]


@pytest_asyncio.fixture
async def make_cluster(admin_pg_dsn: str, redis_url: str) -> AsyncIterator[MakeCluster]:
    """make_cluster(**env) -> a started cluster of its own, closed (each node that was not
    killed must exit 0 on SIGTERM) and its database dropped after the test."""
    made: list[tuple[HubbubCluster, str]] = []

    async def make(**env: str) -> HubbubCluster:
        started, dsn = await _started(admin_pg_dsn, redis_url, env)
        made.append((started, dsn))
        return started

    yield make
    errors = []
    for started, dsn in made:
        try:
            await started.close()
        except AssertionError as exc:
            errors.append(exc)
        finally:
            await drop_database(admin_pg_dsn, dsn)
    assert not errors, errors


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Iterator[Any]:
    """A failing test's report carries what the cluster's nodes complained about."""
    report = yield
    if report.failed and call.when == "call":
        for i, running in enumerate(RUNNING):
            lines = running.complaints()
            logs = ", ".join(str(node.log_path) for node in running.nodes)
            report.sections.append((f"cluster {i} warnings and errors ({logs})",
                                    "\n".join(lines) or "(none)"))
    return report
