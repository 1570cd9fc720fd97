"""Postgres adapters of the RoomActor's ports (actors/ports.py): RoomStore (messages, seq,
read positions) and MessageNotifier (`message` notifications for offline members).

Appends go through the node's MessageBatcher (storage/postgres/message_batches.py): one
statement per batch of messages (group commit) inserts them and writes their `message.sent`
events; rooms.last_seq / last_activity_at and the senders' read positions follow behind
(storage/postgres/room_positions.py), and `load` repairs them first when they lag.
The batch statement gives each message its seq (the room's next); UNIQUE (room_id, seq)
keeps a second writer of the room (another activation) from taking the same one, and
UNIQUE (room_id, sender_id, client_id) makes resends find the first message.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import asyncpg

from protocols.chat import Message
from protocols.ids import new_id
from protocols.room_messages import RoomMember, RoomState
from storage.postgres.message_batches import MessageBatcher
from storage.postgres.room_positions import READ_POSITION, repair

MESSAGE_COLUMNS = "id, room_id, seq, sender_id, text, client_id, created_at, kind"
# Characters of the message text a `message` notification carries as a preview.
PREVIEW_CHARS = 140

# The room and its members in one statement, so one snapshot (they agree with each other)
# and one round trip: a room's activation on the first join of a socket was five (a
# read-only transaction around two queries). A sender has read the room up to their own
# newest message, also while that position is still to be written behind
# (storage/postgres/room_positions.py).
_LOAD_ROOM = f"""
SELECT r.id, r.kind, r.name, r.created_at, r.last_seq AS stored_seq,
       COALESCE((SELECT max(seq) FROM messages WHERE room_id = r.id), 0) AS last_seq,
       m.user_ids, m.roles, m.read_seqs
FROM rooms r LEFT JOIN LATERAL (
    SELECT array_agg(rm.user_id ORDER BY rm.joined_at, rm.user_id) AS user_ids,
           array_agg(rm.role ORDER BY rm.joined_at, rm.user_id) AS roles,
           array_agg({READ_POSITION} ORDER BY rm.joined_at, rm.user_id) AS read_seqs
    FROM room_members rm WHERE rm.room_id = r.id) m ON true
WHERE r.id = $1
"""
_BY_CLIENT_ID = f"""
SELECT {MESSAGE_COLUMNS} FROM messages
WHERE room_id = $1 AND sender_id = $2 AND client_id = $3
"""
_AFTER = f"""
SELECT {MESSAGE_COLUMNS} FROM messages WHERE room_id = $1 AND seq > $2 ORDER BY seq LIMIT $3
"""
_BEFORE = f"""
SELECT * FROM (
    SELECT {MESSAGE_COLUMNS} FROM messages
    WHERE room_id = $1 AND ($2::bigint IS NULL OR seq < $2)
    ORDER BY seq DESC LIMIT $3
) newest ORDER BY seq
"""
# Reading a room also reads its `message` notification, if it names a message now read.
_SET_READ = """
WITH moved AS (
    UPDATE room_members SET last_read_seq = $3
    WHERE room_id = $1 AND user_id = $2 AND last_read_seq < $3
)
UPDATE notifications SET read_at = now()
WHERE user_id = $2 AND room_id = $1 AND kind = 'message' AND read_at IS NULL
  AND (data ->> 'seq')::bigint <= $3
"""
# One unread `message` notification per (recipient, room): it names the first message the
# recipient missed; later ones write nothing until it is read (the room's unread_count counts
# them), so a busy group costs its offline members one row each, not one per message.
_NOTIFY = """
INSERT INTO notifications (id, user_id, kind, actor_id, room_id, data, created_at)
SELECT x.id, x.user_id, 'message', $3, $4, $5::jsonb, $6
FROM unnest($1::uuid[], $2::uuid[]) AS x (user_id, id)
ON CONFLICT (user_id, room_id) WHERE kind = 'message' AND read_at IS NULL DO NOTHING
"""


def message_from_row(row: Mapping[str, Any], prefix: str = "") -> Message:
    return Message(
        id=row[f"{prefix}id"], room_id=row[f"{prefix}room_id"], seq=row[f"{prefix}seq"],
        sender_id=row[f"{prefix}sender_id"], text=row[f"{prefix}text"],
        client_id=row[f"{prefix}client_id"], created_at=row[f"{prefix}created_at"],
        kind=row[f"{prefix}kind"],
    )


class PostgresRoomStore:
    def __init__(self, pool: asyncpg.Pool, batches: MessageBatcher | None = None) -> None:
        self._pool = pool
        self._batches = batches or MessageBatcher(pool)

    async def load(self, room_id: str) -> RoomState | None:
        room = await self._pool.fetchrow(_LOAD_ROOM, room_id)
        if room is None:
            return None
        if room["stored_seq"] < room["last_seq"]:
            # Positions written behind lag (not flushed yet, or never: a node was killed
            # before its flush): write them now, before the room takes new messages.
            await repair(self._pool, room_id)
        members = zip(room["user_ids"] or (), room["roles"] or (), room["read_seqs"] or (),
                      strict=True)
        return RoomState(
            id=room["id"], kind=room["kind"], name=room["name"], created_at=room["created_at"],
            last_seq=room["last_seq"],
            members=[RoomMember(user_id=user_id, role=role, last_read_seq=read)
                     for user_id, role, read in members],
        )

    @property
    def commits(self) -> MessageBatcher:
        """The node's group commit (its `batches` and `messages` counters: /metrics)."""
        return self._batches

    async def append(self, message: Message) -> Message:
        stored = await self._batches.append(message)
        if stored is not None:
            return stored
        first = await self._pool.fetchrow(_BY_CLIENT_ID, message.room_id, message.sender_id,
                                          message.client_id)
        assert first is not None, "a client_id conflict implies the first message exists"
        return message_from_row(first)

    async def close(self) -> None:
        """Let the messages queued for a commit be written (shutdown)."""
        await self._batches.close()

    async def after(self, room_id: str, after_seq: int, limit: int) -> list[Message]:
        rows = await self._pool.fetch(_AFTER, room_id, after_seq, limit)
        return [message_from_row(r) for r in rows]

    async def before(self, room_id: str, before_seq: int | None, limit: int) -> list[Message]:
        rows = await self._pool.fetch(_BEFORE, room_id, before_seq, limit)
        return [message_from_row(r) for r in rows]

    async def set_read(self, room_id: str, user_id: str, seq: int) -> None:
        await self._pool.execute(_SET_READ, room_id, user_id, seq)


class PostgresMessageNotifier:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def notify_offline(self, user_ids: list[str], message: Message) -> None:
        recipients = sorted({u for u in user_ids if u != message.sender_id})
        if not recipients:
            return
        data = {"room_id": message.room_id, "message_id": message.id, "seq": message.seq,
                "text": message.text[:PREVIEW_CHARS]}
        # Sorted recipients: concurrent batches lock index entries in one order (no deadlock).
        await self._pool.execute(_NOTIFY, recipients, [new_id() for _ in recipients],
                                 message.sender_id, message.room_id, data, message.created_at)
