"""`make bench-disconnect`: how long the server's event loop stays busy when all its sockets
disconnect at once (a network blip, a load balancer restart), at 4,000 and 20,000 sockets.

For each size in BENCH_DISCONNECT_SOCKETS, on a server of its own (loadtest/harness.py: a
fresh database on 127.0.0.1:5432, Redis on 127.0.0.1:6379 under a throwaway prefix when it
answers, so the Socket.IO Redis manager is in use as in a cluster):

1. Seeds the users and their rooms of BENCH_ROOM_SIZE (bench_chat.seed), then connects every
   socket from BENCH_PROCS worker processes (chat_client's bare Engine.IO clients); each joins
   its chat room, so a socket is in three Socket.IO rooms (its own, its user's, its chat's).
2. Probes `GET /health` a few times (the quiet latency), then SIGKILLs every worker at once:
   the kernel closes all their sockets together.
3. Probes `/health` back to back (one at a time, at most every PROBE_EVERY) and reads the
   server's `hubbub_sockets_connected` gauge, until every socket is closed on the server and
   /health answered under BENCH_LAG_MS for SETTLE_SECONDS in a row, or BENCH_DEADLINE passes.

Reported per size: `loop busy` = from the drop to the end of the last /health probe slower
than BENCH_LAG_MS (what a client of this node waits through); `all closed` = from the drop
until the gauge reads 0; the slowest probe; the probes' p50/p99 in the busy period.

A process may hold at most RLIMIT_NOFILE files (often 20,000 as a hard limit that only root
can raise): the server needs a few hundred beyond its sockets, so a size above that is
lowered to fit, and the report says so.

Environment (defaults): BENCH_DISCONNECT_SOCKETS (4000,20000), BENCH_PROCS (4),
BENCH_ROOM_SIZE (10), BENCH_LAG_MS (100), BENCH_DEADLINE (600 s per size, after the drop),
BENCH_LOG_LEVEL (WARNING), BENCH_POSTGRES_URL, BENCH_REDIS_URL (an address where nothing
answers, e.g. redis://127.0.0.1:1/0, runs the in-process manager).

Measured on the 2-core development machine (shared with other work, so +-30%), loop busy
after the drop; 19,700 sockets is what fits its 20,000 open files per process:

                      python-socketio's managers      the indexed managers + GC thresholds
  Redis,       4,000  48.5 s (worst /health 16 s)     1.0 s (worst 0.4 s)
  Redis,      19,700  not measured: the ramp stalled  9.6 s (worst 4.9 s)
  in-process,  4,000   9.3 s (worst 4.8 s)            1.1 s (worst 0.4 s)
  in-process, 19,700  497 s (worst 249 s)             6.9 s (worst 3.2 s)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import resource
import select
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_chat import Options, seed
from chat_client import Client, Seat, WorkerPlan, WorkerResult
from chat_results import percentile
from harness import ROOT, UNLIMITED, BenchServer, tail

CONNECT_CONCURRENCY = 25  # handshakes in flight per worker during the ramp-up
CONNECT_ATTEMPTS = 3  # a refused connect (`unavailable` under the ramp's load) is retried
CONNECT_DEADLINE = 1800.0  # for the whole ramp-up of one size
PROBE_EVERY = 0.02  # seconds between the starts of two /health probes, at most
SETTLE_SECONDS = 2.0  # fast probes in a row, after the last socket closed, that end a run
SERVER_FILES = 300  # files the server holds besides its sockets (pools, logs, listeners)
QUIET_PROBES = 20


@dataclass
class Drop:
    sockets: int  # connected
    target: int  # seats: the requested size, lowered to fit the open-file limit
    requested: int
    ramp: float
    quiet_p50_ms: float
    busy: float | None  # None: still busy at the deadline
    all_closed: float | None
    worst_ms: float
    busy_p50_ms: float
    busy_p99_ms: float
    probes: int
    gauge_at_deadline: int
    redis: bool


# -- the worker: connect, join, report, then wait to be killed --------------------------------

async def run_worker(plan: WorkerPlan) -> None:
    result = WorkerResult()
    gate = asyncio.Semaphore(CONNECT_CONCURRENCY)
    connector = aiohttp.TCPConnector(limit=0)
    done = 0
    async with aiohttp.ClientSession(connector=connector) as session:
        async def connect(seat: Seat) -> Client | None:
            nonlocal done
            async with gate:
                for attempt in range(CONNECT_ATTEMPTS):
                    client = Client(seat, result)
                    try:
                        await client.connect(session)
                        break
                    except Exception as exc:
                        await client.close()
                        if attempt + 1 == CONNECT_ATTEMPTS:
                            print(f"connect failed: {exc!r}"[:300], file=sys.stderr)
                            return None
                        await asyncio.sleep(1.0)  # a client's retry pause, not a sync
            done += 1
            if done % 1000 == 0:
                print(f"{done} connected", file=sys.stderr, flush=True)
            return client

        live = [c for c in await asyncio.gather(*(connect(s) for s in plan.seats)) if c]
        print(f"ready {len(live)}", flush=True)
        # The parent kills this process: every socket closes at once, by the kernel.
        await asyncio.to_thread(sys.stdin.readline)


def worker_main(plan_path: str) -> None:
    raw = json.loads(Path(plan_path).read_text())
    plan = WorkerPlan(**{**raw, "seats": [Seat(**s) for s in raw["seats"]]})
    asyncio.run(run_worker(plan))


# -- the parent ---------------------------------------------------------------------------------

def _file_limit() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # inherited by the server
        soft = hard
    return soft


def _spawn(seats: list[Seat], procs: int, workdir: Path) -> list[subprocess.Popen[bytes]]:
    workers = []
    for index in range(procs):
        plan = WorkerPlan(seats=seats[index::procs], seconds=0.0, rate=0.0)
        path = workdir / f"drop-plan-{index}.json"
        path.write_text(json.dumps(asdict(plan)))
        with (workdir / f"drop-worker-{index}.log").open("wb") as errors:
            workers.append(subprocess.Popen(
                [sys.executable, __file__, "worker", str(path)], cwd=ROOT,
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=errors))
    return workers


def _await_ready(workers: list[subprocess.Popen[bytes]], workdir: Path) -> int:
    connected = 0
    deadline = time.monotonic() + CONNECT_DEADLINE
    for index, worker in enumerate(workers):
        assert worker.stdout is not None
        # The worker writes nothing else to stdout: once readable, the line is there.
        readable, _, _ = select.select([worker.stdout], [], [],
                                       max(0.0, deadline - time.monotonic()))
        line = worker.stdout.readline() if readable else b""
        if not line.startswith(b"ready "):
            raise RuntimeError(f"worker {index} did not connect:\n"
                               + tail(workdir / f"drop-worker-{index}.log", 10))
        connected += int(line.split()[1])
    return connected


async def _probe(http: aiohttp.ClientSession, timeout: float) -> float:
    """Seconds one GET /health took (the timeout when it did not answer)."""
    started = time.monotonic()
    try:
        async with http.get("/health", timeout=aiohttp.ClientTimeout(total=timeout)) as r:
            await r.read()
    except (TimeoutError, aiohttp.ClientError):
        pass
    return time.monotonic() - started


async def _sockets_gauge(http: aiohttp.ClientSession) -> int | None:
    try:
        async with http.get("/metrics", timeout=aiohttp.ClientTimeout(total=30)) as r:
            text = await r.text()
    except (TimeoutError, aiohttp.ClientError):
        return None
    for line in text.splitlines():
        if line.startswith("hubbub_sockets_connected "):
            return int(float(line.split()[1]))
    return None


async def _quiet(base_url: str) -> float:
    async with aiohttp.ClientSession(base_url=base_url) as http:
        latencies = [await _probe(http, 5.0) for _ in range(QUIET_PROBES)]
    return percentile(latencies, 0.5)


async def _watch(base_url: str, dropped: float, deadline: float,
                 lag: float) -> tuple[list[tuple[float, float]], float | None, int]:
    """Probe /health after the drop; returns ((end - drop, latency) per probe, when the gauge
    first read 0 (after the drop), the gauge's last reading)."""
    probes: list[tuple[float, float]] = []
    closed_at: float | None = None
    gauge = -1
    end = dropped + deadline
    async with aiohttp.ClientSession(base_url=base_url) as health, \
            aiohttp.ClientSession(base_url=base_url) as metrics:
        async def read_gauge() -> None:
            nonlocal closed_at, gauge
            while closed_at is None and time.monotonic() < end:
                value = await _sockets_gauge(metrics)
                if value is not None:
                    gauge = value
                    if value == 0:
                        closed_at = time.monotonic() - dropped
                        return
                await asyncio.sleep(0.2)  # pacing the probe, not synchronising

        reader = asyncio.get_running_loop().create_task(read_gauge())
        try:
            fast_since: float | None = None
            while time.monotonic() < end:
                started = time.monotonic()
                took = await _probe(health, max(0.001, end - started))
                probes.append((started + took - dropped, took))
                if took >= lag:
                    fast_since = None
                elif fast_since is None:
                    fast_since = started
                if closed_at is not None and fast_since is not None and \
                        time.monotonic() - fast_since >= SETTLE_SECONDS:
                    break
                await asyncio.sleep(max(0.0, started + PROBE_EVERY - time.monotonic()))
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
    return probes, closed_at, gauge


def run_size(requested: int, options: Options, lag: float, deadline: float,
             file_limit: int) -> Drop:
    sockets = min(requested, file_limit - SERVER_FILES)
    sockets -= sockets % options.room_size  # whole rooms
    bench = BenchServer(f"bench-drop-{sockets}", options.postgres_url, options.redis_url)
    workers: list[subprocess.Popen[bytes]] = []
    try:
        base_url = bench.start(options.log_level,
                               RATE_LIMIT_ROUTES=f"chat.create_room={UNLIMITED}")
        seats = asyncio.run(seed(bench.database_dsn, base_url, bench.secret,
                                 Options(**{**asdict(options), "clients": sockets})))
        seats = [Seat(token=s.token, room_id=s.room_id, url=base_url) for s in seats]
        print(f"{sockets} users seeded; connecting them from {options.procs} processes ...",
              flush=True)
        started = time.monotonic()
        workers = _spawn(seats, options.procs, bench.workdir)
        connected = _await_ready(workers, bench.workdir)
        ramp = time.monotonic() - started
        quiet = asyncio.run(_quiet(base_url))
        print(f"{connected} sockets connected and joined in {ramp:.1f}s; /health p50 "
              f"{quiet * 1000:.1f} ms; dropping them all ...", flush=True)
        dropped = time.monotonic()
        for worker in workers:
            worker.kill()
        probes, closed, gauge = asyncio.run(_watch(base_url, dropped, deadline, lag))
        if connected < len(seats):
            for index in range(options.procs):
                print(tail(bench.workdir / f"drop-worker-{index}.log", 3), file=sys.stderr)
        slow = [end for end, took in probes if took >= lag]
        settled = closed is not None and probes and probes[-1][1] < lag
        busy = (max(slow) if slow else 0.0) if settled else None
        in_busy = [took for end, took in probes if busy is None or end <= busy] or [0.0]
        code, _ = bench.stop()
        if code != 0:
            print(f"the server exited with {code}:\n{tail(bench.log_path)}", file=sys.stderr)
        return Drop(sockets=connected, target=len(seats), requested=requested, ramp=ramp,
                    quiet_p50_ms=quiet * 1000, busy=busy, all_closed=closed,
                    worst_ms=max(took for _, took in probes) * 1000 if probes else 0.0,
                    busy_p50_ms=percentile(in_busy, 0.5) * 1000,
                    busy_p99_ms=percentile(in_busy, 0.99) * 1000, probes=len(probes),
                    gauge_at_deadline=gauge, redis=bench.redis_used)
    except BaseException:
        print(f"server log, last lines:\n{tail(bench.log_path, 15)}", file=sys.stderr)
        raise
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
            worker.wait()
        bench.close()


def report(drops: list[Drop], options: Options, lag: float, deadline: float) -> None:
    redis = any(drop.redis for drop in drops)
    print(f"\nHubbub mass disconnect: every socket of one node closes at once "
          f"(Socket.IO manager: {'redis' if redis else 'in-process'}, rooms of "
          f"{options.room_size}, /health probed back to back; busy = until the last probe "
          f"slower than {lag * 1000:.0f} ms)")
    for drop in drops:
        lowered = "" if drop.target >= drop.requested else \
            f" (asked {drop.requested}: {drop.target} fit the open-file limit)"
        busy = f"{drop.busy:.2f}s" if drop.busy is not None else \
            f"still busy after {deadline:.0f}s ({drop.gauge_at_deadline} sockets left)"
        closed = f"{drop.all_closed:.2f}s" if drop.all_closed is not None else "not within"
        failed = f", {drop.target - drop.sockets} failed to connect" \
            if drop.sockets < drop.target else ""
        print(f"  {drop.sockets:>6} sockets{lowered}{failed}")
        print(f"    loop busy:        {busy}")
        print(f"    all closed:       {closed}")
        print(f"    /health:          quiet p50 {drop.quiet_p50_ms:.1f} ms; while busy p50 "
              f"{drop.busy_p50_ms:.1f} ms, p99 {drop.busy_p99_ms:.1f} ms, worst "
              f"{drop.worst_ms:.0f} ms ({drop.probes} probes)")
        print(f"    connect ramp:     {drop.ramp:.1f}s")


def main() -> int:
    options = Options.from_env(clients=4000)
    options.procs = max(1, int(os.environ.get("BENCH_PROCS", "") or 4))
    sizes = [int(s) for s in (os.environ.get("BENCH_DISCONNECT_SOCKETS", "")
                              or "4000,20000").split(",") if s.strip()]
    lag = float(os.environ.get("BENCH_LAG_MS", "") or 100) / 1000
    deadline = float(os.environ.get("BENCH_DEADLINE", "") or 600)
    file_limit = _file_limit()
    drops = [run_size(size, options, lag, deadline, file_limit) for size in sizes]
    report(drops, options, lag, deadline)
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "worker":
        worker_main(sys.argv[2])
    else:
        sys.exit(main())
