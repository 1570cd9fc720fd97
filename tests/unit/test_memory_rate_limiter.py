"""The in-process rate limiter, driven by a fake clock."""

from __future__ import annotations

import pytest

from protocols.ratelimit import RateDecision
from server.ratelimit.failopen import COOLDOWN, FailOpenRateLimiter
from storage.errors import StorageError
from storage.memory.rate_limiter import MemoryRateLimiter


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


async def test_allows_the_limit_then_refuses_until_refilled() -> None:
    clock = FakeClock()
    limiter = MemoryRateLimiter(clock)
    decisions = [await limiter.hit("ip:1.2.3.4", 3) for _ in range(4)]
    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert decisions[-1].retry_after == pytest.approx(20.0)  # 3/min: one token per 20 s
    clock.advance(19.9)
    assert not (await limiter.hit("ip:1.2.3.4", 3)).allowed
    clock.advance(0.1)
    assert (await limiter.hit("ip:1.2.3.4", 3)).allowed


async def test_keys_are_independent() -> None:
    limiter = MemoryRateLimiter(FakeClock())
    assert (await limiter.hit("a", 1)).allowed
    assert not (await limiter.hit("a", 1)).allowed
    assert (await limiter.hit("b", 1)).allowed


async def test_idle_buckets_are_evicted_after_they_refilled() -> None:
    clock = FakeClock()
    limiter = MemoryRateLimiter(clock)
    for i in range(50):
        await limiter.hit(f"ip:{i}", 10)
    assert len(limiter) == 50
    clock.advance(59.0)
    await limiter.hit("ip:fresh", 10)
    assert len(limiter) == 51  # none is full yet: all kept
    clock.advance(1.0)
    await limiter.hit("ip:fresh", 10)
    assert len(limiter) == 1  # the 50 idle ones are full again, so forgotten


async def test_eviction_keeps_a_recently_used_bucket() -> None:
    clock = FakeClock()
    limiter = MemoryRateLimiter(clock)  # limit 2: one token back every 30 s
    await limiter.hit("old", 2)
    await limiter.hit("old", 2)
    await limiter.hit("busy", 2)
    clock.advance(30.0)
    await limiter.hit("old", 2)  # touched: now the most recently used, and empty again
    clock.advance(30.0)
    await limiter.hit("other", 2)
    assert len(limiter) == 2  # "busy" (idle 60 s) went; "old" (idle 30 s) stays
    # Its state survived: one token refilled since, not a fresh bucket of two.
    assert (await limiter.hit("old", 2)).remaining == 0


async def test_memory_is_bounded_under_a_flood_of_keys() -> None:
    limiter = MemoryRateLimiter(FakeClock(), max_buckets=100)
    for i in range(1000):
        decision = await limiter.hit(f"ip:10.0.{i // 256}.{i % 256}", 5)
        assert decision.allowed
        assert len(limiter) <= 100
    assert len(limiter) == 100
    # The most recent key survived, with its spent token.
    assert (await limiter.hit("ip:10.0.3.231", 5)).remaining == 3


class FlakyLimiter:
    """Raises StorageError while `down`; counts the calls that reached it."""

    def __init__(self) -> None:
        self.down = True
        self.calls = 0
        self.memory = MemoryRateLimiter(FakeClock())

    async def hit(self, key: str, limit_per_minute: int, cost: int = 1) -> RateDecision:
        self.calls += 1
        if self.down:
            raise StorageError("connection refused")
        return await self.memory.hit(key, limit_per_minute, cost)


async def test_fail_open_allows_skips_the_store_for_a_while_and_recovers(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock()
    store = FlakyLimiter()
    limiter = FailOpenRateLimiter(store, clock)
    with caplog.at_level("INFO", logger="hubbub.ratelimit"):
        decisions = [await limiter.hit("ip:x", 1) for _ in range(3)]
        assert all(d.allowed and d.remaining == 1 for d in decisions)
        assert store.calls == 1  # the next two did not wait on a dead store
        clock.advance(COOLDOWN)
        assert (await limiter.hit("ip:x", 1)).allowed
        assert store.calls == 2  # tried again after the cooldown; still down
        store.down = False
        clock.advance(COOLDOWN)
        assert (await limiter.hit("ip:x", 1)).allowed
        assert not (await limiter.hit("ip:x", 1)).allowed  # limiting is back
    assert limiter.failures == 4
    levels = [r.levelname for r in caplog.records if r.name == "hubbub.ratelimit"]
    assert levels == ["WARNING", "INFO"]  # one warning per outage, not one per request


async def test_fail_open_passes_decisions_through() -> None:
    limiter = FailOpenRateLimiter(MemoryRateLimiter(FakeClock()))
    assert (await limiter.hit("k", 1)).allowed
    assert not (await limiter.hit("k", 1)).allowed
