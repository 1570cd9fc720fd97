"""Analytics counters in Postgres (migration 0014): upserts from the analytics consumer and
the view flush, and index-range reads. Never counts likes / comments / posts rows on read."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime

import asyncpg

from protocols.analytics_records import (
    ActivityRow,
    Effect,
    FollowerActive,
    FollowerChange,
    FollowerEngaged,
    HourRow,
    PostBump,
    PostGone,
    PostOwner,
    PostSeen,
    PostTotals,
    UserTotals,
)
from storage.postgres.processed import claim_event

# The totals row is made from the posts row itself (author, creation time), so a post whose
# post.created was never seen (older than analytics, say) still gets one on its first event;
# a post that is gone inserts nothing.
_ENSURE_TOTALS = """
INSERT INTO post_analytics_totals (post_id, author_id, created_at, deleted)
SELECT id, author_id, created_at, deleted_at IS NOT NULL FROM posts WHERE id = $1
ON CONFLICT (post_id) DO NOTHING
"""

_BUMP_HOUR = """
INSERT INTO post_analytics_hourly (post_id, hour, likes, unlikes, comments, reposts, quotes)
SELECT id, $2, $3, $4, $5, $6, $7 FROM posts WHERE id = $1
ON CONFLICT (post_id, hour) DO UPDATE SET
    likes = post_analytics_hourly.likes + excluded.likes,
    unlikes = post_analytics_hourly.unlikes + excluded.unlikes,
    comments = post_analytics_hourly.comments + excluded.comments,
    reposts = post_analytics_hourly.reposts + excluded.reposts,
    quotes = post_analytics_hourly.quotes + excluded.quotes
"""

_BUMP_TOTALS = """
UPDATE post_analytics_totals SET likes = likes + $2, unlikes = unlikes + $3,
    comments = comments + $4, reposts = reposts + $5, quotes = quotes + $6
WHERE post_id = $1
"""

_GONE = "UPDATE post_analytics_totals SET deleted = true WHERE post_id = $1"

# Counted for the author only when the actor follows them (a primary-key lookup).
_ENGAGED = """
INSERT INTO follower_activity_hourly (user_id, hour, engaged)
SELECT followee_id, $3, 1 FROM follows WHERE followee_id = $1 AND follower_id = $2
ON CONFLICT (user_id, hour) DO UPDATE SET
    engaged = follower_activity_hourly.engaged + 1
"""

# One row per user the actor follows (the follows primary key's prefix), in id order so two
# consumers upserting the same rows take their locks in the same order.
_ACTIVE = """
INSERT INTO follower_activity_hourly (user_id, hour, active)
SELECT followee_id, $2, 1 FROM follows WHERE follower_id = $1 ORDER BY followee_id
ON CONFLICT (user_id, hour) DO UPDATE SET
    active = follower_activity_hourly.active + 1
"""

_FOLLOWERS = """
INSERT INTO follower_changes_daily (user_id, day, gained, lost)
SELECT id, $2, $3, $4 FROM users WHERE id = $1
ON CONFLICT (user_id, day) DO UPDATE SET
    gained = follower_changes_daily.gained + excluded.gained,
    lost = follower_changes_daily.lost + excluded.lost
"""

_VIEW_HOUR = """
INSERT INTO post_analytics_hourly (post_id, hour, views)
SELECT p.id, coalesce($3, date_trunc('hour', now(), 'UTC')), v.n
FROM unnest($1::uuid[], $2::bigint[]) AS v (id, n) JOIN posts p ON p.id = v.id
ORDER BY p.id
ON CONFLICT (post_id, hour) DO UPDATE SET
    views = post_analytics_hourly.views + excluded.views
