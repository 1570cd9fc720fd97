"""Access-token watermarks in Postgres (the table of migration 0011): per user, tokens issued
(`iat`, unix seconds) before `valid_after` are revoked, and when they last signed out
everywhere.

PostgresTokenWatermarks is the TokenWatermarkStore (server.auth.ports). The writes happen in
the refresh-token store (storage/postgres/refresh_tokens.py), under its per-user lock, with
the helpers below: a sign-out everywhere revokes the refresh tokens and raises the watermark
in one transaction, and a new session is stored only when no sign-out came after its
credentials were checked. `recent` lists the watermarks that can still refuse a live token, for
the refresher that keeps them all in Redis (server/auth/watermark_refresher.py); the index of
migration 0016 serves it.
"""

from __future__ import annotations

from datetime import datetime

import asyncpg

from protocols.ids import is_id

# A raise is strictly above the previous watermark, so tokens issued (their `iat` lifted to
# the watermark they saw) between two sign-outs in the same second are caught by the second.
_RAISE = (
    "INSERT INTO token_watermarks (user_id, valid_after, signed_out_at) VALUES ($1, $2, $3)"
    " ON CONFLICT (user_id) DO UPDATE SET"
    " valid_after = GREATEST(token_watermarks.valid_after + 1, EXCLUDED.valid_after),"
    " signed_out_at = EXCLUDED.signed_out_at"
    " RETURNING valid_after"
)
_GET = "SELECT valid_after, signed_out_at FROM token_watermarks WHERE user_id = $1"
# user_id as text: the canonical lowercase form, the same string tokens carry as `sub`.
_RECENT = ("SELECT user_id::text AS user_id, valid_after FROM token_watermarks"
           " WHERE valid_after > $1 LIMIT $2")


async def read_watermark(conn: asyncpg.Connection | asyncpg.Pool,
                         user_id: str) -> tuple[int, datetime | None]:
    """(valid_after, signed_out_at); (0, None) for a user who never signed out everywhere."""
    row = await conn.fetchrow(_GET, user_id)
    return (0, None) if row is None else (int(row["valid_after"]), row["signed_out_at"])


async def raise_watermark(conn: asyncpg.Connection, user_id: str, at_least: int,
                          now: datetime) -> int:
    """Raise the user's watermark to at least `at_least` and strictly above its previous
    value, signed out at `now`; returns the new watermark. Call it holding the user's
    refresh-token lock."""
    return int(await conn.fetchval(_RAISE, user_id, at_least, now))


class PostgresTokenWatermarks:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def get(self, user_id: str) -> int:
        return (await self.state(user_id))[0]

    async def state(self, user_id: str) -> tuple[int, datetime | None]:
        if not is_id(user_id):  # no account can have it (and the uuid column would refuse it)
            return 0, None
        return await read_watermark(self._pool, user_id)

    async def recent(self, since: int, limit: int) -> list[tuple[str, int]]:
        """(user id, watermark) of at most `limit` users whose watermark is above `since`."""
        rows = await self._pool.fetch(_RECENT, since, limit)
        return [(row["user_id"], int(row["valid_after"])) for row in rows]
