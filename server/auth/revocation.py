"""Revoking access tokens at once: per-user watermarks.

Access tokens are stateless JWTs, so "sign out everywhere" (POST /v1/auth/logout_all, a
password reset) cannot delete them. Instead it raises the user's watermark W (unix seconds)
and every check refuses a token of theirs with `iat < W`:

- W is strictly above the previous W and above the current second, so a token issued up to
  the moment of the sign-out is caught;
- the sign-out revokes the user's refresh tokens and raises W in one transaction, under the
  per-user lock that rotations and new sessions take (RefreshTokenStore.sign_out_everywhere),
  and records when it happened;
- a login or refresh notes the time before it reads the credentials (`checked_at`). It issues
  nothing when a sign-out came after that (a new session is stored under the lock only if
  none did; a refresh checks once its rotation is done), and claims `iat` = that time lifted
  to the W it read under the lock or after the rotation (see `issued_at`). So what a login or
  refresh racing a sign-out hands out is refused or revoked by it, logging in after it works
  at once, even within the same second, and a later sign-out (W' > W) catches it in turn.
  (This assumes the nodes' clocks agree, as NTP keeps them, to well under a second);
- a watermark matters only while tokens below it can still be alive (ACCESS_TOKEN_TTL, which
  verification enforces as each token's maximum lifetime).

Postgres holds the watermarks (TokenWatermarkStore); each check reads them through a cache
(WatermarkCache): Redis with REDIS_URL, shared by every node and raised by the sign-out
before it answers, so each authenticated request costs one Redis round trip and a sign-out on
one node holds on every node at once; in memory otherwise (a single node: all sign-outs are
its own). With Redis, every node's WatermarkRefresher (server/auth/watermark_refresher.py)
keeps all the watermarks that matter cached and marks the cache complete, so a miss is a
known 0 rather than a Postgres read; a sign-out whose Redis raise failed is then caught
within one refresh period (~20 s; CACHE_TTL at most when refreshes fail too). When the cache
fails, checks fall back to Postgres, so a Redis outage never lets a revoked token through.
"""

from __future__ import annotations

import logging
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from datetime import datetime

from server.auth.ports import (
    KeyedWatermarkCache,
    TokenWatermarkStore,
    WatermarkCache,
    WatermarkKeys,
)
from server.auth.watermark_refresher import REFRESH_PERIOD
from storage.errors import StorageError

log = logging.getLogger("hubbub.auth")
CACHE_TTL = 60.0  # seconds a cached watermark is trusted
_WARN_EVERY = 10.0  # seconds between two warnings about a failing cache


class MemoryWatermarkCache:
    """WatermarkCache in a dict, for a single node: entries expire after `ttl` seconds, the
    least recently used go first beyond `max_entries`. Never awaits, so each call is atomic on
    the event loop."""

    def __init__(self, *, ttl: float = CACHE_TTL, max_entries: int = 100_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if ttl <= 0 or max_entries < 1:
            raise ValueError("ttl and max_entries must be positive")
        self._ttl = ttl
        self._max = max_entries
        self._clock = clock
        self._entries: OrderedDict[str, tuple[int, float]] = OrderedDict()  # -> (W, expires)

    def __len__(self) -> int:
        return len(self._entries)

    async def get(self, user_id: str) -> int | None:
        entry = self._entries.get(user_id)
        if entry is None:
            return None
        if entry[1] <= self._clock():
            del self._entries[user_id]
            return None
        self._entries.move_to_end(user_id)
        return entry[0]

    async def offer(self, user_id: str, valid_after: int) -> None:
        if await self.get(user_id) is None:
            self._put(user_id, valid_after)

    async def raise_to(self, user_id: str, valid_after: int) -> None:
        current = await self.get(user_id)
        if current is None or current < valid_after:
            self._put(user_id, valid_after)

    def _put(self, user_id: str, valid_after: int) -> None:
        self._entries[user_id] = (valid_after, self._clock() + self._ttl)
        self._entries.move_to_end(user_id)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)


class TokenWatermarks:
    """The watermarks, read through the cache. `clock`: unix time in seconds."""

    def __init__(self, store: TokenWatermarkStore, cache: WatermarkCache, *,
                 clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._cache = cache
        # Checked once: an isinstance of a runtime protocol costs microseconds per call.
        self._keyed = cache if isinstance(cache, KeyedWatermarkCache) else None
        self._clock = clock
        self._warned_at = -math.inf

    async def valid_after(self, user_id: str) -> int:
        """The user's watermark as every check sees it (cached)."""
        try:
            cached = await self._cache.get(user_id)
        except StorageError:
            self._warn("reading")
            return await self._store.get(user_id)
        return await self.valid_after_cached(user_id, cached)

    def cache_keys(self, user_id: str) -> WatermarkKeys | None:
        """The Redis keys of the user's cached watermark and of the cache's completeness
        marker, when the cache keeps them (None otherwise): a caller that reads them itself,
        with other keys in one script, passes what it found to `valid_after_cached` (as
        WatermarkKeys says: a missing watermark is 0 while the marker exists)."""
        if self._keyed is None:
            return None
        return WatermarkKeys(watermark=self._keyed.key(user_id),
                             complete=self._keyed.complete_key())

    async def valid_after_cached(self, user_id: str, cached: int | None) -> int:
        """`valid_after`, the cache already read: `cached` is what it held (None: nothing,
        and no completeness marker). A miss reads Postgres and fills the cache, as
        `valid_after` does."""
        if cached is not None:
            return cached
        value = await self._store.get(user_id)
        try:
            await self._cache.offer(user_id, value)
        except StorageError:
            self._warn("filling")
        return value

    async def known(self, user_id: str, valid_after: int) -> None:
        """A watermark just read from Postgres (a login, a refresh): put it in the cache if it
        holds none, as a miss would (SET NX: never over a newer one), so the socket connect
        and the requests that follow find it cached. Best effort."""
        try:
            await self._cache.offer(user_id, valid_after)
        except StorageError:
            self._warn("filling")

    async def state(self, user_id: str) -> tuple[int, datetime | None]:
        """(watermark, last sign-out) from the store itself, not the cache."""
        return await self._store.state(user_id)

    def next_watermark(self) -> int:
        """The least watermark a sign-out now may set: it must catch this second's tokens."""
        return math.floor(self._clock()) + 1

    async def raised(self, user_id: str, valid_after: int) -> None:
        """A sign-out stored `valid_after`: raise the cache, so every check sees it at once.
        A failure is logged: the cache then lags until the next watermark refresh loads it
        (REFRESH_PERIOD), or for at most CACHE_TTL when refreshes fail too."""
        try:
            await self._cache.raise_to(user_id, valid_after)
        except StorageError:
            log.error("token watermark not cached: revoked tokens may pass for up to %d s "
                      "(%d s if watermark refreshes fail too)", int(REFRESH_PERIOD),
                      int(CACHE_TTL), exc_info=True, extra={"user_id": user_id})

    def _warn(self, what: str) -> None:
        now = time.monotonic()
        if now - self._warned_at >= _WARN_EVERY:  # once per interval, not once per request
            self._warned_at = now
            log.warning("token watermark cache failed while %s; reading Postgres", what,
                        exc_info=True)


def issued_at(checked_at: datetime, valid_after: int) -> int:
    """The `iat` of tokens whose credentials were checked from `checked_at` on, against the
    user's watermark `valid_after` (read under the session lock, or after the rotation)."""
    return max(math.floor(checked_at.timestamp()), valid_after)
