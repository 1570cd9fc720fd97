"""Startup against real services (issue 9, item 8): Postgres or Redis that start late are
waited for; ones that never answer stop `serve()` within the (shortened) wait, naming their
variable; DATA_DIR and the listening port are checked before anything starts. Also the
embedded Postgres's handle list forgetting dead processes (item 7)."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from server import startup
from server.config import load_settings
from server.resources import postgres_retriable
from server.serve import serve
from server.startup import StartupError, check_data_dir, check_listen, wait_for_service
from storage.postgres.embedded import HANDLE_PIDS, prune_stale_handles
from storage.postgres.pool import DatabaseUnavailable, create_pool
from storage.redis.client import create_redis
from tests.support.polling import eventually
from tests.support.services import free_port
from tests.support.throwaway_postgres import ThrowawayPostgres

pytestmark = pytest.mark.integration

DEADLINE = 20.0


def _watching(retriable, seen: asyncio.Event):  # type: ignore[no-untyped-def]
    """`retriable`, also telling the test that an attempt failed."""
    def check(exc: BaseException) -> bool:
        seen.set()
        return retriable(exc)
    return check


async def test_a_postgres_that_starts_late_is_waited_for() -> None:
    pg = await asyncio.to_thread(lambda: ThrowawayPostgres().init())  # not started: refused
    try:
        failed = asyncio.Event()
        connecting = asyncio.create_task(wait_for_service(
            "DATABASE_URL", "test", lambda: create_pool(pg.dsn, min_size=1, max_size=1),
            retriable=_watching(postgres_retriable, failed), wait=DEADLINE))
        await asyncio.wait_for(failed.wait(), DEADLINE)
        assert not connecting.done()
        await asyncio.to_thread(pg.start)
        pool = await asyncio.wait_for(connecting, DEADLINE)
        assert await pool.fetchval("SELECT 1") == 1
        await pool.close()
        await asyncio.to_thread(pg.stop)
        with pytest.raises(DatabaseUnavailable):  # what a stopped server is, to the pool
            await create_pool(pg.dsn, min_size=1, max_size=1)
    finally:
        await asyncio.to_thread(pg.cleanup)


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server")
async def test_a_redis_that_starts_late_is_waited_for() -> None:
    from server.resources import redis_retriable

    port = free_port()
    client = create_redis(f"redis://127.0.0.1:{port}/0")
    server: asyncio.subprocess.Process | None = None
    try:
        failed = asyncio.Event()
        pinging = asyncio.create_task(wait_for_service(
            "REDIS_URL", "test", client.ping, retriable=_watching(redis_retriable, failed),
            wait=DEADLINE))
        await asyncio.wait_for(failed.wait(), DEADLINE)
        server = await asyncio.create_subprocess_exec(
            shutil.which("redis-server") or "redis-server", "--bind", "127.0.0.1", "--port",
            str(port), "--save", "", "--appendonly", "no",
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
        assert await asyncio.wait_for(pinging, DEADLINE)
    finally:
        await client.aclose()
        if server is not None:  # ours: stopped by its pid
            server.terminate()
            await asyncio.wait_for(server.wait(), 10)


UNREACHABLE = {
    "DATABASE_URL": {"DATABASE_URL": "postgresql://postgres@127.0.0.1:{port}/x"},
    "REDIS_URL": {"REDIS_URL": "redis://127.0.0.1:{port}/0"},
    "KAFKA_BOOTSTRAP_SERVERS": {"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:{port}"},
    "S3_ENDPOINT_URL": {"S3_ENDPOINT_URL": "http://127.0.0.1:{port}",
                        "S3_ACCESS_KEY_ID": "a", "S3_SECRET_ACCESS_KEY": "b"},
}


@pytest.mark.parametrize("variable", UNREACHABLE)
async def test_a_service_that_never_answers_stops_startup_naming_it(
        variable: str, database_dsn: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(startup, "SERVICE_WAIT_SECONDS", 0.5)
    closed = free_port()  # nothing listens there
    overrides = {k: v.format(port=closed) for k, v in UNREACHABLE[variable].items()}
    settings = load_settings({
        "DATABASE_URL": database_dsn, "JWT_SECRET": "x" * 32, "PORT": str(free_port()),
        "DATA_DIR": str(tmp_path), **overrides})
    with pytest.raises(StartupError) as info:
        await asyncio.wait_for(serve(settings), DEADLINE)
    assert info.value.variable == variable
    assert "cannot be reached" in str(info.value) and "gave up after 0.5 s" in str(info.value)


def test_data_dir_must_be_a_writable_directory(tmp_path: Path) -> None:
    check_data_dir(str(tmp_path / "new" / "var"))  # created
    a_file = tmp_path / "file"
    a_file.write_text("")
    with pytest.raises(StartupError) as info:
        check_data_dir(str(a_file))
    assert info.value.variable == "DATA_DIR"


def test_a_port_in_use_is_named() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        with pytest.raises(StartupError) as info:
            check_listen("127.0.0.1", busy.getsockname()[1])
    assert info.value.variable == "PORT" and "already in use" in str(info.value)
    with pytest.raises(StartupError) as info:
        check_listen("192.0.2.1", 8080)  # TEST-NET-1: never an address of this machine
    assert info.value.variable == "HOST"


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_dead_processes_are_dropped_from_the_embedded_postgres_handle_list(
        tmp_path: Path) -> None:
    dead = _dead_pid()
    (tmp_path / HANDLE_PIDS).write_text(json.dumps([dead, os.getpid()]))
    assert prune_stale_handles(tmp_path) == [dead]
    assert json.loads((tmp_path / HANDLE_PIDS).read_text()) == [os.getpid()]
    assert prune_stale_handles(tmp_path) == []  # nothing left to drop
    assert prune_stale_handles(tmp_path / "missing") == []


async def test_a_signal_while_waiting_for_a_service_stops_cleanly(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    """SIGTERM during startup (here: waiting for a Postgres that does not answer) abandons
    the startup and returns, instead of waiting out SERVICE_WAIT_SECONDS."""
    caplog.set_level(logging.WARNING, logger="hubbub.startup")
    monkeypatch.setattr(startup, "SERVICE_WAIT_SECONDS", 60.0)
    settings = load_settings({
        "DATABASE_URL": f"postgresql://postgres@127.0.0.1:{free_port()}/x",
        "JWT_SECRET": "x" * 32, "PORT": str(free_port()), "DATA_DIR": str(tmp_path)})
    serving = asyncio.create_task(serve(settings))

    async def waiting() -> bool:
        assert not serving.done(), serving
        return any(r.getMessage() == "waiting for DATABASE_URL" for r in caplog.records)

    await eventually(waiting, DEADLINE, "startup to wait for Postgres")
    os.kill(os.getpid(), signal.SIGTERM)  # serve() handles it (loop.add_signal_handler)
    await asyncio.wait_for(serving, DEADLINE)  # returns: a stop, not a failure
