"""Postgres adapter of server.posts.ports.PostStore (and ViewSink): create, delete, repost,
metrics and view counts.

Every change and its domain event commit together (storage.postgres.outbox). Locking follows
storage.postgres.post_sql: existing post rows first, in id order.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime

import asyncpg

from protocols.events import EventData, PostCreated, PostDeleted, PostReposted, envelope
from protocols.ids import new_id
from protocols.post_records import CreateOutcome, CreateResult, PostDraft, PostRef, RepostResult
from protocols.posts import PostMetrics
from storage.postgres.outbox import append_events
from storage.postgres.post_sql import hidden, lock_live_posts, resolve_mentions

# Attach uploads to a new post inside its transaction: (conn, owner_id, media_ids, post_id).
# Raises to refuse (the whole post is rolled back).
ClaimMedia = Callable[[asyncpg.Connection, str, list[str], str], Awaitable[object]]

DAY_SECONDS = 24 * 3600

_REF = f"""
SELECT p.id, p.author_id, p.repost_of_id, p.deleted_at IS NOT NULL AS deleted,
       {hidden("$2::uuid", "p.author_id")} AS hidden
FROM posts p WHERE p.id = $1
"""
# hashtextextended spreads authors over the 64-bit advisory key space; a collision only makes
# two authors wait for each other.
_AUTHOR_LOCK = "SELECT pg_advisory_xact_lock(hashtextextended('hubbub.posts.create:' || $1, 0))"
# The limit-th newest non-repost post of the last 24 h: when there is one, the allowance is
# spent until it leaves the window.
_DAY_SECONDS = 24 * 3600.0
_DAILY_LIMIT = """
SELECT extract(epoch FROM created_at + interval '24 hours' - now())::float8 AS retry_after
FROM posts
WHERE author_id = $1 AND repost_of_id IS NULL AND created_at > now() - interval '24 hours'
ORDER BY created_at DESC
OFFSET $2 - 1 LIMIT 1
"""
_INSERT_POST = """
INSERT INTO posts (id, author_id, text, reply_to_id, quote_of_id, has_media)
VALUES ($1, $2, $3, $4, $5, $6)
RETURNING created_at
"""
_BUMP = {
    column: f"UPDATE posts SET {column} = {column} + $2 WHERE id = $1"
    for column in ("reply_count", "quote_count", "repost_count")
}
_INSERT_REPOST = """
INSERT INTO posts (id, author_id, repost_of_id) VALUES ($1, $2, $3)
ON CONFLICT (author_id, repost_of_id) WHERE repost_of_id IS NOT NULL AND deleted_at IS NULL
DO NOTHING
RETURNING created_at
"""
_LIVE_REPOST = """
SELECT id FROM posts WHERE author_id = $1 AND repost_of_id = $2 AND deleted_at IS NULL
"""
_METRICS = """
SELECT id AS post_id, like_count AS likes, comment_count AS comments, repost_count AS reposts,
       quote_count AS quotes, reply_count AS replies, view_count AS views
