"""The Redis PresenceStore against a real Redis, through the shared contract check."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as redis

from actors.clock import ManualClock
from protocols.presence import PresenceRecord
from storage.errors import StorageError
from storage.redis.client import create_redis
from storage.redis.presence import RedisPresenceStore
from tests.unit.presence_contract import check_presence_store

pytestmark = pytest.mark.integration


async def test_redis_presence_store_contract(redis_client: redis.Redis,
                                             clean_redis_prefix: str) -> None:
    clock = ManualClock(start=1_800_000_000.0)
    store = RedisPresenceStore(redis_client, clean_redis_prefix, retention=3600,
                               clock=clock.time)
    await check_presence_store(store, clock, retention=None)


async def test_records_expire_after_retention_past_alive_until(
        redis_client: redis.Redis, clean_redis_prefix: str) -> None:
    clock = ManualClock(start=1_800_000_000.0)
    store = RedisPresenceStore(redis_client, clean_redis_prefix, retention=3600,
                               clock=clock.time)
    await store.save("u1", PresenceRecord(status="online", alive_until=clock.time() + 60))
    await store.save("u2", PresenceRecord(status="offline", last_seen_at=clock.time()))
    ttl_live = await redis_client.ttl(f"{clean_redis_prefix}presence:u1")
    ttl_offline = await redis_client.ttl(f"{clean_redis_prefix}presence:u2")
    assert 3600 + 55 <= ttl_live <= 3600 + 60
    assert 3595 <= ttl_offline <= 3600


async def test_a_corrupt_record_reads_as_none(redis_client: redis.Redis,
                                              clean_redis_prefix: str) -> None:
    store = RedisPresenceStore(redis_client, clean_redis_prefix)
    await redis_client.hset(f"{clean_redis_prefix}presence:u1",
                            mapping={"status": "online", "alive_until": "soon"})
    await redis_client.hset(f"{clean_redis_prefix}presence:u2", mapping={"status": "sleepy"})
    assert await store.load("u1") is None
    assert await store.get_many(["u1", "u2"]) == {}


async def test_the_sessions_field_of_earlier_versions_is_ignored_then_dropped(
        redis_client: redis.Redis, clean_redis_prefix: str) -> None:
    clock = ManualClock(start=1_800_000_000.0)
    store = RedisPresenceStore(redis_client, clean_redis_prefix, clock=clock.time)
    key = f"{clean_redis_prefix}presence:u1"
    await redis_client.hset(key, mapping={"status": "online", "last_seen_at": "",
                                          "alive_until": repr(clock.time() + 60),
                                          "sessions": '{"s1": "node-1"}'})
    assert await store.load("u1") == PresenceRecord(status="online",
                                                    alive_until=clock.time() + 60)
    await store.save("u1", PresenceRecord(status="away", alive_until=clock.time() + 60))
    assert await redis_client.hexists(key, "sessions") is False


async def test_the_multiplexed_client_reads_many_records_without_a_pooled_connection(
        redis_url: str, clean_redis_prefix: str) -> None:
    # Every room reads its members' presence at once when a chat load starts: through a
    # pipeline each read took (and opened) a pooled connection.
    client = create_redis(redis_url)
    clock = ManualClock(start=1_800_000_000.0)
    store = RedisPresenceStore(client, clean_redis_prefix, clock=clock.time)
    try:
        await store.save("u1", PresenceRecord(status="online", alive_until=clock.time() + 60))
        await store.save("u2", PresenceRecord(status="away", alive_until=clock.time() + 60))
        reads = await asyncio.gather(*(store.get_many(["u1", "u2", "nobody"])
                                       for _ in range(20)))
        assert all(read == {"u1": PresenceRecord(status="online",
                                                 alive_until=clock.time() + 60),
                            "u2": PresenceRecord(status="away",
                                                 alive_until=clock.time() + 60)}
                   for read in reads)
        assert await store.online(["u1", "u2", "nobody"]) == {"u1", "u2"}
        assert sum(count for count, _ in client.connection_pool.get_connection_count()) == 0
    finally:
        await client.aclose()


async def test_a_failed_read_of_many_records_is_a_storage_error(
        redis_url: str, clean_redis_prefix: str) -> None:
    client = create_redis(redis_url)
    store = RedisPresenceStore(client, clean_redis_prefix)
    try:
        await client.set(f"{clean_redis_prefix}presence:u1", "not a hash")
        with pytest.raises(StorageError):
            await store.get_many(["u1"])
    finally:
        await client.delete(f"{clean_redis_prefix}presence:u1")
        await client.aclose()
