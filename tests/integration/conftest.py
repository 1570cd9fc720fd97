"""Integration fixtures: a Kafka (librdkafka mock) cluster for the whole session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

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
