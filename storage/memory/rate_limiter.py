"""Token buckets in a dict: the in-process `RateLimiter` for a single node (no REDIS_URL)."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

from protocols.ratelimit import Bucket, RateDecision, idle_ttl, take

DEFAULT_MAX_BUCKETS = 100_000


class MemoryRateLimiter:
    """Buckets keyed by string, least recently used first. Each hit evicts, from the front,
    buckets idle long enough to be full again (forgetting those changes no decision); if a
    flood of distinct keys still exceeds `max_buckets`, the least recently used go too
    (evicting early only forgets spent tokens: it can allow a request, never refuse one).
    So memory stays bounded by `max_buckets` and, at rest, by the keys of the last minute.

    `clock` is a monotonic clock in seconds, injectable so tests can move time.
    A hit never awaits, so each one is atomic on the event loop.
    """

    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        *,
        max_buckets: int = DEFAULT_MAX_BUCKETS,
    ) -> None:
        if max_buckets < 1:
            raise ValueError("max_buckets must be >= 1")
        self._clock = clock
        self._max_buckets = max_buckets
        # key -> (bucket, limit per minute); the limit decides the key's idle TTL
        self._buckets: OrderedDict[str, tuple[Bucket, int]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    async def hit(self, key: str, limit_per_minute: int, cost: int = 1) -> RateDecision:
        now = self._clock()
        previous = self._buckets.get(key)
        bucket, decision = take(previous[0] if previous else None, now, limit_per_minute, cost)
        self._buckets[key] = (bucket, limit_per_minute)
        self._buckets.move_to_end(key)
        self._evict(now)
        return decision

    def _evict(self, now: float) -> None:
        buckets = self._buckets
        while buckets:
            bucket, limit = next(iter(buckets.values()))
            if len(buckets) <= self._max_buckets and now - bucket.updated_at < idle_ttl(limit):
                return
            buckets.popitem(last=False)
