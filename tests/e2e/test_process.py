"""The server as a process: configuration errors, embedded defaults, restarts, shutdown."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid

import aiohttp

from tests.support.polling import eventually
from tests.support.server import HubbubProcess


def test_bad_configuration_is_refused_with_a_clear_message() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "server.cli", "serve"],
        env={**os.environ, "PORT": "eighty", "DATABASE_URL": "postgresql://unused/x"},
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 2
    assert "PORT='eighty' is invalid" in result.stderr


async def _signup(session: aiohttp.ClientSession, name: str) -> dict:
    body = {"username": name, "email": f"{name}@example.com", "password": "correct horse 1"}
    async with session.post("/v1/auth/signup", json=body) as response:
        assert response.status == 201, await response.text()
        return await response.json()


async def test_embedded_defaults_keep_data_across_a_restart() -> None:
    """No DATABASE_URL, no REDIS_URL: embedded Postgres under DATA_DIR; data survives."""
    env = {"DATABASE_URL": "", "REDIS_URL": "", "JWT_SECRET": ""}
    first = HubbubProcess(env, ready_timeout=120).start()
    name = f"emb_{uuid.uuid4().hex[:8]}"
    try:
        async with aiohttp.ClientSession(base_url=first.base_url) as session:
            async with session.get("/info") as response:
                adapters = (await response.json())["adapters"]
            assert adapters["database"] == "embedded-postgres"
            assert adapters["redis"] == "in-process"
            created = await _signup(session, name)
    finally:
        assert first.stop() == 0

    # Same DATA_DIR: the same embedded database and the same generated JWT secret.
    second = HubbubProcess({**env, "DATA_DIR": first.env["DATA_DIR"]}, ready_timeout=120)
    second.start()
    try:
        async with aiohttp.ClientSession(base_url=second.base_url) as session:
            login = {"identifier": name, "password": "correct horse 1"}
            async with session.post("/v1/auth/login", json=login) as response:
                assert response.status == 200
                assert (await response.json())["user"]["id"] == created["user"]["id"]
            # A token minted before the restart is still valid: the secret was kept.
            headers = {"Authorization": f"Bearer {created['access_token']}"}
            async with session.get("/v1/auth/me", headers=headers) as response:
                assert response.status == 200
                assert (await response.json())["username"] == name
    finally:
        assert second.stop() == 0


async def test_sigterm_drains_while_in_flight_requests_finish(
    server_dsn: str, redis_url: str
) -> None:
    server = HubbubProcess({
        "DATABASE_URL": server_dsn, "REDIS_URL": redis_url, "DRAIN_SECONDS": "60",
        "REDIS_KEY_PREFIX": f"hubbub-drain:{uuid.uuid4().hex[:8]}:", "JWT_SECRET": "d" * 32,
    }).start()
    try:
        # A request whose body is only half sent: in flight until we send the rest.
        body = b'{"identifier": "nobody_here", "password": "wrong password"}'
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(
            b"POST /v1/auth/login HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
            + body[:10]
        )
        await writer.drain()

        async with aiohttp.ClientSession(base_url=server.base_url) as session:
            server.process.send_signal(signal.SIGTERM)

            async def ready_is_503() -> bool:
                async with session.get("/ready") as response:
                    return response.status == 503
            await eventually(ready_is_503, 20, "/ready to answer 503 while draining")

        # Still draining: the half-sent request completes normally.
        writer.write(body[10:])
        await writer.drain()
        response = await asyncio.wait_for(reader.read(), 20)
        assert response.startswith(b"HTTP/1.1 401"), response
        assert b'"code":"invalid_credentials"' in response
        writer.close()
        server.process.send_signal(signal.SIGTERM)  # a second signal ends the drain early
        assert server.process.wait(30) == 0
        assert any(e.get("msg") == "stopped" for e in server.logs())
    finally:
        server.stop()
