"""`make bench-cluster`: the `make bench-chat` load against a one-node cluster, then against a
two-node cluster; prints both runs side by side and the ratio two nodes / one node.

Each run gets a cluster of its own (loadtest/cluster.py): a fresh database on the local
Postgres and a fresh Redis key prefix, shared by its nodes (each with its own NODE_ID and
port on 127.0.0.1). Both runs use Redis, so the one-node run also goes through the Socket.IO
Redis manager and the membership machinery: the only difference is the second node. Before
any client connects, every node's /info view must list every node.

The load is bench_chat's (see its docstring): BENCH_CLIENTS users seeded through the first
node, in rooms of BENCH_ROOM_SIZE, each sending BENCH_RATE messages/s for BENCH_SECONDS.
Clients are dealt over the nodes in turn, so every room has members on both nodes and each
message crosses nodes (its RoomActor lives on one node, its members' sockets on both).

The load is offered at a fixed rate, so while both clusters keep up, deliveries/s is the same
and the ratio is 1.0; what a second node costs shows in latency and in server CPU per
delivery. Everything here shares one machine's cores (on 2 cores a second node adds no
capacity), so the ratio measures the cluster's overhead, not scaling.

Environment: as bench_chat, with smaller defaults (two runs): BENCH_CLIENTS (400),
BENCH_SECONDS (15), BENCH_ROOM_SIZE (10), BENCH_RATE (0.2), BENCH_PROCS (2), BENCH_LOG_LEVEL
(WARNING), BENCH_POSTGRES_URL, BENCH_REDIS_URL. Redis is required. BENCH_KEEP_LOGS=<folder>
copies the nodes' logs there (they are otherwise removed with everything else). Server log
lines at WARNING or above from the load on ("server warnings") are counted, split at the end
of the send window plus drain (after it: clients closing, nodes stopping), and summarised when
a run went wrong, with the messages some connected member did not receive.
"""

from __future__ import annotations

import asyncio
import math
import os
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_chat import Options, drive, seed, spread
from chat_results import Load, Summary, percentile, summarize
from cluster import BenchCluster, LogLine
from harness import UNLIMITED, reachable

SIZES = (1, 2)  # nodes per run, in order
KINDS_SHOWN = 8  # distinct log messages per node, when a run went wrong
SHORTFALLS_SHOWN = 10  # messages some members did not receive, when a run lost deliveries


@dataclass
class Run:
    size: int
    load: Load
    total: Summary
    remote_sent: float  # actor messages sent from one node to another during the load
    undeliverable: float  # sends that found their node not listening
    log_problems: list[LogLine]  # WARNING or above, all nodes, from the load on
    exit_codes: list[int | None]
    node_ids: dict[str, str]  # base URL -> NODE_ID

    @property
    def log_in_window(self) -> int:
        """Problems logged while clients connected, sent and drained (the measured part);
        the others came while clients closed and nodes stopped."""
        return sum(1 for line in self.log_problems if line.ts < self.load.window[1])

    @property
    def healthy(self) -> bool:
        return (not self.total.errors and self.total.delivered == self.total.expected
                and not self.total.failed_connects and not self.total.disconnects
                and not self.total.shortfalls and not self.log_problems
                and all(code == 0 for code in self.exit_codes))


