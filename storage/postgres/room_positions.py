"""Where each room and each sender stand, written behind the messages.

`rooms.last_seq` / `last_activity_at` and a sender's own read position (`room_members.
last_read_seq`: sending a message reads the room up to it) are derived from the messages
table. Moving them in every group commit cost Postgres as much as the insert itself (two
UPDATEs of hot rows per batch), so the MessageBatcher only notes them (`PendingPositions`) and
writes what it noted every POSITIONS_DELAY seconds in one statement of its own; a message is
still acknowledged only once the message itself (and its outbox event) is committed.

Readers never depend on the lag: the RoomActor's load first `repair`s a room whose stored
last_seq is behind its messages (from the messages after it, so a node killed before its
flush loses nothing), and room lists read the last message itself (storage/postgres/
chat_rooms.py). Every write here only moves a value forward, so flushes of two nodes, a
repair and a late flush can run in any order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from protocols.chat import Message

POSITIONS_DELAY = 0.1  # seconds a noted position may wait before it is written

# SQL: member `rm` of room `r` has read up to here: the stored position, or their own newest
# message that is newer than the room's stored last_seq (its position not written yet).
READ_POSITION = """GREATEST(rm.last_read_seq, COALESCE((
    SELECT max(own.seq) FROM messages own
    WHERE own.room_id = r.id AND own.seq > r.last_seq AND own.sender_id = rm.user_id), 0))"""

_FLUSH = """
WITH room AS (
    UPDATE rooms r SET last_seq = u.seq,
                       last_activity_at = GREATEST(r.last_activity_at, u.at)
    FROM unnest($1::uuid[], $2::bigint[], $3::timestamptz[]) AS u (id, seq, at)
    WHERE r.id = u.id AND r.last_seq < u.seq
)
UPDATE room_members rm SET last_read_seq = u.seq
FROM unnest($4::uuid[], $5::uuid[], $6::bigint[]) AS u (room_id, user_id, seq)
WHERE rm.room_id = u.room_id AND rm.user_id = u.user_id AND rm.last_read_seq < u.seq
"""

# $1: the room. Everything after the stored last_seq was committed without its positions
# written yet (or ever: a node killed before its flush); write them from the messages.
_REPAIR = """
WITH stored AS (
    SELECT last_seq FROM rooms WHERE id = $1
), newer AS (
    SELECT m.sender_id, m.seq, m.created_at FROM messages m, stored
    WHERE m.room_id = $1 AND m.seq > stored.last_seq
), readers AS (
    UPDATE room_members rm SET last_read_seq = n.seq
    FROM (SELECT sender_id, max(seq) AS seq FROM newer GROUP BY sender_id) n
    WHERE rm.room_id = $1 AND rm.user_id = n.sender_id AND rm.last_read_seq < n.seq
)
UPDATE rooms r SET last_seq = n.seq, last_activity_at = GREATEST(r.last_activity_at, n.at)
FROM (SELECT max(seq) AS seq, max(created_at) AS at FROM newer) n
WHERE r.id = $1 AND n.seq IS NOT NULL AND r.last_seq < n.seq
"""


@dataclass(slots=True)
class PendingPositions:
    """Positions noted since the last flush, the highest per room and per (room, sender)."""

    rooms: dict[str, tuple[int, datetime]] = field(default_factory=dict)
    readers: dict[tuple[str, str], int] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.rooms)  # every noted reader comes with its room

    def note(self, message: Message) -> None:
        room = self.rooms.get(message.room_id)
        if room is None or room[0] < message.seq:
            self.rooms[message.room_id] = (message.seq, message.created_at)
        reader = (message.room_id, message.sender_id)
        if self.readers.get(reader, 0) < message.seq:
            self.readers[reader] = message.seq

    def take(self) -> PendingPositions:
        """Everything noted so far, leaving this empty."""
        taken = PendingPositions(self.rooms, self.readers)
        self.rooms, self.readers = {}, {}
        return taken

    def restore(self, taken: PendingPositions) -> None:
        """Put back a flush that failed, keeping the higher of each position."""
        for room_id, (seq, at) in taken.rooms.items():
            current = self.rooms.get(room_id)
            if current is None or current[0] < seq:
                self.rooms[room_id] = (seq, at)
        for reader, seq in taken.readers.items():
            if self.readers.get(reader, 0) < seq:
                self.readers[reader] = seq


async def flush(conn: Any, positions: PendingPositions) -> None:
    """Write `positions` (one statement, its own implicit transaction)."""
    rooms = list(positions.rooms.items())
    readers = list(positions.readers.items())
    await conn.execute(
        _FLUSH,
        [r for r, _ in rooms], [seq for _, (seq, _) in rooms], [at for _, (_, at) in rooms],
        [room for (room, _), _ in readers], [user for (_, user), _ in readers],
        [seq for _, seq in readers])


async def repair(conn: Any, room_id: str) -> None:
    """Write the positions of every message of the room newer than its stored last_seq."""
    await conn.execute(_REPAIR, room_id)
