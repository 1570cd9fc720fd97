"""Postgres adapter of the feed's reads (server.feed.ports.FeedSource and FollowerSource).

Home-feed lists merge many authors' posts newest first. Each author's newest posts come from
the `posts_author_idx` (author_id, id DESC) index through a LATERAL subquery with its own
LIMIT, so a list reads at most `limit` index entries per author however many posts they
have, instead of every post of every followed author.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Literal

import asyncpg

Authors = Literal["seed", "pulled", "home"]

# Which authors each list merges. $1: the user. `own` lets the user's replies through.
_AUTHORS: dict[Authors, str] = {
    # the user, and followed authors below the push threshold ($3): what fan-out pushes
    "seed": """SELECT $1::uuid AS id, true AS own
               UNION ALL
               SELECT f.followee_id, false FROM follows f JOIN users u ON u.id = f.followee_id
               WHERE f.follower_id = $1 AND u.follower_count < $3""",
    # followed authors at or above the push threshold ($3): never pushed
    "pulled": """SELECT f.followee_id AS id, false AS own
                 FROM follows f JOIN users u ON u.id = f.followee_id
                 WHERE f.follower_id = $1 AND u.follower_count >= $3""",
    # the user and everyone they follow
    "home": """SELECT $1::uuid AS id, true AS own
               UNION ALL
               SELECT followee_id, false FROM follows WHERE follower_id = $1""",
}


def _list_sql(authors: Authors, resume: bool) -> str:
    # $2: limit; the before-id is the last parameter.
    before = ("$4" if authors != "home" else "$3") if resume else None
    older = f"AND p.id < {before}::uuid" if before else ""
    return f"""
WITH authors AS ({_AUTHORS[authors]})
SELECT x.id FROM authors a CROSS JOIN LATERAL (
    SELECT p.id FROM posts p
    WHERE p.author_id = a.id AND p.deleted_at IS NULL AND (a.own OR p.reply_to_id IS NULL)
      {older}
    ORDER BY p.id DESC LIMIT $2
) x
ORDER BY x.id DESC LIMIT $2
"""


_LISTS = {(a, r): _list_sql(a, r) for a in _AUTHORS for r in (False, True)}

_RELATIONS = """
SELECT a.id,
       EXISTS (SELECT 1 FROM follows f WHERE f.follower_id = $1 AND f.followee_id = a.id)
           AS following,
       EXISTS (SELECT 1 FROM blocks b
               WHERE (b.blocker_id = $1 AND b.blocked_id = a.id)
                  OR (b.blocker_id = a.id AND b.blocked_id = $1))
       OR EXISTS (SELECT 1 FROM mutes m WHERE m.muter_id = $1 AND m.muted_id = a.id)
           AS hidden
