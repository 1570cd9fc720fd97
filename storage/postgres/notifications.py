"""Postgres adapter of server.notifications.ports.NotificationStore."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import asyncpg
import msgspec

from protocols.notifications import Notification, NotificationDraft
from protocols.users import UserSummary
from storage.postgres.processed import claim_event

# Insert what passes the rules; the once-only index (0006) turns duplicates into no-ops.
_INSERT = """
INSERT INTO notifications (id, user_id, kind, actor_id, post_id, comment_id, data)
SELECT d.id, d.user_id, d.kind, d.actor_id, d.post_id, d.comment_id, d.data::jsonb
FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::uuid[], $5::uuid[], $6::uuid[],
            $7::text[]) AS d(id, user_id, kind, actor_id, post_id, comment_id, data)
WHERE d.user_id IS DISTINCT FROM d.actor_id
  AND EXISTS (SELECT 1 FROM users u WHERE u.id = d.user_id)
  AND (d.actor_id IS NULL OR EXISTS (SELECT 1 FROM users u WHERE u.id = d.actor_id))
  AND (d.post_id IS NULL OR EXISTS (SELECT 1 FROM posts p WHERE p.id = d.post_id))
  AND (d.comment_id IS NULL OR EXISTS (SELECT 1 FROM comments c WHERE c.id = d.comment_id))
  AND NOT EXISTS (SELECT 1 FROM blocks b
                  WHERE (b.blocker_id = d.user_id AND b.blocked_id = d.actor_id)
                     OR (b.blocker_id = d.actor_id AND b.blocked_id = d.user_id))
  AND NOT EXISTS (SELECT 1 FROM mutes m WHERE m.muter_id = d.user_id AND m.muted_id = d.actor_id)
ON CONFLICT DO NOTHING
RETURNING id
"""

_COLUMNS = """n.id, n.user_id, n.kind, n.post_id, n.comment_id, n.data, n.created_at,
       n.read_at IS NOT NULL AS read, a.id AS actor_id, a.username AS actor_username,
       a.display_name AS actor_display_name"""

_BY_IDS = f"""
SELECT {_COLUMNS}
FROM notifications n LEFT JOIN users a ON a.id = n.actor_id
WHERE n.id = ANY($1::uuid[])
ORDER BY n.id
"""

# A notification stays listed while its actor is not blocked (either way) or muted by the
# recipient and its post is not deleted. n is the notification; $1 the recipient.
_VISIBLE = """
NOT EXISTS (SELECT 1 FROM blocks b
            WHERE (b.blocker_id = $1 AND b.blocked_id = n.actor_id)
               OR (b.blocker_id = n.actor_id AND b.blocked_id = $1))
AND NOT EXISTS (SELECT 1 FROM mutes m WHERE m.muter_id = $1 AND m.muted_id = n.actor_id)
AND NOT EXISTS (SELECT 1 FROM posts p WHERE p.id = n.post_id AND p.deleted_at IS NOT NULL)
"""


def _page_sql(resume: bool) -> str:
    # $2: limit + 1 (one more tells whether a next page exists), $3: limit, $4: before id.
    # The UPDATE in the WITH sees the same snapshot as the SELECT, so `read` is the state
    # before this statement; only the `limit` returned rows are marked, not the extra one.
    older = "AND n.id < $4::uuid" if resume else ""
    return f"""
WITH page AS (
    SELECT n.id FROM notifications n
    WHERE n.user_id = $1 {older} AND {_VISIBLE}
    ORDER BY n.id DESC LIMIT $2
), marked AS (
    UPDATE notifications SET read_at = now()
    WHERE id IN (SELECT id FROM page ORDER BY id DESC LIMIT $3) AND read_at IS NULL
)
SELECT {_COLUMNS}
FROM page JOIN notifications n ON n.id = page.id LEFT JOIN users a ON a.id = n.actor_id
ORDER BY n.id DESC
"""


_PAGES = {resume: _page_sql(resume) for resume in (False, True)}
_UNREAD = f"""
SELECT count(*) FROM notifications n
WHERE n.user_id = $1 AND n.read_at IS NULL AND {_VISIBLE}
"""
_MARK = """
WITH marked AS (
    UPDATE notifications SET read_at = now()
    WHERE user_id = $1 AND id <= $2::uuid AND read_at IS NULL
    RETURNING 1
)
SELECT count(*) FROM marked
"""


def _notification(row: Mapping[str, Any]) -> Notification:
    actor = None
    if row["actor_id"] is not None:
        actor = UserSummary(id=row["actor_id"], username=row["actor_username"],
                            display_name=row["actor_display_name"])
    return Notification(id=row["id"], kind=row["kind"], actor=actor, post_id=row["post_id"],
                        comment_id=row["comment_id"], data=row["data"],
                        created_at=row["created_at"], read=row["read"])


class PostgresNotificationStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def create(self, consumer: str, event_id: str,
                     drafts: Sequence[NotificationDraft]) -> list[tuple[str, Notification]]:
        async with self._pool.acquire() as conn, conn.transaction():
            if not await claim_event(conn, consumer, event_id):
                return []
            if not drafts:
                return []
            inserted = await conn.fetch(
                _INSERT, [d.id for d in drafts], [d.user_id for d in drafts],
                [d.kind for d in drafts], [d.actor_id for d in drafts],
                [d.post_id for d in drafts], [d.comment_id for d in drafts],
                [msgspec.json.encode(d.data).decode() for d in drafts])
            if not inserted:
                return []
            rows = await conn.fetch(_BY_IDS, [r["id"] for r in inserted])
        return [(row["user_id"], _notification(row)) for row in rows]

    async def page(self, user_id: str, before_id: str | None,
                   limit: int) -> tuple[list[Notification], bool]:
        args: tuple[object, ...] = (user_id, limit + 1, limit)
        if before_id is not None:
            args += (before_id,)
        rows = await self._pool.fetch(_PAGES[before_id is not None], *args)
        return [_notification(row) for row in rows[:limit]], len(rows) > limit

    async def unread_count(self, user_id: str) -> int:
        return await self._pool.fetchval(_UNREAD, user_id)

    async def mark_read(self, user_id: str, up_to_id: str) -> tuple[int, int]:
        async with self._pool.acquire() as conn:
            marked = await conn.fetchval(_MARK, user_id, up_to_id)
            unread = await conn.fetchval(_UNREAD, user_id)
        return marked, unread
