"""Presence records in a dict: the in-process `PresenceStore` for a single node (no
REDIS_URL). Same contract as storage/redis/presence.py, checked by one shared test suite."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

from protocols.presence import PresenceRecord, effective

DEFAULT_RETENTION = 30 * 24 * 3600.0


class MemoryPresenceStore:
    """Records kept in write order, so forgetting those older than `retention` is a walk
    from the front. `clock` is wall-clock unix seconds (records carry wall times)."""

    def __init__(self, clock: Callable[[], float] = time.time,
                 retention: float = DEFAULT_RETENTION) -> None:
        self._clock = clock
        self._retention = retention
        # user id -> (record, when it expires: written + retention, past alive_until)
        self._records: OrderedDict[str, tuple[PresenceRecord, float]] = OrderedDict()

    async def save(self, user_id: str, record: PresenceRecord) -> None:
        now = self._clock()
        self._records[user_id] = (record, max(now, record.alive_until) + self._retention)
        self._records.move_to_end(user_id)
        self._forget(now)

    async def load(self, user_id: str) -> PresenceRecord | None:
        entry = self._records.get(user_id)
        if entry is None or entry[1] <= self._clock():
            return None
        return entry[0]

    async def get_many(self, user_ids: list[str]) -> dict[str, PresenceRecord]:
        found: dict[str, PresenceRecord] = {}
        for user_id in user_ids:
            record = await self.load(user_id)
            if record is not None:
                found[user_id] = record
        return found

    async def online(self, user_ids: list[str]) -> set[str]:
        now = self._clock()
        records = await self.get_many(user_ids)
        return {uid for uid, rec in records.items() if effective(rec, now).status != "offline"}

    def _forget(self, now: float) -> None:
        # Entries are in write order but expiries are not strictly monotonic (alive_until);
        # stopping at the first live one keeps this O(expired) and only delays the rest.
        while self._records:
            _, expires = next(iter(self._records.values()))
            if expires > now:
                return
            self._records.popitem(last=False)