FROM unnest($2::uuid[]) AS a(id)
"""

# Engagement in the window: each like weighs 1, comment 2, repost 3, quote 3, halved every
# $3 seconds of age. $1: the window's start, $2: the smallest UUIDv7 id of that instant.
# Arithmetic in float8: extract() yields numeric, whose power() is ~50x slower.
_POPULAR = """
WITH events AS (
    SELECT post_id, created_at, 1::float8 AS weight FROM likes WHERE created_at >= $1
    UNION ALL
    SELECT post_id, created_at, 2 FROM comments WHERE id >= $2 AND deleted_at IS NULL
    UNION ALL
    SELECT repost_of_id, created_at, 3 FROM posts
    WHERE id >= $2 AND repost_of_id IS NOT NULL AND deleted_at IS NULL
    UNION ALL
    SELECT quote_of_id, created_at, 3 FROM posts
    WHERE id >= $2 AND quote_of_id IS NOT NULL AND deleted_at IS NULL
), scored AS (
    SELECT post_id,
           sum(weight * power(0.5::float8,
                              extract(epoch FROM now() - created_at)::float8 / $3::float8))
               AS score
    FROM events GROUP BY post_id
)
SELECT s.post_id FROM scored s JOIN posts p ON p.id = s.post_id
WHERE p.deleted_at IS NULL AND p.repost_of_id IS NULL AND p.reply_to_id IS NULL
ORDER BY s.score DESC, s.post_id DESC
LIMIT $4
"""
POPULAR_HALF_LIFE = timedelta(hours=12)

_FOLLOWERS_FIRST = """
SELECT follower_id, created_at FROM follows WHERE followee_id = $1
ORDER BY created_at DESC, follower_id DESC LIMIT $2
"""
# Keyset on the follows_followee_page_idx order: each batch is an index range scan.
_FOLLOWERS_NEXT = """
SELECT follower_id, created_at FROM follows
WHERE followee_id = $1 AND (created_at, follower_id) < ($3, $4::uuid)
ORDER BY created_at DESC, follower_id DESC LIMIT $2
"""

_RECENT = """
SELECT id FROM posts
WHERE author_id = $1 AND deleted_at IS NULL AND reply_to_id IS NULL
ORDER BY id DESC LIMIT $2
"""


def id_floor(at: datetime) -> str:
    """The smallest UUIDv7 of the millisecond `at`: `id >= id_floor(t)` is "made at or
    after t" for time-ordered ids, answered from the primary-key index."""
    ms = int(at.timestamp() * 1000)
    return str(uuid.UUID(int=(ms << 80) | (0x7 << 76) | (0b10 << 62)))


class PostgresFeedStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def _list(self, authors: Authors, args: tuple[object, ...],
                    before_id: str | None) -> list[str]:
        if before_id is not None:
            args += (before_id,)
        rows = await self._pool.fetch(_LISTS[authors, before_id is not None], *args)
        return [row["id"] for row in rows]

    # FeedSource

    async def timeline_seed(self, user_id: str, limit: int, push_threshold: int) -> list[str]:
        return await self._list("seed", (user_id, limit, push_threshold), None)

    async def pulled(self, user_id: str, before_id: str | None, limit: int,
                     push_threshold: int) -> list[str]:
        return await self._list("pulled", (user_id, limit, push_threshold), before_id)

    async def home(self, user_id: str, before_id: str | None, limit: int) -> list[str]:
        return await self._list("home", (user_id, limit), before_id)

    async def relations(self, viewer_id: str,
                        author_ids: Sequence[str]) -> tuple[frozenset[str], frozenset[str]]:
        if not author_ids:
            return frozenset(), frozenset()
        rows = await self._pool.fetch(_RELATIONS, viewer_id, list(set(author_ids)))
        return (frozenset(r["id"] for r in rows if r["following"]),
                frozenset(r["id"] for r in rows if r["hidden"]))

    async def popular(self, window_hours: int, limit: int) -> list[str]:
        since = datetime.now(UTC) - timedelta(hours=window_hours)
        rows = await self._pool.fetch(_POPULAR, since, id_floor(since),
                                      POPULAR_HALF_LIFE.total_seconds(), limit)
        return [row["post_id"] for row in rows]

    # FollowerSource

    async def follower_count(self, user_id: str) -> int | None:
        return await self._pool.fetchval(
            "SELECT follower_count FROM users WHERE id = $1", user_id)

    async def followers(self, user_id: str, batch: int) -> AsyncIterator[list[str]]:
        rows = await self._pool.fetch(_FOLLOWERS_FIRST, user_id, batch)
        while rows:
            yield [row["follower_id"] for row in rows]
            if len(rows) < batch:
                return
            last = rows[-1]
            rows = await self._pool.fetch(_FOLLOWERS_NEXT, user_id, batch,
                                          last["created_at"], last["follower_id"])

    async def recent_posts(self, author_id: str, limit: int) -> list[str]:
        rows = await self._pool.fetch(_RECENT, author_id, limit)
        return [row["id"] for row in rows]