def run_cluster(options: Options, size: int) -> Run:
    """Start a `size`-node cluster, seed it, drive the chat load through every node, stop it;
    removes the cluster's stores whatever happens."""
    cluster = BenchCluster(f"bench-cluster-{size}n", size, options.postgres_url,
                           options.redis_url)
    print(f"\n== {size} node{'s' if size > 1 else ''} ==", flush=True)
    try:
        urls = cluster.start(options.log_level,
                             RATE_LIMIT_ROUTES=f"chat.create_room={UNLIMITED}")
        first = cluster.nodes[0]
        seats = asyncio.run(seed(first.database_dsn, urls[0], first.secret, options))
        print(f"seeded {len(seats)} users in {len(seats) // options.room_size} rooms; "
              f"connecting them to {size} node(s) from {options.procs} worker processes ...",
              flush=True)
        load_started = time.time()
        sent_before = cluster.metric_total("hubbub_cluster_remote_sent_total")
        lost_before = cluster.metric_total("hubbub_cluster_remote_undeliverable_total")
        load = drive(options, spread(seats, urls), first.workdir, cluster.processes())
        sent = cluster.metric_total("hubbub_cluster_remote_sent_total") - sent_before
        lost = cluster.metric_total("hubbub_cluster_remote_undeliverable_total") - lost_before
        stops = cluster.stop()
        print("nodes stopped on SIGTERM: " + ", ".join(
            f"{name} exit {code} in {took:.1f}s"
            for name, (code, took) in zip(cluster.node_ids, stops, strict=True)))
        run = Run(size, load, summarize(load.results, load.window[0]), sent, lost,
                  cluster.log_problems(since=load_started), [c for c, _ in stops],
                  dict(zip(urls, cluster.node_ids, strict=True)))
        if not run.healthy:
            show_evidence(run)
        return run
    finally:
        if os.environ.get("BENCH_KEEP_LOGS"):
            cluster.keep_logs(Path(os.environ["BENCH_KEEP_LOGS"]) / f"{size}n")
        cluster.close()


def show_evidence(run: Run) -> None:
    """Summarise what went wrong while the logs still exist (close() removes them): the
    workers' counts, then each node's distinct log messages with a count and the exception
    the first of them carried."""
    total = run.total
    print(f"!! {run.size}-node run: delivered {total.delivered} of {total.expected}, "
          f"{len(total.shortfalls)} messages not received by every connected member, "
          f"send errors {total.errors or 0}, failed connects {total.failed_connects}, "
          f"disconnects {total.disconnects}, exit codes {run.exit_codes}; "
          f"{len(run.log_problems)} server log lines at WARNING or above "
          f"({run.log_in_window} while clients connected, sent and drained)", file=sys.stderr)
    for short in total.shortfalls[:SHORTFALLS_SHOWN]:
        where = ", ".join(f"{n} on {run.node_ids.get(url, url)}"
                          for url, n in short.missing.items() if n)
        print(f"!!   message sent at +{short.sent_at:.2f}s in room {short.room_id}: "
              f"not received by {where}", file=sys.stderr)
    if len(total.shortfalls) > SHORTFALLS_SHOWN:
        print(f"!!   ... {len(total.shortfalls) - SHORTFALLS_SHOWN} more such messages",
              file=sys.stderr)
    end = run.load.window[1]
    kinds = Counter((line.node, line.what, line.ts < end) for line in run.log_problems)
    first: dict[tuple[str, str, bool], LogLine] = {}
    for line in run.log_problems:
        first.setdefault((line.node, line.what, line.ts < end), line)
    for (node, what, during), count in kinds.most_common(KINDS_SHOWN * len(run.exit_codes)):
        when = "during the load" if during else "while clients closed / nodes stopped"
        detail = first[node, what, during].detail
        print(f"!!   {node}: {count} x {what} ({when})"
              + (f"\n!!       {detail[:300]}" if detail else ""), file=sys.stderr)


# -- the summary table -------------------------------------------------------------------------

def _ratio(two: float, one: float) -> str:
    if not one or math.isnan(one) or math.isnan(two):
        return "-"
    return f"{two / one:.2f}"


