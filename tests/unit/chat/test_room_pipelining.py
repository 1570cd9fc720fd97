"""A RoomActor's messages in flight: handed to the store as they come, finished in seq order,
without holding the mailbox; bounded per room; resends and failures among them."""

from __future__ import annotations

import asyncio

import pytest

from actors.errors import ActorCrashed
from actors.room import RoomActor
from protocols.room_messages import JoinResult, JoinRoom
from tests.support.polling import eventually
from tests.unit.chat.room_rig import Rig, pushed_seqs, rig, send, users

__all__ = ["rig"]  # the fixture


async def test_messages_in_flight_do_not_hold_the_mailbox_and_finish_in_seq_order(
        rig: Rig) -> None:
    ann, bob = users(2)
    ref = rig.room([ann, bob])
    rig.store.gate = asyncio.Event()  # no append ends until it is set
    sends = [asyncio.ensure_future(send(ref, user, f"c{i}"))
             for i, user in enumerate([ann, bob, ann], 1)]
    await rig.store.appends_reach(3)  # each went to the store before any was committed
    # The mailbox still flows: a join is answered, with nothing in flight counted.
    joined = await ref.ask(JoinRoom(user_id=bob, since_seq=0), timeout=5)
    assert joined == JoinResult(last_seq=0, missed=[])
    assert not any(s.done() for s in sends) and pushed_seqs(rig) == []
    rig.store.gate.set()
    messages = await asyncio.gather(*sends)
    assert [m.seq for m in messages] == [1, 2, 3]
    assert [m.client_id for m in messages] == ["c1", "c2", "c3"]
    assert pushed_seqs(rig) == [1, 2, 3]
    assert (await ref.ask(JoinRoom(user_id=bob, since_seq=3), timeout=5)).last_seq == 3


async def test_a_flood_waits_for_the_oldest_appends_in_the_mailbox(
        rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(RoomActor, "MAX_APPENDING", 2)
    ann = users(1)[0]
    ref = rig.room([ann])
    rig.store.gate = asyncio.Event()
    sends = [asyncio.ensure_future(send(ref, ann, f"c{i}")) for i in range(1, 4)]
    join = asyncio.ensure_future(ref.ask(JoinRoom(user_id=ann, since_seq=0), timeout=5))

    async def third_held() -> bool:  # c3 taken, waiting for c1; the join queued behind it
        return rig.store.appends == 2 and \
            rig.system.snapshot().mailbox_depth.get("RoomActor") == 1

    await eventually(third_held, 5, "the third send to wait for the first two appends")
    assert not join.done()
    rig.store.gate.set()
    assert [m.seq for m in await asyncio.gather(*sends)] == [1, 2, 3]
    assert (await join).last_seq >= 2
    assert rig.store.appends == 3


async def test_a_resend_in_flight_takes_no_seq(rig: Rig) -> None:
    ann = users(1)[0]
    ref = rig.room([ann])
    first = await send(ref, ann, "c1")
    rig.store.gate = asyncio.Event()
    resend, second = asyncio.ensure_future(send(ref, ann, "c1")), \
        asyncio.ensure_future(send(ref, ann, "c2"))
    await rig.store.appends_reach(3)
    rig.store.gate.set()
    assert await resend == first
    assert (await second).seq == 2
    assert rig.stored_seqs(ref) == [1, 2] and pushed_seqs(rig) == [1, 2]


async def test_a_failed_append_fails_what_is_in_flight_and_resends_store_it_gapless(
        rig: Rig) -> None:
    ann, bob = users(2)
    ref = rig.room([ann, bob])
    rig.store.gate = asyncio.Event()
    rig.store.fail_next_append = "before"  # the first append fails; the second commits
    sends = [asyncio.ensure_future(send(ref, user, cid))
             for user, cid in [(ann, "a1"), (bob, "b1")]]
    await rig.store.appends_reach(2)
    rig.store.gate.set()
    results = await asyncio.gather(*sends, return_exceptions=True)
    assert all(isinstance(r, ActorCrashed) for r in results), results
    assert rig.system.stats.restarts == 1
    # b1 was committed (seq 1) but never pushed; its resend pushes it, a1's takes seq 2.
    rig.store.gate = None
    assert (await send(ref, bob, "b1")).seq == 1
    assert (await send(ref, ann, "a1")).seq == 2
    assert rig.stored_seqs(ref) == [1, 2] and pushed_seqs(rig) == [1, 2]
