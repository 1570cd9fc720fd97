"""The outbox relay against real Postgres, on a database of its own (the advisory lock and the
outbox are per database, so other tests' events never reach these relays).

Committed events are published in seq order; a rolled-back transaction's never are; NOTIFY
wakes the relay long before its poll interval; one relay of two is active and the other takes
over when it stops or its connection dies; the cleanup job and lag figures; dead letters.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta

import asyncpg
import msgspec
import pytest
import pytest_asyncio

from protocols.events import EventEnvelope
from protocols.ids import new_id
from server.events.relay import OutboxRelay, RelayOptions
from storage.memory.dead_letters import MemoryDeadLetters
from storage.memory.event_bus import InProcessEventBus
from storage.postgres.dead_letters import PostgresDeadLetters
from storage.postgres.migrate import migrate_dsn
from storage.postgres.outbox import append_events
from storage.postgres.outbox_relay import RELAY_LOCK_KEY, LeadershipLost, PostgresOutboxStore
from storage.postgres.pool import create_pool
from tests.support.databases import create_database, drop_database
from tests.support.polling import eventually
from tests.unit.events_kit import Recorder, post_event, user_event

pytestmark = pytest.mark.integration

DEADLINE = 10.0
SLOW_POLL = 30.0  # so only a NOTIFY can wake a relay within the tests' deadlines


@pytest_asyncio.fixture(scope="module")
async def pool(admin_pg_dsn: str) -> AsyncIterator[asyncpg.Pool]:
    dsn = await create_database(admin_pg_dsn, prefix="hubbub_relay")
    await migrate_dsn(dsn)
    pool = await create_pool(dsn, min_size=1, max_size=10)
    yield pool
    await pool.close()
    await drop_database(admin_pg_dsn, dsn)


class Node:
    """One relay with its own in-process bus and a consumer recording what it got."""

    def __init__(self, pool: asyncpg.Pool, **options: object) -> None:
        self.seen = Recorder()
        self.bus = InProcessEventBus(dead_letters=MemoryDeadLetters())
        self.bus.subscribe("recorder", ["hubbub.users", "hubbub.posts"], self.seen)
        self.store = PostgresOutboxStore(pool)
        self.relay = OutboxRelay(self.store, self.bus, options=RelayOptions(
            **{"poll_interval": SLOW_POLL, "leader_retry": 0.05, **options}))  # type: ignore[arg-type]

    async def start(self) -> Node:
        await self.bus.start()
        await self.relay.start()
        return self

    async def stop(self) -> None:
        await self.relay.stop()
        await self.bus.stop()


@pytest_asyncio.fixture
async def node(pool: asyncpg.Pool) -> AsyncIterator[Node]:
    node = await Node(pool).start()
    await eventually(lambda: _true(node.relay.state == "waiting"), DEADLINE, "relay idle")
    yield node
    await node.stop()


async def commit(pool: asyncpg.Pool, *events: EventEnvelope) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await append_events(conn, *events)


async def received(node: Node, events: list[EventEnvelope]) -> None:
    wanted = {e.id for e in events}
    await eventually(lambda: _true(wanted <= set(node.seen.ids())), DEADLINE,
                     f"{len(wanted)} events to be relayed")


async def test_committed_events_are_published_in_seq_order(
        pool: asyncpg.Pool, node: Node) -> None:
    batches = [[user_event(), post_event()], [post_event()], [user_event(), user_event()]]
    for batch in batches:
        await commit(pool, *batch)
    expected = [e.id for batch in batches for e in batch]
    await received(node, [e for batch in batches for e in batch])
    assert [i for i in node.seen.ids() if i in expected] == expected

    async def rows() -> list[asyncpg.Record]:
        return await pool.fetch(
            "SELECT event_id, published_at FROM outbox WHERE event_id = ANY($1::uuid[])"
            " ORDER BY seq", expected)

    assert [r["event_id"] for r in await rows()] == expected
    # The relay marks rows published after the bus took them: a consumer may see an event
    # first.
    await eventually(lambda: _all_published(rows), DEADLINE, "rows marked published")


async def _all_published(rows: Callable[[], Awaitable[list[asyncpg.Record]]]) -> bool:
    return all(r["published_at"] is not None for r in await rows())


async def test_a_row_holding_several_events_publishes_each_and_counts_each(
        pool: asyncpg.Pool) -> None:
    """Chat batches write their events as one row holding a JSON array."""
    store = PostgresOutboxStore(pool)
    assert await store.try_lead()
    batch = [user_event(), user_event(), user_event()]
    try:
        await pool.execute(
            "INSERT INTO outbox (event_id, topic, key, type, envelope)"
            " VALUES ($1, 'hubbub.users', $2, 'user.created', $3::text::jsonb)",
            batch[0].id, batch[0].key, msgspec.json.encode(batch).decode())
        pending, _ = await store.backlog()
        assert pending == 3
        events = await store.pending(10)
        assert [event.id for _, event in events] == [e.id for e in batch]
        assert len({seq for seq, _ in events}) == 1
        await store.mark_published([seq for seq, _ in events])
        assert await store.pending(10) == []
    finally:
        await pool.execute("UPDATE outbox SET published_at = now() WHERE published_at IS NULL")
        await store.resign()


async def test_a_rolled_back_transaction_publishes_nothing(
        pool: asyncpg.Pool, node: Node) -> None:
    doomed, kept = user_event(), user_event()
    with pytest.raises(RuntimeError):
        async with pool.acquire() as conn, conn.transaction():
            await append_events(conn, doomed)
            raise RuntimeError("the change failed")
    await commit(pool, kept)
    await received(node, [kept])  # relayed after the rollback, so the doomed one had its turn
    assert doomed.id not in node.seen.ids()
    assert await pool.fetchval("SELECT count(*) FROM outbox WHERE event_id = $1",
                               doomed.id) == 0


async def test_notify_wakes_the_relay_without_waiting_for_the_poll(
        pool: asyncpg.Pool, node: Node) -> None:
    assert node.relay.options.poll_interval == SLOW_POLL and node.relay.state == "waiting"
    event = post_event()
    await commit(pool, event)
    await asyncio.wait_for(node.seen.arrived.wait(), 2.0)  # far below the 30 s poll
    assert event.id in node.seen.ids()


async def test_one_relay_is_active_and_another_takes_over(pool: asyncpg.Pool) -> None:
    a = await Node(pool).start()
    b = await Node(pool).start()
    try:
        await eventually(lambda: _true({a.relay.state, b.relay.state} == {"waiting", "standby"}),
                         DEADLINE, "one relay leading, one standing by")
        leader, standby = (a, b) if a.relay.leading else (b, a)
        assert await _lock_holders(pool) == 1
        first = user_event()
        await commit(pool, first)
        await received(leader, [first])
        assert first.id not in standby.seen.ids()

        await leader.stop()  # resigns: the lock is free for the standby's next try
        await eventually(lambda: _true(standby.relay.leading), DEADLINE, "the takeover")
        second = user_event()
        await commit(pool, second)
        await received(standby, [second])
        assert second.id not in leader.seen.ids() and first.id not in standby.seen.ids()
    finally:
        await a.stop()
        await b.stop()


async def test_a_dead_leader_connection_hands_over(pool: asyncpg.Pool, node: Node) -> None:
    # The leader's session ends as when its node dies: Postgres frees the lock.
    pid = await pool.fetchval(
        "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted"
        " AND ((classid::bigint << 32) | objid::bigint) = $1", RELAY_LOCK_KEY)
    assert pid is not None
    await pool.execute("SELECT pg_terminate_backend($1)", pid)
    event = user_event()
    await commit(pool, event)
    await received(node, [event])  # the relay noticed, took the lock again and went on
    assert node.relay.leading



async def test_a_dead_leader_connection_is_lost_leadership_not_a_released_proxy(
        pool: asyncpg.Pool) -> None:
    """asyncpg hands a pool connection that died back to the pool before the termination
    listener runs; the store must not call the released proxy afterwards (issue 9, item 11:
    "leadership lost" followed by InterfaceError "connection has been released back to the
    pool")."""
    store = PostgresOutboxStore(pool)
    assert await store.try_lead()
    try:
        await pool.execute("SELECT pg_terminate_backend($1)", await _lock_holder_pid(pool))
        with pytest.raises(LeadershipLost):  # woken by the termination, not InterfaceError
            await store.wait_for_events(DEADLINE)
        with pytest.raises(LeadershipLost):
            await store.pending(10)
        assert await store.try_lead()  # resigns the dead one, leads on a fresh connection
        assert await store.pending(1) is not None
    finally:
        await store.resign()
    assert await _lock_holders(pool) == 0


async def test_the_relay_survives_its_connection_dying_without_misusing_it(
        pool: asyncpg.Pool, node: Node, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="hubbub.events.relay")
    await pool.execute("SELECT pg_terminate_backend($1)", await _lock_holder_pid(pool))
    event = user_event()
    await commit(pool, event)
    await received(node, [event])
    lost = [r for r in caplog.records if "leadership lost" in r.getMessage()]
    assert lost, "the relay noticed the connection closing"
    mentions = [r for r in caplog.records
                if "InterfaceError" in f"{r.getMessage()} {getattr(r, 'error', '')}"
                or (r.exc_info and isinstance(r.exc_info[1], asyncpg.InterfaceError))]
    assert not mentions, [(r.getMessage(), getattr(r, "error", None)) for r in mentions]

async def test_backlog_and_cleanup(pool: asyncpg.Pool) -> None:
    store = PostgresOutboxStore(pool)
    assert await store.try_lead()
    try:
        old, recent, waiting = user_event(), user_event(), user_event()
        await commit(pool, old, recent, waiting)
        await pool.execute(
            "UPDATE outbox SET created_at = now() - interval '1 minute' WHERE event_id = $1",
            waiting.id)
        await pool.execute("UPDATE outbox SET published_at = now() - interval '2 days'"
                           " WHERE event_id = $1", old.id)
        await pool.execute("UPDATE outbox SET published_at = now() WHERE event_id = $1",
                           recent.id)
        pending, oldest = await store.backlog()
        assert pending >= 1 and oldest >= 59
        old_claim, new_claim = new_id(), new_id()
        await pool.execute(
            "INSERT INTO processed_events (consumer, event_id, processed_at) VALUES"
            " ('test', $1, now() - interval '8 days'), ('test', $2, now())",
            old_claim, new_claim)

        deleted = 0
        while batch := await store.purge(published_before=timedelta(hours=24),
                                         processed_before=timedelta(days=7), limit=1):
            deleted += batch
        assert deleted >= 2
        left = {r["event_id"] for r in await pool.fetch(
            "SELECT event_id FROM outbox WHERE event_id = ANY($1::uuid[])",
            [old.id, recent.id, waiting.id])}
        assert left == {recent.id, waiting.id}  # unpublished rows are never deleted
        claims = {r["event_id"] for r in await pool.fetch(
            "SELECT event_id FROM processed_events WHERE consumer = 'test'")}
        assert claims == {new_claim}
    finally:
        await pool.execute("UPDATE outbox SET published_at = now() WHERE published_at IS NULL")
        await store.resign()


async def test_leadership_is_exclusive_and_released(pool: asyncpg.Pool) -> None:
    first, second = PostgresOutboxStore(pool), PostgresOutboxStore(pool)
    assert await first.try_lead()
    assert await first.try_lead()  # holding it already
    assert not await second.try_lead()
    await first.resign()
    assert await second.try_lead()
    await second.resign()
    assert await _lock_holders(pool) == 0


async def test_dead_letters_are_stored_once_per_consumer_and_event(pool: asyncpg.Pool) -> None:
    letters = PostgresDeadLetters(pool)
    event = post_event()
    await letters.park("notifications", event, error="ValueError: first", attempts=5)
    await letters.park("notifications", event, error="ValueError: again", attempts=5)
    await letters.park("feed", event, error="KeyError: x", attempts=3)
    rows = await pool.fetch(
        "SELECT consumer, type, envelope, error, attempts, dead_lettered_at"
        " FROM dead_letter_events WHERE event_id = $1 ORDER BY consumer", event.id)
    assert [(r["consumer"], r["error"], r["attempts"]) for r in rows] == [
        ("feed", "KeyError: x", 3), ("notifications", "ValueError: again", 5)]
    assert rows[0]["type"] == "post.liked" and rows[0]["envelope"]["id"] == event.id
    assert all(r["dead_lettered_at"] is not None for r in rows)


async def _lock_holders(pool: asyncpg.Pool) -> int:
    return await pool.fetchval(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted"
        " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        " AND ((classid::bigint << 32) | objid::bigint) = $1", RELAY_LOCK_KEY)


async def _true(value: bool) -> bool:
    return value


async def _lock_holder_pid(pool: asyncpg.Pool) -> int:
    pid = await pool.fetchval(
        "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted"
        " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        " AND ((classid::bigint << 32) | objid::bigint) = $1", RELAY_LOCK_KEY)
    assert pid is not None, "nobody holds the relay lock"
    return pid
