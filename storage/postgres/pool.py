"""The asyncpg connection pool, with JSON codecs and UTC timestamps.

Releasing a connection does not run asyncpg's session reset (`SELECT pg_advisory_unlock_all();
CLOSE ALL; UNLISTEN *; RESET ALL`), a round trip and its Postgres CPU after every query (8% of
the server's CPU while sockets connect, py-spy): asyncpg still rolls back an open transaction,
and Hubbub keeps session state (session advisory locks, LISTEN, SET) only on the connections
that call `holds_session_state` (the outbox relay's leader, the scheduler's listener, the
migrations), whose release runs the full reset.
"""

from __future__ import annotations

from typing import Any

import asyncpg
import msgspec

from storage.errors import StorageError

# Backends (by server pid) whose session holds state beyond a transaction. A pid that matches
# by chance (another server's) only costs a needless reset.
_SESSION_STATE: set[int] = set()

# Seconds to open one connection (asyncpg's default is 60: far too long to keep a request
# waiting while Postgres is unreachable).
CONNECT_TIMEOUT = 10.0


class DatabaseUnavailable(StorageError):
    """No connection to Postgres could be opened: it is down, restarting, still starting up,
    out of connection slots, or unreachable. Retrying later may succeed; `__cause__` is the
    driver's error."""


# Errors of opening a connection that say "not now" rather than "never" (a wrong password or
# database name is not one of them and propagates as it is).
_CONNECT_FAILURES = (
    OSError,  # refused, reset, unreachable, no socket file, DNS
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.TooManyConnectionsError,
)


async def _connect(*args: Any, **kwargs: Any) -> asyncpg.Connection:
    kwargs.setdefault("timeout", CONNECT_TIMEOUT)
    try:
        return await asyncpg.connect(*args, **kwargs)
    except _CONNECT_FAILURES as exc:
        raise DatabaseUnavailable(f"cannot connect to Postgres: {_describe(exc)}") from exc


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


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


def holds_session_state(conn: Any) -> None:
    """Mark a pool connection whose session takes advisory locks, LISTENs or SETs: its
    release runs the full reset."""
    _SESSION_STATE.add(conn.get_server_pid())


async def _reset(conn: asyncpg.Connection) -> None:
    # asyncpg has rolled back an open transaction and dropped its listeners already.
    pid = conn.get_server_pid()
    if pid in _SESSION_STATE:
        _SESSION_STATE.discard(pid)
        await conn.execute(conn.get_reset_query())


async def create_pool(dsn: str, *, min_size: int = 2, max_size: int = 20) -> asyncpg.Pool:
    """Open a pool; every session runs in UTC so timestamps round-trip unchanged.

    A connection that cannot be opened raises DatabaseUnavailable (from create_pool and from
    every later acquire), so callers can tell "Postgres is down" from any other failure."""
    pool = await asyncpg.create_pool(
        dsn, min_size=min_size, max_size=max_size, init=_init_connection, connect=_connect,
        reset=_reset,
        server_settings={"timezone": "UTC", "application_name": "hubbub"},
        command_timeout=30,
    )
    assert pool is not None
    return pool
