"""Postgres adapter of server.posts.ports.PostIndex: post search, replies, a user's posts and
a user's stats. Lists return ids; server.posts.reader hydrates them.

The search statement is assembled from fixed fragments, one per filter present, so each
combination gets its own prepared statement and plan (a generic `$n IS NULL OR ...` plan
cannot use the full-text index). No caller text ever enters the SQL; values are parameters.
"""

from __future__ import annotations

import asyncpg

from protocols.post_records import PostFilter
from protocols.posts import UserStats
from storage.postgres.post_sql import hidden, muted

_REPLIES = f"""
SELECT p.id FROM posts p
WHERE p.reply_to_id = $1 AND p.deleted_at IS NULL AND ($4::uuid IS NULL OR p.id > $4)
  AND NOT {hidden("$2::uuid", "p.author_id")} AND NOT {muted("$2::uuid", "p.author_id")}
ORDER BY p.id
LIMIT $3
"""
_BY_USER = f"""
SELECT p.id FROM posts p
WHERE p.author_id = $1 AND p.deleted_at IS NULL AND ($4::uuid IS NULL OR p.id < $4)
  AND (p.repost_of_id IS NULL OR EXISTS (
        SELECT 1 FROM posts o
        WHERE o.id = p.repost_of_id AND o.deleted_at IS NULL
          AND NOT {hidden("$2::uuid", "o.author_id")}))
ORDER BY p.id DESC
LIMIT $3
"""
_STATS = """
SELECT u.id AS user_id, u.follower_count AS followers, u.following_count AS following,
       s.posts, s.reposts, s.likes_received, s.comments_received, s.reposts_received,
       (SELECT count(*) FROM likes l JOIN posts lp ON lp.id = l.post_id
        WHERE l.user_id = u.id AND lp.deleted_at IS NULL) AS likes_given
FROM users u
CROSS JOIN LATERAL (
    SELECT count(*) FILTER (WHERE p.repost_of_id IS NULL) AS posts,
           count(*) FILTER (WHERE p.repost_of_id IS NOT NULL) AS reposts,
           coalesce(sum(p.like_count), 0) AS likes_received,
           coalesce(sum(p.comment_count), 0) AS comments_received,
           coalesce(sum(p.repost_count), 0) AS reposts_received
    FROM posts p WHERE p.author_id = u.id AND p.deleted_at IS NULL
) s
WHERE u.id = $1
"""


def _search_sql(where: PostFilter, before: bool) -> tuple[str, list[str]]:
    """The statement for this combination of filters, and which filters it binds (in order,
    from $3: $1 is the viewer, $2 the limit)."""
    clauses = ["p.deleted_at IS NULL", "p.repost_of_id IS NULL",
               f"NOT {hidden('$1::uuid', 'p.author_id')}"]
    binds: list[str] = []

    def bind(name: str, clause: str) -> None:
        binds.append(name)
        clauses.append(clause.replace("?", f"${len(binds) + 2}"))

    if where.author_id is not None:
        bind("author_id", "p.author_id = ?::uuid")
    else:
        # A muted author's posts only appear when asked for by name.
        clauses.append(f"NOT {muted('$1::uuid', 'p.author_id')}")
    if where.since is not None:
        bind("since", "p.created_at >= ?::timestamptz")
    if where.until is not None:
        bind("until", "p.created_at < ?::timestamptz")
    if where.has_media is not None:
        bind("has_media", "p.has_media = ?::boolean")
    if where.q is not None:
        bind("q", "p.search @@ websearch_to_tsquery('simple', ?::text)")
    if before:
        bind("before", "p.id < ?::uuid")
    sql = f"SELECT p.id FROM posts p WHERE {' AND '.join(clauses)} ORDER BY p.id DESC LIMIT $2"
    return sql, binds


class PostgresPostIndex:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def search(self, viewer_id: str, where: PostFilter, *, limit: int,
                     before: str | None) -> list[str]:
        sql, binds = _search_sql(where, before is not None)
        values = {"before": before, **{name: getattr(where, name)
                                       for name in PostFilter.__struct_fields__}}
        args = (viewer_id, limit, *(values[n] for n in binds))
        if where.q is None:
            rows = await self._pool.fetch(sql, *args)
        else:
            async with self._pool.acquire() as conn, conn.transaction():
                # How selective a text query is decides the plan (walk the id index for a
                # common word, the full-text index for a rare one); a cached generic plan
                # would pick one for every query, and a rare word would then scan every post.
                await conn.execute("SET LOCAL plan_cache_mode = force_custom_plan")
                rows = await conn.fetch(sql, *args)
        return [row["id"] for row in rows]

    async def replies(self, post_id: str, viewer_id: str, *, limit: int,
                      after: str | None) -> list[str]:
        rows = await self._pool.fetch(_REPLIES, post_id, viewer_id, limit, after)
        return [row["id"] for row in rows]

    async def by_user(self, user_id: str, viewer_id: str, *, limit: int,
                      before: str | None) -> list[str]:
        rows = await self._pool.fetch(_BY_USER, user_id, viewer_id, limit, before)
        return [row["id"] for row in rows]

    async def user_stats(self, user_id: str) -> UserStats | None:
        row = await self._pool.fetchrow(_STATS, user_id)
        return UserStats(**dict(row)) if row is not None else None
