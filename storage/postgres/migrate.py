"""Plain SQL migrations, applied in file-name order under a Postgres advisory lock.

Each file in storage/migrations runs once, in its own transaction, and is recorded in
`schema_migrations`. The advisory lock makes concurrent starts (many pods) safe: one applies,
the others wait and then find nothing left to do.
"""

from __future__ import annotations

import logging
from importlib import resources

import asyncpg

from storage.postgres.pool import holds_session_state

log = logging.getLogger("hubbub.migrate")
# Any constant shared by every Hubbub process; "hubbub" in ASCII.
_LOCK_KEY = 0x687562627562


def migration_files() -> list[tuple[str, str]]:
    """(name, sql) for every bundled migration, sorted by name."""
    folder = resources.files("storage") / "migrations"
    entries = [f for f in folder.iterdir() if f.name.endswith(".sql")]
    return [(f.name, f.read_text(encoding="utf-8")) for f in sorted(entries, key=lambda f: f.name)]


async def migrate(conn: asyncpg.Connection) -> list[str]:
    """Apply pending migrations; returns the names applied by this call."""
    holds_session_state(conn)  # a pool connection's release must drop the lock
    await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_KEY)
    try:
        await conn.execute(
            """CREATE TABLE IF NOT EXISTS schema_migrations (
                   name text PRIMARY KEY,
                   applied_at timestamptz NOT NULL DEFAULT now())"""
        )
        done = {r["name"] for r in await conn.fetch("SELECT name FROM schema_migrations")}
        applied = []
        for name, sql in migration_files():
            if name in done:
                continue
            async with conn.transaction():
                await conn.execute(sql)
                await conn.execute("INSERT INTO schema_migrations (name) VALUES ($1)", name)
            log.info("applied migration %s", name, extra={"migration": name})
            applied.append(name)
        return applied
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_KEY)


async def migrate_dsn(dsn: str) -> list[str]:
    conn = await asyncpg.connect(dsn)
    try:
        return await migrate(conn)
    finally:
        await conn.close()
