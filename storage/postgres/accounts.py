"""Postgres AccountStore (server.auth.ports): the `users` table's credentials side.

Creating an account appends a user.created event to the outbox in the same transaction.
"""

from __future__ import annotations

import asyncpg

from protocols.auth import Credentials
from protocols.events import UserCreated, envelope
from protocols.users import Me
from storage.errors import DuplicateError
from storage.postgres.outbox import append_events
from storage.postgres.user_rows import USER_COLUMNS, me_from_row


class PostgresAccountStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def create(self, *, user_id: str, username: str, email: str, password_hash: str,
                     display_name: str) -> Me:
        try:
            async with self._pool.acquire() as conn, conn.transaction():
                row = await conn.fetchrow(
                    "INSERT INTO users (id, username, email, password_hash, display_name)"
                    f" VALUES ($1, $2, $3, $4, $5) RETURNING {USER_COLUMNS}",
                    user_id, username, email, password_hash, display_name,
                )
                assert row is not None
                me = me_from_row(row)
                await append_events(conn, envelope(
                    UserCreated(user_id=me.id, username=me.username),
                    actor_id=me.id, occurred_at=me.created_at))
        except asyncpg.UniqueViolationError as exc:
            # The unique indexes on lower(username) / lower(email) name the taken field.
            raise DuplicateError(exc.constraint_name or "users") from None
        return me

    async def find_credentials(self, identifier: str) -> Credentials | None:
        # Usernames cannot contain "@"; one branch per unique index keeps the lookup indexed.
        column = "email" if "@" in identifier else "username"
        row = await self._pool.fetchrow(
            f"SELECT {USER_COLUMNS}, password_hash FROM users"
            f" WHERE lower({column}) = lower($1)",
            identifier,
        )
        if row is None:
            return None
        return Credentials(user=me_from_row(row), password_hash=row["password_hash"])

    async def get_me(self, user_id: str) -> Me | None:
        row = await self._pool.fetchrow(f"SELECT {USER_COLUMNS} FROM users WHERE id = $1",
                                        user_id)
        return me_from_row(row) if row is not None else None

    async def set_password_hash(self, user_id: str, password_hash: str) -> None:
        await self._pool.execute(
            "UPDATE users SET password_hash = $2, updated_at = now() WHERE id = $1",
            user_id, password_hash,
        )
