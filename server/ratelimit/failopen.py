"""Fail open: when the bucket store is down, allow requests rather than take the API down."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from protocols.ratelimit import RateDecision
from server.ratelimit.ports import RateLimiter
from storage.errors import StorageError

log = logging.getLogger("hubbub.ratelimit")
COOLDOWN = 5.0  # seconds to stop asking a failed store before trying it again


class FailOpenRateLimiter:
    """A `RateLimiter` that answers "allowed" (with `remaining=limit`) when `inner` raises
    StorageError. After a failure it skips the store for COOLDOWN seconds: a dead Redis can
    take seconds per call (connect retries), and requests should not each pay for that. One
    warning is logged per outage, one info line when the store answers again."""

    def __init__(self, inner: RateLimiter, clock: Callable[[], float] = time.monotonic) -> None:
        self._inner = inner
        self._clock = clock
        self._failed_at: float | None = None  # set while the store is considered down
        self.failures = 0  # hits let through because the store failed or was skipped

    async def hit(self, key: str, limit_per_minute: int, cost: int = 1) -> RateDecision:
        if self._failed_at is not None and self._clock() - self._failed_at < COOLDOWN:
            return self._allow(limit_per_minute)
        try:
            decision = await self._inner.hit(key, limit_per_minute, cost)
        except StorageError as exc:
            if self._failed_at is None:
                log.warning("rate limiting is off while its store fails: %s", exc)
            self._failed_at = self._clock()
            return self._allow(limit_per_minute)
        if self._failed_at is not None:
            self._failed_at = None
            log.info("rate limiting is back on", extra={"let_through": self.failures})
        return decision

    def _allow(self, limit_per_minute: int) -> RateDecision:
        self.failures += 1
        return RateDecision(allowed=True, limit=limit_per_minute, remaining=limit_per_minute)
