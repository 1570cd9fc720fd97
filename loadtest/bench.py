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

import csv
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import psutil
from harness import DEFAULT_POSTGRES, DEFAULT_REDIS, ROOT, UNLIMITED, BenchServer, rss, tail

LOCUSTFILE = Path(__file__).resolve().with_name("locustfile.py")


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
            postgres_url=os.environ.get("BENCH_POSTGRES_URL", DEFAULT_POSTGRES),
            redis_url=os.environ.get("BENCH_REDIS_URL", DEFAULT_REDIS),
            wait=os.environ.get("LOADTEST_WAIT", "0.1,0.5"),
        )


def run_locust(options: Options, base_url: str, workdir: Path,
               server: psutil.Process) -> tuple[int, int]:
    """Run locust to completion; returns (its exit code, the server's peak RSS in bytes)."""
    log_path = workdir / "locust.log"
    command = [
        sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless",
        "--host", base_url, "--users", str(options.users),
        "--spawn-rate", str(options.spawn_rate), "--run-time", f"{options.seconds}s",
        "--stop-timeout", "5", "--csv", str(workdir / "bench"), "--only-summary",
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


def read_stats(workdir: Path) -> list[dict[str, str]]:
    path = workdir / "bench_stats.csv"
    if not path.exists():
        return []
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def read_failures(workdir: Path) -> list[dict[str, str]]:
    path = workdir / "bench_failures.csv"
    if not path.exists():
        return []
    with path.open(newline="") as handle:
        return sorted(csv.DictReader(handle), key=lambda r: -int(r["Occurrences"]))


def print_report(options: Options, notes: list[str], stats: list[dict[str, str]],
                 failures: list[dict[str, str]], rss_end: int, rss_peak: int) -> None:
    print(f"\nHubbub benchmark: {options.users} users for {options.seconds}s "
          f"(spawn rate {options.spawn_rate:g}/s, pauses {options.wait}s, "
          f"server LOG_LEVEL={options.log_level})")
    for note in notes:
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
          "(the hubbub process; Postgres runs in its own processes)")
    if failures:
        print("\nmost frequent failures:")
        for row in failures[:5]:
            print(f"  {row['Occurrences']:>6} x {row['Method']} {row['Name']}: "
                  f"{row['Error'][:160]}")


def main() -> int:
    options = Options.from_env()
    bench = BenchServer("bench", options.postgres_url, options.redis_url)
    try:
        base_url = bench.start(
            options.log_level,
            # Every simulated user comes from one address: the README's load-test settings.
            RATE_LIMIT_ROUTES=",".join(f"{route}={UNLIMITED}" for route in (
                "auth.signup", "auth.login", "posts.create", "media.upload",
                "media.create_upload")),
            POSTS_PER_DAY=UNLIMITED, SOCKET_EVENTS_PER_SECOND="1000", SOCKET_EVENT_BURST="1000",
            SCHEDULE_MIN_INTERVAL_SECONDS="0", SCHEDULE_MAX_PER_HOUR="0",
            SCHEDULE_MAX_PER_DAY="0", ARGON2_TIME_COST="1", ARGON2_MEMORY_KIB="8192",
        )
        assert bench.process is not None
        print(f"ready; running locust for {options.seconds}s with {options.users} users ...",
              flush=True)
        proc = psutil.Process(bench.process.pid)
        code, peak = run_locust(options, base_url, bench.workdir, proc)
        rss_end = rss(proc)
        print_report(options, bench.notes, read_stats(bench.workdir),
                     read_failures(bench.workdir), rss_end, max(peak, rss_end))
        exit_code, took = bench.stop()
        print(f"server stopped on SIGTERM in {took:.1f}s with exit code {exit_code}")
        if exit_code != 0:
            print(tail(bench.log_path), file=sys.stderr)
        return 0 if code == 0 and exit_code == 0 else 1
    finally:
        bench.close()


if __name__ == "__main__":
    sys.exit(main())
