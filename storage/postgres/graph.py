"""Postgres adapter of server.users.ports.GraphStore: follows, blocks and mutes.

Every change to `follows` first locks both users' rows (FOR NO KEY UPDATE, in id order, so two
changes of one pair can never deadlock). That serialises follow/unfollow/block on a pair:
follow sees a block committed just before it, a block sees every follow committed before it,
and the counts move only by the rows a statement really inserted or deleted.

Each follow row that really appears or goes (unfollow, or a block removing follows in either
direction) appends a follow.created / follow.deleted event to the outbox in the same
transaction; a no-op appends nothing.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import asyncpg

from protocols.events import FollowCreated, FollowDeleted, envelope
from protocols.users import Relationship, UserSummary
from storage.postgres.outbox import append_events
from storage.postgres.user_rows import summary_from_row

PageKey = tuple[datetime, str]

_LOCK_PAIR = """
SELECT id FROM users WHERE id = ANY($1::uuid[]) ORDER BY id FOR NO KEY UPDATE
"""
# One follow row (from $1 to $2) appeared (+1) or went away (-1). Both rows are locked already.
_ADJUST_COUNTS = """
UPDATE users
SET following_count = following_count + CASE WHEN id = $1 THEN $3::int ELSE 0 END,
    follower_count = follower_count + CASE WHEN id = $2 THEN $3::int ELSE 0 END
WHERE id IN ($1, $2)
"""
_RELATIONSHIP = """
SELECT EXISTS (SELECT 1 FROM follows WHERE follower_id = $1 AND followee_id = $2) AS following,
       EXISTS (SELECT 1 FROM follows WHERE follower_id = $2 AND followee_id = $1) AS followed_by,
       EXISTS (SELECT 1 FROM blocks WHERE blocker_id = $1 AND blocked_id = $2) AS blocking,
       EXISTS (SELECT 1 FROM blocks WHERE blocker_id = $2 AND blocked_id = $1) AS blocked_by,
       EXISTS (SELECT 1 FROM mutes WHERE muter_id = $1 AND muted_id = $2) AS muting
"""


def _page_sql(side: Literal["followers", "following"], resume: bool) -> str:
    # followers of $1: rows whose followee is $1, listing the follower; following: the reverse.
    owner, other = (("followee_id", "follower_id") if side == "followers"
                    else ("follower_id", "followee_id"))
    after = f"AND (f.created_at, f.{other}) < ($4, $5::uuid)" if resume else ""
    return f"""
SELECT u.id, u.username, u.display_name, f.created_at AS page_at
FROM follows f JOIN users u ON u.id = f.{other}
WHERE f.{owner} = $1 {after}
  AND NOT EXISTS (SELECT 1 FROM blocks b WHERE b.blocker_id = $2 AND b.blocked_id = f.{other})
  AND NOT EXISTS (SELECT 1 FROM blocks b WHERE b.blocker_id = f.{other} AND b.blocked_id = $2)
