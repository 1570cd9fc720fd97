"""Token buckets in Redis: the `RateLimiter` every node of a cluster shares.

One Lua script per hit reads, refills, spends and writes the bucket atomically, so concurrent
hits from any number of nodes never spend a token twice. Time comes from the Redis server
(`TIME` inside the script), so nodes with skewed clocks agree. Each bucket is a hash
{tokens, ts} under `<prefix>ratelimit:<key>` with a PEXPIRE of the time it takes to refill
completely: an idle bucket would be full again by then, so letting it vanish changes nothing.
"""

from __future__ import annotations

import redis.asyncio as redis
from redis.exceptions import RedisError

from protocols.ratelimit import RateDecision
from storage.errors import StorageError

# KEYS[1]: bucket; ARGV[1]: limit per minute; ARGV[2]: cost.
# Returns {allowed 0|1, whole tokens remaining, retry_after in microseconds}: Lua numbers
# become integers on the way back, so the fraction travels as microseconds.
_HIT = """
local limit = tonumber(ARGV[1])
local cost = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local rate = limit / 60000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1])
local ts = tonumber(state[2])
if tokens == nil or ts == nil then
  tokens = limit
else
  tokens = math.min(limit, tokens + math.max(0, now - ts) * rate)
end
local allowed = 0
local retry = 0
if tokens >= cost then
  tokens = tokens - cost
  allowed = 1
else
  retry = math.ceil((cost - tokens) / rate)
end
redis.call('HSET', KEYS[1], 'tokens', string.format('%.6f', tokens), 'ts', string.format('%d', now))
redis.call('PEXPIRE', KEYS[1], math.ceil(limit / rate / 1000))
return {allowed, math.floor(tokens), retry}
"""


class RedisRateLimiter:
    def __init__(self, client: redis.Redis, key_prefix: str) -> None:
        self._prefix = f"{key_prefix}ratelimit:"
        # Registered once: calls go by EVALSHA, reloading the script if Redis lost it.
        self._script = client.register_script(_HIT)

    async def hit(self, key: str, limit_per_minute: int, cost: int = 1) -> RateDecision:
        if limit_per_minute < 1:
            raise ValueError("limit_per_minute must be >= 1")
        if not 1 <= cost <= limit_per_minute:
            raise ValueError(f"cost must be within 1..{limit_per_minute}")
        try:
            allowed, remaining, retry_us = await self._script(
                keys=[self._prefix + key], args=[limit_per_minute, cost]
            )
        except (RedisError, OSError) as exc:
            raise StorageError(f"rate limiter store unavailable: {exc}") from exc
        return RateDecision(allowed=bool(allowed), limit=limit_per_minute,
                            remaining=int(remaining), retry_after=int(retry_us) / 1_000_000)
