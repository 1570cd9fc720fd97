"""Postgres adapter of server.scheduling.storage_ports.ScheduleSignals: LISTEN on the
scheduling channel, on one connection taken from the pool for as long as it listens.

When that connection dies, asyncpg hands it back to the pool by itself (see
storage/postgres/outbox_relay.py); `healthy()` turns False and the scheduler listens again on
its next safety tick. Notifications sent meanwhile are lost, which is why the scheduler also
looks on its own.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from storage.postgres.pool import holds_session_state
from storage.postgres.schedule_rows import SCHEDULE_CHANNEL

log = logging.getLogger("hubbub.scheduling.listener")
_ACQUIRE_TIMEOUT = 10.0

Callback = Callable[[], None]  # runs on the event loop; must not block


class PostgresScheduleSignals:
    def __init__(self, pool: asyncpg.Pool, channel: str = SCHEDULE_CHANNEL) -> None:
        self._pool = pool
        self._channel = channel
        self._conn: PoolConnectionProxy | None = None
        self._callback: Callback | None = None

    async def listen(self, callback: Callback) -> None:
        await self.close()
        conn = await self._pool.acquire(timeout=_ACQUIRE_TIMEOUT)
        holds_session_state(conn)  # its release must UNLISTEN
        try:
            await conn.add_listener(self._channel, self._notified)
            conn.add_termination_listener(self._terminated)
        except BaseException:
            await self._pool.release(conn)
            raise
        self._callback = callback
        self._conn = conn

    def healthy(self) -> bool:
        return self._conn is not None and _alive(self._conn)

    async def notify(self) -> None:
        """Wake every node's scheduler (outside a transaction; tests and tools)."""
        await self._pool.execute(f"NOTIFY {self._channel}")

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        if _alive(conn):
            with contextlib.suppress(Exception):  # it may die meanwhile; release copes
                conn.remove_termination_listener(self._terminated)
                await conn.remove_listener(self._channel, self._notified)
        with contextlib.suppress(Exception):
            await self._pool.release(conn)

    def _notified(self, *_: object) -> None:
        if self._callback is not None:
            self._callback()

    def _terminated(self, *_: object) -> None:
        log.warning("the scheduling LISTEN connection closed; listening again on the next tick")


def _alive(conn: PoolConnectionProxy) -> bool:
    try:
        return not conn.is_closed()
    except asyncpg.InterfaceError:  # released back to the pool: it is closed
        return False
