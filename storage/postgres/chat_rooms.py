"""Postgres adapter of server.chat.ports.RoomDirectory: creating, listing and changing rooms.

Direct rooms are unique per pair through rooms.direct_key (the two ids sorted, joined by ':'),
so two concurrent "create the direct room of A and B" calls end with one room. Member changes
lock the room's row first, so adds and removals of one room serialise (the size cap and the
owner hand-over hold under concurrency).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal

import asyncpg

from protocols.chat import Room
from protocols.ids import new_id
from storage.postgres.chat import message_from_row
from storage.postgres.room_positions import READ_POSITION

RoomPageKey = tuple[datetime, str]

# The last message is read from the messages themselves, and the viewer's read position
# counts their own newest message: both are exact although rooms.last_seq / last_activity_at
# and read positions are written behind the messages (storage/postgres/room_positions.py).
_ROOM_VIEW = f"""
SELECT * FROM (
    SELECT r.id, r.kind, r.name, r.created_at, COALESCE(m.seq, 0) AS last_seq,
           GREATEST(r.last_activity_at, m.created_at) AS last_activity_at,
           {READ_POSITION} AS last_read_seq,
           ARRAY(SELECT rm.user_id FROM room_members rm WHERE rm.room_id = r.id
                 ORDER BY rm.joined_at, rm.user_id) AS member_ids,
           m.id AS m_id, m.room_id AS m_room_id, m.seq AS m_seq, m.sender_id AS m_sender_id,
           m.text AS m_text, m.client_id AS m_client_id, m.created_at AS m_created_at,
           m.kind AS m_kind
    FROM room_members rm
    JOIN rooms r ON r.id = rm.room_id
    LEFT JOIN LATERAL (SELECT * FROM messages WHERE room_id = r.id ORDER BY seq DESC LIMIT 1)
        m ON true
    WHERE rm.user_id = $1 {{room}}
) v
"""
_ONE_ROOM = _ROOM_VIEW.format(room="AND r.id = $2")
_FIRST_PAGE = _ROOM_VIEW.format(room="") + " ORDER BY last_activity_at DESC, id DESC LIMIT $2"
_NEXT_PAGE = (_ROOM_VIEW.format(room="") + " WHERE (last_activity_at, id) < ($3, $4::uuid)"
              " ORDER BY last_activity_at DESC, id DESC LIMIT $2")
_BLOCKS = """
SELECT blocker_id, blocked_id FROM blocks
WHERE (blocker_id = ANY($1::uuid[]) AND blocked_id = ANY($2::uuid[]))
   OR (blocker_id = ANY($2::uuid[]) AND blocked_id = ANY($1::uuid[]))
"""
_INSERT_MEMBERS = """
INSERT INTO room_members (room_id, user_id, role)
SELECT $1, u, $3 FROM unnest($2::uuid[]) AS u
ON CONFLICT DO NOTHING
"""
# When the owner has left: the longest-standing member takes over (if anyone is left).
_HAND_OVER = """
UPDATE room_members SET role = 'owner'
WHERE room_id = $1 AND user_id = (
    SELECT user_id FROM room_members WHERE room_id = $1 ORDER BY joined_at, user_id LIMIT 1)
  AND NOT EXISTS (SELECT 1 FROM room_members WHERE room_id = $1 AND role = 'owner')
