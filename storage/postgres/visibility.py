"""Postgres adapter of server.gateway.ports.PresenceVisibility: whose presence a viewer may
see (users that exist and have no block with the viewer either way), in one query."""

from __future__ import annotations

import asyncpg

_VISIBLE = """
SELECT u.id::text
FROM users u
WHERE u.id = ANY($2::uuid[])
  AND NOT EXISTS (
    SELECT 1 FROM blocks b
    WHERE (b.blocker_id = $1 AND b.blocked_id = u.id)
       OR (b.blocker_id = u.id AND b.blocked_id = $1))
"""


class PostgresPresenceVisibility:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def visible_to(self, viewer_id: str, user_ids: list[str]) -> set[str]:
        if not user_ids:
            return set()
        rows = await self._pool.fetch(_VISIBLE, viewer_id, user_ids)
        return {row[0] for row in rows}
