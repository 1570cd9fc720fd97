"""RedisSessionRecords.open against a real Redis: it records the session exactly as `add`
does, and reads back in the same script the user's session count, cached token watermark (0
for none while the watermark cache is marked complete) and presence snapshot."""

from __future__ import annotations

import pytest
import redis.asyncio as redis

from protocols.presence import PresenceRecord
from storage.redis.presence import RedisPresenceStore
from storage.redis.sessions import RedisSessionRecords
from storage.redis.token_watermarks import RedisWatermarkCache

pytestmark = pytest.mark.integration


async def test_open_records_and_reads_in_one_script(redis_client: redis.Redis,
                                                    clean_redis_prefix: str) -> None:
    records = RedisSessionRecords(redis_client, clean_redis_prefix, ttl=3600)
    presence = RedisPresenceStore(redis_client, clean_redis_prefix)
    cache = RedisWatermarkCache(redis_client, clean_redis_prefix, access_token_ttl=900)
    keys = {"watermark_key": cache.key("ann"), "complete_key": cache.complete_key(),
            "presence_key": presence.key("ann")}

    first = await records.open("ann", "a1", "n1", **keys)
    assert first.sessions == 1 and first.watermark is None
    assert first.presence.record is None
    assert await records.of_user("ann") == {"a1": "n1"}
    assert await records.users_on("n1") == {"ann"}
    assert 3590 <= await redis_client.ttl(f"{clean_redis_prefix}sessions:ann") <= 3600

    await cache.offer("ann", 1_700_000_000)
    online = PresenceRecord(status="online", alive_until=1_900_000_000.0)
    await presence.save("ann", online)
    second = await records.open("ann", "a2", "n2", **keys)
    assert second.sessions == 2 and second.watermark == 1_700_000_000
    assert second.presence.record == online
    assert await presence.save_if("ann", online, second.presence.stamp) is True
    assert await records.of_user("ann") == {"a1": "n1", "a2": "n2"}


async def test_a_cached_value_that_is_not_ours_reads_as_none(redis_client: redis.Redis,
                                                             clean_redis_prefix: str) -> None:
    records = RedisSessionRecords(redis_client, clean_redis_prefix)
    cache = RedisWatermarkCache(redis_client, clean_redis_prefix, access_token_ttl=900)
    await redis_client.set(cache.key("ann"), "soon")
    await cache.mark_complete(0.0)
    opened = await records.open("ann", "a1", "n1", watermark_key=cache.key("ann"),
                                complete_key=cache.complete_key(),
                                presence_key=f"{clean_redis_prefix}presence:ann")
    assert opened.watermark is None  # Postgres answers, as for RedisWatermarkCache.get
    assert await cache.get("ann") is None


async def test_a_missing_watermark_reads_as_0_while_the_cache_is_complete(
    redis_client: redis.Redis, clean_redis_prefix: str
) -> None:
    records = RedisSessionRecords(redis_client, clean_redis_prefix)
    cache = RedisWatermarkCache(redis_client, clean_redis_prefix, access_token_ttl=900)

    async def watermark(session_id: str, user_id: str) -> int | None:
        opened = await records.open(user_id, session_id, "n1",
                                    watermark_key=cache.key(user_id),
                                    complete_key=cache.complete_key(),
                                    presence_key=f"{clean_redis_prefix}presence:{user_id}")
        return opened.watermark

    assert await watermark("a1", "ann") is None  # not marked: Postgres must answer
    await cache.mark_complete(0.0)
    assert await watermark("a2", "ann") == 0  # marked: a known 0, as the cache's own `get`
    assert await cache.get("ann") == 0
    await cache.raise_to("bob", 1_700_000_005)
    assert await watermark("b1", "bob") == 1_700_000_005  # a cached one still wins
