"""Group commit for chat messages: one statement, one round trip and one commit for every
message appended on this node while the previous batch was being written.

A RoomActor awaits its message's batch before it acknowledges, pushes or caches the message,
so "acked" still means "committed"; only the commit is shared. Rooms are independent in a
batch: the statement inserts each message (UNIQUE (room_id, sender_id, client_id) turns a
resend into "not inserted"), moves each room's last_seq and each sender's read position to
their highest seq, and writes each inserted message's `message.sent` event to the outbox,
all in the one implicit transaction of the statement.

When a batch breaks a constraint (a seq taken by a second activation of a room during a
cluster view change, a room deleted meanwhile), no message of it was stored; each is then
written alone, so only the message at fault fails (SeqTaken for a taken seq) and the others
are stored. Any other failure (the connection lost, Postgres down) fails every message of the
batch: none is acked, each caller sees the error.

A batch is what queued up during the previous round trip, and, while messages stream in
(the previous batch ended less than STREAM_WINDOW ago), during LINGER more: one statement
costs Postgres about 0.7 ms of CPU whether it carries one message or ten (measured: 700 us per
message alone, 140 us each in tens), so a few milliseconds of waiting at a steady rate buy most
of the saving. A quiet node writes each message at once. The batcher keeps its
pool connection while messages keep coming (giving it back after each batch would add
asyncpg's reset query, as costly as the batch), and hands it back after IDLE_RELEASE seconds
without messages or after any failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import msgspec

from protocols.chat import Message
from protocols.events import MessageSent, envelope
from protocols.room_messages import SeqTaken
from storage.postgres.outbox import OUTBOX_CHANNEL

log = logging.getLogger("hubbub.storage.chat")

MAX_BATCH = 500  # messages per statement; more wait for the next round trip
LINGER = 0.003  # seconds a batch waits for company while messages stream in
STREAM_WINDOW = 0.02  # ...that is, when the previous batch ended less than this ago
IDLE_RELEASE = 0.25  # seconds without messages before the connection goes back to the pool
_SEQ_KEY = "messages_room_seq_key"

# $1..$8: the messages, column by column; $9..$11: their `message.sent` envelopes (event id,
# key, JSON); $12, $13: the event's topic and type. The final SELECT reads `wake` so that its
# pg_notify runs (a SELECT-only CTE runs only when referenced), once per batch that stored
# anything; NOTIFY is delivered on commit.
_APPEND_BATCH = f"""
WITH input AS (
    SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::bigint[], $4::uuid[], $5::text[],
                         $6::text[], $7::text[], $8::timestamptz[], $9::uuid[], $10::text[],
                         $11::text[])
        AS t (id, room_id, seq, sender_id, client_id, text, kind, created_at,
              event_id, event_key, event)
), msg AS (
    INSERT INTO messages (id, room_id, seq, sender_id, client_id, text, kind, created_at)
    SELECT id, room_id, seq, sender_id, client_id, text, kind, created_at FROM input
    ON CONFLICT ON CONSTRAINT messages_client_key DO NOTHING
    RETURNING id, room_id, seq, sender_id, created_at
), room AS (
    UPDATE rooms r SET last_seq = m.seq,
                       last_activity_at = GREATEST(r.last_activity_at, m.created_at)
    FROM (SELECT room_id, max(seq) AS seq, max(created_at) AS created_at
          FROM msg GROUP BY room_id) m
    WHERE r.id = m.room_id AND r.last_seq < m.seq
), reader AS (
    UPDATE room_members rm SET last_read_seq = m.seq
    FROM (SELECT room_id, sender_id, max(seq) AS seq FROM msg GROUP BY room_id, sender_id) m
    WHERE rm.room_id = m.room_id AND rm.user_id = m.sender_id AND rm.last_read_seq < m.seq
), events AS (
    INSERT INTO outbox (event_id, topic, key, type, envelope)
    SELECT i.event_id, $12, i.event_key, $13, i.event::jsonb
    FROM input i JOIN msg USING (id)
), wake AS (
    SELECT pg_notify('{OUTBOX_CHANNEL}', '') FROM (SELECT 1 FROM msg LIMIT 1) stored
)
SELECT id FROM msg WHERE (SELECT count(*) FROM wake) >= 0
"""
_encode = msgspec.json.Encoder().encode


@dataclass(slots=True)
class _Pending:
    message: Message
    done: asyncio.Future[bool] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future())


class MessageBatcher:
    """Appends messages in shared commits. `append` answers True when the message was stored,
    False when its (room, sender, client_id) was stored before (a resend)."""

    def __init__(self, pool: asyncpg.Pool, *, max_batch: int = MAX_BATCH,
                 linger: float = LINGER) -> None:
        if max_batch < 1 or linger < 0:
            raise ValueError("max_batch must be positive and linger not negative")
        self._linger = linger
        self._last_batch_end: float | None = None  # loop time
        self._pool = pool
        self._max_batch = max_batch
        self._queue: list[_Pending] = []
        self._writer: asyncio.Task[None] | None = None
        self._conn: Any = None  # the pool connection the batches go through, once taken
        self._idle: asyncio.TimerHandle | None = None  # gives the connection back
        self._releasing: set[asyncio.Task[None]] = set()
        self.batches = 0  # statements written (metrics, tests)
        self.messages = 0  # messages they carried

    async def append(self, message: Message) -> bool:
        pending = _Pending(message)
        self._queue.append(pending)
        if self._writer is None:
            if self._idle is not None:
                self._idle.cancel()
                self._idle = None
            self._writer = asyncio.get_running_loop().create_task(
                self._drain(), name="chat:group-commit")
        return await pending.done

    async def close(self) -> None:
        """Wait for what is queued to be written (shutdown), then give the connection back."""
        if self._writer is not None:
            await asyncio.shield(self._writer)
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None
        await self._release()

    async def _connection(self) -> Any:
        if self._conn is None or self._conn.is_closed():
            await self._release()
            self._conn = await self._pool.acquire()
        return self._conn

    async def _release(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):  # a dead connection: the pool replaces it
                await self._pool.release(conn)

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._queue:
                last = self._last_batch_end
                if self._linger and last is not None and len(self._queue) < self._max_batch \
                        and loop.time() - last < STREAM_WINDOW:
                    await asyncio.sleep(self._linger)
                batch = self._queue[:self._max_batch]
                del self._queue[:self._max_batch]
                await self._write_batch(batch)
                self._last_batch_end = loop.time()
        finally:
            self._writer = None
            if self._conn is not None:
                self._idle = asyncio.get_running_loop().call_later(IDLE_RELEASE,
                                                                   self._release_idle)

    def _release_idle(self) -> None:
        self._idle = None
        if self._writer is None:
            task = asyncio.get_running_loop().create_task(self._release())
            self._releasing.add(task)
            task.add_done_callback(self._releasing.discard)

    async def _write_batch(self, batch: list[_Pending]) -> None:
        try:
            stored = await self._write([p.message for p in batch])
        except asyncpg.IntegrityConstraintViolationError as exc:
            if len(batch) > 1:
                # The statement stored nothing. Write each message alone, so that only the
                # one at fault fails (a seq taken, a room deleted meanwhile).
                for pending in batch:
                    await self._write_batch([pending])
                return
            seq_taken = isinstance(exc, asyncpg.UniqueViolationError) and \
                exc.constraint_name == _SEQ_KEY
            message = batch[0].message
            _fail(batch, SeqTaken(message.room_id, message.seq) if seq_taken else exc)
            return
        except BaseException as exc:
            await self._release()  # the connection may be broken or mid-statement
            _fail(batch, exc)
            if not isinstance(exc, Exception):
                raise
            return
        self.batches += 1
        self.messages += len(batch)
        for pending in batch:
            if not pending.done.done():
                pending.done.set_result(pending.message.id in stored)

    async def _write(self, messages: list[Message]) -> set[str]:
        events = [envelope(MessageSent(
            message_id=m.id, room_id=m.room_id, seq=m.seq, sender_id=m.sender_id,
            created_at=m.created_at), actor_id=m.sender_id, occurred_at=m.created_at)
            for m in messages]
        conn = await self._connection()
        rows = await conn.fetch(
            _APPEND_BATCH,
            [m.id for m in messages], [m.room_id for m in messages],
            [m.seq for m in messages], [m.sender_id for m in messages],
            [m.client_id for m in messages], [m.text for m in messages],
            [m.kind for m in messages], [m.created_at for m in messages],
            [e.id for e in events], [e.key for e in events],
            [_encode(e).decode() for e in events],
            MessageSent.TOPIC, MessageSent.TYPE)
        return {str(r["id"]) for r in rows}


def _fail(batch: list[_Pending], exc: BaseException) -> None:
    for pending in batch:
        if not pending.done.done():
            if isinstance(exc, Exception):
                pending.done.set_exception(exc)
            else:
                pending.done.cancel()
