"""The `hubbub` command: serve, worker, migrate, set-role.

`worker` (server.worker) runs the event consumers and the scheduler without the API: it needs
KAFKA_BOOTSTRAP_SERVERS, DATABASE_URL and REDIS_URL (exit 2 naming the first one missing).

Exit codes: 0 done (also after a graceful stop on SIGTERM, SIGINT or SIGHUP); 2 a setting
cannot work (malformed, unreachable past the startup wait, port in use, unusable DATA_DIR):
one line on stderr names the variable; 1 anything else (the log has the traceback).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys

from server.config import ConfigError, Settings, load_settings
from server.logs import configure_logging

log = logging.getLogger("hubbub")


def _serve(settings: Settings) -> int:
    import uvloop

    from server.serve import serve
    from server.worker import check_consumer_role

    check_consumer_role(settings)  # RUN_CONSUMERS=false needs Kafka
    uvloop.run(serve(settings))
    return 0


def _worker(settings: Settings) -> int:
    import uvloop

    from server.worker import run_worker

    uvloop.run(run_worker(settings))
    return 0


async def _with_database(settings: Settings, work):  # type: ignore[no-untyped-def]
    import asyncpg

    from server.resources import postgres_retriable, postgres_target
    from server.startup import StartupError, check_data_dir, describe, wait_for_service
    from storage.postgres.embedded import EmbeddedPostgres
    from storage.postgres.pool import create_pool

    embedded = None
    if settings.database_url is None:
        check_data_dir(settings.data_dir)
        embedded = EmbeddedPostgres(settings.data_dir)
        try:
            dsn = await embedded.start()
        except Exception as exc:
            raise StartupError("DATA_DIR", f"the embedded Postgres in {embedded.pgdata} did "
                                           f"not start: {describe(exc)}") from exc
        variable = "DATA_DIR"
    else:
        dsn, variable = settings.database_url, "DATABASE_URL"
    try:
        pool = await wait_for_service(
            variable, postgres_target(dsn), lambda: create_pool(dsn, min_size=1, max_size=2),
            retriable=postgres_retriable,
            fatal=(asyncpg.PostgresError, asyncpg.InterfaceError, ValueError, OSError))
    except BaseException:
        if embedded:
            await embedded.stop()
        raise
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
    commands.add_parser("worker", help="run the event consumers and the scheduler, without the "
                                       "API (needs KAFKA_BOOTSTRAP_SERVERS)")
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

    from server.startup import StartupError

    try:
        if args.command == "serve":
            return _serve(settings)
        if args.command == "worker":
            return _worker(settings)
        if args.command == "migrate":
            return _migrate(settings)
        return _set_role(settings, args.username, args.role)
    except (StartupError, ConfigError) as exc:
        log.error("cannot start: %s", exc)
        _say(f"hubbub: configuration error: {exc}")
        return 2
    except Exception as exc:
        log.critical("failed: %s", exc, exc_info=True)  # the traceback goes to the log
        _say(f"hubbub: failed: {type(exc).__name__}: {exc} (the log has the details)")
        return 1


def _say(line: str) -> None:
    """One line on stderr; a closed terminal (SIGHUP) must not turn it into a traceback."""
    with contextlib.suppress(OSError):
        print(line.splitlines()[0] if line else line, file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
