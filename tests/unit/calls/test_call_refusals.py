"""Refusals leave no CallActor behind: a refused invite (into a room the caller is not in,
to nobody reachable) and any event for a made-up call id answer and are passivated at once
(context.stop_after)."""

from __future__ import annotations

from protocols.call_messages import AcceptCall, HangUp, RejectCall, SessionGone
from protocols.ids import new_id
from tests.unit.calls.test_call_actor import ROOM, A, E, Harness, h, refused

__all__ = ["h"]  # the fixture


async def test_refused_invites_leave_no_call_actor(h: Harness) -> None:
    for _ in range(20):
        await refused("not_member", h.start(user=E, call_id=new_id(), room_id=ROOM))
        await refused("not_member", h.start(user=A, call_id=new_id(), room_id=new_id()))
        await refused("user_not_found", h.start(user=A, call_id=new_id(),
                                                user_ids=[new_id()]))
    await h.system.settled()  # the clock never moved: no idle timeout was waited for
    assert h.system.snapshot().live == {}
    assert h.store.calls == {}


async def test_events_for_made_up_calls_leave_no_call_actor(h: Harness) -> None:
    for message in (AcceptCall(user_id=A, session_id="a1"),
                    RejectCall(user_id=A, session_id="a1"),
                    HangUp(user_id=A, session_id="a1")):
        await refused("call_not_found", h.do(message, call_id=new_id()))
    await h.call(new_id()).tell(SessionGone(user_id=A, session_id="a1"))
    await h.system.settled()
    assert h.system.snapshot().live == {}


async def test_a_started_call_stays(h: Harness) -> None:
    await h.start()
    await h.system.settled()
    assert h.system.is_live(h.call())
