"""Postgres RefreshTokenStore (server.auth.ports): hashed refresh tokens grouped in families.

Rotation and revocation of one user's tokens are serialized by a transaction-scoped advisory
lock on the user. Without it a rotation racing a logout or a password reset could commit a
successor that the revocation's UPDATE never saw, leaving a session alive after "sign out".
A sign-out everywhere also raises the user's access-token watermark in that transaction
(storage/postgres/token_watermarks.py), and `start_session` stores a new session under the
same lock only when no sign-out came after its credentials were checked: a login that read
the password hash just before a password reset cannot start a session that outlives it.
"""

from __future__ import annotations

from datetime import datetime

import asyncpg

from protocols.auth import Rotation
from protocols.ids import new_id
from storage.postgres.token_watermarks import raise_watermark, read_watermark

# First key of the two-key advisory lock form ("hbrt"); the second is a hash of the user id.
_LOCK_SPACE = 0x68627274
_LOCK_OWNER = "pg_advisory_xact_lock($2::int4, hashtext(user_id::text))"
_INSERT = (
    "INSERT INTO refresh_tokens (id, family_id, user_id, token_hash, expires_at)"
    " VALUES ($1, $2, $3, $4, $5)"
)


class PostgresRefreshTokenStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def issue(self, *, user_id: str, family_id: str, token_hash: bytes,
                    expires_at: datetime) -> None:
        await self._pool.execute(_INSERT, new_id(), family_id, user_id, token_hash, expires_at)

    async def start_session(self, *, user_id: str, family_id: str, token_hash: bytes,
                            expires_at: datetime, checked_at: datetime) -> int | None:
        async with self._pool.acquire() as conn, conn.transaction():
            await self._lock(conn, user_id)
            valid_after, signed_out_at = await read_watermark(conn, user_id)
            if signed_out_at is not None and signed_out_at > checked_at:
                return None
            await conn.execute(_INSERT, new_id(), family_id, user_id, token_hash, expires_at)
            return valid_after

    async def rotate(self, *, token_hash: bytes, new_hash: bytes, new_expires_at: datetime,
                     now: datetime) -> Rotation:
        async with self._pool.acquire() as conn, conn.transaction():
            found = await conn.fetchrow(
                f"SELECT {_LOCK_OWNER} FROM refresh_tokens WHERE token_hash = $1",
                token_hash, _LOCK_SPACE,
            )
            if found is None:
                return Rotation(outcome="invalid")
            # The row lock taken here also decides between concurrent rotations of one token:
            # the second waits, re-checks `used_at IS NULL` and matches nothing.
            spent = await conn.fetchrow(
                "UPDATE refresh_tokens SET used_at = $2"
                " WHERE token_hash = $1 AND used_at IS NULL AND revoked_at IS NULL"
                " AND expires_at > $2 RETURNING family_id, user_id",
                token_hash, now,
            )
            if spent is not None:
                await conn.execute(_INSERT, new_id(), spent["family_id"], spent["user_id"],
                                   new_hash, new_expires_at)
                return Rotation(outcome="rotated", user_id=spent["user_id"],
                                family_id=spent["family_id"])
            row = await conn.fetchrow(
                "SELECT family_id, user_id, used_at FROM refresh_tokens WHERE token_hash = $1",
                token_hash,
            )
            if row is not None and row["used_at"] is not None:
                return Rotation(outcome="reused", user_id=row["user_id"],
                                family_id=row["family_id"])
            return Rotation(outcome="invalid")

    async def revoke_family(self, family_id: str, *, now: datetime) -> None:
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(
                f"SELECT {_LOCK_OWNER} FROM refresh_tokens WHERE family_id = $1 LIMIT 1",
                family_id, _LOCK_SPACE,
            )
            await self._revoke(conn, "family_id", family_id, now)

    async def revoke_family_of(self, token_hash: bytes, *, now: datetime) -> bool:
        async with self._pool.acquire() as conn, conn.transaction():
            family_id = await conn.fetchval(
                f"SELECT family_id, {_LOCK_OWNER} FROM refresh_tokens WHERE token_hash = $1",
                token_hash, _LOCK_SPACE,
            )
            if family_id is None:
                return False
            await self._revoke(conn, "family_id", family_id, now)
            return True

    async def revoke_all_for_user(self, user_id: str, *, now: datetime) -> None:
        async with self._pool.acquire() as conn, conn.transaction():
            await self._lock(conn, user_id)
            await self._revoke(conn, "user_id", user_id, now)

    async def sign_out_everywhere(self, user_id: str, *, now: datetime, at_least: int) -> int:
        async with self._pool.acquire() as conn, conn.transaction():
            await self._lock(conn, user_id)
            await self._revoke(conn, "user_id", user_id, now)
            return await raise_watermark(conn, user_id, at_least, now)

    @staticmethod
    async def _lock(conn: asyncpg.Connection, user_id: str) -> None:
        await conn.execute("SELECT pg_advisory_xact_lock($2::int4, hashtext($1::text))",
                           user_id, _LOCK_SPACE)

    @staticmethod
    async def _revoke(conn: asyncpg.Connection, column: str, value: str,
                      now: datetime) -> None:
        await conn.execute(
            f"UPDATE refresh_tokens SET revoked_at = $2 WHERE {column} = $1"
            " AND revoked_at IS NULL",
            value, now,
        )
