"""Releasing pool connections (storage/postgres/pool.py): an open transaction is always rolled
back; a connection marked with holds_session_state gets the full session reset, so its advisory
locks and LISTENs never outlive its user."""

from __future__ import annotations

import asyncpg
import pytest

from storage.postgres.pool import create_pool, holds_session_state

pytestmark = pytest.mark.integration
LOCK = 0x7465737431


async def test_a_marked_connection_gives_its_session_locks_back(database_dsn: str) -> None:
    pool = await create_pool(database_dsn, min_size=1, max_size=1)
    other = await asyncpg.connect(database_dsn)
    try:
        async with pool.acquire() as conn:
            holds_session_state(conn)
            assert await conn.fetchval("SELECT pg_try_advisory_lock($1)", LOCK)
            assert not await other.fetchval("SELECT pg_try_advisory_lock($1)", LOCK)
        # Released (the pool's only connection, so the very same session): the lock is gone.
        assert await other.fetchval("SELECT pg_try_advisory_lock($1)", LOCK)
        assert await other.fetchval("SELECT pg_advisory_unlock($1)", LOCK)
    finally:
        await other.close()
        await pool.close()


async def test_an_open_transaction_is_rolled_back_on_release(database_dsn: str) -> None:
    pool = await create_pool(database_dsn, min_size=1, max_size=1)
    try:
        conn = await pool.acquire()
        await conn.execute("BEGIN")
        await conn.execute("CREATE TEMP TABLE left_open (x int)")
        await pool.release(conn)
        async with pool.acquire() as again:
            assert not again.is_in_transaction()
            exists = await again.fetchval("SELECT to_regclass('pg_temp.left_open')")
            assert exists is None
    finally:
        await pool.close()
