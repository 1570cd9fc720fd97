"""Postgres adapter of server.posts.ports.CommentStore: comments on posts."""

from __future__ import annotations

import asyncpg

from protocols.events import CommentCreated, envelope
from protocols.post_records import CommentDraft
from protocols.posts import Comment
from protocols.users import UserSummary
from storage.postgres.outbox import append_events
from storage.postgres.post_sql import hidden, lock_live_posts, muted, resolve_mentions

_INSERT = """
WITH added AS (
    INSERT INTO comments (id, post_id, author_id, text) VALUES ($1, $2, $3, $4)
    RETURNING created_at
)
SELECT added.created_at, u.username, u.display_name FROM added, users u WHERE u.id = $3
"""


def _page_sql(resume: bool) -> str:
    after = "AND c.id > $4" if resume else ""
    return f"""
SELECT c.id, c.post_id, c.text, c.created_at, u.id AS author_id, u.username, u.display_name
FROM comments c JOIN users u ON u.id = c.author_id
WHERE c.post_id = $1 AND c.deleted_at IS NULL {after}
  AND NOT {hidden("$2::uuid", "c.author_id")} AND NOT {muted("$2::uuid", "c.author_id")}
ORDER BY c.id
LIMIT $3
"""


_PAGES = {resume: _page_sql(resume) for resume in (False, True)}


class PostgresCommentStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def add(self, draft: CommentDraft) -> Comment | None:
        async with self._pool.acquire() as conn, conn.transaction():
            live = await lock_live_posts(conn, [draft.post_id], draft.author_id)
            if draft.post_id not in live:
                return None
            row = await conn.fetchrow(_INSERT, draft.comment_id, draft.post_id,
                                      draft.author_id, draft.text)
            await conn.execute(
                "UPDATE posts SET comment_count = comment_count + 1 WHERE id = $1",
                draft.post_id)
            mentioned = await resolve_mentions(conn, draft.author_id, draft.mention_names)
            await append_events(conn, envelope(CommentCreated(
                comment_id=draft.comment_id, post_id=draft.post_id,
                post_author_id=live[draft.post_id], author_id=draft.author_id,
                mentioned_user_ids=mentioned,
            ), actor_id=draft.author_id, occurred_at=row["created_at"]))
            return Comment(
                id=draft.comment_id, post_id=draft.post_id, text=draft.text,
                author=UserSummary(id=draft.author_id, username=row["username"],
                                   display_name=row["display_name"]),
                created_at=row["created_at"])

    async def page(self, post_id: str, viewer_id: str, *, limit: int,
                   after: str | None) -> list[Comment]:
        args: tuple[object, ...] = (post_id, viewer_id, limit)
        if after is not None:
            args += (after,)
        rows = await self._pool.fetch(_PAGES[after is not None], *args)
        return [Comment(id=r["id"], post_id=r["post_id"], text=r["text"],
                        created_at=r["created_at"],
                        author=UserSummary(id=r["author_id"], username=r["username"],
                                           display_name=r["display_name"]))
                for r in rows]
