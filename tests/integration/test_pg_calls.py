"""PostgresCallStore against a real Postgres: round trip, the busy fence (also under a race),
liveness expiry, and the durations the database computes."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from protocols.call_messages import CallParticipant, CallRecord, UserBusy
from protocols.ids import new_id
from storage.postgres.calls import PostgresCallStore
from tests.integration.test_pg_chat import add_users

pytestmark = pytest.mark.integration


def call(caller: str, callee: str, *, joined: bool = False, state: str = "ringing",
         created: datetime | None = None) -> CallRecord:
    now = created or datetime.now(UTC)
    return CallRecord(
        id=new_id(), room_id=None, kind="direct", media="audio", state=state,  # type: ignore[arg-type]
        initiator_id=caller, created_at=now, answered_at=now if joined else None,
        participants=[
            CallParticipant(user_id=caller, state="joined", device_id="s-a", joined_at=now),
            CallParticipant(user_id=callee, state="joined" if joined else "ringing",
                            device_id="s-b" if joined else None,
                            joined_at=now if joined else None)])


def later() -> datetime:
    return datetime.now(UTC) + timedelta(minutes=3)


async def test_round_trip_and_busy(db_pool: asyncpg.Pool) -> None:
    store = PostgresCallStore(db_pool)
    a, b, c = await add_users(db_pool, 3)
    first = call(a, b)
    await store.save(first, later())
    assert await store.load(first.id) == first
    assert await store.load(new_id()) is None
    assert await store.busy([b, c], new_id()) == set()
    answered = CallRecord(**{**{f: getattr(first, f) for f in first.__struct_fields__},
                             "state": "active", "answered_at": first.created_at,
                             "participants": call(a, b, joined=True).participants})
    await store.save(answered, later())
    assert await store.busy([a, b, c], new_id()) == {a, b}
    assert await store.busy([a, b], first.id) == set()  # its own call does not count
    with pytest.raises(UserBusy) as caught:
        await store.save(call(c, b, joined=True), later())
    assert caught.value.user_id == b
    # An ended call frees everyone, and the database computes the durations.
    end = first.created_at + timedelta(seconds=90)
    over = CallRecord(**{**{f: getattr(answered, f) for f in answered.__struct_fields__},
                         "state": "ended", "ended_at": end, "end_reason": "hangup",
                         "participants": [CallParticipant(
                             user_id=p.user_id, state="left", device_id=p.device_id,
                             joined_at=p.joined_at, left_at=end)
                             for p in answered.participants]})
    await store.save(over, later())
    assert await store.busy([a, b], new_id()) == set()
    assert await db_pool.fetchval("SELECT duration FROM calls WHERE id = $1", first.id) == 90
    durations = await db_pool.fetch(
        "SELECT duration FROM call_participants WHERE call_id = $1", first.id)
    assert [r["duration"] for r in durations] == [pytest.approx(90, abs=1)] * 2


async def test_two_calls_joining_one_user_at_once_one_fails(db_pool: asyncpg.Pool) -> None:
    store = PostgresCallStore(db_pool)
    a, b, c = await add_users(db_pool, 3)
    results = await asyncio.gather(store.save(call(a, b, joined=True), later()),
                                   store.save(call(c, b, joined=True), later()),
                                   return_exceptions=True)
    assert sum(r is None for r in results) == 1
    assert sum(isinstance(r, UserBusy) for r in results) == 1


async def test_a_call_no_longer_renewed_makes_nobody_busy(db_pool: asyncpg.Pool) -> None:
    store = PostgresCallStore(db_pool)
    a, b = await add_users(db_pool, 2)
    stale = call(a, b, joined=True)
    await store.save(stale, datetime.now(UTC) - timedelta(seconds=1))  # its node died
    assert await store.busy([a, b], new_id()) == set()
    await store.touch(stale.id, later())
    assert await store.busy([a, b], new_id()) == {a, b}
