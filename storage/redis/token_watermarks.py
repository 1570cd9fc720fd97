"""The shared cache of access-token watermarks (server.auth.ports.WatermarkCache) in Redis.

Postgres holds the watermarks (storage/postgres/token_watermarks.py); every authenticated
request and socket connect reads one through this cache, so the cost per request is one
round trip. `<prefix>auth:valid-after:<user id>` holds the user's watermark as a decimal
string ("0": none) for `ttl` seconds. Readers fill a missing key with what they read from
Postgres only if it is still missing (SET NX); a sign-out raises it (never lowers it) in one
Lua script. So a reader that read Postgres before a sign-out committed cannot put the old
value back over the new one, and two sign-outs racing leave the higher value.

Most users never signed out, so most keys would be misses, each a Postgres read. Instead,
the marker `<prefix>auth:valid-after:complete:<access-token TTL>` says that every watermark
that still matters (above now - access-token TTL: a token issued before an older one has
expired anyway) is cached; while it exists, a missing key reads as 0. Every node's refresher
(server/auth/watermark_refresher.py) keeps it so: it reads those watermarks from Postgres,
`load`s them (raising each key, and pushing its expiry to `ttl` from now), then
`mark_complete`s for `complete_for` seconds counted from the start of its read. Why that holds:

- a watermark stored before the read is in a key `load` wrote after it, which lives `ttl`
  > `complete_for` seconds, so past the marker;
- one stored after the read is in Redis through the sign-out's own `raise_to` (after the read,
  so again for `ttl` > `complete_for`), or, when that raise failed, through the next refresh:
  so a failed raise lets revoked tokens pass for one refresh period (~20 s) while refreshers
  run, and CACHE_TTL (60 s, as without the marker) at most when they do not (the marker
  lapses, and a stale key expires, `complete_for` and `ttl` after the last refresh);
- the TTL in the marker's name: nodes configured with another access-token TTL (a rollout
  changing it) keep markers of their own, never trusting a refresh that looked back too little.

This needs a Redis that keeps keys until they expire (maxmemory-policy noeviction, as the
other stores assume); a key evicted or lost in a failover is restored by the next refresh.
Redis failures raise StorageError.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import redis.asyncio as redis
from redis.exceptions import RedisError

from storage.errors import StorageError

DEFAULT_TTL = 60.0
# Seconds the marker lasts after the read it vouches for. Below `ttl` with room to spare (20 s
# for the script to reach Redis), so every key a refresh or sign-out wrote after that read
# outlives it. Two refresh periods: one late refresh of a single node does not lapse it.
DEFAULT_COMPLETE_FOR = 40.0
_LOAD_BATCH = 500  # keys per `load` script: keeps each script short for Redis

# KEYS[1]: the user's key. ARGV[1]: the new watermark; ARGV[2]: ttl (s).
_RAISE = """
local current = tonumber(redis.call('GET', KEYS[1]))
if current == nil or current < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
end
return 1
"""

# KEYS: users' keys; ARGV[1]: ttl (s); ARGV[i + 1]: the watermark for KEYS[i]. _RAISE for each,
# and a key left as it is (as high or higher) lives at least ttl more seconds.
_LOAD = """
local ttl = tonumber(ARGV[1])
for i, key in ipairs(KEYS) do
  local current = tonumber(redis.call('GET', key))
  if current == nil or current < tonumber(ARGV[i + 1]) then
    redis.call('SET', key, ARGV[i + 1], 'EX', ttl)
  elseif redis.call('TTL', key) < ttl then
    redis.call('EXPIRE', key, ttl)
  end
end
return #KEYS
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
    """`access_token_ttl`: the settings' ACCESS_TOKEN_TTL, which names the marker."""

    def __init__(self, client: redis.Redis, key_prefix: str, *, access_token_ttl: int,
                 ttl: float = DEFAULT_TTL,
                 complete_for: float = DEFAULT_COMPLETE_FOR) -> None:
        if ttl <= 0 or access_token_ttl <= 0 or not 0 < complete_for < ttl:
            raise ValueError("ttls must be positive and complete_for below ttl")
        self._client = client
        self._prefix = f"{key_prefix}auth:valid-after:"
        self._complete = f"{self._prefix}complete:{access_token_ttl}"
        self._ttl = math.ceil(ttl)
        self._complete_for = complete_for
        self._raise = client.register_script(_RAISE)
        self._load = client.register_script(_LOAD)

    def key(self, user_id: str) -> str:
        return self._prefix + user_id

    def complete_key(self) -> str:
        return self._complete

    async def get(self, user_id: str) -> int | None:
        try:
            value, complete = await self._client.mget(self.key(user_id), self._complete)
        except (RedisError, OSError) as exc:
            raise StorageError(f"watermark cache unavailable: {exc}") from exc
        if value is None and complete is not None:
            return 0  # every watermark that matters is cached: the user has none
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

    async def load(self, watermarks: Sequence[tuple[str, int]]) -> None:
        """Raise each user's key to their watermark (never lower it), each key then living
        at least `ttl` seconds."""
        try:
            for start in range(0, len(watermarks), _LOAD_BATCH):
                batch = watermarks[start:start + _LOAD_BATCH]
                await self._load(keys=[self.key(user_id) for user_id, _ in batch],
                                 args=[self._ttl, *(value for _, value in batch)])
        except (RedisError, OSError) as exc:
            raise StorageError(f"watermark cache unavailable: {exc}") from exc

    async def mark_complete(self, elapsed: float) -> bool:
        """Set the marker, every watermark that matters having been `load`ed from a read
        that started `elapsed` seconds ago; False (nothing set) when that is too long ago."""
        remaining_ms = math.floor((self._complete_for - elapsed) * 1000)
        if remaining_ms <= 0:
            return False
        try:
            await self._client.set(self._complete, "1", px=remaining_ms)
        except (RedisError, OSError) as exc:
            raise StorageError(f"watermark cache unavailable: {exc}") from exc
        return True