"""


def direct_key(a: str, b: str) -> str:
    return ":".join(sorted((a, b)))


def _room_from_row(row: Mapping[str, Any]) -> Room:
    last = message_from_row(row, "m_") if row["m_id"] is not None else None
    return Room(
        id=row["id"], kind=row["kind"], name=row["name"], member_ids=list(row["member_ids"]),
        created_at=row["created_at"], last_seq=row["last_seq"], last_message=last,
        unread_count=max(0, row["last_seq"] - row["last_read_seq"]),
    )


class PostgresRoomDirectory:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def existing_users(self, user_ids: list[str]) -> set[str]:
        rows = await self._pool.fetch("SELECT id FROM users WHERE id = ANY($1::uuid[])",
                                      user_ids)
        return {r["id"] for r in rows}

    async def blocks_between(self, users: list[str], others: list[str]) -> set[frozenset[str]]:
        rows = await self._pool.fetch(_BLOCKS, users, others)
        return {frozenset((r["blocker_id"], r["blocked_id"])) for r in rows}

    async def create_direct(self, creator_id: str, other_id: str) -> tuple[Room, bool]:
        async with self._pool.acquire() as conn:
            async with conn.transaction():
                # A concurrent insert of the same pair waits for ours and then does nothing.
                room_id = await conn.fetchval(
                    "INSERT INTO rooms (id, kind, created_by, direct_key)"
                    " VALUES ($1, 'direct', $2, $3)"
                    " ON CONFLICT (direct_key) DO NOTHING RETURNING id",
                    new_id(), creator_id, direct_key(creator_id, other_id))
                if room_id is not None:
                    await conn.execute(_INSERT_MEMBERS, room_id, [creator_id, other_id],
                                       "member")
            created = room_id is not None
            if not created:
                room_id = await conn.fetchval("SELECT id FROM rooms WHERE direct_key = $1",
                                              direct_key(creator_id, other_id))
            row = await conn.fetchrow(_ONE_ROOM, creator_id, room_id)
        assert row is not None, "the creator is a member of the direct room"
        return _room_from_row(row), created

    async def create_group(self, room_id: str, creator_id: str, member_ids: list[str],
                           name: str | None) -> Room:
        others = [u for u in dict.fromkeys(member_ids) if u != creator_id]
        async with self._pool.acquire() as conn:
            async with conn.transaction():
                await conn.execute(
                    "INSERT INTO rooms (id, kind, name, created_by) VALUES ($1, 'group', $2, $3)",
                    room_id, name, creator_id)
                await conn.execute(_INSERT_MEMBERS, room_id, [creator_id], "owner")
                await conn.execute(_INSERT_MEMBERS, room_id, others, "member")
            row = await conn.fetchrow(_ONE_ROOM, creator_id, room_id)
        assert row is not None, "the creator is a member of the group"
        return _room_from_row(row)

    async def room(self, room_id: str, viewer_id: str) -> Room | None:
        row = await self._pool.fetchrow(_ONE_ROOM, viewer_id, room_id)
        return _room_from_row(row) if row is not None else None

    async def rooms(self, viewer_id: str, *, limit: int,
                    after: RoomPageKey | None) -> tuple[list[Room], RoomPageKey | None]:
        if after is None:
            rows = await self._pool.fetch(_FIRST_PAGE, viewer_id, limit + 1)
        else:
            rows = await self._pool.fetch(_NEXT_PAGE, viewer_id, limit + 1, *after)
        page = rows[:limit]
        last = (page[-1]["last_activity_at"], page[-1]["id"]) if len(rows) > limit else None
        return [_room_from_row(r) for r in page], last

    async def role(self, room_id: str, user_id: str) -> Literal["owner", "member"] | None:
        return await self._pool.fetchval(
            "SELECT role FROM room_members WHERE room_id = $1 AND user_id = $2",
            room_id, user_id)

    async def add_members(self, room_id: str, user_ids: list[str], *, max_members: int) -> bool:
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT 1 FROM rooms WHERE id = $1 FOR UPDATE", room_id)
            row = await conn.fetchrow(
                "SELECT count(*) AS size, count(*) FILTER (WHERE user_id = ANY($2::uuid[]))"
                " AS already FROM room_members WHERE room_id = $1", room_id, user_ids)
            if row["size"] + len(set(user_ids)) - row["already"] > max_members:
                return False
            await conn.execute(_INSERT_MEMBERS, room_id, list(dict.fromkeys(user_ids)),
                               "member")
            return True

    async def remove_members(self, room_id: str, user_ids: list[str]) -> list[str]:
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT 1 FROM rooms WHERE id = $1 FOR UPDATE", room_id)
            rows = await conn.fetch(
                "DELETE FROM room_members WHERE room_id = $1 AND user_id = ANY($2::uuid[])"
                " RETURNING user_id", room_id, user_ids)
            if rows:
                await conn.execute(_HAND_OVER, room_id)
        return [r["user_id"] for r in rows]
