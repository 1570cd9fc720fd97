"""Idempotency keys: the first response of a keyed request, stored in the transaction of the
write it describes (used by server.http.idempotency).

A request claims its key by inserting a placeholder row inside its own transaction and fills
the response in just before commit. A concurrent duplicate's INSERT meets the uncommitted row
and waits (up to the lock timeout) for that transaction: after a commit it reads the stored
response; after a rollback its own insert goes through and it does the work itself.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import asyncpg

from storage.errors import StorageError

_FIND = """
SELECT status, request_hash, response FROM idempotency_keys
WHERE user_id = $1 AND scope = $2 AND key = $3 AND status <> 0
  AND created_at > now() - make_interval(secs => $4)
"""
_EXPIRE = """
DELETE FROM idempotency_keys
WHERE user_id = $1 AND scope = $2 AND key = $3 AND created_at <= now() - make_interval(secs => $4)
"""
# status 0 marks a claim whose response is not written yet (never visible once committed).
_CLAIM = """
INSERT INTO idempotency_keys (user_id, scope, key, request_hash, status, response)
VALUES ($1, $2, $3, $4, 0, 'null'::jsonb)
ON CONFLICT DO NOTHING
RETURNING true
"""
_FINISH = """
UPDATE idempotency_keys SET status = $4, response = $5
WHERE user_id = $1 AND scope = $2 AND key = $3
"""


class StoredResponse(NamedTuple):
    status: int
    request_hash: bytes
    response: Any  # JSON-ready builtins, as stored


class KeyInProgress(StorageError):
    """Another transaction holds the key and did not finish within the wait."""


class PostgresIdempotencyStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def find(self, user_id: str, scope: str, key: str, *,
                   ttl: float) -> StoredResponse | None:
        """The committed response stored under the key within the last `ttl` seconds."""
        row = await self._pool.fetchrow(_FIND, user_id, scope, key, float(ttl))
        return _stored(row)

    async def claim(self, conn: asyncpg.Connection, user_id: str, scope: str, key: str,
                    request_hash: bytes, *, ttl: float, wait: float) -> StoredResponse | None:
        """Inside the caller's transaction: claim the key. None means claimed (do the write
        on `conn`, then `finish` before commit). Otherwise the response a request that claimed
        it first committed; waits up to `wait` seconds for one still running, then raises
        KeyInProgress. A stored response older than `ttl` seconds is dropped first."""
        await conn.execute(f"SET LOCAL lock_timeout = '{max(1, int(wait * 1000))}ms'")
        try:
            await conn.execute(_EXPIRE, user_id, scope, key, float(ttl))
            claimed = await conn.fetchval(_CLAIM, user_id, scope, key, request_hash)
        except asyncpg.LockNotAvailableError as exc:
            raise KeyInProgress(f"idempotency key {key!r} is in use") from exc
        await conn.execute("SET LOCAL lock_timeout TO DEFAULT")
        if claimed:
            return None
        row = await conn.fetchrow(_FIND, user_id, scope, key, float(ttl))
        stored = _stored(row)
        if stored is None:  # cannot happen: a conflicting committed row is a finished one
            raise KeyInProgress(f"idempotency key {key!r} has no stored response")
        return stored

    async def finish(self, conn: asyncpg.Connection, user_id: str, scope: str, key: str,
                     status: int, response: Any) -> None:
        """Inside the claiming transaction: store the response (visible once it commits)."""
        await conn.execute(_FINISH, user_id, scope, key, status, response)


def _stored(row: asyncpg.Record | None) -> StoredResponse | None:
    if row is None:
        return None
    return StoredResponse(status=row["status"], request_hash=bytes(row["request_hash"]),
                          response=row["response"])
