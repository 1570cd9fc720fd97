"""The scheduling adapters on real Postgres: claims are exactly once with several schedulers
racing, in priority order; a dead node's claim is taken over once its lease ends and its late
writes are fenced out; a NOTIFY wakes sleeping schedulers; the rules hold under concurrent
requests of one author."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
import pytest_asyncio

from actors.clock import LoopClock
from protocols.ids import new_id
from protocols.publishing import PublishRequest, PublishResult
from protocols.schedule_records import Settlement
from protocols.scheduling import ScheduledPostCreate, TargetSpec
from server.auth.principal import Principal
from server.http.problems import ProblemError
from server.scheduling.backoff import RetryPolicy
from server.scheduling.registry import PublishingRegistry
from server.scheduling.rules import ScheduleRules
from server.scheduling.scheduler import Scheduler, SchedulerOptions
from server.scheduling.service import ScheduleService
from storage.postgres.migrate import migrate
from storage.postgres.pool import create_pool
from storage.postgres.schedule_claims import PostgresClaimStore
from storage.postgres.schedule_listener import PostgresScheduleSignals
from storage.postgres.scheduled_posts import PostgresScheduleStore
from tests.support.databases import create_database, drop_database
from tests.support.polling import eventually

pytestmark = pytest.mark.integration


@pytest_asyncio.fixture(scope="module")
async def schedule_dsn(admin_pg_dsn: str) -> AsyncIterator[str]:
    """A database of its own: schedulers claim every due post in the database they see."""
    dsn = await create_database(admin_pg_dsn, prefix="hubbub_sched")
    conn = await asyncpg.connect(dsn)
    try:
        await migrate(conn)
    finally:
        await conn.close()
    yield dsn
    await drop_database(admin_pg_dsn, dsn)


@pytest_asyncio.fixture
async def pool(schedule_dsn: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(schedule_dsn, min_size=1, max_size=10)
    await pool.execute("DELETE FROM scheduled_posts")
    yield pool
    await pool.close()


async def user(pool: asyncpg.Pool) -> str:
    user_id = new_id()
    name = f"s_{uuid.uuid4().hex[:10]}"
    await pool.execute("INSERT INTO users (id, username, email, password_hash)"
                       " VALUES ($1, $2, $3, 'x')", user_id, name, f"{name}@example.test")
    return user_id


async def insert_posts(pool: asyncpg.Pool, author: str, due: list[tuple[datetime, int]],
                       kinds: tuple[str, ...] = ("hubbub",)) -> list[str]:
    """Posts straight into the tables, (scheduled_for, priority) each, bypassing the rules."""
    ids = [new_id() for _ in due]
    async with pool.acquire() as conn, conn.transaction():
        await conn.executemany(
            "INSERT INTO scheduled_posts (id, author_id, text, scheduled_for, timezone,"
            " local_time, priority, next_attempt_at)"
            " VALUES ($1, $2, 'hello', $3, 'UTC', $3::timestamptz AT TIME ZONE 'UTC', $4, $3)",
            [(post_id, author, at, priority) for post_id, (at, priority) in zip(ids, due,
                                                                                 strict=True)])
        await conn.executemany(
            "INSERT INTO scheduled_post_targets (scheduled_post_id, position, kind)"
            " VALUES ($1, $2, $3)",
            [(post_id, i, kind) for post_id in ids for i, kind in enumerate(kinds)])
    return ids


class Recorder:
    """A publisher of one kind counting calls per (post, target)."""

    def __init__(self, kind: str, calls: Counter[tuple[str, int]]) -> None:
        self.kind = kind
        self.calls = calls
        self.order: list[str] = []

    async def publish(self, request: PublishRequest) -> PublishResult:
        self.calls[(request.scheduled_post_id, request.target_index)] += 1
        self.order.append(request.scheduled_post_id)
        return PublishResult(external_id=f"{request.scheduled_post_id}:{request.target_index}")


def options(**overrides: object) -> SchedulerOptions:
    base: dict[str, object] = {"batch_size": 20, "concurrency": 8, "lease": 30.0,
                               "tick": 30.0, "retry": RetryPolicy(max_attempts=2, base=0.1)}
    return SchedulerOptions(**{**base, **overrides})  # type: ignore[arg-type]


def now() -> datetime:
    return datetime.now(UTC)


async def test_racing_claims_never_take_a_post_twice(pool: asyncpg.Pool) -> None:
    author = await user(pool)
    ids = set(await insert_posts(pool, author, [(now() - timedelta(seconds=1), 2)] * 150))
    store = PostgresClaimStore(pool)
    batches = await asyncio.gather(*(store.claim(f"node-{i}", 20, 30.0) for i in range(10)))
    claimed = [post.id for batch in batches for post in batch]
    assert len(claimed) == len(set(claimed)) == 150
    assert set(claimed) == ids
    assert sum(1 for batch in batches if batch) >= 2  # they really raced
    assert await store.claim("late", 20, 30.0) == []  # all held


async def test_claims_come_in_priority_order_and_only_when_due(pool: asyncpg.Pool) -> None:
    author = await user(pool)
    t = now()
    due = [(t - timedelta(seconds=5), 3), (t - timedelta(seconds=4), 2),
           (t - timedelta(seconds=1), 0), (t - timedelta(seconds=3), 2),
           (t - timedelta(seconds=2), 1), (t + timedelta(hours=1), 0)]
    ids = await insert_posts(pool, author, due)
    store = PostgresClaimStore(pool)
    first = await store.claim("n", 2, 30.0)
    rest = await store.claim("n", 10, 30.0)
    order = [ids.index(post.id) for post in first + rest]
    assert order == [2, 4, 1, 3, 0]  # urgent, high, normal (the older first), low
    assert 5 not in order  # not due yet
    next_due = await store.next_due_in()
    assert next_due is not None and 0 < next_due <= 30.0  # the leases end first


async def test_several_schedulers_publish_each_target_exactly_once(pool: asyncpg.Pool,
                                                                   schedule_dsn: str) -> None:
    authors = [await user(pool) for _ in range(5)]
    t = now() + timedelta(seconds=0.5)
    ids: list[str] = []
    for author in authors:
        ids += await insert_posts(pool, author, [(t, random.randrange(4))] * 60,
                                  kinds=("hubbub", "webhook"))
    calls: Counter[tuple[str, int]] = Counter()
    pools = [await create_pool(schedule_dsn, min_size=1, max_size=4) for _ in range(4)]
    schedulers = [Scheduler(PostgresClaimStore(p), {"hubbub": Recorder("hubbub", calls),
                                                    "webhook": Recorder("webhook", calls)},
                            node_id=f"node-{i}", clock=LoopClock(), options=options(),
                            signals=PostgresScheduleSignals(p))
                  for i, p in enumerate(pools)]
    try:
        await asyncio.gather(*(s.start() for s in schedulers))

        async def all_published() -> bool:
            count = await pool.fetchval(
                "SELECT count(*) FROM scheduled_posts WHERE status = 'published'")
            return count == len(ids)

        await eventually(all_published, 30, "every post to be published")
    finally:
        for scheduler in schedulers:
            await scheduler.stop()
        for p in pools:
            await p.close()
    assert set(calls) == {(post_id, i) for post_id in ids for i in (0, 1)}
    assert set(calls.values()) == {1}
    attempts = await pool.fetch(
        "SELECT node_id, count(*) AS n FROM scheduled_post_attempts GROUP BY node_id")
    assert sum(row["n"] for row in attempts) == 2 * len(ids)
    assert len(attempts) >= 2  # the work was shared
    events = await pool.fetchval(
        "SELECT count(*) FROM outbox WHERE type = 'post.published'"
        " AND (envelope->'data'->>'scheduled_post_id')::uuid = ANY($1::uuid[])", ids)
    assert events == len(ids)


async def test_a_dead_nodes_claim_is_reclaimed_and_its_writes_fenced(
        pool: asyncpg.Pool) -> None:
    author = await user(pool)
    [post_id] = await insert_posts(pool, author, [(now() - timedelta(seconds=1), 2)])
    store = PostgresClaimStore(pool)
    [dead] = await store.claim("dead-node", 10, 1.0)  # then it dies: no renewals, no writes
    calls: Counter[tuple[str, int]] = Counter()
    survivor = Scheduler(store, {"hubbub": Recorder("hubbub", calls)}, node_id="survivor",
                         clock=LoopClock(), options=options(tick=0.2))
    await survivor.start()
    try:
        async def published() -> bool:
            return await pool.fetchval("SELECT status FROM scheduled_posts WHERE id = $1",
                                       post_id) == "published"

        await eventually(published, 10, "the survivor to publish the dead node's post")
    finally:
        await survivor.stop()
    assert calls == Counter({(post_id, 0): 1})
    row = await pool.fetchrow("SELECT claim_seq, rounds, claimed_by FROM scheduled_posts"
                              " WHERE id = $1", post_id)
    assert (row["claim_seq"], row["rounds"], row["claimed_by"]) == (2, 2, None)
    # The dead node wakes up and tries to finish: refused.
    assert not await store.finish(dead, [], [], Settlement(status="failed", at=now()))
    assert await pool.fetchval("SELECT status FROM scheduled_posts WHERE id = $1",
                               post_id) == "published"


async def test_a_schedule_change_wakes_sleeping_schedulers(pool: asyncpg.Pool) -> None:
    author = await user(pool)
    calls: Counter[tuple[str, int]] = Counter()
    registry = PublishingRegistry()
    registry.add(Recorder("hubbub", calls))  # type: ignore[arg-type]
    scheduler = Scheduler(PostgresClaimStore(pool), registry.publishers, node_id="sleeper",
                          clock=LoopClock(), options=options(tick=60.0),
                          signals=PostgresScheduleSignals(pool))
    await scheduler.start()
    try:
        await asyncio.wait_for(scheduler.wait_idle(), 5)  # asleep for a minute
        service = ScheduleService(PostgresScheduleStore(pool), rules=ScheduleRules(),
                                  clock=LoopClock(), registry=registry)
        caller = Principal(user_id=author, role="user", token_id="t", expires_at=0)
        due = now() + timedelta(seconds=0.5)
        post = await service.create(caller, ScheduledPostCreate(text="wake up",
                                                                scheduled_for=due))

        async def published() -> bool:
            return (await service.get(caller, post.id)).status == "published"

        await eventually(published, 5, "the NOTIFY to wake the scheduler")
        done = await service.get(caller, post.id)
        assert done.published_at is not None
        assert (done.published_at - done.scheduled_for).total_seconds() < 1.0
    finally:
        await scheduler.stop()


async def test_concurrent_requests_of_one_author_cannot_beat_the_rules(
        pool: asyncpg.Pool) -> None:
    author = await user(pool)
    registry = PublishingRegistry()
    registry.add(Recorder("hubbub", Counter()))  # type: ignore[arg-type]
    service = ScheduleService(
        PostgresScheduleStore(pool), clock=LoopClock(), registry=registry,
        rules=ScheduleRules(min_interval=timedelta(minutes=10), max_pending=3))
    caller = Principal(user_id=author, role="user", token_id="t", expires_at=0)
    at = now() + timedelta(hours=1)
    body = ScheduledPostCreate(text="once", scheduled_for=at,
                               targets=[TargetSpec(kind="hubbub")])
    results = await asyncio.gather(*(service.create(caller, body) for _ in range(6)),
                                   return_exceptions=True)
    created = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, ProblemError)]
    assert len(created) == 1 and len(refused) == 5
    assert {r.code for r in refused} == {"schedule_min_interval"}
    assert {r.next_free_slot for r in refused} == {at + timedelta(minutes=10)}  # type: ignore[attr-defined]
    # The pending limit: two more fit, the fourth does not, whatever the time.
    for minutes in (20, 40):
        await service.create(caller, ScheduledPostCreate(
            text="more", scheduled_for=at + timedelta(minutes=minutes)))
    with pytest.raises(ProblemError) as full:
        await service.create(caller, ScheduledPostCreate(
            text="one too many", scheduled_for=at + timedelta(days=3)))
    assert full.value.code == "schedule_pending_limit"
