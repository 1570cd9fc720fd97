"""`make bench-chat`: N connected Socket.IO clients in rooms of 10 chat at a fixed rate; prints
delivered messages per second, delivery latency p50/p99 and the server's memory per client.

What it does, and stops by itself (BENCH_SECONDS plus setup, a minute or two):

1. Starts `hubbub serve` on a free 127.0.0.1 port against a fresh database created on
   127.0.0.1:5432 (dropped at the end), with Redis on 127.0.0.1:6379 under a throwaway key
   prefix when it answers (so emits go through the Socket.IO Redis manager as in a cluster;
   the keys are deleted at the end).
2. Seeds BENCH_CLIENTS users straight into Postgres and mints their access tokens with the
   JWT_SECRET the bench gives the server (argon2 sign-ups would be the benchmark), then
   creates one group room per BENCH_ROOM_SIZE users over REST.
3. Runs the clients in BENCH_PROCS worker processes. A client is a bare aiohttp websocket
   speaking Engine.IO 4 / Socket.IO 5 framing by hand (python-socketio's client costs too
   much CPU for a thousand of them on the machine that also runs the server). Each connects
   with its token, joins its room, and once every client is connected the server's RSS is
   read: (RSS now - RSS before any client) / clients is the memory per connected client.
4. For BENCH_SECONDS every client sends `message:send` at BENCH_RATE messages per second
   (evenly spaced, random phase), the send time in the text; each `message:new` received
   gives a delivery latency (receive time - send time, one clock: same machine). Deliveries
   are counted within the window plus a short drain.

Environment (defaults): BENCH_CLIENTS (1000), BENCH_SECONDS (20), BENCH_ROOM_SIZE (10),
BENCH_RATE (0.2 messages/s per client: 200 messages/s, 2000 deliveries/s at the defaults),
BENCH_PROCS (2), BENCH_LOG_LEVEL (WARNING), BENCH_POSTGRES_URL
(postgresql://postgres@127.0.0.1:5432/postgres), BENCH_REDIS_URL (redis://127.0.0.1:6379/0).
The clients share the cores with the server, Postgres and Redis: the numbers are a floor.

`make bench-cluster` (loadtest/bench_cluster.py) reuses `seed`, `spread`, `drive` and
`summarize` to run this same load against one node and then two.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import aiohttp
import asyncpg
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from chat_client import Client, Seat, WorkerPlan, WorkerResult
from harness import ROOT, UNLIMITED, BenchServer, mint_token, rss, tail

CONNECT_CONCURRENCY = 50  # handshakes in flight per worker during the ramp-up
DRAIN_SECONDS = 3.0  # after the send window, for deliveries still in flight
WORKER_DEADLINE = 120.0  # beyond the window: a worker that takes longer is killed


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
        )


async def run_worker(plan: WorkerPlan) -> WorkerResult:
    result = WorkerResult()
    clients = [Client(seat, result) for seat in plan.seats]
    gate = asyncio.Semaphore(CONNECT_CONCURRENCY)
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        async def connect(client: Client) -> Client | None:
            async with gate:
                try:
                    await client.connect(session)
                    return client
                except Exception as exc:
                    result.failed_connects += 1
                    print(f"connect failed: {exc!r}"[:300], file=sys.stderr)
                    await client.close()
                    return None

        live = [c for c in await asyncio.gather(*(connect(c) for c in clients)) if c]
        result.connected = len(live)
        for client in live:
            result.joined(client.seat)
        # The parent's barrier: it reads every worker's "ready", reads the server's RSS, then
        # sends each worker the common start time.
        print(f"ready {len(live)}", flush=True)
        line = await asyncio.wait_for(asyncio.to_thread(sys.stdin.readline), WORKER_DEADLINE)
        start = float(line.split()[1])
        for client in live:
            client.window = (start, start + plan.seconds)
        await asyncio.gather(*(c.send_for(start, plan.seconds, plan.rate) for c in live))
        await asyncio.sleep(max(0.0, start + plan.seconds + DRAIN_SECONDS - time.time()))
        await asyncio.gather(*(c.close() for c in live))
    return result


def worker_main(plan_path: str) -> None:
    raw = json.loads(Path(plan_path).read_text())
    plan = WorkerPlan(**{**raw, "seats": [Seat(**s) for s in raw["seats"]]})
    result = asyncio.run(run_worker(plan))
    print(json.dumps(asdict(result)))


# -- the parent: server, seed, workers, report -------------------------------------------------

async def seed(dsn: str, base_url: str, secret: str, options: Options) -> list[Seat]:
    from protocols.ids import new_id  # the bench runs from the repository

    users = [new_id() for _ in range(options.clients)]
    conn = await asyncpg.connect(dsn)
    try:
        await conn.copy_records_to_table(
            "users", columns=["id", "username", "email", "password_hash", "display_name"],
            records=[(uuid.UUID(u), f"chat_{i}", f"chat_{i}@bench.test", "x", f"Chat {i}")
                     for i, u in enumerate(users)])
    finally:
        await conn.close()
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


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


@dataclass
class Load:
    """What one run of the workers measured; memory and CPU are summed over the servers."""

    connected: int
    ramp: float
    results: list[WorkerResult]
    rss_before: int
    rss_connected: int
    rss_end: int
    cpu_seconds: float
    window: tuple[float, float]  # unix times: sends start, drain ends


def _rss(servers: list[psutil.Process]) -> int:
    return sum(rss(server) for server in servers)


def _cpu(servers: list[psutil.Process]) -> float:
    return sum(t.user + t.system for t in (server.cpu_times() for server in servers))


def _spawn_workers(options: Options, seats: list[Seat],
                   workdir: Path) -> list[subprocess.Popen[bytes]]:
    workers: list[subprocess.Popen[bytes]] = []
    for index in range(options.procs):
        plan = WorkerPlan(seats=seats[index::options.procs], seconds=options.seconds,
                          rate=options.rate)
        plan_path = workdir / f"plan-{index}.json"
        plan_path.write_text(json.dumps(asdict(plan)))
        with (workdir / f"worker-{index}.log").open("wb") as errors:
            workers.append(subprocess.Popen(
                [sys.executable, __file__, "worker", str(plan_path)], cwd=ROOT,
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=errors))
    return workers


def _await_connected(workers: list[subprocess.Popen[bytes]], workdir: Path) -> int:
    """Each worker's "ready N" line: all its clients connected (or failed; it bounds them)."""
    connected = 0
    for index, worker in enumerate(workers):
        assert worker.stdout is not None
        line = worker.stdout.readline().decode()
        if not line.startswith("ready "):
            raise RuntimeError(f"worker {index} did not connect:\n"
                               + tail(workdir / f"worker-{index}.log", 10))
        connected += int(line.split()[1])
    return connected


