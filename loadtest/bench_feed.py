"""`make bench-feed`: seed a social graph, then measure home-feed reads and push vs pull fan-out.

What it does, and stops by itself within a few minutes on a 2-core machine:

1. Starts `hubbub serve` on a free 127.0.0.1 port against a fresh database (created on
   127.0.0.1:5432 and dropped at the end; when no Postgres answers there, an embedded
   Postgres in a temporary folder) and Redis on 127.0.0.1:6379 under a throwaway key prefix
   (deleted at the end; without Redis the server keeps timelines in memory). The server
   migrates the database at start.
2. Seeds the graph straight into Postgres with COPY: BENCH_USERS users (raised to
   BENCH_BIG_FOLLOWERS + 2 when smaller: one author cannot have 50,000 followers among
   10,000 users), a "big" author followed by BENCH_BIG_FOLLOWERS users (above
   FEED_PUSH_THRESHOLD: pulled at read time), a "push" author followed by
   BENCH_PUSH_FOLLOWERS users (below it: pushed), BENCH_AUTHORS regular authors each user
   follows BENCH_FOLLOWS_PER_USER of, BENCH_POSTS posts over the last week (10% of the
   regular ones replies) and likes over the last two days for the popular feed.
3. Readers are seeded users; their access tokens are minted with the JWT_SECRET the bench
   gives the server (signing up thousands of users through argon2 would be the benchmark).
   Cold reads: the first GET /v1/feed of each of BENCH_READERS readers (their timeline is
   rebuilt from Postgres). Warm reads: BENCH_CONCURRENCY concurrent clients for
   BENCH_SECONDS (or BENCH_MAX_REQUESTS), 3 in 4 first pages and 1 in 4 second pages;
   then GET /v1/feed/popular the same way for a third of the time, and, for scale, GET
   /v1/users/me (one row through the same auth / rate-limit / logging stack) for a quarter.
4. Fan-out, BENCH_FANOUT_ROUNDS times each: POST /v1/posts by the push author, then by the
   big author; measures the time until the post is visible in a follower's feed (polled)
   and the fan-out consumer's own time (its "feed fan-out done" log line).

The bench client shares the 2 cores with the server, Postgres and Redis: absolute numbers
are a floor, the comparison is the point. Environment (defaults): BENCH_USERS (10000),
BENCH_BIG_FOLLOWERS (50000), BENCH_PUSH_FOLLOWERS (5000), BENCH_AUTHORS (1000),
BENCH_FOLLOWS_PER_USER (10), BENCH_POSTS (200000), BENCH_LIKES (50000), BENCH_READERS (1000),
BENCH_CONCURRENCY (16), BENCH_SECONDS (20), BENCH_MAX_REQUESTS (50000),
BENCH_FANOUT_ROUNDS (3), BENCH_PUSH_THRESHOLD (10000: the server's FEED_PUSH_THRESHOLD; it
must lie above BENCH_PUSH_FOLLOWERS and at most BENCH_BIG_FOLLOWERS), BENCH_LOG_LEVEL (INFO:
the fan-out time comes from the log),
BENCH_POSTGRES_URL (postgresql://postgres@127.0.0.1:5432/postgres), BENCH_REDIS_URL
(redis://127.0.0.1:6379/0).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import statistics
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
from feed_graph import seed
from harness import UNLIMITED, BenchServer, mint_token, tail

VISIBLE_DEADLINE = 30.0

def _int(name: str, default: int) -> int:
    return int(os.environ.get(name, "") or default)


@dataclass
class Options:
    users: int
    big_followers: int
    push_followers: int
    authors: int
    follows_per_user: int
    posts: int
    likes: int
    readers: int
    concurrency: int
    seconds: float
    max_requests: int
    fanout_rounds: int
    push_threshold: int
    log_level: str
    postgres_url: str
    redis_url: str

    @classmethod
    def from_env(cls) -> Options:
        big = _int("BENCH_BIG_FOLLOWERS", 50_000)
        return cls(
            users=max(_int("BENCH_USERS", 10_000), big + 2),
            big_followers=big,
            push_followers=_int("BENCH_PUSH_FOLLOWERS", 5_000),
            authors=_int("BENCH_AUTHORS", 1_000),
            follows_per_user=_int("BENCH_FOLLOWS_PER_USER", 10),
            posts=_int("BENCH_POSTS", 200_000),
            likes=_int("BENCH_LIKES", 50_000),
            readers=_int("BENCH_READERS", 1_000),
            concurrency=_int("BENCH_CONCURRENCY", 16),
            seconds=float(os.environ.get("BENCH_SECONDS", "") or 20),
            max_requests=_int("BENCH_MAX_REQUESTS", 50_000),
            fanout_rounds=_int("BENCH_FANOUT_ROUNDS", 3),
            push_threshold=_int("BENCH_PUSH_THRESHOLD", 10_000),
            log_level=os.environ.get("BENCH_LOG_LEVEL", "INFO"),
            postgres_url=os.environ.get(
                "BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
            redis_url=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0"),
        )


# Measuring --------------------------------------------------------------------------------


def mint(secret: str, user_id: uuid.UUID) -> dict[str, str]:
    return {"Authorization": f"Bearer {mint_token(secret, str(user_id))}"}


@dataclass
class Sample:
    latencies: list[float] = field(default_factory=list)  # seconds
    errors: int = 0
    items: int = 0
    elapsed: float = 0.0

    def line(self, label: str) -> str:
        if not self.latencies:
            return f"{label:<34} no successful requests ({self.errors} errors)"
        ms = sorted(x * 1000 for x in self.latencies)

        def pct(p: float) -> float:
            return ms[min(len(ms) - 1, int(p * len(ms)))]

        rate = len(ms) / self.elapsed if self.elapsed else 0.0
        return (f"{label:<34} {len(ms):>7} {self.errors:>5} {rate:>8.1f} {pct(0.5):>8.1f} "
                f"{pct(0.9):>8.1f} {pct(0.99):>8.1f} {ms[-1]:>8.1f} "
                f"{self.items / len(ms):>6.1f}")


async def timed_get(http: aiohttp.ClientSession, url: str, headers: dict[str, str],
                    sample: Sample, **params: str) -> dict[str, Any] | None:
    started = time.monotonic()
    try:
        async with http.get(url, headers=headers, params=params) as response:
            body = await response.json(content_type=None)
            ok = response.status == 200
    except (aiohttp.ClientError, TimeoutError, json.JSONDecodeError):
        ok, body = False, None
    if not ok:
        sample.errors += 1
        return None
    sample.latencies.append(time.monotonic() - started)
    sample.items += len(body.get("items", ()))
    return body


async def cold_reads(http: aiohttp.ClientSession, base: str, tokens: list[dict[str, str]],
                     concurrency: int) -> tuple[Sample, dict[int, str]]:
    """Each reader's first page (their timeline is rebuilt); returns their next cursors."""
    sample = Sample()
    cursors: dict[int, str] = {}
    queue = list(range(len(tokens)))
    started = time.monotonic()

    async def worker() -> None:
        while queue:
            i = queue.pop()
            body = await timed_get(http, f"{base}/v1/feed", tokens[i], sample, limit="20")
            if body and body["next_cursor"]:
                cursors[i] = body["next_cursor"]

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    sample.elapsed = time.monotonic() - started
    return sample, cursors


