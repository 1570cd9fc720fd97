"""`make bench-scheduler`: how late scheduled posts are published, idle and in a burst.

What it does, stopping by itself within a few minutes on a 2-core machine:

1. Starts a throwaway cluster of BENCH_NODES `hubbub serve` processes (loadtest/cluster.py:
   one fresh database on 127.0.0.1:5432, one Redis key prefix; one node runs without Redis
   when none answers) and seeds BENCH_AUTHORS users straight into Postgres.
2. Idle: BENCH_IDLE_POSTS posts, one every BENCH_IDLE_GAP seconds, each scheduled through
   the API 1.5 s ahead while nothing else is due. Lateness: published_at - scheduled_for.
3. Burst: BENCH_POSTS posts (a quarter per priority) due in one and the same second, a few
   seconds ahead, written straight into the tables (the per-author rules would refuse them
   through the API) with a NOTIFY so the sleeping schedulers wake and look. Measures the
   lateness p50 / p99 / max, the posts published per second from the first due time to the
   last publication, the mean lateness per priority (urgent should be lowest), and checks
   that each post was published exactly once (one Hubbub post per scheduled post, one
   attempt per target).

The driver shares the 2 cores with the servers, Postgres and Redis: the figures are a floor.
Environment (defaults): BENCH_NODES (3), BENCH_POSTS (2000), BENCH_AUTHORS (50),
BENCH_IDLE_POSTS (20), BENCH_IDLE_GAP (0.5), BENCH_LEAD_SECONDS (5: how far ahead the burst's
second starts), BENCH_CONCURRENCY (the nodes' SCHEDULER_CONCURRENCY, 8),
BENCH_POSTGRES_URL (postgresql://postgres@127.0.0.1:5432/postgres), BENCH_REDIS_URL
(redis://127.0.0.1:6379/0).
"""

from __future__ import annotations

import asyncio
import os
import random
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta

import aiohttp
import asyncpg
from cluster import BenchCluster
from harness import (
    DEFAULT_POSTGRES,
    DEFAULT_REDIS,
    UNLIMITED,
    BenchServer,
    insert_users,
    mint_token,
    tail,
)

PRIORITIES = ("urgent", "high", "normal", "low")
DONE_DEADLINE = 300.0
POLL = 0.2  # the database cannot tell us when the last post is out: look this often


def _int(name: str, default: int) -> int:
    return int(os.environ.get(name, "") or default)


def _float(name: str, default: float) -> float:
    return float(os.environ.get(name, "") or default)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


async def seed_authors(dsn: str, count: int) -> list[str]:
    ids = [str(uuid.uuid4()) for _ in range(count)]
    await insert_users(dsn, ids, "sched")
    return ids


async def idle_lateness(node: BenchServer, dsn: str, author: str, count: int,
                        gap: float) -> list[float]:
    """Schedule `count` posts through the API, 1.5 s ahead each, `gap` seconds apart, with
    the rules relaxed on the bench nodes; their lateness once all are out."""
    token = mint_token(node.secret, author)
    ids = []
    async with aiohttp.ClientSession(base_url=node.base_url,
                                     headers={"Authorization": f"Bearer {token}"}) as http:
        for n in range(count):
            due = datetime.now(UTC) + timedelta(seconds=1.5)
            async with http.post("/v1/scheduled_posts", json={
                    "text": f"idle {n}", "scheduled_for": due.isoformat()}) as response:
                body = await response.json()
                if response.status != 201:
                    raise RuntimeError(f"scheduling failed: {response.status} {body}")
                ids.append(body["id"])
            await asyncio.sleep(gap)
    return await lateness_of(dsn, ids)


async def lateness_of(dsn: str, ids: list[str]) -> list[float]:
    conn = await asyncpg.connect(dsn)
    try:
        deadline = time.monotonic() + DONE_DEADLINE
        while True:
            rows = await conn.fetch(
                "SELECT extract(epoch FROM published_at - scheduled_for)::float8 AS late"
                " FROM scheduled_posts WHERE id = ANY($1::uuid[]) AND status = 'published'",
                ids)
            if len(rows) == len(ids):
                return [row["late"] for row in rows]
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(rows)} of {len(ids)} published")
            await asyncio.sleep(POLL)
    finally:
        await conn.close()


