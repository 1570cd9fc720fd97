"""The `hubbub` command: serve, migrate, set-role."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from server.config import ConfigError, Settings, load_settings
from server.logs import configure_logging

log = logging.getLogger("hubbub")


def _serve(settings: Settings) -> int:
    import uvloop

    from server.serve import serve

    uvloop.run(serve(settings))
    return 0


async def _with_database(settings: Settings, work):  # type: ignore[no-untyped-def]
    from storage.postgres.embedded import EmbeddedPostgres
    from storage.postgres.pool import create_pool

    embedded = EmbeddedPostgres(settings.data_dir) if settings.database_url is None else None
    dsn = await embedded.start() if embedded else settings.database_url
    assert dsn is not None
    pool = await create_pool(dsn, min_size=1, max_size=2)
    try:
        async with pool.acquire() as conn:
            return await work(conn)
    finally:
        await pool.close()
        if embedded:
            await embedded.stop()


def _migrate(settings: Settings) -> int:
    from storage.postgres.migrate import migrate

    applied = asyncio.run(_with_database(settings, migrate))
    log.info("migrations applied: %s", ", ".join(applied) or "none pending")
    return 0


def _set_role(settings: Settings, username: str, role: str) -> int:
    from storage.postgres.migrate import migrate

    async def work(conn):  # type: ignore[no-untyped-def]
        await migrate(conn)
        return await conn.fetchval(
            "UPDATE users SET role = $2, updated_at = now() WHERE lower(username) = lower($1)"
            " RETURNING id", username, role)

    user_id = asyncio.run(_with_database(settings, work))
    if user_id is None:
        print(f"no user named {username!r}", file=sys.stderr)
        return 1
    log.info("role set", extra={"user_id": user_id, "role": role})
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hubbub", description="Hubbub realtime social backend")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("serve", help="serve REST and Socket.IO (configured by environment)")
    commands.add_parser("migrate", help="apply pending database migrations and exit")
    role = commands.add_parser("set-role", help="grant a role to a user (bootstraps admins)")
    role.add_argument("username")
    role.add_argument("role", choices=["user", "moderator", "admin"])
    args = parser.parse_args(argv)

    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"hubbub: configuration error: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, settings.effective_node_id)

    if args.command == "serve":
        return _serve(settings)
    if args.command == "migrate":
        return _migrate(settings)
    return _set_role(settings, args.username, args.role)


if __name__ == "__main__":
    sys.exit(main())
