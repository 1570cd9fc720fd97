"""The locust scenarios (loadtest/locustfile.py) against a real `hubbub serve`: a short
headless run with a few users of every class, the smoke shape (one celebrity spike, one
reconnect storm) and LOADTEST_TOUR (each user runs each of its tasks once, then by weight).
Every request and Socket.IO measurement the scenarios make must show up, and none may fail.

Needs the `load` extra (locust, websocket-client: `make .venv/.stamp-load`); skipped without
it. Locust runs in a subprocess: it monkey-patches the standard library with gevent.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import e2e_env
from tests.support.server import HubbubProcess

ROOT = Path(__file__).resolve().parents[2]
SECONDS = 25

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("locust") is None or importlib.util.find_spec("websocket") is None,
    reason="the load extra is not installed (make .venv/.stamp-load)")

# What a load-test server is given (the README's load-testing section): cheap password
# hashing, and per-user limits a few simulated users from one address would otherwise hit.
# e2e_env already lifts the per-address rate limits.
LOAD_SERVER_ENV = {
    "ARGON2_TIME_COST": "1", "ARGON2_MEMORY_KIB": "8192",
    "POSTS_PER_DAY": "100000",
    "SOCKET_EVENTS_PER_SECOND": "1000", "SOCKET_EVENT_BURST": "1000",
    "SCHEDULE_MIN_INTERVAL_SECONDS": "0", "SCHEDULE_MAX_PER_HOUR": "0",
    "SCHEDULE_MAX_PER_DAY": "0",
    "LOG_LEVEL": "WARNING",
}

USERS = {"Reader": 3, "Writer": 2, "Scheduler": 1, "ChatUser": 3, "CallUser": 2}

EXPECTED = {
    # seed data and the spike
    ("POST", "/v1/auth/signup [seed]"), ("POST", "/v1/posts [seed]"),
    ("POST", "/v1/posts [celebrity]"), ("GET", "/v1/feed [spike]"),
    # accounts and the social graph
    ("POST", "/v1/auth/signup"), ("POST", "/v1/auth/refresh"), ("GET", "/v1/auth/me"),
    ("POST", "/v1/users/{id}/follow"), ("DELETE", "/v1/users/{id}/follow"),
    ("GET", "/v1/users/{id}"), ("GET", "/v1/users/{id}/posts"),
    ("GET", "/v1/users/{id}/followers"),
    # reading
    ("GET", "/v1/feed"), ("GET", "/v1/feed/popular"), ("GET", "/v1/posts/{id}"),
    ("GET", "/v1/posts/{id}/comments"),
    ("GET", "/v1/notifications/unread_count"), ("GET", "/v1/notifications"),
    ("POST", "/v1/notifications/read"),
    # writing
    ("POST", "/v1/media"), ("POST", "/v1/posts"), ("POST", "/v1/posts [with media]"),
    ("POST", "/v1/posts [multipart]"), ("POST", "/v1/posts [quote]"),
    ("POST", "/v1/posts/{id}/comments"), ("POST", "/v1/posts/{id}/like"),
    ("DELETE", "/v1/posts/{id}/like"), ("POST", "/v1/posts/{id}/repost"),
    ("DELETE", "/v1/posts/{id}/repost"),
    # scheduling
    ("POST", "/v1/scheduled_posts"), ("GET", "/v1/scheduled_posts/{id}"),
    ("GET", "/v1/scheduled_posts?status="), ("DELETE", "/v1/scheduled_posts/{id}"),
    # chat over REST
    ("POST", "/v1/rooms"), ("POST", "/v1/rooms/{id}/members"), ("GET", "/v1/rooms"),
    ("GET", "/v1/rooms/{id}/messages"),
    # Socket.IO: connections, acks, deliveries, the storm's reconnects
    *(("sio", name) for name in (
        "connect", "reconnect", "room:join ack", "room:join since_seq ack", "room:leave ack",
        "message:send ack", "typing ack", "message:read ack", "presence:set ack",
        "presence:subscribe ack", "auth:refresh ack", "message:new delivery",
        "call:invite ack", "call:accept ack", "call:reject ack", "call:signal ack",
        "call:hangup ack", "call:incoming delivery", "call:accepted delivery",
        "call:rejected delivery", "call:signal delivery", "call:ended delivery")),
}


@pytest.fixture
def load_server(server_dsn: str, redis_url: str) -> Iterator[HubbubProcess]:
    server = HubbubProcess({**e2e_env(server_dsn, redis_url), **LOAD_SERVER_ENV}).start()
    yield server
    assert server.stop() == 0, "hubbub did not shut down cleanly on SIGTERM"


def test_every_task_runs_against_a_real_server_without_failures(
        load_server: HubbubProcess, tmp_path: Path) -> None:
    prefix = tmp_path / "run"
    config = [{"user_class_name": name, "fixed_count": count} for name, count in USERS.items()]
    command = [
        sys.executable, "-m", "locust", "-f", str(ROOT / "loadtest" / "locustfile.py"),
        "--headless", "--host", load_server.base_url, "--users", str(sum(USERS.values())),
        "--spawn-rate", "20", "--run-time", f"{SECONDS}s", "--stop-timeout", "10",
        "--csv", str(prefix), "--only-summary", "--loglevel", "INFO",
        "--config-users", json.dumps(config),
    ]
    env = {**os.environ, "LOCUST_SHAPE": "smoke", "LOADTEST_TOUR": "1", "LOADTEST_PACE": "0.3",
           "LOADTEST_CALL_HOLD": "0.3,1", "LOADTEST_STORM_JITTER": "2"}
    run = subprocess.run(command, cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                         capture_output=True, text=True, timeout=SECONDS + 60)
    output = (run.stdout + run.stderr)[-6000:]

    with (tmp_path / "run_stats.csv").open(newline="") as handle:
        rows = [r for r in csv.DictReader(handle) if r["Name"] != "Aggregated"]
    counts = {(r["Type"], r["Name"]): int(r["Request Count"]) for r in rows}
    failures = {(r["Type"], r["Name"]): int(r["Failure Count"]) for r in rows
                if int(r["Failure Count"])}
    with (tmp_path / "run_exceptions.csv").open(newline="") as handle:
        exceptions = list(csv.DictReader(handle))

    missing = sorted(EXPECTED - {key for key, count in counts.items() if count >= 1})
    assert not missing, f"never ran: {missing}\n{output}"
    # `feed:new delivery` is reported when a followed author posts while a follower's socket
    # is open (the outbox relay and fan-out in between): a 25 s run on a loaded machine does
    # not always see one, so it is not required here (the 5-minute runs do).
    assert not failures, f"failures: {failures}\n{output}"
    assert not exceptions, f"exceptions in the scenarios: {exceptions}\n{output}"
    assert run.returncode == 0, output
