"""The token-bucket math: burst, refill, refusal and retry_after, with explicit times."""

from __future__ import annotations

import pytest

from protocols.ratelimit import Bucket, idle_ttl, refill_rate, take


def spend(limit: int, times: int, now: float = 0.0) -> tuple[Bucket | None, list[bool]]:
    bucket: Bucket | None = None
    allowed = []
    for _ in range(times):
        bucket, decision = take(bucket, now, limit)
        allowed.append(decision.allowed)
    return bucket, allowed


def test_a_new_bucket_allows_a_full_burst_then_refuses() -> None:
    _, allowed = spend(limit=5, times=7)
    assert allowed == [True] * 5 + [False] * 2


def test_remaining_counts_down_to_zero() -> None:
    bucket = None
    remaining = []
    for _ in range(3):
        bucket, decision = take(bucket, 10.0, 3)
        remaining.append(decision.remaining)
    assert remaining == [2, 1, 0]
    assert decision.limit == 3


def test_refused_hit_says_when_to_retry_and_spends_nothing() -> None:
    bucket, _ = spend(limit=60, times=60)  # 1 token per second
    assert bucket is not None
    after, decision = take(bucket, 0.25, 60)
    assert not decision.allowed
    assert decision.retry_after == pytest.approx(0.75)
    assert after.tokens == pytest.approx(0.25)  # refilled, not spent
    # Exactly at retry_after the hit is allowed.
    _, decision = take(after, 0.25 + decision.retry_after, 60)
    assert decision.allowed and decision.retry_after == 0.0


def test_refill_is_continuous_at_limit_per_sixty_seconds() -> None:
    bucket, _ = spend(limit=120, times=120)  # empty; 2 tokens per second
    bucket, decision = take(bucket, 5.0, 120)  # 10 tokens back, one spent
    assert decision.allowed and decision.remaining == 9
    assert refill_rate(120) == 2.0


def test_refill_never_exceeds_capacity() -> None:
    bucket, _ = spend(limit=10, times=1)
    _, decision = take(bucket, 3600.0, 10)
    assert decision.remaining == 9  # full (10), minus this hit


def test_idle_ttl_is_the_time_to_refill_completely() -> None:
    bucket, _ = spend(limit=30, times=30)
    assert idle_ttl(30) == 60.0
    _, decision = take(bucket, idle_ttl(30), 30)
    assert decision.remaining == 29  # as good as a new bucket


def test_a_clock_going_backwards_counts_as_no_time() -> None:
    bucket, _ = spend(limit=2, times=2, now=100.0)
    _, decision = take(bucket, 50.0, 2)
    assert not decision.allowed and decision.retry_after == pytest.approx(30.0)


def test_cost_spends_several_tokens() -> None:
    bucket, decision = take(None, 0.0, 10, cost=4)
    assert decision.remaining == 6
    bucket, decision = take(bucket, 0.0, 10, cost=7)
    assert not decision.allowed and decision.retry_after == pytest.approx(6.0)


@pytest.mark.parametrize(("limit", "cost"), [(0, 1), (5, 0), (5, 6)])
def test_impossible_requests_are_rejected(limit: int, cost: int) -> None:
    with pytest.raises(ValueError):
        take(None, 0.0, limit, cost)
