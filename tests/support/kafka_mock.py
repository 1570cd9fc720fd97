"""librdkafka's mock Kafka cluster (bundled with confluent-kafka), for tests.

The mock brokers run on librdkafka threads inside the test process and serve the Kafka wire
protocol on 127.0.0.1, so aiokafka producers and consumer groups (and server subprocesses) talk
to them over TCP as to a real broker. They lack some broker APIs (CreateTopics: topics are
auto-created on first use, 4 partitions).

We create the cluster through librdkafka's C API (rd_kafka_mock_cluster_new) so that its
consumer groups can skip the initial rebalance delay (3 s per first join otherwise). Should
that library not be loadable, the documented `{"test.mock.num.brokers": 1}` client setting
starts one instead, delay included.
"""

from __future__ import annotations

import ctypes
import glob
import os
from collections.abc import Iterator
from contextlib import contextmanager

import confluent_kafka
from confluent_kafka.admin import AdminClient

_RD_KAFKA_PRODUCER = 0


def _librdkafka() -> ctypes.CDLL | None:
    package = os.path.dirname(confluent_kafka.__file__)
    found = sorted(glob.glob(os.path.join(package, os.pardir, "confluent_kafka.libs",
                                          "librdkafka*.so*")))
    if not found:
        return None
    lib = ctypes.CDLL(found[0])
    p, c_int = ctypes.c_void_p, ctypes.c_int
    lib.rd_kafka_conf_new.restype = p
    lib.rd_kafka_conf_set.argtypes = [p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p,
                                      ctypes.c_size_t]
    lib.rd_kafka_new.restype = p
    lib.rd_kafka_new.argtypes = [c_int, p, ctypes.c_char_p, ctypes.c_size_t]
    lib.rd_kafka_destroy.argtypes = [p]
    lib.rd_kafka_mock_cluster_new.restype = p
    lib.rd_kafka_mock_cluster_new.argtypes = [p, c_int]
    lib.rd_kafka_mock_cluster_bootstraps.restype = ctypes.c_char_p
    lib.rd_kafka_mock_cluster_bootstraps.argtypes = [p]
    lib.rd_kafka_mock_group_initial_rebalance_delay_ms.argtypes = [p, ctypes.c_int32]
    lib.rd_kafka_mock_cluster_destroy.argtypes = [p]
    lib.rd_kafka_mock_push_request_errors_array.argtypes = [
        p, ctypes.c_int16, ctypes.c_size_t, ctypes.POINTER(ctypes.c_int)]
    return lib


# Kafka protocol numbers for fault injection (MockKafka.push_request_errors).
JOIN_GROUP = 11
GROUP_AUTHORIZATION_FAILED = 30


class MockKafka:
    """Controls of a running mock cluster (librdkafka's rd_kafka_mock_* C API)."""

    def __init__(self, lib: ctypes.CDLL, cluster: int, bootstrap: str) -> None:
        self._lib = lib
        self._cluster = cluster
        self.bootstrap = bootstrap

    def push_request_errors(self, api_key: int, errors: list[int]) -> None:
        """The next len(errors) requests of `api_key` (from any client) are answered with
        these error codes, in order, instead of being served."""
        codes = (ctypes.c_int * len(errors))(*errors)
        self._lib.rd_kafka_mock_push_request_errors_array(self._cluster, api_key, len(errors),
                                                          codes)


@contextmanager
def _native_cluster(lib: ctypes.CDLL, brokers: int) -> Iterator[str]:
    with _native_mock(lib, brokers) as mock:
        yield mock.bootstrap


@contextmanager
def _native_mock(lib: ctypes.CDLL, brokers: int) -> Iterator[MockKafka]:
    errstr = ctypes.create_string_buffer(512)
    conf = lib.rd_kafka_conf_new()
    lib.rd_kafka_conf_set(conf, b"log_level", b"3", errstr, len(errstr))
    handle = lib.rd_kafka_new(_RD_KAFKA_PRODUCER, conf, errstr, len(errstr))  # owns conf
    if not handle:
        raise RuntimeError(f"rd_kafka_new failed: {errstr.value.decode()}")
    try:
        cluster = lib.rd_kafka_mock_cluster_new(handle, brokers)
        if not cluster:
            raise RuntimeError("rd_kafka_mock_cluster_new failed")
        try:
            lib.rd_kafka_mock_group_initial_rebalance_delay_ms(cluster, 0)
            yield MockKafka(lib, cluster, lib.rd_kafka_mock_cluster_bootstraps(cluster).decode())
        finally:
            lib.rd_kafka_mock_cluster_destroy(cluster)
    finally:
        lib.rd_kafka_destroy(handle)


@contextmanager
def _client_cluster(brokers: int) -> Iterator[str]:
    # The mock cluster lives as long as this client handle.
    client = AdminClient({"test.mock.num.brokers": brokers, "log_level": 3})
    metadata = client.list_topics(timeout=10)
    yield ",".join(f"{b.host}:{b.port}" for b in metadata.brokers.values())
    del client


@contextmanager
def mock_kafka_cluster(brokers: int = 1) -> Iterator[str]:
    """Run a mock cluster; yields its bootstrap servers ("127.0.0.1:port,...")."""
    lib = _librdkafka()
    cluster = _native_cluster(lib, brokers) if lib is not None else _client_cluster(brokers)
    with cluster as bootstrap:
        yield bootstrap


@contextmanager
def controlled_mock_kafka_cluster(brokers: int = 1) -> Iterator[MockKafka]:
    """A mock cluster of its own whose requests a test can fail (needs librdkafka's C API;
    the test is skipped without it)."""
    lib = _librdkafka()
    if lib is None:
        import pytest

        pytest.skip("librdkafka's mock cluster API is not loadable")
    with _native_mock(lib, brokers) as mock:
        yield mock


def first_broker(bootstrap: str) -> tuple[str, int]:
    """(host, port) of the first of the bootstrap servers."""
    host, port = bootstrap.split(",")[0].rsplit(":", 1)
    return host, int(port)
