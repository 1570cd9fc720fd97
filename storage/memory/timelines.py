"""Home timelines in process memory: the TimelineStore when REDIS_URL is unset.

The same semantics as storage/redis/timelines.py (one contract test suite runs over both):
a bounded, newest-first list of post ids per user, built / live / missing states, and an
expiry restarted by reads. Each timeline is a sorted Python list (bisect): with at most
`length` (800) entries an insertion is a short memmove, cheaper than a tree.
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field


@dataclass
class _Timeline:
    ids: list[str] = field(default_factory=list)  # ascending; the newest is last
    built: bool = False
    expires_at: float = 0.0


class MemoryTimelineStore:
    def __init__(self, *, length: int, ttl: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if length < 1 or ttl <= 0:
            raise ValueError("length and ttl must be positive")
        self._length = length
        self._ttl = ttl
        self._clock = clock
        self._timelines: dict[str, _Timeline] = {}
        self._next_sweep = clock() + ttl

    def _live(self, user_id: str) -> _Timeline | None:
        now = self._clock()
        if now >= self._next_sweep:
            # Forget every expired timeline once per ttl, so idle users cost no memory.
            self._timelines = {k: t for k, t in self._timelines.items() if t.expires_at > now}
            self._next_sweep = now + self._ttl
        timeline = self._timelines.get(user_id)
        if timeline is not None and timeline.expires_at <= now:
            del self._timelines[user_id]
            return None
        return timeline

    def _insert(self, timeline: _Timeline, post_ids: Sequence[str]) -> None:
        ids = timeline.ids
        for post_id in post_ids:
            at = bisect.bisect_left(ids, post_id)
            if at == len(ids) or ids[at] != post_id:
                ids.insert(at, post_id)
        if len(ids) > self._length:
            del ids[: len(ids) - self._length]

    async def add(self, user_ids: Sequence[str], post_id: str) -> None:
        for user_id in user_ids:
            timeline = self._live(user_id)
            if timeline is not None:
                self._insert(timeline, (post_id,))

    async def extend(self, user_id: str, post_ids: Sequence[str]) -> None:
        timeline = self._live(user_id)
        if timeline is not None:
            self._insert(timeline, post_ids)

    async def remove(self, user_id: str, post_ids: Sequence[str]) -> None:
        timeline = self._live(user_id)
        if timeline is None:
            return
        ids = timeline.ids
        for post_id in post_ids:
            at = bisect.bisect_left(ids, post_id)
            if at < len(ids) and ids[at] == post_id:
                del ids[at]

    async def page(self, user_id: str, before_id: str | None, limit: int) -> list[str] | None:
        timeline = self._live(user_id)
        if timeline is None or not timeline.built:
            return None
        timeline.expires_at = self._clock() + self._ttl
        ids = timeline.ids
        end = len(ids) if before_id is None else bisect.bisect_left(ids, before_id)
        return ids[max(0, end - limit):end][::-1]

    async def exists(self, user_id: str) -> bool:
        timeline = self._live(user_id)
        return timeline is not None and timeline.built

    async def rebuild(self, user_id: str,
                      load: Callable[[], Awaitable[Sequence[str]]]) -> None:
        timeline = self._live(user_id)
        if timeline is None:
            # Live from now on: adds that arrive while `load` runs are kept.
            timeline = self._timelines[user_id] = _Timeline(
                expires_at=self._clock() + self._ttl)
        ids = await load()
        self._insert(timeline, ids)
        timeline.built = True
        timeline.expires_at = self._clock() + self._ttl
        if self._timelines.get(user_id) is not timeline:
            self._timelines[user_id] = timeline  # swept meanwhile: it is fresh again
