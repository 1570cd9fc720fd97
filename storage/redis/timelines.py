"""Home timelines in Redis: one sorted set per user, shared by every node.

Key `<prefix>timeline:<user_id>`. Every member has score 0 and is a post id: with equal scores
Redis orders members lexicographically, and UUIDv7 strings sort by creation time, so pages are
ZRANGE ... BYLEX REV ranges (`(<before_id>` down to the oldest) and trimming to the newest
`length` ids is ZREMRANGEBYRANK from rank 0. Two marker members, outside the alphabet of ids,
say what state the timeline is in:

    "~"  built: sorts after every id (the highest rank), so trimming never removes it.
    "!"  live while a rebuild runs: sorts before every id.

A key exists exactly while the timeline is live; page ranges exclude both markers. Reads
restart the TTL; fan-out never does, so an idle user's timeline expires and is rebuilt from
Postgres on their next read. Fan-out inserts with a tiny script that only touches keys that
exist (a missing timeline stays missing instead of coming back partial and immortal), one
call per key, pipelined: one round trip per batch, and each call names its one key, so it
works unchanged on Redis Cluster.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

import redis.asyncio as redis
from redis.exceptions import RedisError

from storage.errors import StorageError

BUILT = "~"
PENDING = "!"

# KEYS[1]: timeline; ARGV[1]: length; ARGV[2..]: ids. Returns 1 when the timeline was live.
_ADD = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
for i = 2, #ARGV do redis.call('ZADD', KEYS[1], 0, ARGV[i]) end
redis.call('ZREMRANGEBYRANK', KEYS[1], 0, -(tonumber(ARGV[1]) + 2))
return 1
"""


class RedisTimelineStore:
    def __init__(self, client: redis.Redis, key_prefix: str, *, length: int,
                 ttl: int) -> None:
        if length < 1 or ttl < 1:
            raise ValueError("length and ttl must be positive")
        self._client = client
        self._prefix = f"{key_prefix}timeline:"
        self._length = length
        self._ttl = ttl
        self._add = client.register_script(_ADD)

    def _key(self, user_id: str) -> str:
        return self._prefix + user_id

    async def add(self, user_ids: Sequence[str], post_id: str) -> None:
        if not user_ids:
            return
        try:
            async with self._client.pipeline(transaction=False) as pipe:
                for user_id in user_ids:
                    await self._add(keys=[self._key(user_id)], args=[self._length, post_id],
                                    client=pipe)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            raise StorageError(f"timeline store unavailable: {exc}") from exc

    async def extend(self, user_id: str, post_ids: Sequence[str]) -> None:
        if not post_ids:
            return
        try:
            await self._add(keys=[self._key(user_id)], args=[self._length, *post_ids])
        except (RedisError, OSError) as exc:
            raise StorageError(f"timeline store unavailable: {exc}") from exc

    async def remove(self, user_id: str, post_ids: Sequence[str]) -> None:
        if not post_ids:
            return
        try:
            await self._client.zrem(self._key(user_id), *post_ids)
        except (RedisError, OSError) as exc:
            raise StorageError(f"timeline store unavailable: {exc}") from exc

    async def page(self, user_id: str, before_id: str | None, limit: int) -> list[str] | None:
        key = self._key(user_id)
        high = f"({before_id if before_id is not None else BUILT}"
        try:
            async with self._client.pipeline(transaction=False) as pipe:
                pipe.zscore(key, BUILT)
                pipe.zrange(key, high, f"({PENDING}", desc=True, bylex=True,
                            offset=0, num=limit)
                pipe.expire(key, self._ttl)
                built, ids, _ = await pipe.execute()
        except (RedisError, OSError) as exc:
            raise StorageError(f"timeline store unavailable: {exc}") from exc
        if built is None:
            return None
        return [i.decode() for i in ids]

    async def exists(self, user_id: str) -> bool:
        try:
            return await self._client.zscore(self._key(user_id), BUILT) is not None
        except (RedisError, OSError) as exc:
            raise StorageError(f"timeline store unavailable: {exc}") from exc

    async def rebuild(self, user_id: str,
                      load: Callable[[], Awaitable[Sequence[str]]]) -> None:
        key = self._key(user_id)
        try:
            async with self._client.pipeline(transaction=True) as pipe:
                pipe.zadd(key, {PENDING: 0})
                pipe.expire(key, self._ttl)
                await pipe.execute()
            ids = await load()
            async with self._client.pipeline(transaction=True) as pipe:
                pipe.zadd(key, {**dict.fromkeys(ids, 0), BUILT: 0})
                pipe.zrem(key, PENDING)
                pipe.zremrangebyrank(key, 0, -(self._length + 2))
                pipe.expire(key, self._ttl)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            raise StorageError(f"timeline store unavailable: {exc}") from exc
