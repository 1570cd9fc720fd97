"""Postgres adapter of server.posts.ports.LikeStore: exact like counts under concurrency.

A like or unlike locks the post row first (storage.postgres.post_sql lock order), then
inserts or deletes the like row with ON CONFLICT DO NOTHING / RETURNING, and moves like_count
and writes the event only when a row really changed, all in one transaction.
"""

from __future__ import annotations

from datetime import datetime

import asyncpg

from protocols.events import EventData, PostLiked, PostUnliked, envelope
from protocols.post_records import LikeResult
from protocols.users import UserSummary
from storage.postgres.outbox import append_events
from storage.postgres.post_sql import hidden, lock_live_posts
from storage.postgres.user_rows import summary_from_row

LikeKey = tuple[datetime, str]

_LIKE = """
INSERT INTO likes (post_id, user_id) VALUES ($1, $2) ON CONFLICT DO NOTHING RETURNING created_at
"""
_UNLIKE = "DELETE FROM likes WHERE post_id = $1 AND user_id = $2 RETURNING now()"
_COUNT = "UPDATE posts SET like_count = like_count + $2 WHERE id = $1 RETURNING like_count"


def _likers_sql(resume: bool) -> str:
    after = "AND (l.created_at, l.user_id) < ($4, $5::uuid)" if resume else ""
    return f"""
SELECT u.id, u.username, u.display_name, l.created_at AS page_at
FROM likes l JOIN users u ON u.id = l.user_id
WHERE l.post_id = $1 {after} AND NOT {hidden("$2::uuid", "l.user_id")}
ORDER BY l.created_at DESC, l.user_id DESC
LIMIT $3
"""


_LIKERS = {resume: _likers_sql(resume) for resume in (False, True)}


class PostgresLikeStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def like(self, post_id: str, user_id: str) -> LikeResult:
        return await self._change(post_id, user_id, _LIKE, +1, PostLiked)

    async def unlike(self, post_id: str, user_id: str) -> LikeResult:
        return await self._change(post_id, user_id, _UNLIKE, -1, PostUnliked)

    async def _change(self, post_id: str, user_id: str, statement: str, delta: int,
                      event: type[PostLiked] | type[PostUnliked]) -> LikeResult:
        async with self._pool.acquire() as conn, conn.transaction():
            live = await lock_live_posts(conn, [post_id], user_id)
            if post_id not in live:
                return LikeResult(outcome="not_found")
            changed_at = await conn.fetchval(statement, post_id, user_id)
            if changed_at is None:
                count = await conn.fetchval("SELECT like_count FROM posts WHERE id = $1",
                                            post_id)
                return LikeResult(outcome="unchanged", like_count=count)
            count = await conn.fetchval(_COUNT, post_id, delta)
            data: EventData = event(post_id=post_id, author_id=live[post_id], user_id=user_id)
            await append_events(conn, envelope(data, actor_id=user_id, occurred_at=changed_at))
            return LikeResult(outcome="changed", like_count=count)

    async def likers(self, post_id: str, viewer_id: str, *, limit: int,
                     after: LikeKey | None) -> tuple[list[UserSummary], LikeKey | None]:
        args: tuple[object, ...] = (post_id, viewer_id, limit + 1)
        if after is not None:
            args += after
        rows = await self._pool.fetch(_LIKERS[after is not None], *args)
        shown = rows[:limit]
        more = len(rows) > limit
        return ([summary_from_row(row) for row in shown],
                (shown[-1]["page_at"], shown[-1]["id"]) if more else None)
