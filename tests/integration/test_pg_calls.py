"""PostgresCallStore against a real Postgres: round trip, the version fence and the busy fence
(also under a race), liveness expiry, the live calls of a node, and the durations the
database computes."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import asyncpg
import msgspec
import pytest

from protocols.call_messages import CallConflict, CallParticipant, CallRecord, UserBusy
from protocols.ids import new_id
from storage.postgres.calls import PostgresCallStore
from tests.integration.test_pg_chat import add_users

pytestmark = pytest.mark.integration


def call(caller: str, callee: str, *, joined: bool = False, state: str = "ringing",
         created: datetime | None = None, nodes: tuple[str, str] = ("n-a", "n-b")
         ) -> CallRecord:
    now = created or datetime.now(UTC)
    return CallRecord(
        id=new_id(), room_id=None, kind="direct", media="audio", state=state,  # type: ignore[arg-type]
        initiator_id=caller, created_at=now, answered_at=now if joined else None,
        participants=[
            CallParticipant(user_id=caller, state="joined", device_id="s-a",
                            device_node=nodes[0], joined_at=now),
            CallParticipant(user_id=callee, state="joined" if joined else "ringing",
                            device_id="s-b" if joined else None,
                            device_node=nodes[1] if joined else None,
                            joined_at=now if joined else None)])


def ended(record: CallRecord) -> CallRecord:
    end = record.created_at + timedelta(seconds=90)
    return msgspec.structs.replace(
        record, state="ended", ended_at=end, end_reason="hangup",
        participants=[msgspec.structs.replace(p, state="left", left_at=end)
                      if p.state == "joined" else p for p in record.participants])


def later() -> datetime:
    return datetime.now(UTC) + timedelta(minutes=3)


async def test_round_trip_and_busy(db_pool: asyncpg.Pool) -> None:
    store = PostgresCallStore(db_pool)
    a, b, c = await add_users(db_pool, 3)
    first = call(a, b)
    assert await store.save(first, later()) == 1
    assert await store.load(first.id) == msgspec.structs.replace(first, version=1)
    assert await store.load(new_id()) is None
    assert await store.busy([b, c], new_id()) == set()
    answered = msgspec.structs.replace(first, state="active", answered_at=first.created_at,
                                       participants=call(a, b, joined=True).participants,
                                       version=1)
    assert await store.save(answered, later()) == 2
    assert await store.load(first.id) == msgspec.structs.replace(answered, version=2)
    assert await store.busy([a, b, c], new_id()) == {a, b}
    assert await store.busy([a, b], first.id) == set()  # its own call does not count
    with pytest.raises(UserBusy) as caught:
        await store.save(call(c, b, joined=True), later())
    assert caught.value.user_id == b
    # An ended call frees everyone, and the database computes the durations.
    assert await store.save(ended(msgspec.structs.replace(answered, version=2)), later()) == 3
    assert await store.busy([a, b], new_id()) == set()
    assert await db_pool.fetchval("SELECT duration FROM calls WHERE id = $1", first.id) == 90
    durations = await db_pool.fetch(
        "SELECT duration FROM call_participants WHERE call_id = $1", first.id)
    assert [r["duration"] for r in durations] == [pytest.approx(90, abs=1)] * 2


async def test_a_save_from_a_stale_version_writes_nothing(db_pool: asyncpg.Pool) -> None:
    store = PostgresCallStore(db_pool)
    a, b = await add_users(db_pool, 2)
    first = call(a, b)
    ringing = msgspec.structs.replace(first, version=await store.save(first, later()))
    winner = msgspec.structs.replace(ringing, state="active", answered_at=ringing.created_at,
                                     participants=call(a, b, joined=True).participants)
    assert await store.save(winner, later()) == 2
    stored = await store.load(ringing.id)
    # The loser (still at version 1) ends the call and drops b: nothing of it is written.
    with pytest.raises(CallConflict) as caught:
        await store.save(ended(ringing), later())
    assert caught.value.call_id == ringing.id
    assert await store.load(ringing.id) == stored
    # A version from the future does not write either, nor does updating a call not stored.
    with pytest.raises(CallConflict):
        await store.save(msgspec.structs.replace(winner, version=7), later())
    with pytest.raises(CallConflict):
        await store.save(msgspec.structs.replace(winner, id=new_id(), version=1), later())
    assert await store.load(ringing.id) == stored
    assert await db_pool.fetchval("SELECT count(*) FROM calls WHERE initiator_id = $1", a) == 1


async def test_inserting_an_id_that_is_stored_raises_and_writes_nothing(
        db_pool: asyncpg.Pool) -> None:
    store = PostgresCallStore(db_pool)
    a, b, c = await add_users(db_pool, 3)
    first = call(a, b)
    await store.save(first, later())
    stored = await store.load(first.id)
    twin = msgspec.structs.replace(call(c, b, joined=True), id=first.id)
    with pytest.raises(CallConflict):
        await store.save(twin, later())
    assert await store.load(first.id) == stored


async def test_two_saves_from_one_version_at_once_exactly_one_wins(
        db_pool: asyncpg.Pool) -> None:
    store = PostgresCallStore(db_pool)
    a, b = await add_users(db_pool, 2)
    first = call(a, b)
    base = msgspec.structs.replace(first, version=await store.save(first, later()))
    results = await asyncio.gather(
        store.save(ended(base), later()),
        store.save(msgspec.structs.replace(base, state="active", answered_at=base.created_at,
                                           participants=call(a, b, joined=True).participants),
                   later()),
        return_exceptions=True)
    assert sum(isinstance(r, int) for r in results) == 1
    assert sum(isinstance(r, CallConflict) for r in results) == 1
    assert (await store.load(first.id)).version == 2  # type: ignore[union-attr]


async def test_live_calls_on_a_node(db_pool: asyncpg.Pool) -> None:
    store = PostgresCallStore(db_pool)
    a, b, c, d, e, f, g, h = await add_users(db_pool, 8)
    active = call(a, b, joined=True, nodes=("n1", "n2"))
    ringing = call(c, d, nodes=("n1", "n2"))  # d rings, not joined: not on n2
    other = call(e, f, joined=True, nodes=("n3", "n3"))
    over = call(g, h, joined=True, nodes=("n2", "n2"))
    for record in (active, ringing, other, over):
        await store.save(record, later())
    await store.save(ended(msgspec.structs.replace(over, version=1)), later())
    assert await store.live_calls_on("n1") == sorted([active.id, ringing.id])
    assert await store.live_calls_on("n2") == [active.id]
    assert await store.live_calls_on("n3") == [other.id]
    assert await store.live_calls_on("n4") == []
    assert [p.device_node for p in (await store.load(active.id)).participants] == [  # type: ignore[union-attr]
        "n1", "n2"]


async def test_touch_does_not_touch_an_ended_call(db_pool: asyncpg.Pool) -> None:
    store = PostgresCallStore(db_pool)
    a, b = await add_users(db_pool, 2)
    first = call(a, b, joined=True)
    await store.save(first, datetime.now(UTC) + timedelta(seconds=5))
    await store.save(ended(msgspec.structs.replace(first, version=1)), later())
    alive = "SELECT alive_until, version FROM calls WHERE id = $1"
    before = await db_pool.fetchrow(alive, first.id)
    await store.touch(first.id, later() + timedelta(hours=1))
    assert await db_pool.fetchrow(alive, first.id) == before


async def test_two_calls_joining_one_user_at_once_one_fails(db_pool: asyncpg.Pool) -> None:
    store = PostgresCallStore(db_pool)
    a, b, c = await add_users(db_pool, 3)
    results = await asyncio.gather(store.save(call(a, b, joined=True), later()),
                                   store.save(call(c, b, joined=True), later()),
                                   return_exceptions=True)
    assert sum(r == 1 for r in results) == 1  # inserted at version 1
    assert sum(isinstance(r, UserBusy) for r in results) == 1


async def test_a_call_no_longer_renewed_makes_nobody_busy(db_pool: asyncpg.Pool) -> None:
    store = PostgresCallStore(db_pool)
    a, b = await add_users(db_pool, 2)
    stale = call(a, b, joined=True)
    await store.save(stale, datetime.now(UTC) - timedelta(seconds=1))  # its node died
    assert await store.busy([a, b], new_id()) == set()
    await store.touch(stale.id, later())
    assert await store.busy([a, b], new_id()) == {a, b}
    assert (await store.load(stale.id)).version == 1  # type: ignore[union-attr]
