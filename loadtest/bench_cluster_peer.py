"""`make bench-cluster-peer`: the chat figures of the side-by-side benchmark, in cluster mode,
for Hubbub and for a peer that is a cluster too.

The shared benchmark (../shared/bench) runs every server as one process. Its durable peer,
py-sio-pg, cannot run as two: its room seqs live in one process's memory. Its cluster form is
loadtest/peers/py_sio_cluster.py: python-socketio's own Redis manager, rooms and seqs in
Postgres (see its docstring). This bench runs each server as a BENCH_NODES-node cluster
(default 2) on one fresh database and one fresh Redis key prefix (loadtest/cluster.py), with
the clients dealt over the nodes in turn so that every room has members on every node, and
measures what `make bench-chat` measures (loadtest/bench_chat.py `drive`):

- CPU per connect + join (server and Postgres backends) and KiB RSS per idle connection, summed
  over the nodes;
- the fixed load (BENCH_RATE messages/s per client for BENCH_SECONDS): deliveries per CPU-second
  of the nodes, and of the nodes plus their Postgres backends;
- the peak ladder, then BENCH_SECONDS at half of the server's own peak (its latency);

then one table with both servers and the ratios Hubbub / peer. Everything shares one machine's
cores, and the load clients run on it too: ratios from one run compare, absolute figures do
not. Environment: as bench_chat (BENCH_CLIENTS 1000, BENCH_RATE 0.5, BENCH_SECONDS 15,
BENCH_STEP_SECONDS 5, ...), plus BENCH_NODES (2) and BENCH_SERVERS (hubbub,py-sio-pg-cluster).
Stops by itself; removes its databases, Redis keys and processes whatever happens.
"""

from __future__ import annotations

import asyncio
import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_chat import Options, drive, seed, spread
from chat_report import find_peak, fmt, step_line, summary_rows
from chat_results import Load, percentile
from cluster import BenchCluster
from harness import UNLIMITED, BenchServer, reachable


@dataclass(frozen=True)
class Server:
    name: str
    command: tuple[str, ...]
    keeps_users: bool  # Hubbub's rooms need their members in its users table


SERVERS = {
    "hubbub": Server("hubbub", BenchServer.command, True),
    "py-sio-pg-cluster": Server("py-sio-pg-cluster", ("loadtest/peers/py_sio_cluster.py",),
                                False),
}
HUBBUB, PEER = "hubbub", "py-sio-pg-cluster"


def run(options: Options, server: Server, nodes: int) -> Load:
    cluster = BenchCluster(f"bench-{server.name}", nodes, options.postgres_url,
                           options.redis_url, command=server.command, label=server.name)
    print(f"\n== {server.name}, {nodes} nodes ==", flush=True)
    try:
        urls = cluster.start(options.log_level,
                             RATE_LIMIT_ROUTES=f"chat.create_room={UNLIMITED}")
        first = cluster.nodes[0]
        seats = asyncio.run(seed(first.database_dsn, urls[0], first.secret, options,
                                 store_users=server.keeps_users))
        print(f"seeded {len(seats) // options.room_size} rooms of {options.room_size}; "
              f"connecting {len(seats)} clients to {nodes} nodes ...", flush=True)
        load = drive(options, spread(seats, urls), first.workdir, cluster.processes(),
                     first.database_dsn, ladder=options.peak, half_peak=options.peak)
        for name, level in [("fixed load", load.fixed), *((f"ladder step {n}", step)
                            for n, step in enumerate(load.steps, 1)),
                            *([("at half the peak", load.at_half_peak)]
                              if load.at_half_peak else [])]:
            print(f"  {name}: {step_line(level)}")
        stops = cluster.stop()
        print("nodes stopped on SIGTERM: exit codes "
              + ", ".join(str(code) for code, _ in stops), flush=True)
        return load
    finally:
        cluster.close()


# -- the table ---------------------------------------------------------------------------------

def figures(load: Load) -> dict[str, float]:
    """The compared figures as numbers (NaN: not measured)."""
    fixed, total = load.fixed, load.fixed.total
    nan = float("nan")
    pg = fixed.pg_cpu_s
    best = find_peak(load).best
    half = load.at_half_peak
    half_latencies = half.total.latencies_ms if half is not None else []
    return {
        "deliveries per (server+PG) CPU-s": (total.delivered / (fixed.server_cpu_s + pg)
                                             if pg and total.delivered else nan),
        "peak sustained deliveries/s": best.deliveries_per_s if best is not None else nan,
        "KiB RSS per idle connection": ((load.rss_connected - load.rss_before) / 1024
                                        / load.connected if load.connected else nan),
        "CPU-ms per connect + join": (load.ramp_cpu_s * 1000 / load.connected
                                      if load.connected else nan),
        "p99 ms at half of own peak": percentile(half_latencies, 0.99),
    }


# The chat issue's goal for each figure (ratios: Hubbub / peer).
GOALS = {
    "deliveries per (server+PG) CPU-s": ">= 1.5",
    "peak sustained deliveries/s": ">= 1.5",
    "KiB RSS per idle connection": "<= 1.0",
    "CPU-ms per connect + join": "<= 1.2",
    "p99 ms at half of own peak": "Hubbub <= 15 ms",
}


def print_table(options: Options, nodes: int, loads: dict[str, Load]) -> None:
    names = list(loads)
    print(f"\nChat in cluster mode: {nodes} nodes per server, {options.clients} clients in "
          f"rooms of {options.room_size} dealt over the nodes, fixed load {options.rate:g} "
          "msg/s per client")
    details = {name: summary_rows(load) for name, load in loads.items()}
    width = max(len(row) for row in details[names[0]])
    print(f"  {'':<{width}}  " + "  ".join(f"{name:>30}" for name in names))
    for row in details[names[0]]:
        print(f"  {row:<{width}}  " + "  ".join(f"{details[n][row][:30]:>30}" for n in names))
    if HUBBUB not in loads or PEER not in loads:
        return
    ours, theirs = figures(loads[HUBBUB]), figures(loads[PEER])
    print(f"\n  {'figure':<34} {'hubbub':>10} {'peer':>10} {'ratio':>7}  goal")
    for figure, goal in GOALS.items():
        ratio = ours[figure] / theirs[figure] if theirs[figure] else math.nan
        print(f"  {figure:<34} {fmt(ours[figure]):>10} {fmt(theirs[figure]):>10} "
              f"{fmt(ratio, 2):>7}  {goal}")


def main() -> int:
    env = os.environ.get
    options = Options.from_env(clients=1000, seconds=15)
    if not env("BENCH_RATE"):
        options.rate = 0.5
    nodes = int(env("BENCH_NODES", "") or 2)
    wanted = [name.strip() for name in (env("BENCH_SERVERS", "") or ",".join(SERVERS))
              .split(",") if name.strip()]
    unknown = [name for name in wanted if name not in SERVERS]
    if unknown:
        print(f"unknown BENCH_SERVERS {unknown}; known: {', '.join(SERVERS)}", file=sys.stderr)
        return 2
    if not reachable(options.redis_url, 6379):
        print(f"a cluster needs Redis: nothing answers at {options.redis_url}", file=sys.stderr)
        return 2
    loads = {name: run(options, SERVERS[name], nodes) for name in wanted}
    print_table(options, nodes, loads)
    return 0


if __name__ == "__main__":
    sys.exit(main())
