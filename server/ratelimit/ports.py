"""The port rate limiting talks to: a store of token buckets keyed by client and route."""

from __future__ import annotations

from typing import Protocol

from protocols.ratelimit import RateDecision


class RateLimiter(Protocol):
    async def hit(self, key: str, limit_per_minute: int, cost: int = 1) -> RateDecision:
        """Spend `cost` tokens from the bucket `key` (a bucket of `limit_per_minute` tokens,
        refilling at limit/60 per second) and say whether the request may proceed.

        Atomic per key: concurrent hits on one key, from any task or any node sharing the
        store, never spend the same token twice. A refused hit spends nothing. Buckets are
        created full on first use. An idle bucket is forgotten once it would be full again
        (60 s, `protocols.ratelimit.idle_ttl`), so memory tracks only recently active keys.
        Callers use one `limit_per_minute` per key; changing it for a live key rescales
        nothing, it only changes the capacity and refill rate from then on.

        Raises storage.errors.StorageError when the backing store cannot answer; callers
        decide whether to fail open.
        """
        ...