async def burst(dsn: str, authors: list[str], posts: int, lead: float,
                rng: random.Random) -> dict[str, object]:
    """`posts` posts due within one second starting `lead` seconds from now; waits for all
    of them and returns the figures."""
    second = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=lead)
    rows = []
    for n in range(posts):
        due = second + timedelta(microseconds=rng.randrange(1_000_000))
        rows.append((uuid.uuid4(), uuid.UUID(authors[n % len(authors)]), f"burst {n}", due,
                     "UTC", due.replace(tzinfo=None), n % 4, due))
    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction():
            await conn.copy_records_to_table(
                "scheduled_posts", records=rows,
                columns=["id", "author_id", "text", "scheduled_for", "timezone", "local_time",
                         "priority", "next_attempt_at"])
            await conn.copy_records_to_table(
                "scheduled_post_targets", columns=["scheduled_post_id", "position", "kind"],
                records=[(row[0], 0, "hubbub") for row in rows])
            await conn.execute("NOTIFY hubbub_scheduling")  # direct writes wake no one
        ids = [str(row[0]) for row in rows]
        print(f"burst: {posts} posts due between {second:%H:%M:%S} and +1 s", flush=True)
        deadline = time.monotonic() + DONE_DEADLINE + lead
        while True:
            done = await conn.fetchval(
                "SELECT count(*) FROM scheduled_posts WHERE id = ANY($1::uuid[])"
                " AND status IN ('published', 'failed')", ids)
            if done == posts:
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {done} of {posts} settled")
            await asyncio.sleep(POLL)
        result = await conn.fetch(
            "SELECT status, priority, scheduled_for, published_at, claimed_by,"
            " extract(epoch FROM published_at - scheduled_for)::float8 AS late,"
            " (SELECT count(*) FROM scheduled_post_attempts a"
            "  WHERE a.scheduled_post_id = s.id) AS attempts"
            " FROM scheduled_posts s WHERE id = ANY($1::uuid[])", ids)
        created = await conn.fetchval(
            "SELECT count(*) FROM posts WHERE text LIKE 'burst %'")
        nodes = await conn.fetch(
            "SELECT node_id, count(*) AS n FROM scheduled_post_attempts a"
            " WHERE a.scheduled_post_id = ANY($1::uuid[]) GROUP BY node_id ORDER BY node_id",
            ids)
        errors = await conn.fetch(
            "SELECT error_code, count(*) AS n, min(error) AS example"
            " FROM scheduled_post_attempts WHERE scheduled_post_id = ANY($1::uuid[])"
            " AND outcome <> 'published' GROUP BY error_code", ids)
        spans = await conn.fetch(
            "SELECT extract(epoch FROM finished_at - started_at)::float8 AS took"
            " FROM scheduled_post_attempts WHERE scheduled_post_id = ANY($1::uuid[])", ids)
    finally:
        await conn.close()
    published = [r for r in result if r["status"] == "published"]
    late = [r["late"] for r in published]
    first_due = min(r["scheduled_for"] for r in result)
    last_out = max(r["published_at"] for r in published)
    return {
        "published": len(published), "failed": posts - len(published),
        "posts_created": created, "max_attempts": max(r["attempts"] for r in result),
        "p50": percentile(late, 0.5), "p99": percentile(late, 0.99), "max": max(late),
        "per_second": len(published) / max(1e-9, (last_out - first_due).total_seconds()),
        "by_priority": {name: statistics.fmean([r["late"] for r in published
                                                if r["priority"] == rank])
                        for rank, name in enumerate(PRIORITIES)},
        "by_node": {row["node_id"]: row["n"] for row in nodes},
        "errors": {row["error_code"]: (row["n"], row["example"]) for row in errors},
        "publish_p50": percentile([r["took"] for r in spans], 0.5),
        "publish_p99": percentile([r["took"] for r in spans], 0.99),
    }


