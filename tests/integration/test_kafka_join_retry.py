"""A Kafka consumer that cannot join its group at start no longer stops the node (issue 9, item
9): the bus starts, the consumer retries in the background with backoff, readiness reports it
until it has joined, and everything else keeps working. The group join is failed on purpose
through librdkafka's mock cluster (JoinGroup answered GROUP_AUTHORIZATION_FAILED, which
aiokafka treats as fatal for consumer.start())."""

from __future__ import annotations

import asyncio
import logging
import uuid

import pytest
from aiohttp.test_utils import TestClient, TestServer

from server.app import create_app
from server.config import load_settings
from storage.kafka.event_bus import ConsumerNotJoined, KafkaEventBus
from storage.memory.dead_letters import MemoryDeadLetters
from tests.support.databases import create_database, drop_database
from tests.support.kafka_mock import (
    GROUP_AUTHORIZATION_FAILED,
    JOIN_GROUP,
    controlled_mock_kafka_cluster,
)
from tests.support.polling import eventually
from tests.unit.events_kit import Recorder, user_event

pytestmark = pytest.mark.integration

DEADLINE = 20.0
FAST_GROUPS = {"session_timeout_ms": 1000, "heartbeat_interval_ms": 250}


async def test_a_consumer_that_cannot_join_retries_in_the_background(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="hubbub.events.kafka")
    with controlled_mock_kafka_cluster() as mock:
        mock.push_request_errors(JOIN_GROUP, [GROUP_AUTHORIZATION_FAILED] * 2)
        seen = Recorder()
        bus = KafkaEventBus(mock.bootstrap, dead_letters=MemoryDeadLetters(),
                            client_id=f"test-{uuid.uuid4().hex[:6]}",
                            consumer_options=FAST_GROUPS, join_backoff=(0.05, 0.2))
        name = f"test-{uuid.uuid4().hex[:10]}"
        bus.subscribe(name, ["hubbub.users"], seen)
        try:
            await asyncio.wait_for(bus.start(), DEADLINE)  # does not raise, does not wait
            with pytest.raises(ConsumerNotJoined):
                await bus.consumer_check(name)
            event = user_event()
            await bus.publish([event])  # publishing does not need the consumer

            async def handled() -> bool:
                return event.id in seen.ids()

            await eventually(handled, DEADLINE, "the event, once the consumer joined")
            await bus.consumer_check(name)  # joined: ready
            failures = [r for r in caplog.records
                        if r.getMessage() == "kafka consumer could not join its group; retrying"]
            assert [r.attempt for r in failures] == [1, 2]  # type: ignore[attr-defined]
            assert "GroupAuthorizationFailedError" in failures[0].error  # type: ignore[attr-defined]
            assert any(r.getMessage() == "kafka consumer joined its group"
                       for r in caplog.records)
        finally:
            await asyncio.wait_for(bus.stop(), DEADLINE)
        assert not [t for t in asyncio.all_tasks() if t.get_name().startswith("events:")]


async def test_stopping_while_a_consumer_is_still_retrying_is_clean() -> None:
    with controlled_mock_kafka_cluster() as mock:
        mock.push_request_errors(JOIN_GROUP, [GROUP_AUTHORIZATION_FAILED] * 50)
        bus = KafkaEventBus(mock.bootstrap, dead_letters=MemoryDeadLetters(),
                            consumer_options=FAST_GROUPS, join_backoff=(5.0, 5.0))
        name = f"test-{uuid.uuid4().hex[:10]}"
        bus.subscribe(name, ["hubbub.users"], Recorder())
        await asyncio.wait_for(bus.start(), DEADLINE)
        await asyncio.wait_for(bus.stop(), DEADLINE)  # within its backoff: no 5 s wait
        assert not [t for t in asyncio.all_tasks() if t.get_name().startswith("events:")]


async def test_the_node_serves_and_reports_consumers_on_ready_until_they_join(
        admin_pg_dsn: str) -> None:
    dsn = await create_database(admin_pg_dsn, prefix="hubbub_kafka_join")
    try:
        with controlled_mock_kafka_cluster() as mock:
            # The app's consumers (feed fan-out, notifications) fail their first two joins:
            # they retry after 1 s, then 2 s.
            mock.push_request_errors(JOIN_GROUP, [GROUP_AUTHORIZATION_FAILED] * 4)
            app = create_app(load_settings({
                "DATABASE_URL": dsn, "JWT_SECRET": "x" * 32,
                "KAFKA_BOOTSTRAP_SERVERS": mock.bootstrap}))
            async with TestServer(app, host="127.0.0.1") as server, \
                    TestClient(server) as client:
                async with client.get("/ready") as response:
                    # Reported but not gating: the node stays in the load balancer.
                    assert response.status == 200
                    body = await response.json()
                    assert body["status"] == "degraded"
                    checks = body["checks"]
                consumers = {k: v for k, v in checks.items() if k.startswith("kafka_consumer:")}
                assert consumers and any(v.startswith("failed") for v in consumers.values())
                assert checks["database"] == "ok" and checks["kafka"] == "ok"

                # Meanwhile the node serves what does not need the consumers.
                name = f"kj_{uuid.uuid4().hex[:10]}"
                async with client.post("/v1/auth/signup", json={
                        "username": name, "email": f"{name}@example.test",
                        "password": "correct horse battery"}) as response:
                    assert response.status == 201, await response.text()

                async def ready() -> bool:
                    async with client.get("/ready") as response:
                        return (await response.json())["status"] == "ready"

                await eventually(ready, DEADLINE, "every consumer to join")
    finally:
        await drop_database(admin_pg_dsn, dsn)
