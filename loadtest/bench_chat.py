"""`make bench-chat`: Hubbub alone, measured the way the side-by-side benchmark against peer
servers measures it, so that a change can be checked without the peers. N connected Socket.IO
clients in rooms of 10; it prints:

- connect + join: the ramp's duration, server CPU-ms per connect + join (the CPU of the
  server's Postgres backends shown separately), and KiB of server RSS per idle connection;
- the fixed load (BENCH_RATE messages/s per client for BENCH_SECONDS): messages sent / acked,
  deliveries/s, delivery latency p50/p99, server cores, deliveries per server-CPU-second and
  per (server + its Postgres backends) CPU-second, server CPU-ms per message;
- the peak ladder on the same clients: per step the load, deliveries/s, latency, server and PG
  cores and each client process's cores, pass or why not; then the peak sustained
  deliveries/s, flagged when it is only a lower bound;
- a final table, one metric per line, named as in the side-by-side table.

What it does, and stops by itself (about a minute and a half at the defaults):

1. Starts `hubbub serve` on a free 127.0.0.1 port against a fresh database created on
   127.0.0.1:5432 (dropped at the end), with Redis on 127.0.0.1:6379 under a throwaway key
   prefix when it answers (so emits go through the Socket.IO Redis manager as in a cluster;
   the keys are deleted at the end).
2. Seeds BENCH_CLIENTS users straight into Postgres and mints their access tokens with the
   JWT_SECRET the bench gives the server (argon2 sign-ups would be the benchmark), then
   creates one group room per BENCH_ROOM_SIZE users over REST.
3. Runs the clients in BENCH_PROCS worker processes (loadtest/chat_workers.py). A client is a
   bare aiohttp websocket speaking Engine.IO 4 / Socket.IO 5 framing by hand
   (loadtest/chat_client.py). Each connects with its token and joins its room; the server's
   CPU and its Postgres backends' CPU over that ramp, divided by the clients connected, is the
   CPU per connect + join. After a 3 s settle the server's RSS is read: (RSS then - RSS before
   any client) / clients is the memory per idle connection.
4. The fixed load: for BENCH_SECONDS every client sends `message:send` at BENCH_RATE messages
   per second (evenly spaced, random phase), the send time in the text; each `message:new`
   received gives a delivery latency (receive time - send time, one clock: same machine).
   Deliveries are counted within the window plus a short drain. Server CPU is the process's
   utime + stime over the window (with its lead-in and drain); the Postgres CPU is that of the
   backends of the bench's own database (loadtest/pg_meter.py: pids polled from
   pg_stat_activity every 0.5 s, so that backends opened inside the window count).
5. The peak ladder (BENCH_PEAK=1): on the same connected clients, steps of BENCH_STEP_SECONDS
   with the rate per client doubling from BENCH_LADDER_START, at most BENCH_MAX_STEPS steps,
   stopping at the first that fails. A level passes when at most 0.1% of the sends failed or
   were not acked within 10 s, at least 99% were acked, at least 99% of the expected
   deliveries arrived and delivery p99 <= 1000 ms. The fixed load is a level too: the peak is
   the highest passing level's deliveries/s. It is a lower bound when no step failed, or
   when a client process used more than 0.9 core at the best or the first failing level
   (the clients, not the server, may have set the pace).

Environment (defaults): BENCH_CLIENTS (1000), BENCH_SECONDS (20), BENCH_ROOM_SIZE (10),
BENCH_RATE (0.2 messages/s per client: 200 messages/s, 2000 deliveries/s at the defaults),
BENCH_PEAK (1; 0 skips the ladder), BENCH_LADDER_START (twice BENCH_RATE: the ladder goes on
from the fixed load), BENCH_STEP_SECONDS (5), BENCH_MAX_STEPS (6), BENCH_PROCS (2),
BENCH_LOG_LEVEL (WARNING), BENCH_POSTGRES_URL (postgresql://postgres@127.0.0.1:5432/postgres),
BENCH_REDIS_URL (redis://127.0.0.1:6379/0). The clients share the cores with the server,
Postgres and Redis: the numbers are a floor.

The results are added up and judged in loadtest/chat_results.py and printed by
loadtest/chat_report.py. `make bench-cluster` (loadtest/bench_cluster.py) reuses `seed`,
`spread` and `drive` (with chat_results' `summarize`) to run the fixed load against one node
and then two (no ladder, no Postgres meter: `drive`'s defaults).
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import aiohttp
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from chat_client import Seat
from chat_report import find_peak, fmt, report
from chat_results import SETTLE_SECONDS, Load, Window
from chat_workers import Workers
from harness import UNLIMITED, BenchServer, insert_users, mint_token, rss, tail
from pg_meter import PgMeter

CLOSE_DEADLINE = 60.0  # for the server to finish closing the clients' sockets before its stop


@dataclass
class Options:
    clients: int
    seconds: float
    room_size: int
    rate: float
    procs: int
    log_level: str
    postgres_url: str
    redis_url: str
    peak: bool = True
    ladder_start: float = 0.0  # messages/s per client at the first step; 0: twice `rate`
    step_seconds: float = 5.0
    max_steps: int = 6

    @classmethod
    def from_env(cls, clients: int = 1000, seconds: float = 20) -> Options:
        """BENCH_* variables; `clients` and `seconds` are the defaults of the caller."""
        env = os.environ.get
        return cls(
            clients=int(env("BENCH_CLIENTS", "") or clients),
            seconds=float(env("BENCH_SECONDS", "") or seconds),
            room_size=int(env("BENCH_ROOM_SIZE", "") or 10),
            rate=float(env("BENCH_RATE", "") or 0.2),
            procs=max(1, int(env("BENCH_PROCS", "") or 2)),
            log_level=env("BENCH_LOG_LEVEL", "") or "WARNING",
            postgres_url=env("BENCH_POSTGRES_URL", "")
            or "postgresql://postgres@127.0.0.1:5432/postgres",
            redis_url=env("BENCH_REDIS_URL", "") or "redis://127.0.0.1:6379/0",
            peak=(env("BENCH_PEAK", "") or "1") != "0",
            ladder_start=float(env("BENCH_LADDER_START", "") or 0.0),
            step_seconds=float(env("BENCH_STEP_SECONDS", "") or 5.0),
            max_steps=int(env("BENCH_MAX_STEPS", "") or 6),
        )

    @property
    def first_step_rate(self) -> float:
        return self.ladder_start or 2 * self.rate


# -- the parent: seed, then drive the workers --------------------------------------------------

async def seed(dsn: str, base_url: str, secret: str, options: Options,
               store_users: bool = True) -> list[Seat]:
    """Users and their rooms; `store_users=False` for a server that keeps no users (a peer:
    its token is the account)."""
    from protocols.ids import new_id  # the bench runs from the repository

    users = [new_id() for _ in range(options.clients)]
    if store_users:
        await insert_users(dsn, users, "chat")
    tokens = {u: mint_token(secret, u) for u in users}
    seats: list[Seat] = []
    async with aiohttp.ClientSession(base_url=base_url) as http:
        for start in range(0, len(users), options.room_size):
            group = users[start:start + options.room_size]
            if len(group) < 2:  # a lone leftover user has nobody to talk to: left out
                continue
            owner = {"Authorization": f"Bearer {tokens[group[0]]}"}
            async with http.post("/v1/rooms", headers=owner, json={
                    "kind": "group", "member_ids": group[1:], "name": f"bench {start}",
            }) as response:
                body = await response.json()
                if response.status != 201:
                    raise RuntimeError(f"room creation failed: {response.status} {body}")
            seats.extend(Seat(token=tokens[u], room_id=body["id"]) for u in group)
    return seats


def spread(seats: list[Seat], urls: list[str]) -> list[Seat]:
    """Deal the seats over the nodes in turn: consecutive seats share a room, so every room
    has members on every node (room events cross nodes)."""
    return [replace(seat, url=urls[index % len(urls)]) for index, seat in enumerate(seats)]


def _rss(servers: list[psutil.Process]) -> int:
    return sum(rss(server) for server in servers)


def _cpu(servers: list[psutil.Process]) -> float:
    return sum(t.user + t.system for t in (server.cpu_times() for server in servers))


QUIET_CORES = 0.05  # servers below this CPU use are done with earlier work
QUIET_DEADLINE = 30.0


def _await_quiet(servers: list[psutil.Process], every: float = 0.5) -> float:
    """Seconds until the servers together used less than QUIET_CORES over `every` seconds
    (at most QUIET_DEADLINE): their CPU is all we can observe of their backlog."""
    started = time.monotonic()
    before = _cpu(servers)
    while time.monotonic() - started < QUIET_DEADLINE:
        time.sleep(every)
        now = _cpu(servers)
        if now - before < QUIET_CORES * every:
            break
        before = now
    return time.monotonic() - started


def _measure(workers: Workers, servers: list[psutil.Process], database_dsn: str,
             seconds: float, rate: float) -> Window:
    cpu_before = _cpu(servers)
    with PgMeter(database_dsn) as pg:
        start, results = workers.run_window(seconds, rate)
    return Window(seconds, rate, start, results, _cpu(servers) - cpu_before, pg.cpu_seconds)


def climb(options: Options, workers: Workers, servers: list[psutil.Process],
          database_dsn: str, fixed: Window) -> list[Window]:
    """The peak ladder on the connected clients: the rate per client doubles from the first
    step's, at most BENCH_MAX_STEPS steps, up to and including the first that fails."""
    rate = options.first_step_rate
    if not fixed.passed and rate >= options.rate:
        print(f"peak ladder skipped: the fixed load already failed ({'; '.join(fixed.why_not)})")
        return []
    steps: list[Window] = []
    for number in range(1, options.max_steps + 1):
        print(f"ladder step {number}: {rate:g} msg/s per client for {options.step_seconds:g}s: ",
              end="", flush=True)
        step = _measure(workers, servers, database_dsn, options.step_seconds, rate)
        steps.append(step)
        print(f"{step.deliveries_per_s:,.0f} deliveries/s, "
              + ("pass" if step.passed else "FAIL: " + "; ".join(step.why_not)), flush=True)
        if not step.passed:
            break
        rate *= 2
    return steps


