"""The asyncpg connection pool, with JSON codecs and UTC timestamps."""

from __future__ import annotations

import asyncpg
import msgspec


async def _init_connection(conn: asyncpg.Connection) -> None:
    # Ids are strings everywhere above storage; convert at the boundary.
    await conn.set_type_codec(
        "uuid", schema="pg_catalog", encoder=str, decoder=str, format="text"
    )
    for name in ("json", "jsonb"):
        await conn.set_type_codec(
            name, schema="pg_catalog", encoder=lambda v: msgspec.json.encode(v).decode(),
            decoder=msgspec.json.decode, format="text",
        )


async def create_pool(dsn: str, *, min_size: int = 2, max_size: int = 20) -> asyncpg.Pool:
    """Open a pool; every session runs in UTC so timestamps round-trip unchanged."""
    pool = await asyncpg.create_pool(
        dsn, min_size=min_size, max_size=max_size, init=_init_connection,
        server_settings={"timezone": "UTC", "application_name": "hubbub"},
        command_timeout=30,
    )
    assert pool is not None
    return pool
