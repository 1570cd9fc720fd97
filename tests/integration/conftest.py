"""Integration fixtures: a Kafka (librdkafka mock) cluster for the whole session; the
multiplexed Redis client."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from storage.redis.client import create_redis
from storage.redis.multiplexed import MultiplexedRedis
from tests.support.kafka_mock import first_broker, mock_kafka_cluster
from tests.support.polling import wait_until
from tests.support.services import reachable


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """Bootstrap servers of a mock Kafka cluster on 127.0.0.1, up for the whole session and
    stopped (its port closed) at the end."""
    with mock_kafka_cluster() as bootstrap:
        assert reachable(*first_broker(bootstrap))
        yield bootstrap
    wait_until(lambda: not reachable(*first_broker(bootstrap), timeout=0.2), 10,
               "the mock Kafka cluster to stop listening")


@pytest.fixture
async def mux(redis_url: str) -> AsyncIterator[MultiplexedRedis]:
    """The multiplexed client the app builds for a plain TCP REDIS_URL."""
    client = create_redis(redis_url)
    assert isinstance(client, MultiplexedRedis)
    yield client
    await client.aclose()
