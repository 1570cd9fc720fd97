"""The shared cache of access-token watermarks (server.auth.ports.WatermarkCache) in Redis.

Postgres holds the watermarks (storage/postgres/token_watermarks.py); every authenticated
request and socket connect reads one through this cache, so the cost per request is one GET.
`<prefix>auth:valid-after:<user id>` holds the user's watermark as a decimal string ("0": none)
for `ttl` seconds. Readers fill a missing key with what they read from Postgres only if it is
still missing (SET NX); a sign-out raises it (never lowers it) in one Lua script. So a reader
that read Postgres before a sign-out committed cannot put the old value back over the new one,
and two sign-outs racing leave the higher value. Redis failures raise StorageError.
"""

from __future__ import annotations

import math

import redis.asyncio as redis
from redis.exceptions import RedisError

from storage.errors import StorageError

DEFAULT_TTL = 60.0

# KEYS[1]: the user's key. ARGV[1]: the new watermark; ARGV[2]: ttl (s).
_RAISE = """
local current = tonumber(redis.call('GET', KEYS[1]))
if current == nil or current < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
end
return 1
"""


def parse_watermark(value: bytes | None) -> int | None:
    """A cached watermark as stored (`get`, or a script reading `key`); None when none is
    cached or the value is not one of ours (Postgres then answers)."""
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        return None


class RedisWatermarkCache:
    def __init__(self, client: redis.Redis, key_prefix: str, *,
                 ttl: float = DEFAULT_TTL) -> None:
        if ttl <= 0:
            raise ValueError("ttl must be positive")
        self._client = client
        self._prefix = f"{key_prefix}auth:valid-after:"
        self._ttl = math.ceil(ttl)
        self._raise = client.register_script(_RAISE)

    def key(self, user_id: str) -> str:
        return self._prefix + user_id

    async def get(self, user_id: str) -> int | None:
        try:
            value = await self._client.get(self.key(user_id))
        except (RedisError, OSError) as exc:
            raise StorageError(f"watermark cache unavailable: {exc}") from exc
        return parse_watermark(value)

    async def offer(self, user_id: str, valid_after: int) -> None:
        try:
            await self._client.set(self.key(user_id), str(valid_after), nx=True, ex=self._ttl)
        except (RedisError, OSError) as exc:
            raise StorageError(f"watermark cache unavailable: {exc}") from exc

    async def raise_to(self, user_id: str, valid_after: int) -> None:
        try:
            await self._raise(keys=[self.key(user_id)], args=[valid_after, self._ttl])
        except (RedisError, OSError) as exc:
            raise StorageError(f"watermark cache unavailable: {exc}") from exc