def drive(options: Options, seats: list[Seat], workdir: Path, servers: list[psutil.Process],
          database_dsn: str = "", ladder: bool = False, half_peak: bool = False) -> Load:
    """Connect every seat from BENCH_PROCS workers, let them settle, run the fixed-load window
    in all of them at once and, with `ladder`, the peak ladder on the same clients, then with
    `half_peak` a window of BENCH_SECONDS at half the peak's rate (the latency figure of the
    side-by-side benchmark); gather what they measured. `database_dsn`: the servers' own
    database, whose Postgres backends' CPU is measured too ("": not measured). Kills its
    workers if anything goes wrong."""
    rss_before = _rss(servers)
    workers = Workers(options, seats, workdir)
    try:
        cpu_before = _cpu(servers)
        with PgMeter(database_dsn) as ramp_pg:
            ramp_started = time.monotonic()
            workers.start()
            connected = workers.await_connected()
            ramp = time.monotonic() - ramp_started
        ramp_cpu = _cpu(servers) - cpu_before
        print(f"{connected} clients connected and joined in {ramp:.1f}s; settling "
              f"{SETTLE_SECONDS:g}s, then sending for {options.seconds:g}s at {options.rate:g} "
              "msg/s each ...", flush=True)
        time.sleep(SETTLE_SECONDS)  # idle sockets, as in the side-by-side: not a sync point
        rss_connected = _rss(servers)
        fixed = _measure(workers, servers, database_dsn, options.seconds, options.rate)
        steps = climb(options, workers, servers, database_dsn, fixed) if ladder else []
        best = find_peak(Load(connected, ramp, 0.0, None, 0, 0, 0, fixed, steps)).best
        at_half = None
        if half_peak and best is not None:
            # The last step failed: the servers may still be working off its backlog.
            quiet = _await_quiet(servers)
            print(f"at half the peak: {best.rate / 2:g} msg/s per client for "
                  f"{options.seconds:g}s (servers quiet after {quiet:.1f}s)", flush=True)
            at_half = _measure(workers, servers, database_dsn, options.seconds, best.rate / 2)
        rss_end = _rss(servers)
        workers.close()
        return Load(connected, ramp, ramp_cpu, ramp_pg.cpu_seconds, rss_before, rss_connected,
                    rss_end, fixed, steps, at_half)
    finally:
        workers.kill()