ORDER BY f.created_at DESC, f.{other} DESC
LIMIT $3
"""


_PAGES = {(side, resume): _page_sql(side, resume)
          for side in ("followers", "following") for resume in (False, True)}


class PostgresGraphStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def follow(self, follower_id: str, followee_id: str) -> Literal[
            "created", "unchanged", "blocking", "blocked_by", "missing"]:
        async with self._pool.acquire() as conn, conn.transaction():
            if not await _lock_pair(conn, follower_id, followee_id):
                return "missing"
            relation = await conn.fetchrow(_RELATIONSHIP, follower_id, followee_id)
            if relation["blocking"]:
                return "blocking"
            if relation["blocked_by"]:
                return "blocked_by"
            # The pair's rows are locked, so no one else can insert this row meanwhile; the
            # ON CONFLICT only keeps the counts honest should that ever change.
            created_at = await conn.fetchval(
                "INSERT INTO follows (follower_id, followee_id) VALUES ($1, $2)"
                " ON CONFLICT DO NOTHING RETURNING created_at", follower_id, followee_id)
            if created_at is None:
                return "unchanged"
            await _adjust(conn, follower_id, followee_id, +1)
            await append_events(conn, envelope(
                FollowCreated(follower_id=follower_id, followee_id=followee_id),
                actor_id=follower_id, occurred_at=created_at))
            return "created"

    async def unfollow(self, follower_id: str, followee_id: str) -> bool:
        async with self._pool.acquire() as conn, conn.transaction():
            if not await _lock_pair(conn, follower_id, followee_id):
                return False
            deleted_at = await conn.fetchval(
                "DELETE FROM follows WHERE follower_id = $1 AND followee_id = $2"
                " RETURNING now()", follower_id, followee_id)
            if deleted_at is None:
                return False
            await _adjust(conn, follower_id, followee_id, -1)
            await append_events(conn, envelope(
                FollowDeleted(follower_id=follower_id, followee_id=followee_id),
                actor_id=follower_id, occurred_at=deleted_at))
            return True

    async def block(self, blocker_id: str, blocked_id: str) -> bool | None:
        async with self._pool.acquire() as conn, conn.transaction():
            if not await _lock_pair(conn, blocker_id, blocked_id):
                return None
            created = await conn.fetchval(
                "INSERT INTO blocks (blocker_id, blocked_id) VALUES ($1, $2)"
                " ON CONFLICT DO NOTHING RETURNING true", blocker_id, blocked_id)
            removed = await conn.fetch(
                """DELETE FROM follows
                   WHERE (follower_id = $1 AND followee_id = $2)
                      OR (follower_id = $2 AND followee_id = $1)
                   RETURNING follower_id, followee_id, now() AS deleted_at""",
                blocker_id, blocked_id)
            for row in removed:
                await _adjust(conn, row["follower_id"], row["followee_id"], -1)
            await append_events(conn, *(
                envelope(FollowDeleted(follower_id=row["follower_id"],
                                       followee_id=row["followee_id"]),
                         actor_id=blocker_id, occurred_at=row["deleted_at"])
                for row in removed))
            return bool(created)

    async def unblock(self, blocker_id: str, blocked_id: str) -> bool:
        return bool(await self._pool.fetchval(
            "DELETE FROM blocks WHERE blocker_id = $1 AND blocked_id = $2 RETURNING true",
            blocker_id, blocked_id))

    async def mute(self, muter_id: str, muted_id: str) -> bool:
        try:
            return bool(await self._pool.fetchval(
                "INSERT INTO mutes (muter_id, muted_id) VALUES ($1, $2)"
                " ON CONFLICT DO NOTHING RETURNING true", muter_id, muted_id))
        except asyncpg.ForeignKeyViolationError:
            return False  # one of the users is gone: nothing to mute

    async def unmute(self, muter_id: str, muted_id: str) -> bool:
        return bool(await self._pool.fetchval(
            "DELETE FROM mutes WHERE muter_id = $1 AND muted_id = $2 RETURNING true",
            muter_id, muted_id))

    async def relationship(self, viewer_id: str, other_id: str) -> Relationship:
        row = await self._pool.fetchrow(_RELATIONSHIP, viewer_id, other_id)
        return Relationship(user_id=other_id, following=row["following"],
                            followed_by=row["followed_by"], blocking=row["blocking"],
                            muting=row["muting"])

    async def is_blocked_either_way(self, a: str, b: str) -> bool:
        return bool(await self._pool.fetchval(
            """SELECT EXISTS (SELECT 1 FROM blocks WHERE (blocker_id = $1 AND blocked_id = $2)
                                                    OR (blocker_id = $2 AND blocked_id = $1))""",
            a, b))

    async def followers(self, user_id: str, viewer_id: str, *, limit: int,
                        after: PageKey | None) -> tuple[list[UserSummary], PageKey | None]:
        return await self._page("followers", user_id, viewer_id, limit, after)

    async def following(self, user_id: str, viewer_id: str, *, limit: int,
                        after: PageKey | None) -> tuple[list[UserSummary], PageKey | None]:
        return await self._page("following", user_id, viewer_id, limit, after)

    async def _page(self, side: Literal["followers", "following"], user_id: str,
                    viewer_id: str, limit: int,
                    after: PageKey | None) -> tuple[list[UserSummary], PageKey | None]:
        # One row more than asked tells whether another page exists.
        args: tuple[object, ...] = (user_id, viewer_id, limit + 1)
        if after is not None:
            args += after
        rows = await self._pool.fetch(_PAGES[side, after is not None], *args)
        shown = rows[:limit]
        items = [summary_from_row(row) for row in shown]
        more = len(rows) > limit
        return items, ((shown[-1]["page_at"], shown[-1]["id"]) if more else None)


async def _lock_pair(conn: asyncpg.Connection, a: str, b: str) -> bool:
    """Lock both users' rows in id order; False when either does not exist."""
    return len(await conn.fetch(_LOCK_PAIR, [a, b])) == 2


async def _adjust(conn: asyncpg.Connection, follower_id: str, followee_id: str,
                  delta: int) -> None:
    await conn.execute(_ADJUST_COUNTS, follower_id, followee_id, delta)
