"""A throwaway database per test session (or per server), created and dropped here."""

from __future__ import annotations

import uuid
from urllib.parse import urlparse, urlunparse

import asyncpg


def with_database(dsn: str, database: str) -> str:
    """The same DSN pointing at another database (works for host and socket DSNs)."""
    parsed = urlparse(dsn)
    return urlunparse(parsed._replace(path=f"/{database}"))


async def create_database(admin_dsn: str, prefix: str = "hubbub_test") -> str:
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return with_database(admin_dsn, name)


async def drop_database(admin_dsn: str, dsn: str) -> None:
    name = urlparse(dsn).path.lstrip("/")
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()
