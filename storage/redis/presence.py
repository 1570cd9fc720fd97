"""Presence records in Redis: the `PresenceStore` every node of a cluster shares.

One hash per user under `<prefix>presence:<user id>` with the fields status, last_seen_at
and alive_until (unix seconds as decimal strings, "" for none). Each save rewrites every
field (and drops the `sessions` field that earlier versions wrote: sessions now live in
storage/redis/sessions.py) and sets the key's TTL to the retention past the record's
alive_until, so the hash of a user who stays away vanishes by itself. Liveness is not a
TTL but `alive_until`, which the owning UserActor's heartbeat pushes forward: a record whose
node died reads as offline (since alive_until) yet keeps last_seen for the retention period.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import get_args

import redis.asyncio as redis
from redis.exceptions import RedisError

from protocols.presence import PresenceRecord, PresenceStatus, effective
from storage.errors import StorageError

DEFAULT_RETENTION = 30 * 24 * 3600.0
_FIELDS = (b"status", b"last_seen_at", b"alive_until")
_LEGACY_FIELDS = ("sessions",)  # written by earlier versions; dropped on save
# One command per save (every connected user's actor saves on each heartbeat): KEYS[1] the
# record; ARGV status, last_seen_at, alive_until, TTL in seconds. One key: Redis Cluster safe.
_SAVE = """
redis.call('HSET', KEYS[1], 'status', ARGV[1], 'last_seen_at', ARGV[2], 'alive_until', ARGV[3])
redis.call('HDEL', KEYS[1], '""" + "', '".join(_LEGACY_FIELDS) + """')
redis.call('EXPIRE', KEYS[1], ARGV[4])
return 1
"""
_STATUSES: dict[bytes | None, PresenceStatus] = {
    s.encode(): s for s in get_args(PresenceStatus)
}


def _number(value: float | None) -> str:
    return "" if value is None else repr(value)


def _parse(values: list[bytes | None]) -> PresenceRecord | None:
    status, last_seen, alive_until = values
    if status not in _STATUSES:
        return None  # none stored (or not one we wrote)
    try:
        return PresenceRecord(
            status=_STATUSES[status],
            last_seen_at=float(last_seen) if last_seen else None,
            alive_until=float(alive_until) if alive_until else 0.0,
        )
    except ValueError:
        return None  # a corrupt record reads as none: the actor's next save replaces it


class RedisPresenceStore:
    def __init__(self, client: redis.Redis, key_prefix: str, *,
                 retention: float = DEFAULT_RETENTION,
                 clock: Callable[[], float] = time.time) -> None:
        self._client = client
        self._prefix = f"{key_prefix}presence:"
        self._retention = retention
        self._clock = clock
        self._save = client.register_script(_SAVE)

    def _key(self, user_id: str) -> str:
        return self._prefix + user_id

    async def save(self, user_id: str, record: PresenceRecord) -> None:
        ttl = math.ceil(max(0.0, record.alive_until - self._clock()) + self._retention)
        try:
            await self._save(keys=[self._key(user_id)], args=[
                record.status, _number(record.last_seen_at),
                _number(record.alive_until or None), ttl])
        except RedisError as exc:
            raise StorageError(f"presence of {user_id} not saved: {exc}") from exc

    async def load(self, user_id: str) -> PresenceRecord | None:
        try:
            values = await self._client.hmget(self._key(user_id), _FIELDS)
        except RedisError as exc:
            raise StorageError(f"presence of {user_id} not read: {exc}") from exc
        return _parse(values)

    async def get_many(self, user_ids: list[str]) -> dict[str, PresenceRecord]:
        if not user_ids:
            return {}
        try:
            async with self._client.pipeline(transaction=False) as pipe:
                for user_id in user_ids:
                    pipe.hmget(self._key(user_id), _FIELDS)
                rows = await pipe.execute()
        except RedisError as exc:
            raise StorageError(f"presence not read: {exc}") from exc
        found: dict[str, PresenceRecord] = {}
        for user_id, values in zip(user_ids, rows, strict=True):
            record = _parse(values)
            if record is not None:
                found[user_id] = record
        return found

    async def online(self, user_ids: list[str]) -> set[str]:
        now = self._clock()
        records = await self.get_many(list(user_ids))
        return {uid for uid, rec in records.items() if effective(rec, now).status != "offline"}