def _rows(options: Options, run: Run) -> dict[str, tuple[str, float]]:
    """Each table row: (shown text, value the ratio column divides; NaN for none)."""
    total, load, seconds = run.total, run.load, options.seconds
    nan = float("nan")
    p50, p99 = percentile(total.latencies_ms, 0.5), percentile(total.latencies_ms, 0.99)
    cpu_per_k = load.cpu_seconds * 1000 / total.delivered * 1000 if total.delivered else nan
    return {
        "clients connected (failed)": (f"{load.connected} ({total.failed_connects})", nan),
        "msgs acked/s": (f"{total.acked / seconds:.1f}", total.acked / seconds),
        "deliveries/s": (f"{total.delivered / seconds:.1f}", total.delivered / seconds),
        "delivered / expected": (f"{total.delivered}/{total.expected}", nan),
        "msgs some member missed": (str(len(total.shortfalls)), nan),
        "latency p50 ms": (f"{p50:.1f}", p50),
        "latency p99 ms": (f"{p99:.1f}", p99),
        "send errors": (", ".join(f"{k}={v}" for k, v in total.errors.items()) or "0", nan),
        "unexpected disconnects": (str(total.disconnects), nan),
        "server CPU, cores (all nodes)": (f"{load.cpu_seconds / seconds:.2f}",
                                          load.cpu_seconds / seconds),
        "server CPU ms / 1000 deliveries": (f"{cpu_per_k:.0f}", cpu_per_k),
        "actor msgs between nodes": (f"{run.remote_sent:.0f}", nan),
        "undeliverable remote sends": (f"{run.undeliverable:.0f}", nan),
        "server warnings, load": (str(run.log_in_window), nan),
        "server warnings, close+stop": (str(len(run.log_problems) - run.log_in_window), nan),
        "node exit codes": (",".join(str(c) for c in run.exit_codes), nan),
    }


def print_table(options: Options, one: Run, two: Run) -> None:
    print(f"\nHubbub cluster chat benchmark: {options.clients} clients in rooms of "
          f"{options.room_size}, {options.rate:g} msg/s each for {options.seconds:g}s per run "
          f"(Socket.IO manager: redis; {options.procs} client processes; clients spread "
          "evenly over the nodes)")
    left, right = _rows(options, one), _rows(options, two)
    width = max(len(name) for name in left)
    print(f"  {'':<{width}}  {'1 node':>12}  {'2 nodes':>12}  {'2/1':>6}")
    for name, (shown_one, value_one) in left.items():
        shown_two, value_two = right[name]
        print(f"  {name:<{width}}  {shown_one:>12}  {shown_two:>12}  "
              f"{_ratio(value_two, value_one):>6}")
    deliveries = _ratio(two.total.delivered, one.total.delivered)
    print(f"\n  deliveries/s, two nodes / one node: {deliveries} (a fixed offered load on one "
          "shared machine: this shows the cluster's overhead, not scaling)")
    for run in (one, two):
        if not run.healthy:
            print(f"  WARNING: the {run.size}-node run: {', '.join(troubles(run))} "
                  "(evidence printed above)")


def troubles(run: Run) -> list[str]:
    total, found = run.total, []
    if total.delivered != total.expected or total.shortfalls:
        found.append(f"delivered {total.delivered} of {total.expected}, "
                     f"{len(total.shortfalls)} messages short")
    if total.errors or total.failed_connects or total.disconnects:
        found.append("send errors, failed connects or disconnects")
    if run.log_in_window:
        found.append(f"{run.log_in_window} server warnings during the load")
    if len(run.log_problems) > run.log_in_window:
        found.append(f"{len(run.log_problems) - run.log_in_window} server warnings while "
                     "clients closed / nodes stopped")
    if any(code != 0 for code in run.exit_codes):
        found.append(f"node exit codes {run.exit_codes}")
    return found


def main() -> int:
    options = Options.from_env(clients=400, seconds=15)
    if not reachable(options.redis_url, 6379):
        print(f"bench-cluster needs Redis: nothing answers at {options.redis_url} "
              "(set BENCH_REDIS_URL)", file=sys.stderr)
        return 2
    one, two = [run_cluster(options, size) for size in SIZES]
    print_table(options, one, two)
    return 0 if all(code == 0 for run in (one, two) for code in run.exit_codes) else 1


if __name__ == "__main__":
    sys.exit(main())
