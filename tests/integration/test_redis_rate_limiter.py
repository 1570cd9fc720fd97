"""The Redis rate limiter against a real Redis, and the contract both limiters share."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol

import pytest
import redis.asyncio as redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from server.ratelimit.ports import RateLimiter
from storage.errors import StorageError
from storage.memory.rate_limiter import MemoryRateLimiter
from storage.redis.rate_limiter import RedisRateLimiter
from tests.support.services import free_port

pytestmark = pytest.mark.integration


@pytest.fixture(params=["memory", "redis"])
def make_limiter(
    request: pytest.FixtureRequest, redis_client: redis.Redis, clean_redis_prefix: str
) -> Callable[[], RateLimiter]:
    """Builds limiters sharing one store: one dict, or one Redis key prefix."""
    if request.param == "memory":
        shared = MemoryRateLimiter()
        return lambda: shared
    return lambda: RedisRateLimiter(redis_client, clean_redis_prefix)


async def test_allows_the_limit_then_refuses(make_limiter: Callable[[], RateLimiter]) -> None:
    limiter = make_limiter()
    decisions = [await limiter.hit("ip:10.0.0.1", 5) for _ in range(6)]
    assert [d.allowed for d in decisions] == [True] * 5 + [False]
    assert [d.remaining for d in decisions[:5]] == [4, 3, 2, 1, 0]
    refused = decisions[-1]
    assert refused.limit == 5 and refused.remaining == 0
    assert 11.0 < refused.retry_after <= 12.0  # 5/min: one token every 12 s


async def test_keys_are_independent(make_limiter: Callable[[], RateLimiter]) -> None:
    limiter = make_limiter()
    assert (await limiter.hit("ip:a", 1)).allowed
    assert not (await limiter.hit("ip:a", 1)).allowed
    assert (await limiter.hit("ip:b", 1)).allowed
    assert (await limiter.hit("route:auth.login:a", 1)).allowed


async def test_concurrent_hits_never_spend_a_token_twice(
    make_limiter: Callable[[], RateLimiter],
) -> None:
    limiter = make_limiter()
    decisions = await asyncio.gather(*(limiter.hit("ip:crowd", 10) for _ in range(40)))
    assert sum(d.allowed for d in decisions) == 10


class BucketTime(Protocol):
    """Moves time as one bucket sees it, whatever the wall clock does meanwhile."""

    async def hold(self, key: str) -> None:
        """No time passes for the bucket before its next hit."""
        ...

    async def advance(self, key: str, seconds: float) -> None:
        """At least `seconds` pass for the bucket before its next hit."""
        ...


class FakeMonotonic:
    """The memory limiter's injected clock: time moves only when a test says so."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    async def hold(self, key: str) -> None:
        pass

    async def advance(self, key: str, seconds: float) -> None:
        self.now += seconds


class RedisBucketTime:
    """The Redis limiter reads Redis' own clock (TIME, inside its script) and stores each
    bucket's last update as `ts` (microseconds): moving `ts` moves the bucket's time. A `ts`
    ahead of Redis' clock counts as no time passing (the script never refills backwards);
    each hit writes `ts` anew."""

    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self._client = client
        self._prefix = f"{prefix}ratelimit:"

    async def hold(self, key: str) -> None:
        seconds, _ = await self._client.time()  # an hour ahead of Redis' clock
        await self._client.hset(self._prefix + key, "ts", str((seconds + 3600) * 1_000_000))

    async def advance(self, key: str, seconds: float) -> None:
        await self._client.hincrby(self._prefix + key, "ts", -round(seconds * 1_000_000))


@pytest.fixture(params=["memory", "redis"])
def timed_limiter(
    request: pytest.FixtureRequest, redis_client: redis.Redis, clean_redis_prefix: str
) -> tuple[RateLimiter, BucketTime]:
    if request.param == "memory":
        clock = FakeMonotonic()
        return MemoryRateLimiter(clock), clock
    return (RedisRateLimiter(redis_client, clean_redis_prefix),
            RedisBucketTime(redis_client, clean_redis_prefix))


async def test_tokens_refill_over_time(timed_limiter: tuple[RateLimiter, BucketTime]) -> None:
    # No assumption about how long anything takes: the bucket's time only moves on request.
    limiter, time = timed_limiter
    assert (await limiter.hit("ip:refill", 6000, cost=6000)).allowed  # empties it at once
    await time.hold("ip:refill")
    refused = await limiter.hit("ip:refill", 6000)
    assert not refused.allowed and refused.remaining == 0
    assert refused.retry_after == pytest.approx(0.01, abs=1e-5)  # 100 tokens per second
    await time.advance("ip:refill", 0.015)  # one and a half tokens' worth (or more)
    assert (await limiter.hit("ip:refill", 6000)).allowed


async def test_two_limiters_on_one_redis_share_the_bucket(
    redis_client: redis.Redis, clean_redis_prefix: str
) -> None:
    node_a = RedisRateLimiter(redis_client, clean_redis_prefix)
    node_b = RedisRateLimiter(redis_client, clean_redis_prefix)
    assert (await node_a.hit("ip:shared", 3)).remaining == 2
    assert (await node_b.hit("ip:shared", 3)).remaining == 1
    assert (await node_a.hit("ip:shared", 3)).remaining == 0
    refused = await node_b.hit("ip:shared", 3)
    assert not refused.allowed and 0 < refused.retry_after <= 20.0


async def test_buckets_live_under_the_prefix_and_expire_when_idle(
    redis_client: redis.Redis, clean_redis_prefix: str
) -> None:
    limiter = RedisRateLimiter(redis_client, clean_redis_prefix)
    await limiter.hit("ip:ttl", 10)
    key = f"{clean_redis_prefix}ratelimit:ip:ttl"
    assert await redis_client.type(key) == b"hash"
    assert set(await redis_client.hkeys(key)) == {b"tokens", b"ts"}
    assert 0 < await redis_client.pttl(key) <= 60_000


async def test_a_redis_failure_is_a_storage_error() -> None:
    closed = redis.Redis(host="127.0.0.1", port=free_port(), socket_connect_timeout=1,
                         retry=Retry(NoBackoff(), 0))
    try:
        with pytest.raises(StorageError):
            await RedisRateLimiter(closed, "hubbub-test:").hit("ip:x", 5)
    finally:
        await closed.aclose()