def _collect(workers: list[subprocess.Popen[bytes]]) -> list[WorkerResult]:
    results = []
    for worker in workers:
        assert worker.stdout is not None
        out = worker.stdout.read()  # the worker ends by itself after window + drain
        worker.wait(timeout=WORKER_DEADLINE)
        if worker.returncode != 0:
            raise RuntimeError(f"a worker failed ({worker.returncode})")
        results.append(WorkerResult(**json.loads(out.decode().strip().splitlines()[-1])))
    return results


def drive(options: Options, seats: list[Seat], workdir: Path,
          servers: list[psutil.Process]) -> Load:
    """Connect every seat from BENCH_PROCS workers, start the send window in all of them at
    once, and gather what they measured. Kills its workers if anything goes wrong."""
    rss_before = _rss(servers)
    workers = _spawn_workers(options, seats, workdir)
    try:
        ramp_started = time.monotonic()
        connected = _await_connected(workers, workdir)
        ramp = time.monotonic() - ramp_started
        rss_connected = _rss(servers)
        cpu_before = _cpu(servers)
        start = time.time() + 1.0  # a common start a moment ahead: every worker gets it first
        for worker in workers:
            assert worker.stdin is not None
            worker.stdin.write(f"go {start!r}\n".encode())
            worker.stdin.flush()
        print(f"{connected} clients connected and joined in {ramp:.1f}s; sending for "
              f"{options.seconds:g}s at {options.rate:g} msg/s each ...", flush=True)
        results = _collect(workers)
        return Load(connected, ramp, results, rss_before, rss_connected, _rss(servers),
                    _cpu(servers) - cpu_before,
                    (start, start + options.seconds + DRAIN_SECONDS))
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait()


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
                     [psutil.Process(bench.process.pid)])
        report(options, load, bench.redis_used)
        code, took = bench.stop()
        print(f"server stopped on SIGTERM in {took:.1f}s with exit code {code}")
        if code != 0:
            print(tail(bench.log_path), file=sys.stderr)
        return 0 if code == 0 else 1
    finally:
        bench.close()


