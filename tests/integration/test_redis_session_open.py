"""RedisSessionRecords.open against a real Redis: it records the session exactly as `add`
does, and reads back in the same script the user's session count, cached token watermark and
presence snapshot."""

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
    cache = RedisWatermarkCache(redis_client, clean_redis_prefix)
    keys = {"watermark_key": cache.key("ann"), "presence_key": presence.key("ann")}

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
    cache = RedisWatermarkCache(redis_client, clean_redis_prefix)
    await redis_client.set(cache.key("ann"), "soon")
    opened = await records.open("ann", "a1", "n1", watermark_key=cache.key("ann"),
                                presence_key=f"{clean_redis_prefix}presence:ann")
    assert opened.watermark is None  # Postgres answers, as for RedisWatermarkCache.get
