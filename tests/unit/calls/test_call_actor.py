"""CallActor with a ManualClock and in-memory ports: the call state machine and its races."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import pytest

from actors.call import CallActor, CallPorts
from actors.clock import ManualClock
from actors.errors import Rejected
from actors.system import ActorSystem
from protocols.call_messages import (
    AcceptCall,
    HangUp,
    RejectCall,
    RelaySignal,
    SessionGone,
    StartCall,
    StartResult,
)
from tests.unit.calls.fakes import Emits, FakeDirectory, FakeEffects, MemoryCallStore

RING = 30.0
A, B, C, D, E = (f"0190a0b0-0000-7000-8000-0000000000a{i}" for i in range(1, 6))
ROOM = "0190a0b0-0000-7000-8000-0000000000f1"
CALL, CALL2 = "0190a0b0-0000-7000-8000-0000000000c1", "0190a0b0-0000-7000-8000-0000000000c2"
OFFER = {"type": "offer", "sdp": "v=0"}


@dataclass
class Harness:
    clock: ManualClock
    store: MemoryCallStore
    directory: FakeDirectory
    emits: Emits
    effects: FakeEffects
    system: ActorSystem

    def call(self, call_id: str = CALL) -> Any:
        return self.system.ref(CallActor, call_id)

    async def advance(self, seconds: float) -> None:
        await self.system.settled()
        self.clock.advance(seconds)
        await self.system.settled()

    async def start(self, user: str = A, device: str = "a1", call_id: str = CALL,
                    **kwargs: Any) -> StartResult:
        kwargs.setdefault("user_ids", None if "room_id" in kwargs else [B])
        return await self.call(call_id).ask(
            StartCall(user_id=user, session_id=device, media="audio", **kwargs), timeout=1)

    async def do(self, message: Any, call_id: str = CALL) -> Any:
        return await self.call(call_id).ask(message, timeout=1)

    def state(self, call_id: str = CALL) -> tuple[str, dict[str, str]]:
        record = self.store.calls[call_id]
        return record.state, {p.user_id: p.state for p in record.participants}


@pytest.fixture
async def h() -> Any:
    clock = ManualClock()
    store = MemoryCallStore(clock.time)
    directory = FakeDirectory(users={A, B, C, D, E}, rooms={ROOM: [A, B, C, D]})
    emits, effects = Emits(), FakeEffects()
    system = ActorSystem(clock=clock)
    ports = CallPorts(store=store, directory=directory, broadcaster=emits, sessions=emits,
                      effects=effects)
    system.register(CallActor, lambda key, ctx: CallActor(key, ctx, ports, ring_timeout=RING,
                                                         max_participants=3))
    yield Harness(clock, store, directory, emits, effects, system)
    await system.stop()


async def refused(code: str, pending: Any) -> None:
    with pytest.raises(Rejected) as caught:
        await pending
    assert caught.value.code == code


# -- 1:1 --------------------------------------------------------------------------------------

async def test_invite_rings_every_device_of_the_callee_and_records_the_call(h: Harness) -> None:
    result = await h.start()
    assert result.call_id == CALL and result.busy == []
    room = h.directory.direct[frozenset((A, B))]
    assert h.emits.to(f"user:{B}", "call:incoming") == [
        {"call_id": CALL, "from_user_id": A, "media": "audio", "room_id": room}]
    assert h.state() == ("ringing", {A: "joined", B: "ringing"})
    assert h.store.calls[CALL].room_id == room


async def test_accept_activates_and_other_devices_hear_answered_elsewhere(h: Harness) -> None:
    await h.start()
    await h.do(AcceptCall(user_id=B, session_id="b2"))
    assert h.state() == ("active", {A: "joined", B: "joined"})
    assert h.emits.to("session:a1", "call:accepted") == [{"call_id": CALL, "user_id": B}]
    assert h.emits.to(f"user:{B}-b2", "call:ended") == [
        {"call_id": CALL, "reason": "answered_elsewhere"}]
    assert h.store.calls[CALL].answered_at is not None


async def test_two_devices_accept_at_once_exactly_one_wins(h: Harness) -> None:
    await h.start()
    first, second = await asyncio.gather(
        h.do(AcceptCall(user_id=B, session_id="b1")), h.do(AcceptCall(user_id=B, session_id="b2")),
        return_exceptions=True)
    assert first is None
    assert isinstance(second, Rejected) and second.code == "answered_elsewhere"
    devices = {p.user_id: p.device_id for p in h.store.calls[CALL].participants}
    assert devices[B] == "b1"
    # b2 (any device but b1) was told, and only one call:accepted reached the caller.
    assert h.emits.to(f"user:{B}-b1", "call:ended") == [
        {"call_id": CALL, "reason": "answered_elsewhere"}]
    assert len(h.emits.to("session:a1", "call:accepted")) == 1
    # A retried accept from the winning device is harmless.
    await h.do(AcceptCall(user_id=B, session_id="b1"))


async def test_caller_hangs_up_while_ringing_cancels(h: Harness) -> None:
    await h.start()
    await h.do(HangUp(user_id=A, session_id="a1"))
    record = h.store.calls[CALL]
    assert h.state() == ("ended", {A: "left", B: "cancelled"})
    assert record.end_reason == "cancelled"
    assert h.emits.to(f"user:{B}", "call:ended") == [{"call_id": CALL, "reason": "cancelled"}]
    assert h.effects.missed_calls == [] and [r.id for r in h.effects.ended_calls] == [CALL]
    await refused("call_ended", h.do(AcceptCall(user_id=B, session_id="b1")))
    await h.advance(RING * 2)  # the ring timer was cancelled with the call
    assert h.effects.missed_calls == []


async def test_callee_hangs_up_while_ringing_declines(h: Harness) -> None:
    await h.start()
    await h.do(HangUp(user_id=B, session_id="b1"))
    assert h.state() == ("ended", {A: "left", B: "rejected"})
    assert h.store.calls[CALL].end_reason == "rejected"
    assert h.emits.to("session:a1", "call:rejected") == [{"call_id": CALL, "user_id": B}]
    assert h.emits.to("session:a1", "call:ended") == [{"call_id": CALL, "reason": "rejected"}]
    assert h.emits.to(f"user:{B}-b1", "call:ended") == [
        {"call_id": CALL, "reason": "declined_elsewhere"}]


async def test_reject_then_accept_race_the_first_wins(h: Harness) -> None:
    await h.start()
    rejected, accepted = await asyncio.gather(
        h.do(RejectCall(user_id=B, session_id="b1")), h.do(AcceptCall(user_id=B, session_id="b2")),
        return_exceptions=True)
    assert rejected is None
    assert isinstance(accepted, Rejected) and accepted.code == "call_ended"


async def test_caller_disconnecting_while_ringing_cancels(h: Harness) -> None:
    await h.start()
    await h.call().tell(SessionGone(user_id=A, session_id="a-other-device"))
    await h.system.settled()
    assert h.state()[0] == "ringing"  # not the device in the call: nothing happens
    await h.call().tell(SessionGone(user_id=A, session_id="a1"))
    await h.system.settled()
    assert h.state() == ("ended", {A: "left", B: "cancelled"})
    assert h.emits.to(f"user:{B}", "call:ended") == [{"call_id": CALL, "reason": "cancelled"}]


async def test_disconnect_during_an_active_call_hangs_up(h: Harness) -> None:
    await h.start()
    await h.do(AcceptCall(user_id=B, session_id="b1"))
    await h.call().tell(SessionGone(user_id=B, session_id="b1"))
    await h.system.settled()
    record = h.store.calls[CALL]
    assert record.state == "ended" and record.end_reason == "hangup"
    assert h.emits.to("session:a1", "call:ended") == [{"call_id": CALL, "reason": "hangup"}]
    assert all(p.left_at is not None for p in record.participants)


async def test_unanswered_call_times_out_with_call_missed(h: Harness) -> None:
    await h.start()
    await h.advance(RING - 1)
    assert h.state()[0] == "ringing"
    await h.advance(1)
    assert h.state() == ("ended", {A: "left", B: "missed"})
    assert h.store.calls[CALL].end_reason == "unanswered"
    assert h.effects.missed_calls == [(CALL, [B])]
    assert h.emits.to(f"user:{B}", "call:ended") == [{"call_id": CALL, "reason": "unanswered"}]
    assert h.emits.to("session:a1", "call:ended") == [{"call_id": CALL, "reason": "unanswered"}]


async def test_answered_call_does_not_time_out(h: Harness) -> None:
    await h.start()
    await h.do(AcceptCall(user_id=B, session_id="b1"))
    await h.advance(RING * 3)
    assert h.state() == ("active", {A: "joined", B: "joined"})
    assert h.effects.missed_calls == []


async def test_busy_callee_refuses_a_one_to_one_invite(h: Harness) -> None:
    await h.start(user=C, device="c1", user_ids=[B])
    await h.do(AcceptCall(user_id=B, session_id="b1"))
    await refused("busy", h.start(call_id=CALL2))
    assert CALL2 not in h.store.calls
    # Once that call is over B can be called again.
    await h.do(HangUp(user_id=B, session_id="b1"))
    assert (await h.start(call_id=CALL2)).call_id == CALL2


async def test_a_user_cannot_accept_a_second_call(h: Harness) -> None:
    await h.start(user=C, device="c1", user_ids=[B])  # rings B
    await h.start(call_id=CALL2)  # also rings B
    await h.do(AcceptCall(user_id=B, session_id="b1"), call_id=CALL2)
    await refused("busy", h.do(AcceptCall(user_id=B, session_id="b1")))
    assert h.state() == ("ringing", {C: "joined", B: "ringing"})


async def test_blocked_or_unknown_callee_is_not_found(h: Harness) -> None:
    h.directory.blocks.add(frozenset((A, B)))
    await refused("user_not_found", h.start())
    await refused("user_not_found", h.start(user_ids=["0190a0b0-0000-7000-8000-0000000000ee"]))
    await refused("invalid", h.start(user_ids=[A]))


# -- signaling --------------------------------------------------------------------------------

async def test_signals_flow_only_between_joined_devices(h: Harness) -> None:
    await h.start()
    # Before B accepted: nobody to signal.
    await refused("not_participant", h.do(RelaySignal(
        user_id=A, session_id="a1", to_user_id=B, kind="offer", payload=OFFER)))
    await h.do(AcceptCall(user_id=B, session_id="b1"))
    await h.do(RelaySignal(user_id=A, session_id="a1", to_user_id=B, kind="offer",
                           payload=OFFER))
    assert h.emits.to("session:b1", "call:signal") == [
        {"call_id": CALL, "from_user_id": A, "kind": "offer", "payload": OFFER}]
    before = len(h.emits.sent)
    # An outsider, another device of a participant, and a participant to an outsider.
    for signal in (RelaySignal(user_id=C, session_id="c1", to_user_id=B, kind="ice",
                               payload={}),
                   RelaySignal(user_id=A, session_id="a2", to_user_id=B, kind="ice",
                               payload={}),
                   RelaySignal(user_id=A, session_id="a1", to_user_id=C, kind="ice",
                               payload={}),
                   RelaySignal(user_id=A, session_id="a1", to_user_id=A, kind="ice",
                               payload={})):
        await refused("not_participant", h.do(signal))
    assert len(h.emits.sent) == before  # nothing delivered
    await refused("call_not_found", h.do(RelaySignal(
        user_id=A, session_id="a1", to_user_id=B, kind="ice", payload={}), call_id=CALL2))


# -- group calls ------------------------------------------------------------------------------

async def test_group_call_join_leave_and_end(h: Harness) -> None:
    result = await h.start(room_id=ROOM)
    assert result.busy == []
    for user in (B, C, D):
        assert h.emits.to(f"user:{user}", "call:incoming")
    await h.do(AcceptCall(user_id=B, session_id="b1"))
    await h.do(AcceptCall(user_id=C, session_id="c1"))
    assert h.state() == ("active", {A: "joined", B: "joined", C: "joined", D: "ringing"})
    await refused("call_full", h.do(AcceptCall(user_id=D, session_id="d1")))  # max 3 here
    await h.do(HangUp(user_id=C, session_id="c1"))
    assert h.emits.to("session:a1", "call:left") == [{"call_id": CALL, "user_id": C}]
    assert h.emits.to("session:b1", "call:left") == [{"call_id": CALL, "user_id": C}]
    # D's ring times out but the call goes on; D may still join.
    await h.advance(RING)
    assert h.state() == ("active", {A: "joined", B: "joined", C: "left", D: "missed"})
    assert h.effects.missed_calls == [(CALL, [D])]
    assert h.emits.to(f"user:{D}", "call:ended") == [{"call_id": CALL, "reason": "unanswered"}]
    await h.do(AcceptCall(user_id=D, session_id="d1"))
    # C (a member of the room) rejoins while it goes on; an outsider may not.
    await refused("call_full", h.do(AcceptCall(user_id=C, session_id="c2")))
    await h.do(HangUp(user_id=A, session_id="a1"))
    await h.do(AcceptCall(user_id=C, session_id="c2"))
    await refused("not_participant", h.do(AcceptCall(user_id=E, session_id="e1")))
    assert h.state() == ("active", {A: "left", B: "joined", C: "joined", D: "joined"})
    await h.do(HangUp(user_id=B, session_id="b1"))
    await h.do(HangUp(user_id=D, session_id="d1"))  # fewer than two remain: over
    record = h.store.calls[CALL]
    assert record.state == "ended" and record.end_reason == "hangup"
    assert h.emits.to("session:c2", "call:ended") == [{"call_id": CALL, "reason": "hangup"}]


async def test_group_call_lists_busy_members_and_only_members_start_it(h: Harness) -> None:
    await h.start(user=E, device="e1", user_ids=[D], call_id=CALL2)
    await h.do(AcceptCall(user_id=D, session_id="d1"), call_id=CALL2)
    result = await h.start(room_id=ROOM)
    assert result.busy == [D]
    assert [d["call_id"] for d in h.emits.to(f"user:{D}", "call:incoming")] == [CALL2]
    assert h.state()[1][D] == "busy"
    await refused("not_member", h.start(user=E, device="e2", room_id=ROOM,
                                        call_id="0190a0b0-0000-7000-8000-0000000000c3"))


async def test_every_callee_declining_a_group_call_ends_it(h: Harness) -> None:
    await h.start(room_id=ROOM)
    await h.do(RejectCall(user_id=B, session_id="b1"))
    await h.do(RejectCall(user_id=C, session_id="c1"))
    assert h.state()[0] == "ringing"
    await h.do(RejectCall(user_id=D, session_id="d1"))
    assert h.state() == ("ended", {A: "left", B: "rejected", C: "rejected", D: "rejected"})
    assert h.store.calls[CALL].end_reason == "rejected"


async def test_a_restarted_actor_resumes_the_call_from_the_store(h: Harness) -> None:
    await h.start()
    await h.do(AcceptCall(user_id=B, session_id="b1"))
    await h.system.stop()
    system = ActorSystem(clock=h.clock)
    ports = CallPorts(store=h.store, directory=h.directory, broadcaster=h.emits,
                      sessions=h.emits, effects=h.effects)
    system.register(CallActor, lambda key, ctx: CallActor(key, ctx, ports, ring_timeout=RING))
    h.system = system
    await h.do(RelaySignal(user_id=B, session_id="b1", to_user_id=A, kind="answer",
                           payload={"type": "answer", "sdp": "v=0"}))
    assert h.emits.to("session:a1", "call:signal")
    await h.do(HangUp(user_id=A, session_id="a1"))
    assert h.state()[0] == "ended"