async def warm_reads(http: aiohttp.ClientSession, url: str, tokens: list[dict[str, str]],
                     cursors: dict[int, str], options: Options, seconds: float,
                     rng: random.Random) -> Sample:
    sample = Sample()
    deadline = time.monotonic() + seconds
    budget = [options.max_requests]
    started = time.monotonic()

    async def worker() -> None:
        while time.monotonic() < deadline and budget[0] > 0:
            budget[0] -= 1
            i = rng.randrange(len(tokens))
            params = {"limit": "20"}
            if i in cursors and rng.random() < 0.25:
                params["cursor"] = cursors[i]
            await timed_get(http, url, tokens[i], sample, **params)

    await asyncio.gather(*(worker() for _ in range(options.concurrency)))
    sample.elapsed = time.monotonic() - started
    return sample


def fanout_log(log_path: Path, post_id: str) -> dict[str, Any] | None:
    for line in log_path.read_text(errors="replace").splitlines():
        if post_id in line and line.startswith("{"):
            entry = json.loads(line)
            if entry.get("msg") == "feed fan-out done" and entry.get("post_id") == post_id:
                return entry
    return None


async def measure_fanout(http: aiohttp.ClientSession, base: str, secret: str, author: uuid.UUID,
                         follower: uuid.UUID, log_path: Path, log_level: str,
                         ) -> tuple[float, float | None, dict[str, Any] | None]:
    """(seconds from POST to visible in the follower's feed, seconds from POST to the
    consumer's done line, the done line)."""
    headers = mint(secret, follower)
    started = time.monotonic()
    wall = time.time()
    async with http.post(f"{base}/v1/posts", headers=mint(secret, author),
                         json={"text": f"fan-out probe {uuid.uuid4().hex[:6]}"}) as response:
        body = await response.json(content_type=None)
        if response.status != 201:
            raise RuntimeError(f"POST /v1/posts: {response.status} {body}")
    post_id = body["id"]
    visible = None
    while time.monotonic() - started < VISIBLE_DEADLINE:
        async with http.get(f"{base}/v1/feed", headers=headers, params={"limit": "5"}) as r:
            page = await r.json(content_type=None)
        if any(item["id"] == post_id for item in page.get("items", [])):
            visible = time.monotonic() - started
            break
        await asyncio.sleep(0.005)  # the consumer cannot notify us: poll the feed
    if visible is None:
        raise TimeoutError(f"post {post_id} not visible after {VISIBLE_DEADLINE}s")
    entry = None
    if log_level in ("DEBUG", "INFO"):
        for _ in range(int(VISIBLE_DEADLINE / 0.05)):  # a log file cannot notify us: poll
            if (entry := fanout_log(log_path, post_id)) is not None:
                break
            await asyncio.sleep(0.05)
    done = None
    if entry is not None:
        logged = datetime.strptime(entry["ts"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
        done = logged.timestamp() - wall
    return visible, done, entry


async def run(options: Options, bench: BenchServer) -> None:
    rng = random.Random(20240601)
    secret = bench.secret
    base = await asyncio.to_thread(
        bench.start, options.log_level,
        RATE_LIMIT_ROUTES=f"posts.create={UNLIMITED}", POSTS_PER_DAY=UNLIMITED,
        FEED_PUSH_THRESHOLD=str(options.push_threshold),
    )
    print(f"seeding (users {options.users:,}, big author followers {options.big_followers:,}, "
          f"push author followers {options.push_followers:,}, posts {options.posts:,}) ...",
          flush=True)
    conn = await asyncpg.connect(bench.database_dsn)
    try:
        graph = await seed(conn, options, rng)
    finally:
        await conn.close()

    tokens = [mint(secret, reader) for reader in graph.readers]
    log_path = bench.log_path
    connector = aiohttp.TCPConnector(limit=options.concurrency * 2)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
        print(f"cold reads: the first feed page of {len(tokens):,} readers ...", flush=True)
        cold, cursors = await cold_reads(http, base, tokens, options.concurrency)
        print(f"warm reads: {options.concurrency} clients for {options.seconds:g}s ...",
              flush=True)
        warm = await warm_reads(http, f"{base}/v1/feed", tokens, cursors, options,
                                options.seconds, rng)
        popular = await warm_reads(http, f"{base}/v1/feed/popular", tokens, {}, options,
                                   options.seconds / 3, rng)
        # For scale: an authenticated read of one row through the same middleware stack.
        baseline = await warm_reads(http, f"{base}/v1/users/me", tokens, {}, options,
                                    options.seconds / 4, rng)
        print("fan-out: push author vs pull author ...", flush=True)
        follower = min(graph.readers)  # the last follower id a keyset batch reaches
        rounds: list[tuple[str, float, float | None, dict[str, Any] | None]] = []
        for _ in range(options.fanout_rounds):
            for label, author in (("push", graph.push), ("pull", graph.big)):
                visible, done, entry = await measure_fanout(
                    http, base, secret, author, follower, log_path, options.log_level)
                rounds.append((label, visible, done, entry))

    print_report(options, bench.notes, cold, warm, popular, baseline, rounds)


def print_report(options: Options, notes: list[str], cold: Sample, warm: Sample,
                 popular: Sample, baseline: Sample, rounds: list[tuple[str, float, float | None,
                                                     dict[str, Any] | None]]) -> None:
    print(f"\nHubbub feed benchmark ({os.cpu_count()} CPUs; the client shares them)")
    for note in notes:
        print(f"  {note}")
    print(f"  FEED_PUSH_THRESHOLD={options.push_threshold:,}")
    print(f"  graph: {options.users:,} users; big author {options.big_followers:,} followers "
          f"(pulled); push author {options.push_followers:,} followers (pushed); "
          f"{options.authors:,} regular authors, {options.follows_per_user} followed per user; "
          f"{options.posts:,} posts; {options.likes:,} likes")
    header = (f"{'feed reads':<34} {'reqs':>7} {'errs':>5} {'req/s':>8} {'p50 ms':>8} "
              f"{'p90 ms':>8} {'p99 ms':>8} {'max ms':>8} {'items':>6}")
    print("\n" + header + "\n" + "-" * len(header))
    print(cold.line(f"GET /v1/feed cold (rebuild) x{options.concurrency}"))
    print(warm.line(f"GET /v1/feed warm x{options.concurrency}"))
    print(popular.line(f"GET /v1/feed/popular x{options.concurrency}"))
    print(baseline.line(f"(baseline) GET /v1/users/me x{options.concurrency}"))
    print(f"\n{'fan-out of one post':<22} {'followers':>9} {'pushed':>7} "
          f"{'consumer ms':>11} {'POST->done ms':>13} {'POST->visible ms':>16}")
    for label, visible, done, entry in rounds:
        followers = entry.get("followers") if entry else None
        pushed = entry.get("pushed") if entry else None
        consumer = entry.get("elapsed_ms") if entry else None
        print(f"{label + ' author':<22} {followers if followers is not None else '?':>9} "
              f"{pushed if pushed is not None else '?':>7} "
              f"{consumer if consumer is not None else '?':>11} "
              f"{f'{done * 1000:.1f}' if done is not None else '?':>13} "
              f"{visible * 1000:>16.1f}")
    for label in ("push", "pull"):
        mine = [r for r in rounds if r[0] == label]
        if mine:
            print(f"  {label}: median POST->visible "
                  f"{statistics.median(r[1] for r in mine) * 1000:.1f} ms"
                  + (f", median consumer "
                     f"{statistics.median(r[3]['elapsed_ms'] for r in mine if r[3]):.1f} ms"
                     if all(r[3] for r in mine) else ""))


async def amain() -> int:
    options = Options.from_env()
    if not options.push_followers < options.push_threshold <= options.big_followers:
        print("need BENCH_PUSH_FOLLOWERS < BENCH_PUSH_THRESHOLD <= BENCH_BIG_FOLLOWERS",
              file=sys.stderr)
        return 2
    bench = BenchServer("bench-feed", options.postgres_url, options.redis_url)
    started = time.monotonic()
    try:
        await run(options, bench)
    finally:
        code, _ = bench.stop()
        print(f"\nserver stopped with exit code {code}; cleaning up ...", flush=True)
        if code not in (0, None):
            print(tail(bench.log_path), file=sys.stderr)
        await asyncio.to_thread(bench.close)
    print(f"done in {time.monotonic() - started:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(amain()))
