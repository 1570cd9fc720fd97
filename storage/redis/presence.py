"""Presence records in Redis: the `PresenceStore` every node of a cluster shares.

One hash per user under `<prefix>presence:<user id>` with the fields status, last_seen_at
and alive_until (unix seconds as decimal strings, "" for none). Each save rewrites every
field (and drops the `sessions` field that earlier versions wrote: sessions now live in
storage/redis/sessions.py) and sets the key's TTL to the retention past the record's
alive_until, so the hash of a user who stays away vanishes by itself. Liveness is not a
TTL but `alive_until`, which the owning UserActor's heartbeat pushes forward: a record whose
node died reads as offline (since alive_until) yet keeps last_seen for the retention period.

Every save also counts up a field `v`. A reader that took a snapshot of the record (the
gateway reads it in the script that records a socket, storage/redis/sessions.py `open`) can
then save on the condition that nothing was saved since (`save_if`): a fresh UserActor
activation trusts such a snapshot instead of loading the record again, and the condition
catches an activation elsewhere (a crash, a handover) that wrote in between. The condition
compares `alive_until` too, which every save rewrites: a save by a node still running a
version that does not count is caught as well.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import get_args

import redis.asyncio as redis
from redis.exceptions import RedisError

from protocols.presence import PresenceRecord, PresenceStatus, effective
from protocols.user_messages import PresenceSnapshot
from storage.errors import StorageError

DEFAULT_RETENTION = 30 * 24 * 3600.0
_FIELDS = (b"status", b"last_seen_at", b"alive_until")
# What a snapshot reads (in this order): the record's fields, then the save counter.
SNAPSHOT_FIELDS = (*_FIELDS, b"v")
_LEGACY_FIELDS = ("sessions",)  # written by earlier versions; dropped on save
# One command per save (every connected user's actor saves on each heartbeat): KEYS[1] the
# record; ARGV status, last_seen_at, alive_until, TTL in seconds. One key: Redis Cluster safe.
_SAVE = """
redis.call('HSET', KEYS[1], 'status', ARGV[1], 'last_seen_at', ARGV[2], 'alive_until', ARGV[3])
redis.call('HINCRBY', KEYS[1], 'v', 1)
redis.call('HDEL', KEYS[1], '""" + "', '".join(_LEGACY_FIELDS) + """')
redis.call('EXPIRE', KEYS[1], ARGV[4])
return 1
"""
# The same write, only if the record is still the snapshot's: ARGV[5] its `v`, ARGV[6] its
# alive_until ("" for a missing field). Returns 0 without writing otherwise.
_SAVE_IF = """
local seen = redis.call('HMGET', KEYS[1], 'v', 'alive_until')
if (seen[1] or '') ~= ARGV[5] or (seen[2] or '') ~= ARGV[6] then return 0 end
""" + _SAVE
_STAMP_SEPARATOR = "|"  # in a snapshot's stamp: "<v>|<alive_until>", both as stored
_STATUSES: dict[bytes | None, PresenceStatus] = {
    s.encode(): s for s in get_args(PresenceStatus)
}


def _number(value: float | None) -> str:
    return "" if value is None else repr(value)


def _text(value: bytes | None) -> str:
    return "" if value is None else value.decode()


def parse_snapshot(values: list[bytes | None]) -> PresenceSnapshot:
    """A snapshot from the SNAPSHOT_FIELDS of a record, as HMGET answers them."""
    *fields, version = values
    return PresenceSnapshot(record=_parse(fields),
                            stamp=_text(version) + _STAMP_SEPARATOR + _text(fields[2]))


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
        self._save_if = client.register_script(_SAVE_IF)

    def key(self, user_id: str) -> str:
        """The user's record, for a script that reads it with other keys (SNAPSHOT_FIELDS)."""
        return self._prefix + user_id

    def _args(self, record: PresenceRecord) -> list[str | int]:
        ttl = math.ceil(max(0.0, record.alive_until - self._clock()) + self._retention)
        return [record.status, _number(record.last_seen_at), _number(record.alive_until or None),
                ttl]

    async def save(self, user_id: str, record: PresenceRecord) -> None:
        try:
            await self._save(keys=[self.key(user_id)], args=self._args(record))
        except RedisError as exc:
            raise StorageError(f"presence of {user_id} not saved: {exc}") from exc

    async def save_if(self, user_id: str, record: PresenceRecord, stamp: str) -> bool:
        """Save, unless a save came after the snapshot `stamp` was taken: then False, and
        nothing is written."""
        version, _, alive_until = stamp.partition(_STAMP_SEPARATOR)
        try:
            saved = await self._save_if(keys=[self.key(user_id)],
                                        args=[*self._args(record), version, alive_until])
        except RedisError as exc:
            raise StorageError(f"presence of {user_id} not saved: {exc}") from exc
        return bool(saved)

    async def load(self, user_id: str) -> PresenceRecord | None:
        try:
            values = await self._client.hmget(self.key(user_id), _FIELDS)
        except RedisError as exc:
            raise StorageError(f"presence of {user_id} not read: {exc}") from exc
        return _parse(values)

    async def get_many(self, user_ids: list[str]) -> dict[str, PresenceRecord]:
        if not user_ids:
            return {}
        try:
            async with self._client.pipeline(transaction=False) as pipe:
                for user_id in user_ids:
                    pipe.hmget(self.key(user_id), _FIELDS)
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
