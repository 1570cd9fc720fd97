"""`make bench`: load test a throwaway local server and print what it sustained.

Starts `hubbub serve` on a free 127.0.0.1 port against a fresh database (created on the local
Postgres and dropped afterwards, or the embedded Postgres in a temporary DATA_DIR when no
Postgres answers), runs loadtest/locustfile.py headless for a bounded time, prints requests/s
and p50/p95/p99 per route with the server's memory, then SIGTERMs the server and cleans up.

Environment: BENCH_USERS (50), BENCH_SECONDS (30), BENCH_SPAWN_RATE (users started per second,
default BENCH_USERS / 5), BENCH_LOG_LEVEL (server LOG_LEVEL, WARNING: per-request access logs
would cost the server CPU the benchmark is measuring), BENCH_POSTGRES_URL (admin DSN,
postgresql://postgres@127.0.0.1:5432/postgres), BENCH_REDIS_URL (redis://127.0.0.1:6379/0;
used when it answers, under a throwaway key prefix), and LOADTEST_WAIT ("min,max" seconds
each simulated user pauses between requests, default "0.1,0.5"; read by the locustfile).
"""

from __future__ import annotations

import asyncio
import csv
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
from urllib.parse import urlparse, urlunparse

import asyncpg
import psutil
import redis

ROOT = Path(__file__).resolve().parents[1]
LOCUSTFILE = Path(__file__).resolve().with_name("locustfile.py")
READY_DEADLINE = 120.0  # first start of the embedded Postgres runs initdb
STOP_DEADLINE = 60.0
UNLIMITED = "1000000"


@dataclass
class Options:
    users: int
    seconds: int
    spawn_rate: float
    log_level: str
    postgres_url: str
    redis_url: str
    wait: str  # LOADTEST_WAIT, passed through to the locustfile

    @classmethod
    def from_env(cls) -> Options:
        users = int(os.environ.get("BENCH_USERS", "50"))
        return cls(
            users=users,
            seconds=int(os.environ.get("BENCH_SECONDS", "30")),
            spawn_rate=float(os.environ.get("BENCH_SPAWN_RATE", "0") or 0) or max(1, users / 5),
            log_level=os.environ.get("BENCH_LOG_LEVEL", "WARNING"),
            postgres_url=os.environ.get(
                "BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
            redis_url=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0"),
            wait=os.environ.get("LOADTEST_WAIT", "0.1,0.5"),
        )


@dataclass
class Resources:
    """Everything the run created, so `cleanup` can remove exactly that."""

    workdir: Path
    database_dsn: str | None = None
    redis_prefix: str | None = None
    notes: list[str] = field(default_factory=list)


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


async def create_database(admin_dsn: str) -> str:
    name = f"hubbub_bench_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return urlunparse(urlparse(admin_dsn)._replace(path=f"/{name}"))


async def drop_database(admin_dsn: str, dsn: str) -> None:
    name = urlparse(dsn).path.lstrip("/")
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def server_env(options: Options, res: Resources, port: int) -> dict[str, str]:
    env = {
        **os.environ,
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "DATA_DIR": str(res.workdir / "var"),
        "LOG_LEVEL": options.log_level,
        "NODE_ID": "bench",
        "JWT_SECRET": secrets.token_hex(32),
        "DATABASE_URL": "",
        "REDIS_URL": "",
        "KAFKA_BOOTSTRAP_SERVERS": "",
        "S3_ENDPOINT_URL": "",
        "RATE_LIMIT_PER_MINUTE": UNLIMITED,
        # Every simulated user signs up from the same address within seconds.
        "RATE_LIMIT_ROUTES": f"auth.signup={UNLIMITED},auth.login={UNLIMITED}",
        "PYTHONUNBUFFERED": "1",
    }
    if reachable(options.postgres_url, 5432):
        res.database_dsn = asyncio.run(create_database(options.postgres_url))
        env["DATABASE_URL"] = res.database_dsn
        res.notes.append(f"database: fresh database on {urlparse(options.postgres_url).netloc}")
    else:
        res.notes.append("database: embedded Postgres in a temporary DATA_DIR")
    if reachable(options.redis_url, 6379):
        res.redis_prefix = f"hubbub-bench:{uuid.uuid4().hex[:8]}:"
        env["REDIS_URL"] = options.redis_url
        env["REDIS_KEY_PREFIX"] = res.redis_prefix
        res.notes.append(f"redis: {urlparse(options.redis_url).netloc}")
    else:
        res.notes.append("redis: none (in-process adapters)")
    return env


def wait_ready(process: subprocess.Popen[bytes], base_url: str, log_path: Path) -> None:
    """Poll /ready until it answers 200, the process dies, or the deadline passes."""
    deadline = time.monotonic() + READY_DEADLINE
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"hubbub exited with {process.returncode}:\n{tail(log_path)}")
        try:
            with urllib.request.urlopen(f"{base_url}/ready", timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        # Not a test: a short pause between polls of a server we cannot be notified by.
        time.sleep(0.1)
    raise TimeoutError(f"hubbub not ready after {READY_DEADLINE:.0f}s:\n{tail(log_path)}")


def tail(path: Path, lines: int = 30) -> str:
    if not path.exists():
        return "(no output)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def run_locust(options: Options, base_url: str, res: Resources,
               server: psutil.Process) -> tuple[int, int]:
    """Run locust to completion; returns (its exit code, the server's peak RSS in bytes)."""
    log_path = res.workdir / "locust.log"
    command = [
        sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless",
        "--host", base_url, "--users", str(options.users),
        "--spawn-rate", str(options.spawn_rate), "--run-time", f"{options.seconds}s",
        "--stop-timeout", "5", "--csv", str(res.workdir / "bench"), "--only-summary",
        "--exit-code-on-error", "0", "--loglevel", "WARNING",
    ]
    peak = 0
    deadline = time.monotonic() + options.seconds + 120
    with log_path.open("wb") as log:
        locust = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL, cwd=ROOT,
                                  env={**os.environ, "LOADTEST_WAIT": options.wait})
        try:
            while True:
                peak = max(peak, rss(server))
                try:
                    code = locust.wait(timeout=1)  # sample the server's RSS once a second
                    break
                except subprocess.TimeoutExpired:
                    if time.monotonic() > deadline:
                        raise TimeoutError("locust did not stop by itself") from None
        finally:
            if locust.poll() is None:
                locust.kill()
                locust.wait()
    if code != 0:
        print(f"locust exited with {code}:\n{tail(log_path)}", file=sys.stderr)
    return code, peak