async def run() -> int:
    nodes = _int("BENCH_NODES", 3)
    posts = _int("BENCH_POSTS", 2000)
    authors_count = _int("BENCH_AUTHORS", 50)
    idle_posts = _int("BENCH_IDLE_POSTS", 20)
    idle_gap = _float("BENCH_IDLE_GAP", 0.5)
    lead = _float("BENCH_LEAD_SECONDS", 5.0)
    concurrency = os.environ.get("BENCH_CONCURRENCY", "") or "8"
    postgres = os.environ.get("BENCH_POSTGRES_URL", DEFAULT_POSTGRES)
    redis_url = os.environ.get("BENCH_REDIS_URL", DEFAULT_REDIS)
    env = {"POSTS_PER_DAY": UNLIMITED, "SCHEDULE_MAX_PENDING": "0",
           "SCHEDULE_MIN_INTERVAL_SECONDS": "0", "SCHEDULE_MAX_PER_HOUR": "0",
           "SCHEDULE_MAX_PER_DAY": "0", "SCHEDULER_CONCURRENCY": concurrency,
           # Three nodes and the other benchmarks share one Postgres (max_connections).
           "DB_POOL_MAX": "12"}
    cluster = BenchCluster("bench-sched", nodes, postgres, redis_url) if nodes > 1 else None
    single = BenchServer("bench-sched", postgres, redis_url) if cluster is None else None
    try:
        if cluster is not None:
            await asyncio.to_thread(cluster.start, "WARNING", **env)
            first = cluster.nodes[0]
        else:
            assert single is not None
            await asyncio.to_thread(single.start, "WARNING", **env)
            first = single
        dsn = first.database_dsn
        print(f"{nodes} node(s); {', '.join(first.notes)}", flush=True)
        authors = await seed_authors(dsn, authors_count)
        idle = await idle_lateness(first, dsn, authors[0], idle_posts, idle_gap)
        figures = await burst(dsn, authors, posts, lead, random.Random(7))
    except Exception:
        for node in (cluster.nodes if cluster else [single]):
            if node is not None:
                print(f"--- {node.name} log tail ---\n{tail(node.log_path)}", file=sys.stderr)
        raise
    finally:
        await asyncio.to_thread(cluster.close if cluster else single.close)  # type: ignore[union-attr]
    print()
    print(f"idle ({idle_posts} posts, one every {idle_gap:g} s): lateness p50 "
          f"{percentile(idle, 0.5) * 1000:.0f} ms, p99 {percentile(idle, 0.99) * 1000:.0f} ms,"
          f" max {max(idle) * 1000:.0f} ms")
    print(f"burst ({posts} posts due in one second, {nodes} node(s), SCHEDULER_CONCURRENCY "
          f"{concurrency}):")
    print(f"  published {figures['published']}, failed {figures['failed']}, Hubbub posts "
          f"created {figures['posts_created']}, most attempts for one post "
          f"{figures['max_attempts']}")
    print(f"  lateness p50 {figures['p50']:.2f} s, p99 {figures['p99']:.2f} s, "
          f"max {figures['max']:.2f} s; {figures['per_second']:.0f} posts/s")
    by_priority = figures["by_priority"]
    assert isinstance(by_priority, dict)
    print("  mean lateness by priority: " + ", ".join(
        f"{name} {value:.2f} s" for name, value in by_priority.items()))
    print(f"  attempts by node: {figures['by_node']}")
    print(f"  one publish call: p50 {figures['publish_p50'] * 1000:.0f} ms, p99 "
          f"{figures['publish_p99'] * 1000:.0f} ms")
    if figures["errors"]:
        print(f"  transient failures (retried): {figures['errors']}")
    # Exactly once: one Hubbub post per scheduled post, whatever was retried on the way.
    ok = figures["published"] == posts and figures["posts_created"] == posts
    print("exactly once: " + ("yes" if ok else "NO"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(run()))
