"""The popular ranking cached in Redis, shared by every node.

`<prefix>popular:current` holds the current ranking (JSON) for `ttl` seconds;
`<prefix>popular:gen:<generation>` holds each ranking for `retain` seconds, for readers still
paging through it with a cursor.
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec
import redis.asyncio as redis
from redis.exceptions import RedisError

from protocols.feed import Ranking
from protocols.ids import new_id
from storage.errors import StorageError

_decoder = msgspec.json.Decoder(Ranking)


class RedisRankingCache:
    def __init__(self, client: redis.Redis, key_prefix: str, *, ttl: int, retain: int) -> None:
        if not 0 < ttl <= retain:
            raise ValueError("need 0 < ttl <= retain")
        self._client = client
        self._current = f"{key_prefix}popular:current"
        self._generation = f"{key_prefix}popular:gen:"
        self._ttl = ttl
        self._retain = retain

    async def _read(self, key: str) -> Ranking | None:
        try:
            raw = await self._client.get(key)
        except (RedisError, OSError) as exc:
            raise StorageError(f"ranking cache unavailable: {exc}") from exc
        if raw is None:
            return None
        try:
            return _decoder.decode(raw)
        except msgspec.DecodeError:
            return None  # written by an incompatible version: recompute

    async def current(self) -> Ranking | None:
        return await self._read(self._current)

    async def get(self, generation: str) -> Ranking | None:
        return await self._read(self._generation + generation)

    async def store(self, ids: Sequence[str]) -> Ranking:
        ranking = Ranking(generation=new_id(), ids=list(ids))
        raw = msgspec.json.encode(ranking)
        try:
            async with self._client.pipeline(transaction=False) as pipe:
                pipe.set(self._current, raw, ex=self._ttl)
                pipe.set(self._generation + ranking.generation, raw, ex=self._retain)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            raise StorageError(f"ranking cache unavailable: {exc}") from exc
        return ranking
