"""Keeping every watermark that matters in Redis, so a cache miss costs no Postgres read.

A watermark W refuses only tokens issued before it, and those have all expired once
ACCESS_TOKEN_TTL seconds have passed since W (verification enforces the TTL as each token's
longest life). So the watermarks that matter are the few above now - ACCESS_TOKEN_TTL. Every
node with REDIS_URL runs a WatermarkRefresher: at start and then every REFRESH_PERIOD seconds
it reads those from Postgres, loads them into the Redis cache and marks the cache complete,
after which a missing key reads as 0 (storage/redis/token_watermarks.py says why that holds).

A sign-out whose Redis raise failed is loaded by the next refresh: revoked tokens may pass for
one refresh period (~20 s) while refreshers run. A failing refresh is logged and retried next
period; meanwhile the marker lapses and checks read Postgres on a miss, as without it.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable

from server.auth.ports import CompletableWatermarkCache, RecentWatermarks

log = logging.getLogger("hubbub.auth")
REFRESH_PERIOD = 20.0  # seconds between two refreshes of one node
# Seconds looked back beyond the token TTL: clock skew between the node reading and the node
# verifying (NTP keeps it well under a second), generously.
SKEW_MARGIN = 60
# Beyond this many recent watermarks (a mass sign-out), no marker: misses read Postgres as
# before rather than every node copying a huge set every period.
MAX_RECENT = 100_000


class WatermarkRefresher:
    """`clock`: unix seconds; `monotonic`: for the age of a read."""

    def __init__(self, store: RecentWatermarks, cache: CompletableWatermarkCache, *,
                 access_token_ttl: int, period: float = REFRESH_PERIOD,
                 clock: Callable[[], float] = time.time,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._store = store
        self._cache = cache
        self._lookback = access_token_ttl + SKEW_MARGIN
        self._period = period
        self._clock = clock
        self._monotonic = monotonic

    async def refresh(self) -> bool:
        """One pass: load the recent watermarks, then mark the cache complete. True when
        marked. Raises what the store or the cache raise."""
        started = self._monotonic()
        since = math.floor(self._clock()) - self._lookback
        recent = await self._store.recent(since, MAX_RECENT + 1)
        if len(recent) > MAX_RECENT:
            log.warning("over %d recent token watermarks: misses read Postgres", MAX_RECENT)
            return False
        await self._cache.load(recent)
        if not await self._cache.mark_complete(self._monotonic() - started):
            log.warning("a token watermark refresh took too long to mark the cache complete")
            return False
        return True

    async def run(self) -> None:
        """Refresh now and every period until cancelled; a failure waits for the next."""
        while True:
            try:
                await self.refresh()
            except Exception:  # Redis or Postgres away: the marker lapses, checks still hold
                log.warning("token watermark refresh failed; retrying in %d s",
                            int(self._period), exc_info=True)
            await asyncio.sleep(self._period)
