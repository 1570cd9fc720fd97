"""Faults seen from outside a real `hubbub serve` process (issue 9, items 5-8): Postgres going
down under a running server, SIGTERM during a streaming upload, SIGHUP in embedded mode with
a stale handle pid, and settings that cannot work."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
import time
import uuid
from pathlib import Path

import aiohttp
import psutil

from tests.e2e.conftest import e2e_env
from tests.e2e.live import Live
from tests.support.accounts import PASSWORD, signup
from tests.support.images import encode, marked
from tests.support.polling import eventually, wait_until
from tests.support.server import HubbubProcess
from tests.support.services import free_port, reachable
from tests.support.throwaway_postgres import throwaway_postgres

DEADLINE = 20.0
ROOT = Path(__file__).resolve().parents[2]


def _no_unhandled_errors(server: HubbubProcess) -> None:
    """Nothing answered as a bug: no 500 and no failed gateway handler (the actor runtime
    still logs an actor's crash, as it does for every crash)."""
    bad = [e for e in server.logs() if "unhandled error" in e.get("msg", "")
           or "gateway handler" in e.get("msg", "")]
    assert not bad, bad[:3]


async def test_postgres_down_is_503_unavailable_and_recovers(redis_url: str) -> None:
    """Item 5: with its Postgres stopped, REST answers 503 `unavailable` with Retry-After and
    sockets ack `unavailable` with `retry_after` (never 500 / `internal`); once Postgres is back
    both work again without a restart."""
    with throwaway_postgres() as pg:
        server = HubbubProcess({**e2e_env(pg.dsn, redis_url), "REDIS_URL": ""}).start()
        try:
            async with aiohttp.ClientSession(base_url=server.base_url) as http:
                ann, bob = await signup(http, "pgdown"), await signup(http, "pgdown")
                async with http.post("/v1/rooms", headers=ann.auth, json={
                        "kind": "direct", "member_ids": [bob.id]}) as response:
                    assert response.status == 201, await response.text()
                    room = (await response.json())["id"]
                live = await Live.connect(server.base_url, ann.token)
                try:
                    await live.ok("room:join", {"room_id": room})
                    pg.stop()

                    for method, path, body in (
                            ("GET", "/v1/auth/me", None),
                            ("POST", "/v1/auth/login",
                             {"identifier": ann.username, "password": PASSWORD}),
                            ("GET", f"/v1/rooms/{room}/messages", None)):
                        async with http.request(method, path, headers=ann.auth,
                                                json=body) as response:
                            problem = await response.json(content_type=None)
                            assert response.status == 503, (path, problem)
                            assert problem["code"] == "unavailable", (path, problem)
                            assert int(response.headers["Retry-After"]) >= 1
                    async with http.get("/ready") as response:
                        assert response.status == 503
                        assert (await response.json())["checks"]["database"] != "ok"

                    ack = await live.call("message:send", {
                        "room_id": room, "client_id": uuid.uuid4().hex, "text": "anyone?"})
                    assert ack["ok"] is False, ack
                    assert ack["error"]["code"] == "unavailable", ack
                    assert ack["error"]["retry_after"] > 0

                    pg.start()  # back: the pool reconnects by itself

                    async def me_works() -> bool:
                        async with http.get("/v1/auth/me", headers=ann.auth) as response:
                            return response.status == 200

                    await eventually(me_works, DEADLINE, "REST to work again")
                    ack = await live.call("message:send", {
                        "room_id": room, "client_id": uuid.uuid4().hex, "text": "back"})
                    assert ack["ok"] is True, ack
                finally:
                    await live.close()
        finally:
            assert server.stop() == 0
        _no_unhandled_errors(server)


def _multipart_png(boundary: str) -> bytes:
    image = encode(marked(64, 48), "PNG")
    return (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
            f"filename=\"a.png\"\r\nContent-Type: image/png\r\n\r\n").encode() + image + \
        f"\r\n--{boundary}--\r\n".encode()


async def _metric(http: aiohttp.ClientSession, name: str) -> float:
    async with http.get("/metrics") as response:
        for line in (await response.text()).splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")


async def test_sigterm_lets_a_streaming_upload_finish(server_dsn: str, redis_url: str) -> None:
    """Item 6: default DRAIN_SECONDS=0 and SHUTDOWN_TIMEOUT=30. SIGTERM arrives while an
    upload is half sent: the listener closes at once, but the upload keeps being read and
    completes (201), and the process exits right after it, not 30 s later."""
    server = HubbubProcess({**e2e_env(server_dsn, redis_url), "REDIS_URL": ""}).start()
    try:
        async with aiohttp.ClientSession(base_url=server.base_url) as http:
            ann = await signup(http, "upload")
            boundary = uuid.uuid4().hex
            body = _multipart_png(boundary)
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(
                b"POST /v1/media HTTP/1.1\r\nHost: test\r\n"
                + f"Authorization: Bearer {ann.token}\r\n".encode()
                + f"Content-Type: multipart/form-data; boundary={boundary}\r\n".encode()
                + f"Content-Length: {len(body)}\r\n\r\n".encode() + body[:100])
            await writer.drain()

            async def upload_in_flight() -> bool:  # the /metrics request counts itself
                return await _metric(http, "hubbub_http_requests_in_flight") >= 2

            await eventually(upload_in_flight, DEADLINE, "the upload to be in flight")

        signalled = time.monotonic()
        server.send_signal(signal.SIGTERM)
        wait_until(lambda: not reachable("127.0.0.1", server.port, 0.2), DEADLINE,
                   "the listener to close")
        writer.write(body[100:])  # the rest of the body, after the shutdown began
        await writer.drain()
        response = await asyncio.wait_for(reader.read(), DEADLINE)
        writer.close()
        assert response.startswith(b"HTTP/1.1 201"), response[:300]
        assert b'"content_type":"image/png"' in response
        code = await asyncio.to_thread(server.process.wait, DEADLINE)
        took = time.monotonic() - signalled
        assert code == 0
        assert took < 10, f"exit took {took:.1f}s after SIGTERM"
        logs = server.logs()
        assert any(e.get("msg") == "waiting for requests in flight" for e in logs)
        assert not any("still in flight" in e.get("msg", "") for e in logs)
    finally:
        server.stop()


def _handle_pids(pgdata: Path) -> list[int]:
    return json.loads((pgdata / ".handle_pids.json").read_text() or "[]")


def _postmaster(pgdata: Path) -> int | None:
    try:
        return int((pgdata / "postmaster.pid").read_text().split()[0])
    except (FileNotFoundError, ValueError, IndexError):
        return None


def _running(pid: int) -> bool:
    """Alive; a process that exited but was not reaped yet (a zombie: an orphaned postmaster's
    new parent may never reap it) is not."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _stop_leftover_postgres(pgdata: Path) -> None:
    """Never leave the embedded Postgres of this test running (it was started by the servers
    this test started): a fast shutdown of its postmaster, by pid."""
    pid = _postmaster(pgdata)
    if pid is not None and _running(pid):
        os.kill(pid, signal.SIGINT)
        wait_until(lambda: not _running(pid), 20, "the leftover postgres to stop")


def test_sighup_stops_cleanly_and_a_crashed_process_does_not_pin_postgres() -> None:
    """Item 7: a process killed with -9 leaves its pid in the embedded Postgres's handle list
    (and Postgres running); the next server on that DATA_DIR must still stop Postgres when it
    stops, and closing its terminal (SIGHUP) is a graceful stop, exit 0."""
    env = {"DATABASE_URL": "", "REDIS_URL": "", "JWT_SECRET": ""}
    first = HubbubProcess(env, ready_timeout=120).start()
    pgdata = Path(first.env["DATA_DIR"]).resolve() / "postgres"
    try:
        postmaster = _postmaster(pgdata)
        assert postmaster is not None and _running(postmaster)
        crashed = first.process.pid
        assert first.kill() == -signal.SIGKILL
        assert crashed in _handle_pids(pgdata) and _running(postmaster)

        second = HubbubProcess({**env, "DATA_DIR": first.env["DATA_DIR"]}, ready_timeout=120)
        second.start()
        started = time.monotonic()
        second.send_signal(signal.SIGHUP)
        assert second.process.wait(DEADLINE) == 0
        took = time.monotonic() - started
        assert any(e.get("msg") == "stopped" for e in second.logs())
        assert not _running(postmaster), "the embedded Postgres was left running"
        assert _postmaster(pgdata) is None
        assert _handle_pids(pgdata) == []
        assert took < 15, f"SIGHUP to exit took {took:.1f}s"
    finally:
        _stop_leftover_postgres(pgdata)


BAD_SETTINGS: dict[str, tuple[dict[str, str], str]] = {
    "unknown database": ({"DATABASE_URL": "{admin}/hubbub_no_such_db"}, "DATABASE_URL"),
    "not a Redis URL": ({"REDIS_URL": "http://redis:6379"}, "REDIS_URL"),
    "malformed KAFKA_BOOTSTRAP_SERVERS": ({"KAFKA_BOOTSTRAP_SERVERS": "kafka:9092,,"},
                                          "KAFKA_BOOTSTRAP_SERVERS"),
    "not an S3 URL": ({"S3_ENDPOINT_URL": "minio:9000"}, "S3_ENDPOINT_URL"),
    "port in use": ({"PORT": "{busy_port}"}, "PORT"),
    "DATA_DIR is a file": ({"DATA_DIR": "{a_file}", "JWT_SECRET": ""}, "DATA_DIR"),
}


async def _run_cli(env: dict[str, str]) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "server.cli", "serve", env=env, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        cwd=ROOT)
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode(errors="replace"), err.decode(errors="replace")


async def test_settings_that_cannot_work_are_one_line_and_exit_2(
        server_dsn: str, admin_pg_dsn: str, tmp_path: Path) -> None:
    """Item 8: each bad setting stops the server with one line on stderr naming the variable,
    exit code 2, and no traceback anywhere (all cases run side by side)."""
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    a_file = tmp_path / "not-a-dir"
    a_file.write_text("")
    values = {"admin": admin_pg_dsn.rsplit("/", 1)[0], "busy_port": str(busy.getsockname()[1]),
              "a_file": str(a_file)}
    base = {**os.environ, "HOST": "127.0.0.1", "PORT": str(free_port()),
            "DATA_DIR": str(tmp_path / "var"), "DATABASE_URL": server_dsn, "REDIS_URL": "",
            "JWT_SECRET": "s" * 32, "LOG_LEVEL": "INFO", "PYTHONUNBUFFERED": "1"}

    def env_for(overrides: dict[str, str]) -> dict[str, str]:
        return {**base, **{k: v.format(**values) for k, v in overrides.items()}}

    try:
        results = await asyncio.gather(*(_run_cli(env_for(overrides))
                                         for overrides, _ in BAD_SETTINGS.values()))
    finally:
        busy.close()
    for (case, (_, variable)), (code, out, err) in zip(BAD_SETTINGS.items(), results,
                                                       strict=True):
        lines = [line for line in err.splitlines() if line.strip()]
        assert code == 2, (case, code, err, out[-2000:])
        assert len(lines) == 1, (case, err)
        assert lines[0].startswith(f"hubbub: configuration error: {variable}: "), (case, err)
        assert "Traceback" not in out + err, (case, out[-2000:])
        assert all(_is_json(line) for line in out.splitlines() if line.strip()), (case, out)


def _is_json(line: str) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False

