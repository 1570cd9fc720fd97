"""Postgres adapter of server.posts.ports.PostRowSource: the rows behind post hydration.

One statement, whatever the number of ids: a recursive CTE collects the ids asked for plus
what they repost or quote, two levels deep (a repost's original, and what that original
quotes), then one join reads the posts, their authors and the viewer's relation to each.
"""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from protocols.post_records import PostRow
from storage.postgres.post_sql import hidden, muted

_ROWS = f"""
WITH RECURSIVE wanted (id, depth) AS (
    SELECT t.id, 0 FROM unnest($1::uuid[]) AS t (id)
  UNION
    SELECT ref.id, w.depth + 1
    FROM wanted w
    JOIN posts p ON p.id = w.id
    CROSS JOIN LATERAL (VALUES (p.repost_of_id), (p.quote_of_id)) AS ref (id)
    WHERE w.depth < 2 AND ref.id IS NOT NULL
)
SELECT p.id, p.author_id, u.username, u.display_name, p.text, p.created_at, p.reply_to_id,
       p.quote_of_id, p.repost_of_id, p.has_media, p.like_count, p.comment_count,
       p.repost_count, p.quote_count, p.reply_count, p.view_count,
       p.deleted_at IS NOT NULL AS deleted,
       {hidden("$2::uuid", "p.author_id")} AS hidden,
       {muted("$2::uuid", "p.author_id")} AS muted,
       EXISTS (SELECT 1 FROM likes l WHERE l.post_id = p.id AND l.user_id = $2::uuid)
           AS liked_by_me,
       EXISTS (SELECT 1 FROM posts r WHERE r.author_id = $2::uuid AND r.repost_of_id = p.id
                                       AND r.deleted_at IS NULL) AS reposted_by_me
FROM (SELECT DISTINCT id FROM wanted) w
JOIN posts p ON p.id = w.id
JOIN users u ON u.id = p.author_id
"""


class PostgresPostRows:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def rows(self, post_ids: Sequence[str], viewer_id: str | None,
                   tx: asyncpg.Connection | None = None) -> list[PostRow]:
        if not post_ids:
            return []
        records = await (tx or self._pool).fetch(_ROWS, list(post_ids), viewer_id)
        return [PostRow(**dict(record)) for record in records]
