"""`hubbub worker` as a real process against librdkafka's mock Kafka cluster (one of this
module's own: a new consumer group reads its topics from the start), a real Postgres (a
database of its own) and Redis (a key prefix of its own).

A serve app with RUN_CONSUMERS=false (create_app, then server.worker.apply_consumer_role, in
this process) publishes a follow through its outbox and consumes nothing; the worker process,
started afterwards, consumes it (bob gets his `follow` notification) and fans a post out into
a follower's Redis timeline. Its health endpoint serves /ready and /metrics; SIGTERM drains it
and it exits 0."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import pytest_asyncio
import redis.asyncio as redis
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from server.app import create_app
from server.config import load_settings
from server.events.wiring import EVENT_BUS
from server.worker import apply_consumer_role
from storage.redis.timelines import RedisTimelineStore
from tests.support import redis_keys
from tests.support.accounts import Account, signup
from tests.support.databases import create_database, drop_database
from tests.support.kafka_mock import first_broker, mock_kafka_cluster
from tests.support.polling import eventually, wait_until
from tests.support.services import free_port, reachable

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
DEADLINE = 30.0
JWT_SECRET = "worker-test-" + "x" * 32


@pytest.fixture(scope="module")
def kafka() -> Iterator[str]:
    with mock_kafka_cluster() as bootstrap:
        yield bootstrap
    wait_until(lambda: not reachable(*first_broker(bootstrap), timeout=0.2), 10,
               "the mock Kafka cluster to stop listening")


@pytest_asyncio.fixture
async def stores(admin_pg_dsn: str, redis_url: str) -> AsyncIterator[dict[str, str]]:
    dsn = await create_database(admin_pg_dsn, prefix="hubbub_worker")
    prefix = f"hubbub-test:{uuid.uuid4().hex[:10]}:"
    redis_keys.remember(redis_url, prefix)  # deleted at the end of the session
    try:
        yield {"DATABASE_URL": dsn, "REDIS_URL": redis_url, "REDIS_KEY_PREFIX": prefix,
               "JWT_SECRET": JWT_SECRET}
    finally:
        await drop_database(admin_pg_dsn, dsn)


class WorkerProcess:
    """`python -m server.cli worker`, logging JSON lines to a file."""

    def __init__(self, env: dict[str, str], workdir: Path) -> None:
        self.port = free_port()
        self.log_path = workdir / "worker.log"
        self.env = {**os.environ, "HOST": "127.0.0.1", "WORKER_HTTP_PORT": str(self.port),
                    "DATA_DIR": str(workdir / "var"), "NODE_ID": "worker-1",
                    "LOG_LEVEL": "INFO", "PYTHONUNBUFFERED": "1", **env}
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> WorkerProcess:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "server.cli", "worker"], env=self.env, cwd=ROOT,
                stdout=log, stderr=subprocess.STDOUT)
        return self

    def get(self, path: str) -> tuple[int, str]:
        assert self.process is not None
        if self.process.poll() is not None:
            raise RuntimeError(f"worker exited with {self.process.returncode}:\n"
                               f"{self.log_path.read_text()}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}",
                                        timeout=2) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()
        except OSError:
            return 0, ""

    def ready(self) -> bool:
        return self.get("/ready")[0] == 200

    def stop(self, timeout: float = 30.0) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
                raise
        return self.process.returncode

    def logs(self) -> list[dict[str, Any]]:
        entries = []
        for line in self.log_path.read_text().splitlines():
            try:
                entries.append(json.loads(line))
            except ValueError:
                continue
        return entries


async def test_the_worker_consumes_what_a_serve_node_without_consumers_publishes(
        stores: dict[str, str], kafka: str, tmp_path: Path) -> None:
    env = {**stores, "KAFKA_BOOTSTRAP_SERVERS": kafka}
    app = create_app(load_settings({**env, "RUN_CONSUMERS": "false",
                                    "DATA_DIR": str(tmp_path / "serve"),
                                    "RATE_LIMIT_PER_MINUTE": "100000"}))
    apply_consumer_role(app)  # what `hubbub serve` does with RUN_CONSUMERS=false
    worker = WorkerProcess(env, tmp_path)
    client = redis.Redis.from_url(stores["REDIS_URL"])
    conn: asyncpg.Connection | None = None
    try:
        async with TestServer(app) as server, TestClient(server) as http:
            assert app[EVENT_BUS].consumers == []  # type: ignore[attr-defined]
            ann = await signup(http, "wk")  # type: ignore[arg-type]
            bob = await signup(http, "wk")  # type: ignore[arg-type]
            await _feed(http, ann)  # builds ann's (empty) timeline in Redis
            await _call(http, "POST", f"/v1/users/{bob.id}/follow", ann)
            conn = db = await asyncpg.connect(stores["DATABASE_URL"])

            async def follow_published() -> bool:
                return bool(await db.fetchval(
                    "SELECT bool_and(published_at IS NOT NULL) FROM outbox"
                    " WHERE type = 'follow.created'"))

            await eventually(follow_published, DEADLINE, "the relay to publish the follow")
            # In Kafka now, and nobody here consumes it.
            assert (await _unread(http, bob)) == 0

            worker.start()
            await eventually(_async(worker.ready), DEADLINE, "the worker to be ready")

            async def notified() -> bool:
                return await _unread(http, bob) == 1

            await eventually(notified, DEADLINE, "the worker to notify bob of the follow")
            post = await _call(http, "POST", "/v1/posts", bob, {"text": "fanned out"})
            timelines = RedisTimelineStore(client, stores["REDIS_KEY_PREFIX"], length=800,
                                           ttl=3600)

            async def fanned_out() -> bool:
                return post["id"] in (await timelines.page(ann.id, None, 10) or [])

            await eventually(fanned_out, DEADLINE, "the worker's fan-out to ann's timeline")

            status, metrics = worker.get("/metrics")
            assert status == 200
            assert 'hubbub_events_handled_total{consumer="notifications"}' in metrics
            assert 'hubbub_events_handled_total{consumer="feed.fanout"}' in metrics
            served = await (await http.get("/metrics")).text()
            assert 'hubbub_events_handled_total{consumer=' not in served
            status, info = worker.get("/info")
            assert status == 200 and json.loads(info)["adapters"]["events"] == "kafka"
            assert worker.get("/v1/feed")[0] == 404  # no API here

        assert worker.stop() == 0
        logs = worker.logs()
        messages = [entry.get("msg") for entry in logs]
        assert "worker running" in messages and "stopped" in messages
        assert messages.index("received SIGTERM") < messages.index("stopped")
        assert not [e for e in logs if e.get("level") in ("error", "critical")], logs[-20:]
    finally:
        if worker.process is not None and worker.process.poll() is None:
            worker.process.kill()
            worker.process.wait(5)
        if conn is not None:
            await conn.close()
        await client.aclose()


def _async(check: Any) -> Any:
    async def predicate() -> bool:
        return bool(check())
    return predicate


async def _feed(http: TestClient[web.Request, web.Application], who: Account) -> Any:
    async with http.get("/v1/feed", headers=who.auth) as response:
        assert response.status == 200, await response.text()
        return await response.json()


async def _unread(http: TestClient[web.Request, web.Application], who: Account) -> int:
    async with http.get("/v1/notifications/unread_count", headers=who.auth) as response:
        assert response.status == 200, await response.text()
        return (await response.json())["count"]


async def _call(http: TestClient[web.Request, web.Application], method: str, path: str,
                who: Account, body: dict[str, Any] | None = None) -> Any:
    async with http.request(method, path, headers=who.auth, json=body) as response:
        assert response.status in (200, 201, 204), await response.text()
        return await response.json() if response.status != 204 else None
