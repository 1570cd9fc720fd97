"""Token-bucket rate limiting: the decision a limiter returns, and the pure bucket math.

This lives in protocols (not server/ratelimit) because both sides of the `RateLimiter` port
need it: server code reads `RateDecision`, and the in-process adapter in storage/ runs `take`
(storage may import only protocols). The Redis adapter runs the same math in Lua.

A bucket for a limit of N requests per minute holds at most N tokens (the burst) and refills
continuously at N/60 tokens per second. A request costs `cost` tokens; it is allowed when the
bucket holds at least that many. A bucket left alone for `idle_ttl(N)` seconds is full again,
so forgetting it then changes no decision: that is the TTL adapters give idle buckets.
"""

from __future__ import annotations

import math

import msgspec


class RateDecision(msgspec.Struct, frozen=True, kw_only=True):
    allowed: bool
    limit: int  # the bucket's capacity: requests per minute
    remaining: int  # whole tokens left after this hit
    retry_after: float = 0.0  # seconds until this hit would be allowed; 0 when allowed


class Bucket(msgspec.Struct, frozen=True):
    tokens: float
    updated_at: float  # seconds on the caller's monotonic clock


def refill_rate(limit_per_minute: int) -> float:
    """Tokens per second."""
    return limit_per_minute / 60.0


def idle_ttl(limit_per_minute: int) -> float:
    """Seconds after which an untouched bucket is full again (always 60 for per-minute limits)."""
    return limit_per_minute / refill_rate(limit_per_minute)


def take(
    bucket: Bucket | None, now: float, limit_per_minute: int, cost: int = 1
) -> tuple[Bucket, RateDecision]:
    """Spend `cost` tokens from `bucket` (None: a new, full bucket) at time `now`.

    Returns the bucket to store and the decision. A refused hit spends nothing. A clock that
    went backwards counts as no time passing. Raises ValueError when the limit is below 1 or
    cost is outside 1..limit (such a hit could never be allowed).
    """
    if limit_per_minute < 1:
        raise ValueError("limit_per_minute must be >= 1")
    if not 1 <= cost <= limit_per_minute:
        raise ValueError(f"cost must be within 1..{limit_per_minute}")
    rate = refill_rate(limit_per_minute)
    if bucket is None:
        tokens = float(limit_per_minute)
    else:
        elapsed = max(0.0, now - bucket.updated_at)
        tokens = min(float(limit_per_minute), bucket.tokens + elapsed * rate)
    if tokens >= cost:
        tokens -= cost
        decision = RateDecision(allowed=True, limit=limit_per_minute,
                                remaining=math.floor(tokens))
    else:
        decision = RateDecision(allowed=False, limit=limit_per_minute,
                                remaining=math.floor(tokens),
                                retry_after=(cost - tokens) / rate)
    return Bucket(tokens, now), decision
