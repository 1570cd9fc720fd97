"""The Redis PresenceStore's conditional save against a real Redis: a save on the condition
that the record is still the one a snapshot saw succeeds once, and fails after any other save,
including one by a node whose save script does not count versions."""

from __future__ import annotations

import pytest
import redis.asyncio as redis

from actors.clock import ManualClock
from protocols.presence import PresenceRecord
from storage.redis.presence import SNAPSHOT_FIELDS, RedisPresenceStore, parse_snapshot

pytestmark = pytest.mark.integration


async def test_a_conditional_save_holds_only_until_the_next_save(
        redis_client: redis.Redis, clean_redis_prefix: str) -> None:
    clock = ManualClock(start=1_800_000_000.0)
    store = RedisPresenceStore(redis_client, clean_redis_prefix, clock=clock.time)
    online = PresenceRecord(status="online", alive_until=clock.time() + 90)

    none = parse_snapshot(await redis_client.hmget(store.key("u1"), SNAPSHOT_FIELDS))
    assert none.record is None
    assert await store.save_if("u1", online, none.stamp) is True
    assert await store.load("u1") == online
    assert await store.save_if("u1", online, none.stamp) is False  # that save came since

    seen = parse_snapshot(await redis_client.hmget(store.key("u1"), SNAPSHOT_FIELDS))
    assert seen.record == online
    await store.save("u1", PresenceRecord(status="away", alive_until=clock.time() + 91))
    away = await store.load("u1")
    assert await store.save_if("u1", online, seen.stamp) is False
    assert await store.load("u1") == away  # nothing written


async def test_a_save_that_does_not_count_versions_still_fails_the_condition(
        redis_client: redis.Redis, clean_redis_prefix: str) -> None:
    clock = ManualClock(start=1_800_000_000.0)
    store = RedisPresenceStore(redis_client, clean_redis_prefix, clock=clock.time)
    await store.save("u1", PresenceRecord(status="online", alive_until=clock.time() + 90))
    seen = parse_snapshot(await redis_client.hmget(store.key("u1"), SNAPSHOT_FIELDS))
    # A node of the previous version rewrites the record without touching `v`.
    await redis_client.hset(store.key("u1"), mapping={
        "status": "dnd", "last_seen_at": "", "alive_until": repr(clock.time() + 95)})
    offline = PresenceRecord(status="offline", last_seen_at=clock.time())
    assert await store.save_if("u1", offline, seen.stamp) is False
    record = await store.load("u1")
    assert record is not None and record.status == "dnd"
