"""Postgres side of the outbox relay (server.events.ports.OutboxStore).

Leadership is a session advisory lock on one connection taken from the pool and kept for as
long as this node leads: Postgres releases the lock when that connection ends, so a node that
dies hands over to the next one that tries. The same connection LISTENs on the outbox channel
(storage.postgres.outbox NOTIFYs it on commit) and runs the relay's queries.

When that connection dies (Postgres restarted, the backend was terminated), asyncpg hands it
back to the pool by itself, before our termination listener runs: from then on every method
of the pool's proxy raises InterfaceError ("connection has been released back to the pool").
So liveness is never asked of a proxy that may have been released (`_alive`), and a lost
connection surfaces as LeadershipLost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from datetime import timedelta

import asyncpg
import msgspec
from asyncpg.pool import PoolConnectionProxy

from protocols.events import EventEnvelope
from storage.postgres.outbox import OUTBOX_CHANNEL
from storage.postgres.pool import holds_session_state

log = logging.getLogger("hubbub.events.relay")

# Any constant shared by every Hubbub process; "outbox" in ASCII. (Migrations use another.)
RELAY_LOCK_KEY = 0x6F7574626F78
_ACQUIRE_TIMEOUT = 10.0
# A node that vanishes without closing its socket (power loss, partition) keeps the lock until
# Postgres notices: probe the leader's connection so that takes about 30 s, not hours.
_KEEPALIVES = ("SET tcp_keepalives_idle = 15; SET tcp_keepalives_interval = 5;"
               " SET tcp_keepalives_count = 3")

_PENDING = """
SELECT seq, envelope::text AS envelope, traceparent FROM outbox
WHERE published_at IS NULL ORDER BY seq LIMIT $1
"""
_MARK = "UPDATE outbox SET published_at = now() WHERE seq = ANY($1::bigint[])"
_BACKLOG = """
SELECT COALESCE(sum(CASE WHEN jsonb_typeof(envelope) = 'array'
                         THEN jsonb_array_length(envelope) ELSE 1 END), 0)::bigint AS pending,
       COALESCE(EXTRACT(EPOCH FROM now() - min(created_at)), 0)::float8 AS oldest
FROM outbox WHERE published_at IS NULL
"""
_PURGE_OUTBOX = """
DELETE FROM outbox WHERE seq IN (
    SELECT seq FROM outbox WHERE published_at < now() - $1::interval
    ORDER BY published_at LIMIT $2)
"""
_PURGE_PROCESSED = """
DELETE FROM processed_events p USING (
    SELECT consumer, event_id FROM processed_events WHERE processed_at < now() - $1::interval
    ORDER BY processed_at LIMIT $2) d
WHERE p.consumer = d.consumer AND p.event_id = d.event_id
"""
# A row holds one event, or an array of events committed together (a batch of chat
# messages, storage/postgres/message_batches.py); each event keeps its own key.
_envelopes = msgspec.json.Decoder(EventEnvelope | list[EventEnvelope])


class LeadershipLost(Exception):
    """The leader's connection closed: the lock is gone with it."""


class PendingEvent(tuple[int, EventEnvelope]):
    """(seq, event), as OutboxStore.pending answers, and the W3C `traceparent` its row was
    written under (None: none), which the relay publishes with it."""

    traceparent: str | None

    def __new__(cls, seq: int, event: EventEnvelope,
                traceparent: str | None = None) -> PendingEvent:
        pending = super().__new__(cls, (seq, event))
        pending.traceparent = traceparent
        return pending


class PostgresOutboxStore:
    def __init__(self, pool: asyncpg.Pool, *, lock_key: int = RELAY_LOCK_KEY) -> None:
        self._pool = pool
        self._lock_key = lock_key
        # The pool connection holding the lock, while leading.
        self._conn: PoolConnectionProxy | None = None
        self._wake = asyncio.Event()

    async def try_lead(self) -> bool:
        if self._conn is not None:
            if _alive(self._conn):
                return True
            await self.resign()
        conn = await self._pool.acquire(timeout=_ACQUIRE_TIMEOUT)
        holds_session_state(conn)  # its release must drop the lock, LISTEN and SETs
        try:
            if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", self._lock_key):
                await self._pool.release(conn)
                return False
            await conn.execute(_KEEPALIVES)
            # Listen before the first read, so no commit can slip between the two unnoticed.
            await conn.add_listener(OUTBOX_CHANNEL, self._notified)
            conn.add_termination_listener(self._terminated)
        except BaseException:
            await self._pool.release(conn)
            raise
        self._conn = conn
        self._wake.clear()
        return True

    async def resign(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        self._wake.set()  # a waiter must not sleep on a connection that is gone
        if not _alive(conn):
            # Dead: the lock and the LISTEN died with its session, and asyncpg hands (or has
            # handed) it back to the pool; release() accepts both.
            with contextlib.suppress(Exception):
                await self._pool.release(conn)
            return
        with contextlib.suppress(Exception):  # it may die meanwhile; release copes with that
            conn.remove_termination_listener(self._terminated)
            await conn.remove_listener(OUTBOX_CHANNEL, self._notified)
            await conn.execute("SELECT pg_advisory_unlock($1)", self._lock_key)
        # Releasing also resets the session (UNLISTEN *, pg_advisory_unlock_all()).
        await self._pool.release(conn)

    async def wait_for_events(self, timeout: float) -> None:
        conn = self._leader()
        if not self._wake.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)
        self._wake.clear()
        if self._conn is not conn or not _alive(conn):
            raise LeadershipLost("the relay's connection closed")

    async def pending(self, limit: int) -> list[tuple[int, EventEnvelope]]:
        rows = await self._leader().fetch(_PENDING, limit)
        events: list[tuple[int, EventEnvelope]] = []
        for row in rows:
            seq, traceparent = row["seq"], row["traceparent"]
            decoded = _envelopes.decode(row["envelope"])
            if isinstance(decoded, list):
                events.extend(PendingEvent(seq, event, traceparent) for event in decoded)
            else:
                events.append(PendingEvent(seq, decoded, traceparent))
        return events

    async def mark_published(self, seqs: Sequence[int]) -> None:
        if seqs:
            await self._leader().execute(_MARK, list(seqs))

    async def backlog(self) -> tuple[int, float]:
        row = await self._leader().fetchrow(_BACKLOG)
        return row["pending"], row["oldest"]

    async def purge(self, *, published_before: timedelta, processed_before: timedelta,
                    limit: int) -> int:
        conn = self._leader()
        outbox = await conn.execute(_PURGE_OUTBOX, published_before, limit)
        processed = await conn.execute(_PURGE_PROCESSED, processed_before, limit)
        return _count(outbox) + _count(processed)

    def _leader(self) -> PoolConnectionProxy:
        if self._conn is None or not _alive(self._conn):
            raise LeadershipLost("not leading")
        return self._conn

    def _notified(self, *_: object) -> None:
        self._wake.set()

    def _terminated(self, *_: object) -> None:
        log.warning("outbox relay connection closed; leadership lost")
        self._wake.set()


def _alive(conn: PoolConnectionProxy) -> bool:
    """Open and still ours. A proxy asyncpg released because its connection died raises
    InterfaceError on every call, is_closed() included."""
    try:
        return not conn.is_closed()
    except asyncpg.InterfaceError:  # released back to the pool: it is closed
        return False


def _count(status: str) -> int:
    # asyncpg returns the command tag, e.g. "DELETE 42".
    return int(status.rsplit(" ", 1)[-1])