def rss(process: psutil.Process) -> int:
    try:
        return process.memory_info().rss
    except psutil.Error:
        return 0


def read_stats(res: Resources) -> list[dict[str, str]]:
    path = res.workdir / "bench_stats.csv"
    if not path.exists():
        return []
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def read_failures(res: Resources) -> list[dict[str, str]]:
    path = res.workdir / "bench_failures.csv"
    if not path.exists():
        return []
    with path.open(newline="") as handle:
        return sorted(csv.DictReader(handle), key=lambda r: -int(r["Occurrences"]))


def print_report(options: Options, res: Resources, stats: list[dict[str, str]],
                 failures: list[dict[str, str]], rss_end: int, rss_peak: int) -> None:
    print(f"\nHubbub benchmark: {options.users} users for {options.seconds}s "
          f"(spawn rate {options.spawn_rate:g}/s, pauses {options.wait}s, "
          f"server LOG_LEVEL={options.log_level})")
    for note in res.notes:
        print(f"  {note}")
    header = f"{'method':<7} {'route':<32} {'reqs':>8} {'fails':>6} {'req/s':>8} " \
             f"{'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7}"
    print("\n" + header + "\n" + "-" * len(header))
    for row in stats:
        aggregated = row["Name"] == "Aggregated"
        if aggregated:
            print("-" * len(header))
        print(f"{row['Type'] if not aggregated else '':<7} {row['Name']:<32} "
              f"{row['Request Count']:>8} {row['Failure Count']:>6} "
              f"{float(row['Requests/s']):>8.1f} {row['50%']:>7} {row['95%']:>7} "
              f"{row['99%']:>7}")
    mib = 1024 * 1024
    print(f"\nserver RSS: {rss_end / mib:.1f} MiB at the end, {rss_peak / mib:.1f} MiB peak "
          "(the hubbub process; an embedded Postgres runs in its own processes)")
    if failures:
        print("\nmost frequent failures:")
        for row in failures[:5]:
            print(f"  {row['Occurrences']:>6} x {row['Method']} {row['Name']}: "
                  f"{row['Error'][:160]}")


def stop_server(process: subprocess.Popen[bytes]) -> tuple[int | None, float]:
    """SIGTERM and wait for the graceful exit; returns (exit code, seconds it took)."""
    started = time.monotonic()
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(STOP_DEADLINE)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            return None, time.monotonic() - started
    return process.returncode, time.monotonic() - started


def cleanup(options: Options, res: Resources) -> None:
    if res.database_dsn:
        asyncio.run(drop_database(options.postgres_url, res.database_dsn))
    if res.redis_prefix:
        client = redis.Redis.from_url(options.redis_url)
        try:
            keys = list(client.scan_iter(match=f"{res.redis_prefix}*", count=1000))
            if keys:
                client.delete(*keys)
        finally:
            client.close()
    shutil.rmtree(res.workdir, ignore_errors=True)


def main() -> int:
    options = Options.from_env()
    res = Resources(workdir=Path(tempfile.mkdtemp(prefix="hubbub-bench-")))
    server: subprocess.Popen[bytes] | None = None
    try:
        port = free_port()
        base_url = f"http://127.0.0.1:{port}"
        env = server_env(options, res, port)
        log_path = res.workdir / "server.log"
        with log_path.open("wb") as log:
            server = subprocess.Popen([sys.executable, "-m", "server.cli", "serve"], env=env,
                                      stdout=log, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL, cwd=ROOT)
        print(f"starting hubbub on {base_url} ...", flush=True)
        wait_ready(server, base_url, log_path)
        print(f"ready; running locust for {options.seconds}s with {options.users} users ...",
              flush=True)
        proc = psutil.Process(server.pid)
        code, peak = run_locust(options, base_url, res, proc)
        rss_end = rss(proc)
        print_report(options, res, read_stats(res), read_failures(res), rss_end,
                     max(peak, rss_end))
        exit_code, took = stop_server(server)
        print(f"server stopped on SIGTERM in {took:.1f}s with exit code {exit_code}")
        if exit_code != 0:
            print(tail(log_path), file=sys.stderr)
        return 0 if code == 0 and exit_code == 0 else 1
    finally:
        if server is not None and server.poll() is None:
            stop_server(server)
        cleanup(options, res)


if __name__ == "__main__":
    sys.exit(main())
