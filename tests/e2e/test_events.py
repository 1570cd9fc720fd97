"""Domain events through real servers: the shared server relays its outbox to the in-process
bus; a server started with KAFKA_BOOTSTRAP_SERVERS (librdkafka's mock cluster) publishes a
follow to the hubbub.users topic."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import asyncpg
import msgspec
import pytest
import pytest_asyncio
from aiokafka import AIOKafkaConsumer

from protocols.events import EventEnvelope
from tests.e2e.conftest import sibling_server
from tests.support.databases import create_database, drop_database
from tests.support.kafka_mock import first_broker, mock_kafka_cluster
from tests.support.polling import eventually
from tests.support.server import HubbubProcess
from tests.support.services import reachable

pytestmark = pytest.mark.e2e

DEADLINE = 15.0
PASSWORD = "correct horse battery"


async def signup(http: aiohttp.ClientSession) -> tuple[str, dict[str, str]]:
    name = f"ev_{uuid.uuid4().hex[:10]}"
    async with http.post("/v1/auth/signup", json={
            "username": name, "email": f"{name}@example.test", "password": PASSWORD,
    }) as response:
        assert response.status == 201, await response.text()
        body = await response.json()
    return body["user"]["id"], {"Authorization": f"Bearer {body['access_token']}"}


async def follow(http: aiohttp.ClientSession, auth: dict[str, str], user_id: str) -> None:
    async with http.post(f"/v1/users/{user_id}/follow", headers=auth) as response:
        assert response.status in (200, 201, 204), await response.text()


async def info(http: aiohttp.ClientSession) -> dict[str, Any]:
    async with http.get("/info") as response:
        return await response.json()


async def test_shared_server_relays_follows_to_the_in_process_bus(
        http: aiohttp.ClientSession, server_dsn: str) -> None:
    assert (await info(http))["adapters"]["events"] == "in-process"
    ann, ann_auth = await signup(http)
    bob, _ = await signup(http)
    await follow(http, ann_auth, bob)
    conn = await asyncpg.connect(server_dsn)
    try:
        async def published() -> bool:
            return bool(await conn.fetchval(
                "SELECT published_at IS NOT NULL FROM outbox WHERE type = 'follow.created'"
                " AND envelope->'data'->>'follower_id' = $1"
                " AND envelope->'data'->>'followee_id' = $2", ann, bob))

        await eventually(published, DEADLINE, "the relay to publish the follow")
    finally:
        await conn.close()


@pytest.fixture(scope="module")
def kafka_bootstrap() -> Iterator[str]:
    """A mock Kafka cluster for this module's server; its port is closed afterwards."""
    with mock_kafka_cluster() as bootstrap:
        yield bootstrap
    assert not reachable(*first_broker(bootstrap), timeout=0.5)


@pytest_asyncio.fixture(scope="module")
async def kafka_dsn(admin_pg_dsn: str) -> AsyncIterator[str]:
    # Its own database: the relay publishing to Kafka must be this server's.
    dsn = await create_database(admin_pg_dsn, prefix="hubbub_e2e_kafka")
    yield dsn
    await drop_database(admin_pg_dsn, dsn)


@pytest.fixture(scope="module")
def kafka_server(hubbub: HubbubProcess, kafka_dsn: str,
                 kafka_bootstrap: str) -> Iterator[HubbubProcess]:
    with sibling_server(hubbub, DATABASE_URL=kafka_dsn, REDIS_URL="",
                        KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap) as server:
        yield server


async def test_kafka_server_publishes_follows_to_the_users_topic(
        kafka_server: HubbubProcess, kafka_bootstrap: str) -> None:
    async with aiohttp.ClientSession(base_url=kafka_server.base_url) as http:
        assert (await info(http))["adapters"]["events"] == "kafka"
        async with http.get("/ready") as response:
            assert response.status == 200
            assert (await response.json())["checks"]["kafka"] == "ok"
        ann, ann_auth = await signup(http)
        bob, _ = await signup(http)
        await follow(http, ann_auth, bob)

    # No consumer group: read every partition of the topic from the beginning.
    reader = AIOKafkaConsumer("hubbub.users", bootstrap_servers=kafka_bootstrap,
                              auto_offset_reset="earliest", enable_auto_commit=False)
    await reader.start()
    found: dict[str, EventEnvelope] = {}
    try:
        async with asyncio.timeout(DEADLINE):
            while "follow.created" not in found:
                batch = await reader.getmany(timeout_ms=500)
                for record in (r for records in batch.values() for r in records):
                    event = msgspec.json.decode(record.value, type=EventEnvelope)
                    if ann in (event.data.get("follower_id"), event.data.get("user_id")):
                        assert record.key == ann.encode()  # keyed by the aggregate
                        found[event.type] = event
    finally:
        await reader.stop()
    assert found["follow.created"].data == {"follower_id": ann, "followee_id": bob}
    assert found["follow.created"].actor_id == ann
    assert found["user.created"].data["user_id"] == ann
    logs = kafka_server.logs()
    assert any(entry["msg"] == "kafka event bus started" for entry in logs)
    assert not [e for e in logs
                if e["level"] == "error" and e["logger"].startswith("hubbub.events")]
