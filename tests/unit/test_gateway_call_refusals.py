"""server/gateway/calls.py: a refused call:invite or call:accept forgets the call id it
tracked on the connection (which its disconnect would otherwise tell, activating an actor
per refusal); one the connection was already in stays tracked."""

from __future__ import annotations

from typing import Any, cast

import pytest

from actors.call import CallActor, CallPorts
from actors.clock import ManualClock
from actors.errors import Rejected
from actors.system import ActorSystem
from protocols.call_messages import RejectCall
from protocols.calls import CallId, CallInvite
from protocols.ids import new_id
from server.gateway import calls
from server.gateway.connections import Connection, Gateway
from server.gateway.limits import TokenBucket
from tests.unit.calls.fakes import Emits, FakeDirectory, FakeEffects, MemoryCallStore

ANN, BOB = new_id(), new_id()
ROOM = new_id()


@pytest.fixture
async def gw() -> Any:
    clock = ManualClock()
    system = ActorSystem(clock=clock)
    emits = Emits()
    ports = CallPorts(store=MemoryCallStore(clock.time),
                      directory=FakeDirectory(users={ANN, BOB}, rooms={ROOM: [ANN, BOB]}),
                      broadcaster=emits, sessions=emits, effects=FakeEffects())
    system.register(CallActor, lambda key, ctx: CallActor(key, ctx, ports))
    yield Gateway(sio=cast(Any, None), system=system, node_id="n1", events_per_second=10,
                  event_burst=10)
    await system.stop()


def connection(user_id: str) -> Connection:
    return Connection(sid=new_id(), user_id=user_id, expires_at=2**40,
                      bucket=TokenBucket(10, 10))


async def test_refused_invites_and_accepts_track_nothing(gw: Gateway) -> None:
    outsider = connection(new_id())
    for _ in range(10):
        with pytest.raises(Rejected):
            await calls.invite(gw, outsider, CallInvite(room_id=ROOM, media="audio"))
        with pytest.raises(Rejected):
            await calls.accept(gw, outsider, CallId(call_id=new_id()))
    assert outsider.calls == set()
    await gw.system.settled()
    assert gw.system.snapshot().live == {}


async def test_a_call_the_connection_is_in_stays_tracked(gw: Gateway) -> None:
    ann = connection(ANN)
    ack = await calls.invite(gw, ann, CallInvite(user_ids=[BOB], media="audio"))
    call_id = ack["call_id"]
    assert ann.calls == {call_id}
    await gw.system.ref(CallActor, call_id).ask(RejectCall(user_id=BOB, session_id="b1"),
                                                 timeout=1)  # the call ends
    with pytest.raises(Rejected) as refused:
        await calls.accept(gw, ann, CallId(call_id=call_id))
    assert refused.value.code == "call_ended"
    assert ann.calls == {call_id}  # tracked by the invite, not by this accept
