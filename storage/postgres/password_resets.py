"""Postgres PasswordResetStore (server.auth.ports): one hashed reset code per user."""

from __future__ import annotations

import hmac
from datetime import datetime

import asyncpg


class PostgresPasswordResetStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def put(self, *, user_id: str, code_hash: bytes, expires_at: datetime) -> None:
        await self._pool.execute(
            "INSERT INTO password_resets (user_id, code_hash, expires_at) VALUES ($1, $2, $3)"
            " ON CONFLICT (user_id) DO UPDATE SET code_hash = EXCLUDED.code_hash,"
            " expires_at = EXCLUDED.expires_at, attempts = 0, created_at = now()",
            user_id, code_hash, expires_at,
        )

    async def consume(self, *, user_id: str, code_hash: bytes, now: datetime,
                      max_attempts: int) -> bool:
        async with self._pool.acquire() as conn, conn.transaction():
            # The row lock makes concurrent guesses count one by one.
            row = await conn.fetchrow(
                "SELECT code_hash, expires_at, attempts FROM password_resets"
                " WHERE user_id = $1 FOR UPDATE",
                user_id,
            )
            if row is None:
                return False
            if row["expires_at"] <= now or row["attempts"] >= max_attempts:
                await conn.execute("DELETE FROM password_resets WHERE user_id = $1", user_id)
                return False
            if hmac.compare_digest(bytes(row["code_hash"]), code_hash):
                await conn.execute("DELETE FROM password_resets WHERE user_id = $1", user_id)
                return True
            await conn.execute(
                "UPDATE password_resets SET attempts = attempts + 1 WHERE user_id = $1", user_id)
            return False