FROM posts WHERE id = $1
"""
_ADD_VIEWS = "UPDATE posts SET view_count = view_count + $2 WHERE id = $1"


class _Refused(Exception):
    """Raised inside a transaction to roll it back and answer `outcome`."""

    def __init__(self, outcome: CreateOutcome, retry_after: float = 0.0) -> None:
        super().__init__(outcome)
        self.result = CreateResult(outcome=outcome, retry_after=retry_after)


class PostgresPostStore:
    def __init__(self, pool: asyncpg.Pool, claim_media: ClaimMedia | None = None) -> None:
        self._pool = pool
        self._claim_media = claim_media

    async def ref(self, post_id: str, viewer_id: str | None, *,
                  tx: asyncpg.Connection | None = None) -> PostRef | None:
        row = await (tx or self._pool).fetchrow(_REF, post_id, viewer_id)
        return PostRef(**dict(row)) if row is not None else None

    async def create(self, draft: PostDraft, *, daily_limit: int,
                     tx: asyncpg.Connection | None = None) -> CreateResult:
        try:
            if tx is not None:  # a savepoint in the caller's transaction
                async with tx.transaction():
                    await self._create(tx, draft, daily_limit)
            else:
                async with self._pool.acquire() as conn, conn.transaction():
                    await self._create(conn, draft, daily_limit)
        except _Refused as refused:
            return refused.result
        return CreateResult(outcome="created")

    async def _create(self, conn: asyncpg.Connection, draft: PostDraft,
                      daily_limit: int) -> None:
        author = draft.author_id
        await conn.execute(_AUTHOR_LOCK, author)
        retry_after = await conn.fetchval(_DAILY_LIMIT, author, daily_limit)
        if retry_after is not None:
            # A post of a transaction that began after this one can be stamped after our
            # now(): never more than the window itself.
            raise _Refused("daily_limit", min(max(retry_after, 1.0), _DAY_SECONDS))
        targets = [t for t in (draft.reply_to_id, draft.quote_of_id) if t is not None]
        live = await lock_live_posts(conn, targets, author) if targets else {}
        if draft.reply_to_id is not None and draft.reply_to_id not in live:
            raise _Refused("reply_not_found")
        if draft.quote_of_id is not None and draft.quote_of_id not in live:
            raise _Refused("quote_not_found")
        created_at = await conn.fetchval(
            _INSERT_POST, draft.post_id, author, draft.text, draft.reply_to_id,
            draft.quote_of_id, bool(draft.media_ids))
        if draft.media_ids:
            if self._claim_media is None:
                raise RuntimeError("posts with media need a media claimer")
            await self._claim_media(conn, author, list(draft.media_ids), draft.post_id)
        if draft.reply_to_id is not None:
            await conn.execute(_BUMP["reply_count"], draft.reply_to_id, 1)
        if draft.quote_of_id is not None:
            await conn.execute(_BUMP["quote_count"], draft.quote_of_id, 1)
        mentioned = await resolve_mentions(conn, author, draft.mention_names)
        await _emit(conn, PostCreated(
            post_id=draft.post_id, author_id=author, created_at=created_at,
            reply_to_id=draft.reply_to_id,
            reply_to_author_id=live.get(draft.reply_to_id) if draft.reply_to_id else None,
            quote_of_id=draft.quote_of_id,
            quote_of_author_id=live.get(draft.quote_of_id) if draft.quote_of_id else None,
            mentioned_user_ids=mentioned, has_media=bool(draft.media_ids),
        ), actor_id=author, at=created_at)

    async def delete(self, post_id: str, deleted_by: str) -> bool:
        async with self._pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                "SELECT author_id, reply_to_id, quote_of_id, repost_of_id FROM posts"
                " WHERE id = $1 AND deleted_at IS NULL", post_id)
            if row is None:
                return False
            parents = {"reply_count": row["reply_to_id"], "quote_count": row["quote_of_id"],
                       "repost_count": row["repost_of_id"]}
            # Lock the post and the posts whose counters it feeds, oldest first.
            await conn.execute(
                "SELECT 1 FROM posts WHERE id = ANY($1::uuid[]) ORDER BY id FOR NO KEY UPDATE",
                [post_id, *(p for p in parents.values() if p is not None)])
            deleted_at = await conn.fetchval(
                "UPDATE posts SET deleted_at = now() WHERE id = $1 AND deleted_at IS NULL"
                " RETURNING deleted_at", post_id)
            if deleted_at is None:
                return False  # deleted meanwhile by someone else
            for column, parent in parents.items():
                if parent is not None:
                    await conn.execute(_BUMP[column], parent, -1)
            await _emit(conn, PostDeleted(post_id=post_id, author_id=row["author_id"],
                                          deleted_by=deleted_by),
                        actor_id=deleted_by, at=deleted_at)
            return True

    async def repost(self, original_id: str, user_id: str) -> RepostResult:
        async with self._pool.acquire() as conn, conn.transaction():
            live = await lock_live_posts(conn, [original_id], user_id)
            if original_id not in live:
                return RepostResult(outcome="not_found")
            repost_id = new_id()
            created_at = await conn.fetchval(_INSERT_REPOST, repost_id, user_id, original_id)
            if created_at is None:
                existing = await conn.fetchval(_LIVE_REPOST, user_id, original_id)
                return RepostResult(outcome="existing", repost_id=existing)
            await conn.execute(_BUMP["repost_count"], original_id, 1)
            await _emit(conn, PostReposted(
                post_id=original_id, original_author_id=live[original_id],
                repost_id=repost_id, user_id=user_id, created_at=created_at,
            ), actor_id=user_id, at=created_at)
            return RepostResult(outcome="created", repost_id=repost_id)

    async def unrepost(self, original_id: str, user_id: str) -> str | None:
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT 1 FROM posts WHERE id = $1 FOR NO KEY UPDATE",
                               original_id)
            row = await conn.fetchrow(
                "UPDATE posts SET deleted_at = now()"
                " WHERE author_id = $1 AND repost_of_id = $2 AND deleted_at IS NULL"
                " RETURNING id, deleted_at", user_id, original_id)
            if row is None:
                return None
            await conn.execute(_BUMP["repost_count"], original_id, -1)
            await _emit(conn, PostDeleted(post_id=row["id"], author_id=user_id,
                                          deleted_by=user_id),
                        actor_id=user_id, at=row["deleted_at"])
            return row["id"]

    async def metrics(self, post_id: str) -> PostMetrics | None:
        row = await self._pool.fetchrow(_METRICS, post_id)
        return PostMetrics(**dict(row)) if row is not None else None

    async def add_views(self, counts: Mapping[str, int]) -> None:
        # One statement per post, in id order, so two nodes flushing at once cannot deadlock.
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.executemany(_ADD_VIEWS, sorted(counts.items()))


async def _emit(conn: asyncpg.Connection, data: EventData, *, actor_id: str,
                at: datetime) -> None:
    await append_events(conn, envelope(data, actor_id=actor_id, occurred_at=at))
