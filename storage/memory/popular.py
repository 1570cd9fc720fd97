"""The popular ranking cached in process memory (the RankingCache when REDIS_URL is unset)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from protocols.feed import Ranking
from protocols.ids import new_id


class MemoryRankingCache:
    def __init__(self, *, ttl: float, retain: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if not 0 < ttl <= retain:
            raise ValueError("need 0 < ttl <= retain")
        self._ttl = ttl
        self._retain = retain
        self._clock = clock
        self._current: tuple[float, Ranking] | None = None  # (stored at, ranking)
        self._kept: dict[str, tuple[float, Ranking]] = {}

    async def current(self) -> Ranking | None:
        if self._current is None or self._clock() - self._current[0] >= self._ttl:
            return None
        return self._current[1]

    async def get(self, generation: str) -> Ranking | None:
        kept = self._kept.get(generation)
        if kept is None or self._clock() - kept[0] >= self._retain:
            return None
        return kept[1]

    async def store(self, ids: Sequence[str]) -> Ranking:
        now = self._clock()
        ranking = Ranking(generation=new_id(), ids=list(ids))
        self._current = (now, ranking)
        # Forget rankings no cursor may use any more; a few generations at most remain.
        self._kept = {g: k for g, k in self._kept.items() if now - k[0] < self._retain}
        self._kept[ranking.generation] = (now, ranking)
        return ranking
