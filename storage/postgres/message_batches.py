"""Group commit for chat messages: one statement, one round trip and one commit for every
message appended on this node while the previous batch was being written.

A RoomActor pushes and acknowledges a message only once its batch is committed, so "acked"
still means "committed"; only the commit is shared. The statement gives each message its
room's next seq: max(seq) of the room + its rank among the room's new messages of the batch,
in the order they were appended. A resend (its (room_id, sender_id, client_id) is stored, or
came earlier in the same batch) takes no seq, so seqs stay 1, 2, 3... with no gap whatever is
resent, and a room's actor need not wait for one message's commit before it sends the next
to the batcher (actors/room.py pipelines them). The statement also writes the new messages'
`message.sent` events to the outbox (one row for the batch), all in its one implicit
transaction (storage/postgres/append_batch.py). The rooms' last_seq and the senders' read
positions follow within POSITIONS_DELAY, written behind (storage/postgres/room_positions.py
says why and how readers stay exact).

Batches of one node are written one after the other on one connection, so the seqs one
computes see the last one's. Another writer of the same room (a second activation on another
node during a cluster view change) can take the same seq at the same time: UNIQUE (room_id,
seq) fails the later statement, and the messages of a batch that breaks a constraint are
then written one by one, each computing its seq afresh (SEQ_RETRIES times at most), so only a
message that still cannot be stored (its room deleted meanwhile) fails. Any other failure
(the connection lost, Postgres down) fails every message of the batch: none is acked, each
caller sees the error.

A batch is what queued up during the previous round trip, and, while messages stream in fast
enough that another one is due within LINGER (the moving average of the gaps between appends
is at most LINGER: 167 messages/s on this node), what comes during LINGER more, or
until FILL messages are queued, whichever is first: one statement costs Postgres about 0.4 ms
of CPU (user + system, commit included) alone and 0.1 ms more for each further message
(measured on a 2-core machine), so a few milliseconds of waiting at a steady rate buy most of
the saving, and once a batch holds FILL messages most of it is bought: a busy node stops
waiting (every message waited the whole LINGER, a third of its delivery latency at 2,000
messages/s). Shared bench, 500 messages/s: LINGER 3 ms gave 0.29 server + 0.12 Postgres
cores, 6 ms 0.26 + 0.09, for 1.3 ms more p50 (5.3 -> 6.6 ms); at 1,400 messages/s FILL
decides and the latency did not move. Slower than that, a batch would wait the whole LINGER
for hardly any company: a node at 125 messages/s (bench-chat) delivered at p50 9.8 ms with
the linger and 3.1-3.6 ms without (p99 16.5 against 9.1-13.7 ms), for 0.01-0.02 more Postgres
cores, so it writes each batch at once (p50 4.4 ms with this rule). The threshold is one
message, not two: two nodes at 250 messages/s each wrote 1.5 messages per statement with a
threshold of two, 2.6 with one (2.7 when any batch within 20 ms of the last one lingered). The
batcher keeps its pool connection while messages keep coming (giving it back after each
batch would add asyncpg's reset query, as costly as the batch), and hands it back after
IDLE_RELEASE seconds without messages (once the positions are written) or after any failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import msgspec

from protocols.chat import Message
from storage.arrival_pace import ArrivalPace
from storage.postgres.append_batch import CONNECTION_SETUP, append_batch
from storage.postgres.outbox import current_traceparent
from storage.postgres.room_positions import POSITIONS_DELAY, PendingPositions, flush

log = logging.getLogger("hubbub.storage.chat")

MAX_BATCH = 500  # messages per statement; more wait for the next round trip
LINGER = 0.006  # seconds a batch waits for company while messages stream in...
FILL = 6  # ...unless this many messages are queued already
# ...that is, while another message is due within LINGER (storage/arrival_pace.py).
IDLE_RELEASE = 0.25  # seconds without messages before the connection goes back to the pool
# Seconds between two wake-ups of the outbox relays. Each NOTIFY wakes every listening backend
# of the database, and the relay gathers commits for RelayOptions.coalesce (0.1 s) after a
# wake-up before it reads: a batch written within NOTIFY_EVERY after a notified one commits
# before that round reads (or the next round's, were Postgres that slow; at worst the relay's
# poll interval finds it), so it need not notify again. Delay only: no event is left behind.
NOTIFY_EVERY = 0.05
MAX_FLUSH_PAUSE = 5.0  # seconds between two tries to write the positions while Postgres fails
# Tries of a message written alone that finds its seq taken meanwhile. Each failure means
# another writer of the room committed a message, so this bounds how many of theirs may go
# first, not a spin: two activations of a room during a view change need one or two.
SEQ_RETRIES = 20


@dataclass(slots=True)
class _Pending:
    message: Message
    traceparent: str | None  # of the trace the message was appended in (tracing on)
    done: asyncio.Future[Message | None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future())


class MessageBatcher:
    """Appends messages in shared commits. `append` answers the message as stored, with the
    seq the statement gave it (the seq it carried is ignored), or None when its (room, sender,
    client_id) was stored before (a resend)."""

    def __init__(self, pool: asyncpg.Pool, *, max_batch: int = MAX_BATCH,
                 linger: float = LINGER, fill: int = FILL,
                 positions_delay: float = POSITIONS_DELAY,
                 notify_every: float = NOTIFY_EVERY,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if max_batch < 1 or fill < 1 or linger < 0 or positions_delay < 0:
            raise ValueError("max_batch and fill must be positive, linger and positions_delay "
                             "not negative")
        self._linger = linger
        self._fill = min(fill, max_batch)
        self._filled: asyncio.Future[None] | None = None  # while lingering: FILL queued
        self._pace = ArrivalPace(2 * linger, clock)  # of the appends
        self._pool = pool
        self._max_batch = max_batch
        self._queue: list[_Pending] = []
        self._writer: asyncio.Task[None] | None = None  # the one user of the connection
        self._conn: Any = None  # the pool connection the batches go through, once taken
        # Rooms' and senders' positions of committed messages, not written yet; due at
        # `_positions_due` (loop time), POSITIONS_DELAY after the first of them was noted.
        self._positions = PendingPositions()
        self._positions_delay = positions_delay
        self._positions_due = 0.0
        self._flush_failures = 0  # in a row
        self._timer: asyncio.TimerHandle | None = None  # positions due, or the idle release
        self._releasing: set[asyncio.Task[None]] = set()
        self._notify_every = notify_every
        self._notified_at: float | None = None  # loop time of the last batch that notified
        self.batches = 0  # statements written (metrics, tests)
        self.messages = 0  # messages they carried

    @property
    def streaming(self) -> bool:
        """Whether messages come fast enough for a batch to wait for company (another one
        due within LINGER, by the moving average of the gaps between appends)."""
        return bool(self._linger) and self._pace.within(self._linger)

    @property
    def lingering(self) -> bool:
        """Whether the next batch is waiting for company (LINGER, or FILL messages)."""
        return self._filled is not None

    async def append(self, message: Message) -> Message | None:
        pending = _Pending(message, current_traceparent())
        self._pace.arrived()
        self._queue.append(pending)
        filled = self._filled
        if filled is not None and len(self._queue) >= self._fill and not filled.done():
            filled.set_result(None)
        if self._writer is None:
            self._cancel_timer()
            # A context of its own: the writer serves every room, not the first message's
            # caller (its trace span, its request id).
            self._writer = asyncio.get_running_loop().create_task(
                self._run(), name="chat:group-commit", context=contextvars.Context())
        return await pending.done

    async def close(self) -> None:
        """Wait for what is queued to be written (shutdown), write the positions noted, then
        give the connection back."""
        if self._writer is not None:
            await asyncio.shield(self._writer)
        self._cancel_timer()
        if self._positions:
            await self._flush_positions()
        await self._release()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    async def _connection(self) -> Any:
        if self._conn is None or self._conn.is_closed():
            await self._release()
            conn = await self._pool.acquire()
            try:
                await conn.execute(CONNECTION_SETUP)
            except BaseException:
                await self._pool.release(conn)
                raise
            self._conn = conn
        return self._conn

    async def _release(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):  # a dead connection: the pool replaces it
                await self._pool.release(conn)

    async def _run(self, flush_first: bool = False) -> None:
        """The writer: the positions when due, then every queued batch."""
        loop = asyncio.get_running_loop()
        try:
            if flush_first:
                await self._flush_positions()
            while self._queue:
                if len(self._queue) < self._fill and self.streaming:
                    await self._linger_for_company(loop)
                batch = self._queue[:self._max_batch]
                del self._queue[:self._max_batch]
                await self._write_batch(batch)
                if self._positions and loop.time() >= self._positions_due:
                    await self._flush_positions()
        finally:
            self._writer = None
            self._arm_timer()

    async def _linger_for_company(self, loop: asyncio.AbstractEventLoop) -> None:
        """Wait LINGER, or until `append` has queued FILL messages."""
        filled = self._filled = loop.create_future()
        timer = loop.call_later(self._linger, _settle, filled)
        try:
            await filled
        finally:
            timer.cancel()
            self._filled = None

    def _arm_timer(self) -> None:
        """Once the writer is done: flush the positions when due, else give the connection
        back after IDLE_RELEASE seconds without messages."""
        loop = asyncio.get_running_loop()
        if self._positions:
            delay = max(0.0, self._positions_due - loop.time())
        elif self._conn is not None:
            delay = IDLE_RELEASE
        else:
            return
        self._timer = loop.call_later(delay, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        if self._writer is not None:
            return  # it arms the timer again when it ends
        loop = asyncio.get_running_loop()
        if self._positions:
            self._writer = loop.create_task(self._run(flush_first=True),
                                            name="chat:positions")
            return
        task = loop.create_task(self._release())
        self._releasing.add(task)
        task.add_done_callback(self._releasing.discard)

    async def _flush_positions(self) -> None:
        taken = self._positions.take()
        try:
            await flush(await self._connection(), taken)
        except Exception:
            await self._release()  # the connection may be broken
            if self._pool.is_closing():
                log.warning("room positions not written: the pool is closed (loads repair "
                            "them from the messages)")
                return
            # Loads repair from the messages meanwhile; retry with a growing pause.
            self._flush_failures += 1
            pause = min(MAX_FLUSH_PAUSE, self._positions_delay * 2 ** self._flush_failures)
            log.warning("room positions not written; retrying in %.1f s", pause,
                        exc_info=True)
            self._positions.restore(taken)
            self._positions_due = asyncio.get_running_loop().time() + pause
            return
        self._flush_failures = 0

    def _noted(self, messages: list[Message]) -> None:
        if not self._positions:
            self._positions_due = asyncio.get_running_loop().time() + self._positions_delay
        for message in messages:
            self._positions.note(message)

    async def _write_batch(self, batch: list[_Pending], tries: int = 1) -> None:
        try:
            stored = await self._write([p.message for p in batch],
                                       next((p.traceparent for p in batch if p.traceparent),
                                            None))
        except asyncpg.IntegrityConstraintViolationError as exc:
            if len(batch) > 1:
                # The statement stored nothing. Write each message alone, in order, so that
                # only one that still breaks a constraint fails.
                for pending in batch:
                    await self._write_batch([pending])
                return
            if isinstance(exc, asyncpg.UniqueViolationError) and tries < SEQ_RETRIES:
                # Another writer took the seq (or stored the resend) between our read and our
                # insert: the next statement sees it.
                await self._write_batch(batch, tries + 1)
                return
            _fail(batch, exc)
            return
        except BaseException as exc:
            await self._release()  # the connection may be broken or mid-statement
            _fail(batch, exc)
            if not isinstance(exc, Exception):
                raise
            return
        self.batches += 1
        self.messages += len(batch)
        results = [(p, _as_stored(p.message, stored)) for p in batch]
        self._noted([message for _, message in results if message is not None])
        for pending, message in results:
            if not pending.done.done():
                pending.done.set_result(message)

    async def _write(self, messages: list[Message], traceparent: str | None) -> dict[str, int]:
        """Run the statement; the seq of each message stored, by message id."""
        conn = await self._connection()
        now = asyncio.get_running_loop().time()
        wake = self._notified_at is None or now - self._notified_at >= self._notify_every
        stored = await append_batch(conn, messages, traceparent, wake)
        if wake and stored:  # committed, and it notified
            self._notified_at = now
        return stored


def _as_stored(message: Message, seqs: dict[str, int]) -> Message | None:
    seq = seqs.get(message.id)
    if seq is None:
        return None
    return message if message.seq == seq else msgspec.structs.replace(message, seq=seq)


def _settle(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _fail(batch: list[_Pending], exc: BaseException) -> None:
    for pending in batch:
        if not pending.done.done():
            if isinstance(exc, Exception):
                pending.done.set_exception(exc)
            else:
                pending.done.cancel()
