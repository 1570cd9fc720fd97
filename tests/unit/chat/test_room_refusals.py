"""Refusals leave no RoomActor behind: an activation that found no room answers and is
passivated at once (context.stop_after), after one look at storage."""

from __future__ import annotations

import pytest

from actors.errors import Rejected
from actors.room import RoomActor
from protocols.ids import new_id
from protocols.room_messages import JoinRoom, MarkRead, SendMessage
from tests.unit.chat.room_rig import Rig, rig, send, users

__all__ = ["rig"]  # the fixture


async def test_refused_events_for_made_up_rooms_leave_no_actor(rig: Rig) -> None:
    ann = users(1)[0]
    loads = rig.store.loads
    for message in (JoinRoom(user_id=ann), SendMessage(user_id=ann, client_id="c", text="x"),
                    MarkRead(user_id=ann, seq=1)):
        for _ in range(50):
            with pytest.raises(Rejected) as refused:
                await rig.system.ref(RoomActor, new_id()).ask(message, timeout=5)
            assert refused.value.code == "not_member"
    await rig.system.settled()  # the clock never moved: no idle timeout was waited for
    assert rig.system.snapshot().live == {}
    assert rig.store.loads == loads + 150  # one look per refusal


async def test_a_real_room_stays_and_a_made_up_one_can_become_real(rig: Rig) -> None:
    ann, bob = users(2)
    room = rig.room([ann, bob])
    await send(room, ann, "c1")
    later = new_id()
    with pytest.raises(Rejected):
        await rig.system.ref(RoomActor, later).ask(JoinRoom(user_id=ann), timeout=5)
    rig.world.add_room(later, [ann])  # created over REST after the refusal
    joined = await rig.system.ref(RoomActor, later).ask(JoinRoom(user_id=ann), timeout=5)
    assert joined.last_seq == 0
    await rig.system.settled()
    assert rig.system.is_live(room) and rig.system.is_live(rig.system.ref(RoomActor, later))