"""

_VIEW_TOTALS = """
INSERT INTO post_analytics_totals (post_id, author_id, created_at, deleted, views)
SELECT p.id, p.author_id, p.created_at, p.deleted_at IS NOT NULL, v.n
FROM unnest($1::uuid[], $2::bigint[]) AS v (id, n) JOIN posts p ON p.id = v.id
ORDER BY p.id
ON CONFLICT (post_id) DO UPDATE SET views = post_analytics_totals.views + excluded.views
"""

_OWNER = "SELECT author_id::text, created_at FROM posts WHERE id = $1 AND deleted_at IS NULL"

_HOURS = """
SELECT hour, views, likes, unlikes, comments, reposts, quotes FROM post_analytics_hourly
WHERE post_id = $1 AND hour >= $2 AND hour < $3 ORDER BY hour
"""

_ACTIVITY = """
SELECT hour, engaged, active FROM follower_activity_hourly
WHERE user_id = $1 AND hour >= $2 AND hour < $3 ORDER BY hour
"""

_USER_TOTALS = """
SELECT coalesce(sum(views), 0) AS views, coalesce(sum(likes), 0) AS likes,
       coalesce(sum(unlikes), 0) AS unlikes, coalesce(sum(comments), 0) AS comments,
       coalesce(sum(reposts), 0) AS reposts, coalesce(sum(quotes), 0) AS quotes,
       coalesce(sum(engagements), 0) AS engagements
FROM post_analytics_totals WHERE author_id = $1 AND NOT deleted
"""

_RANKED = """
SELECT post_id::text, created_at, views, likes, unlikes, comments, reposts, quotes, engagements
FROM post_analytics_totals WHERE author_id = $1 AND NOT deleted
ORDER BY engagements {order}, created_at {order} LIMIT $2
"""

_FOLLOWER_CHANGES = """
SELECT coalesce(sum(gained), 0) AS gained, coalesce(sum(lost), 0) AS lost
FROM follower_changes_daily WHERE user_id = $1 AND day >= $2
"""


class PostgresAnalyticsStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def apply(self, consumer: str, event_id: str, effects: Sequence[Effect]) -> bool:
        async with self._pool.acquire() as conn, conn.transaction():
            if not await claim_event(conn, consumer, event_id):
                return False
            for effect in effects:
                await _apply(conn, effect)
            return True

    async def add_views(self, hour: datetime | None, counts: Mapping[str, int]) -> None:
        ids = list(counts)
        values = [counts[i] for i in ids]
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(_VIEW_HOUR, ids, values, hour)
            await conn.execute(_VIEW_TOTALS, ids, values)

    async def owner(self, post_id: str) -> PostOwner | None:
        row = await self._pool.fetchrow(_OWNER, post_id)
        return PostOwner(row["author_id"], row["created_at"]) if row is not None else None

    async def hours(self, post_id: str, start: datetime, end: datetime) -> list[HourRow]:
        rows = await self._pool.fetch(_HOURS, post_id, start, end)
        return [HourRow(**dict(row)) for row in rows]

    async def activity(self, user_id: str, start: datetime, end: datetime) -> list[ActivityRow]:
        rows = await self._pool.fetch(_ACTIVITY, user_id, start, end)
        return [ActivityRow(**dict(row)) for row in rows]

    async def user_totals(self, user_id: str) -> UserTotals:
        row = await self._pool.fetchrow(_USER_TOTALS, user_id)
        return UserTotals(**{k: int(v) for k, v in dict(row).items()})

    async def ranked_posts(self, user_id: str, *, best: bool, limit: int) -> list[PostTotals]:
        sql = _RANKED.format(order="DESC" if best else "ASC")
        rows = await self._pool.fetch(sql, user_id, limit)
        return [PostTotals(**dict(row)) for row in rows]

    async def follower_changes(self, user_id: str, since: date) -> tuple[int, int]:
        row = await self._pool.fetchrow(_FOLLOWER_CHANGES, user_id, since)
        return int(row["gained"]), int(row["lost"])


async def _apply(conn: asyncpg.Connection, effect: Effect) -> None:
    match effect:
        case PostSeen():
            await conn.execute(_ENSURE_TOTALS, effect.post_id)
        case PostGone():
            await conn.execute(_GONE, effect.post_id)
        case PostBump():
            await conn.execute(_ENSURE_TOTALS, effect.post_id)
            changes = (effect.likes, effect.unlikes, effect.comments, effect.reposts,
                       effect.quotes)
            await conn.execute(_BUMP_HOUR, effect.post_id, effect.hour, *changes)
            await conn.execute(_BUMP_TOTALS, effect.post_id, *changes)
        case FollowerEngaged():
            await conn.execute(_ENGAGED, effect.author_id, effect.actor_id, effect.hour)
        case FollowerActive():
            await conn.execute(_ACTIVE, effect.actor_id, effect.hour)
        case FollowerChange():
            await conn.execute(_FOLLOWERS, effect.user_id, effect.day, effect.gained,
                               effect.lost)