@dataclass
class Shortfall:
    """An acked message that some connected members did not receive in the window."""

    sent_at: float  # seconds after the window opened
    room_id: str
    missing: dict[str, int]  # node url -> members there that did not receive it


@dataclass
class Summary:
    """The workers' results added up."""

    sent: int
    acked: int
    delivered: int
    expected: int  # every connected member of the room, the sender included, gets each acked
    failed_connects: int
    disconnects: int
    errors: dict[str, int]
    latencies_ms: list[float]
    shortfalls: list[Shortfall]


def _added(dicts: list[dict[str, int]]) -> dict[str, int]:
    total: dict[str, int] = {}
    for d in dicts:
        for key, count in d.items():
            total[key] = total.get(key, 0) + count
    return total


def _shortfalls(results: list[WorkerResult], members: dict[str, int],
                start: float) -> list[Shortfall]:
    received = _added([r.received for r in results])
    urls = sorted({key.split(" ", 1)[1] for key in members})
    found = []
    for tag, room_id, sent in sorted((m for r in results for m in r.acked_sends),
                                     key=lambda m: m[2]):
        missing = {url: members.get(f"{room_id} {url}", 0) - received.get(f"{tag} {url}", 0)
                   for url in urls}
        if any(missing.values()):
            found.append(Shortfall(sent - start, room_id, missing))
    return found


def summarize(results: list[WorkerResult], start: float = 0.0) -> Summary:
    """`start`: when the send window opened (unix time), for the shortfalls' times."""
    members = _added([r.members for r in results])
    by_room: dict[str, int] = {}  # members connected, on any node
    for key, count in members.items():
        room_id = key.split(" ", 1)[0]
        by_room[room_id] = by_room.get(room_id, 0) + count
    return Summary(
        sent=sum(r.sent for r in results), acked=sum(r.acked for r in results),
        delivered=sum(r.delivered for r in results),
        expected=sum(by_room.get(room, 0) for r in results for _, room, _ in r.acked_sends),
        failed_connects=sum(r.failed_connects for r in results),
        disconnects=sum(r.disconnects for r in results), errors=_added([r.errors for r in results]),
        latencies_ms=[v for r in results for v in r.latencies_ms],
        shortfalls=_shortfalls(results, members, start))


def report(options: Options, load: Load, use_redis: bool) -> None:
    total = summarize(load.results, load.window[0])
    latencies = total.latencies_ms
    kib = 1024
    print(f"\nHubbub chat benchmark: {load.connected} clients in rooms of {options.room_size}, "
          f"{options.rate:g} msg/s each for {options.seconds:g}s "
          f"(Socket.IO manager: {'redis' if use_redis else 'in-process'}, "
          f"{options.procs} client processes, server LOG_LEVEL={options.log_level})")
    print(f"  connect + join ramp:        {load.ramp:.1f}s "
          f"({total.failed_connects} failed)")
    print(f"  messages sent / acked:      {total.sent} / {total.acked}  "
          f"({total.acked / options.seconds:.0f} msg/s acked)"
          + (f"  errors: {total.errors}" if total.errors else ""))
    print(f"  messages delivered:         {total.delivered} of {total.expected} expected "
          f"({total.delivered / options.seconds:.0f} deliveries/s)")
    if latencies:
        print(f"  delivery latency:           p50 {percentile(latencies, 0.5):.1f} ms, "
              f"p99 {percentile(latencies, 0.99):.1f} ms, "
              f"mean {statistics.fmean(latencies):.1f} ms, max {max(latencies):.1f} ms")
    print(f"  server CPU:                 {load.cpu_seconds / options.seconds:.2f} cores "
          "during the window")
    print(f"  server RSS:                 {load.rss_before / kib / kib:.1f} MiB before clients, "
          f"{load.rss_connected / kib / kib:.1f} MiB connected, "
          f"{load.rss_end / kib / kib:.1f} MiB at the end")
    if load.connected:
        print(f"  memory per connected client: "
              f"{(load.rss_connected - load.rss_before) / load.connected / kib:.1f} KiB")
    print(f"  unexpected disconnects:     {total.disconnects}")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "worker":
        worker_main(sys.argv[2])
    else:
        sys.exit(main())
