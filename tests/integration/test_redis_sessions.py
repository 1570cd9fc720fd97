"""The Redis SessionRecords against a real Redis, through the shared contract check."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as redis

from storage.errors import StorageError
from storage.redis.sessions import RedisSessionRecords
from tests.unit.session_records_contract import (
    check_many_users_on_one_node,
    check_session_records,
)

pytestmark = pytest.mark.integration


async def test_redis_session_records_contract(redis_client: redis.Redis,
                                              clean_redis_prefix: str) -> None:
    await check_session_records(RedisSessionRecords(redis_client, clean_redis_prefix))


async def test_forget_node_runs_in_batches(redis_client: redis.Redis,
                                           clean_redis_prefix: str) -> None:
    await check_many_users_on_one_node(RedisSessionRecords(redis_client, clean_redis_prefix),
                                       450)


async def test_keys_and_their_expiry(redis_client: redis.Redis,
                                     clean_redis_prefix: str) -> None:
    records = RedisSessionRecords(redis_client, clean_redis_prefix, ttl=3600)
    await records.add("ann", "a1", "n1")
    user_key, node_key = f"{clean_redis_prefix}sessions:ann", f"{clean_redis_prefix}node-users:n1"
    assert await redis_client.hgetall(user_key) == {b"a1": b"n1"}
    assert await redis_client.smembers(node_key) == {b"ann"}
    assert 3590 <= await redis_client.ttl(user_key) <= 3600
    assert 3590 <= await redis_client.ttl(node_key) <= 3600
    # An add pushes the expiry back up; a remove leaves it be, and empties vanish.
    await redis_client.expire(user_key, 10)
    await records.add("ann", "a2", "n1")
    assert await redis_client.ttl(user_key) > 3000
    await records.remove("ann", "a1", "n1")
    await records.remove("ann", "a2", "n1")
    assert await redis_client.exists(user_key, node_key) == 0


async def test_concurrent_writers_never_lose_a_session(redis_client: redis.Redis,
                                                       clean_redis_prefix: str) -> None:
    # Two "nodes" adding and removing sessions of one user at once: the per-user scripts
    # keep every session that was added and not removed, and the index in step.
    records = RedisSessionRecords(redis_client, clean_redis_prefix)

    async def churn(node: str) -> None:
        for i in range(50):
            await records.add("ann", f"{node}-{i}", node)
            if i % 2:
                await records.remove("ann", f"{node}-{i - 1}", node)

    await asyncio.gather(churn("n1"), churn("n2"))
    kept = await records.of_user("ann")
    assert kept == {f"{n}-{i}": n for n in ("n1", "n2") for i in range(1, 50, 2)}
    assert await records.users_on("n1") == await records.users_on("n2") == {"ann"}


async def test_a_redis_failure_is_a_storage_error() -> None:
    dead = redis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    records = RedisSessionRecords(dead, "hubbub-test:dead:")
    try:
        with pytest.raises(StorageError):
            await records.add("ann", "a1", "n1")
        with pytest.raises(StorageError):
            await records.of_user("ann")
    finally:
        await dead.aclose()