def main() -> int:
    options = Options.from_env()
    bench = BenchServer("bench-chat", options.postgres_url, options.redis_url)
    try:
        base_url = bench.start(options.log_level,
                               RATE_LIMIT_ROUTES=f"chat.create_room={UNLIMITED}")
        assert bench.process is not None
        seats = asyncio.run(seed(bench.database_dsn, base_url, bench.secret, options))
        print(f"seeded {len(seats)} users in {len(seats) // options.room_size} rooms; "
              f"connecting them from {options.procs} worker processes ...", flush=True)
        load = drive(options, spread(seats, [base_url]), bench.workdir,
                     [psutil.Process(bench.process.pid)], bench.database_dsn,
                     ladder=options.peak)
        report(options, load, bench.redis_used)
        closed = await_sockets_closed(bench)
        print(f"the server had closed every client socket {fmt(closed)}s after the client "
              "processes exited" if closed is not None else
              f"the server still counted open sockets {CLOSE_DEADLINE:g}s after the client "
              "processes exited")
        code, took = bench.stop()
        print(f"server stopped on SIGTERM in {took:.1f}s with exit code {code}")
        if code != 0:
            print(tail(bench.log_path), file=sys.stderr)
        return 0 if code == 0 else 1
    finally:
        bench.close()


def _sockets_connected(bench: BenchServer) -> int | None:
    try:
        text = bench.get_text("/metrics")
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("hubbub_sockets_connected "):
            return int(float(line.split()[1]))
    return None


def await_sockets_closed(bench: BenchServer) -> float | None:
    """Seconds until the server's `hubbub_sockets_connected` gauge reads 0 once the workers
    are gone (None: not within CLOSE_DEADLINE). The server's disconnect handling can outlast
    the client processes, and a SIGTERM in the middle of it was seen to hang the stop past
    the harness's 60 s (once, 300 clients): stopping an idle server keeps the stop about the
    stop."""
    started = time.monotonic()
    while time.monotonic() - started < CLOSE_DEADLINE:
        if _sockets_connected(bench) == 0:
            return time.monotonic() - started
        time.sleep(0.2)  # polling a gauge: the server cannot notify us
    return None


if __name__ == "__main__":
    sys.exit(main())
