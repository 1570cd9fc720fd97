"""CallActor in a cluster: fenced (versioned) saves when two activations of one call coexist
during a membership change, and participants leaving when their node leaves (NodeLeft).

A "stale copy" is a second ActorSystem sharing the store, clock and outward ports with the
harness's own: it activates the same call and keeps its state while the owner moves on.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import msgspec
import pytest

from actors.call import CallActor, CallPorts
from actors.clock import ManualClock
from actors.ref import ActorRef
from actors.system import ActorSystem
from protocols.call_messages import AcceptCall, CallRecord, HangUp, SessionGone, StartCall
from protocols.cluster import NodeLeft
from tests.unit.calls.fakes import Emits, FakeDirectory, FakeEffects, MemoryCallStore
from tests.unit.calls.test_call_actor import (
    CALL,
    CALL2,
    RING,
    ROOM,
    A,
    B,
    C,
    D,
    E,
    Harness,
    refused,
)

N1, N2 = "node-1", "node-2"


class StaleCallActor(CallActor):
    """A copy that stays in memory even when it found no call (a CallActor asks to be
    passivated then): as an activation that loaded just before the call was created, with
    its next message already on the way."""

    async def receive(self, message: Any) -> Any:
        try:
            return await super().receive(message)
        finally:
            self.context.stop_requested = False


def call_system(clock: ManualClock, ports: CallPorts,
                kind: type[CallActor] = CallActor) -> ActorSystem:
    system = ActorSystem(clock=clock)
    system.register(CallActor, lambda key, ctx: kind(key, ctx, ports, ring_timeout=RING,
                                                    max_participants=3))
    return system


@dataclass
class Cluster(Harness):
    """The harness, plus stale copies of the call on other actor systems."""

    ports: CallPorts | None = None
    copies: list[ActorSystem] = field(default_factory=list)

    async def stale_copy(self, call_id: str = CALL) -> ActorRef:
        """Another activation of the call, loaded from the store as it is now."""
        assert self.ports is not None
        system = call_system(self.clock, self.ports, StaleCallActor)
        self.copies.append(system)
        ref = system.ref(CallActor, call_id)
        await ref.tell(NodeLeft(node_id="no-such-node"))  # activates it; changes nothing
        await system.settled()
        return ref

    async def settled(self) -> None:
        for system in (self.system, *self.copies):
            await system.settled()

    async def advance(self, seconds: float) -> None:
        await self.settled()
        self.clock.advance(seconds)
        await self.settled()

    async def tell(self, message: Any, call_id: str = CALL) -> None:
        await self.call(call_id).tell(message)
        await self.settled()

    def record(self, call_id: str = CALL) -> CallRecord:
        return self.store.calls[call_id]


@pytest.fixture
async def h() -> AsyncIterator[Cluster]:
    clock = ManualClock()
    store = MemoryCallStore(clock.time)
    directory = FakeDirectory(users={A, B, C, D, E}, rooms={ROOM: [A, B, C, D]})
    emits, effects = Emits(), FakeEffects()
    ports = CallPorts(store=store, directory=directory, broadcaster=emits, sessions=emits,
                      effects=effects)
    cluster = Cluster(clock, store, directory, emits, effects, call_system(clock, ports), ports)
    yield cluster
    for system in (cluster.system, *cluster.copies):
        await system.stop()


async def start_on(h: Cluster, node: str = N1, **kwargs: Any) -> None:
    kwargs.setdefault("user_ids", None if "room_id" in kwargs else [B])
    await h.do(StartCall(user_id=A, session_id="a1", node_id=node, media="audio", **kwargs))


# -- versions ---------------------------------------------------------------------------------

async def test_each_save_bumps_the_version_and_the_owner_never_conflicts(h: Cluster) -> None:
    await start_on(h)
    assert h.record().version == 2  # recorded (invited), then ringing
    await h.do(AcceptCall(user_id=B, session_id="b1", node_id=N2))
    assert h.record().version == 3
    await h.do(HangUp(user_id=A, session_id="a1", node_id=N1))
    assert h.record().version == 4 and h.record().state == "ended"
    assert h.store.conflicts == 0
    assert {p.user_id: p.device_node for p in h.record().participants} == {A: N1, B: N2}


async def test_a_retried_start_answers_the_same_and_rings_once(h: Cluster) -> None:
    await start_on(h)
    again = await h.do(StartCall(user_id=A, session_id="a1", node_id=N1, media="audio",
                                 user_ids=[B]))
    assert again.call_id == CALL and again.busy == []
    assert len(h.emits.to(f"user:{B}", "call:incoming")) == 1
    await refused("call_exists", h.do(StartCall(user_id=A, session_id="a2", media="audio",
                                                user_ids=[B])))


async def test_a_start_racing_another_activation_answers_from_the_stored_call(
        h: Cluster) -> None:
    copy = await h.stale_copy()  # activated before the call existed: it knows of none
    await start_on(h)
    result = await copy.ask(StartCall(user_id=A, session_id="a1", node_id=N1, media="audio",
                                      user_ids=[B]), timeout=1)
    assert result.call_id == CALL and h.store.conflicts == 1
    assert len(h.emits.to(f"user:{B}", "call:incoming")) == 1  # the loser rang nobody


async def test_a_start_losing_its_ringing_save_rings_nobody(
        h: Cluster, monkeypatch: pytest.MonkeyPatch) -> None:
    save = h.store.save

    async def another_activation_saves_after_the_insert(record: CallRecord,
                                                        alive_until: datetime) -> int:
        if record.state == "ringing" and not h.store.conflicts:
            stored = h.store.calls[record.id]
            h.store.calls[record.id] = msgspec.structs.replace(stored,
                                                               version=stored.version + 1)
        return await save(record, alive_until)

    monkeypatch.setattr(h.store, "save", another_activation_saves_after_the_insert)
    await start_on(h)  # answered from the stored call, as a retry would be
    assert h.store.conflicts == 1
    assert h.emits.events("call:incoming") == []  # ringing is the winner's to do


# -- a stale copy -----------------------------------------------------------------------------

async def test_a_conflicting_save_reloads_and_handles_the_message_again(h: Cluster) -> None:
    await start_on(h)
    copy = await h.stale_copy()  # knows the call ringing
    await h.do(AcceptCall(user_id=B, session_id="b1", node_id=N2))
    # To the copy A hangs up before any answer (cancel); the store knows the call active.
    await copy.ask(HangUp(user_id=A, session_id="a1", node_id=N1), timeout=1)
    assert h.store.conflicts == 1
    assert h.record().state == "ended" and h.record().end_reason == "hangup"
    assert [e for e in h.emits.sent if e[1] == "call:ended"] == [
        (f"user:{B}-b1", "call:ended", {"call_id": CALL, "reason": "answered_elsewhere"}),
        ("session:b1", "call:ended", {"call_id": CALL, "reason": "hangup"})]
    assert [r.end_reason for r in h.effects.ended_calls] == ["hangup"]


async def test_a_stale_copys_ring_timeout_does_not_end_an_answered_call(h: Cluster) -> None:
    await start_on(h)
    await h.stale_copy()
    await h.do(AcceptCall(user_id=B, session_id="b1", node_id=N2))
    saved = h.record()
    await h.advance(RING)  # both activations' ring timers fire
    assert h.record() == saved  # still active, nothing written
    assert h.effects.missed_calls == [] and h.effects.ended_calls == []
    assert h.emits.events("call:ended") == [  # only to B's other devices, on the accept
        (f"user:{B}-b1", {"call_id": CALL, "reason": "answered_elsewhere"})]
    await h.advance(RING * 3)
    assert h.record().state == "active"


async def test_a_stale_copy_cannot_overwrite_an_ended_call(h: Cluster) -> None:
    await start_on(h)
    copy = await h.stale_copy()
    await h.do(HangUp(user_id=A, session_id="a1", node_id=N1))
    ended = h.record()
    assert ended.end_reason == "cancelled"
    await refused("call_ended", copy.ask(AcceptCall(user_id=B, session_id="b1", node_id=N2),
                                         timeout=1))
    await h.advance(RING * 2)  # the copy's ring timer was dropped with its stale state
    assert h.record() == ended
    assert h.emits.events("call:accepted") == [] and h.effects.missed_calls == []


async def test_a_stale_copys_ring_timer_alone_cannot_overwrite_an_ended_call(
        h: Cluster) -> None:
    await start_on(h)
    await h.stale_copy()
    await h.do(HangUp(user_id=A, session_id="a1", node_id=N1))
    ended = h.record()
    await h.advance(RING)
    assert h.record() == ended and h.store.conflicts == 1
    assert h.effects.missed_calls == []
    assert [r.end_reason for r in h.effects.ended_calls] == ["cancelled"]


async def test_conflicting_twice_is_refused_unavailable_and_sends_nothing(
        h: Cluster, monkeypatch: pytest.MonkeyPatch) -> None:
    await start_on(h)
    save = h.store.save

    async def another_activation_saves_first(record: CallRecord, alive_until: datetime) -> int:
        stored = h.store.calls[record.id]
        h.store.calls[record.id] = msgspec.structs.replace(stored, version=stored.version + 1)
        return await save(record, alive_until)

    monkeypatch.setattr(h.store, "save", another_activation_saves_first)
    sent = len(h.emits.sent)
    await refused("unavailable", h.do(AcceptCall(user_id=B, session_id="b1", node_id=N2)))
    assert h.store.conflicts == 2
    assert len(h.emits.sent) == sent and h.record().state == "ringing"
    monkeypatch.setattr(h.store, "save", save)
    await h.do(AcceptCall(user_id=B, session_id="b1", node_id=N2))  # a retry succeeds
    assert h.record().state == "active"


# -- NodeLeft ---------------------------------------------------------------------------------

async def test_node_left_ends_a_call_whose_callee_was_on_it(h: Cluster) -> None:
    await start_on(h)
    await h.do(AcceptCall(user_id=B, session_id="b1", node_id=N2))
    await h.tell(NodeLeft(node_id=N2))
    record = h.record()
    assert record.state == "ended" and record.end_reason == "hangup"
    assert {p.user_id: p.state for p in record.participants} == {A: "left", B: "left"}
    assert h.emits.to("session:a1", "call:ended") == [{"call_id": CALL, "reason": "hangup"}]


async def test_node_left_cancels_a_ringing_call_whose_caller_was_on_it(h: Cluster) -> None:
    await start_on(h)
    await h.tell(NodeLeft(node_id=N1))
    record = h.record()
    assert record.state == "ended" and record.end_reason == "cancelled"
    assert h.emits.to(f"user:{B}", "call:ended") == [{"call_id": CALL, "reason": "cancelled"}]


async def test_node_left_for_another_node_changes_nothing(h: Cluster) -> None:
    await start_on(h)
    await h.do(AcceptCall(user_id=B, session_id="b1", node_id=N1))
    saved, sent = h.record(), len(h.emits.sent)
    await h.tell(NodeLeft(node_id=N2))
    assert h.record() == saved and len(h.emits.sent) == sent


async def test_node_left_in_a_group_call_leaves_the_others_talking(h: Cluster) -> None:
    await start_on(h, room_id=ROOM)
    await h.do(AcceptCall(user_id=B, session_id="b1", node_id=N1))
    await h.do(AcceptCall(user_id=C, session_id="c1", node_id=N2))
    version = h.record().version
    await h.tell(NodeLeft(node_id=N2))
    record = h.record()
    assert record.state == "active" and record.version == version + 1  # one save
    assert {p.user_id: p.state for p in record.participants}[C] == "left"
    assert h.emits.to("session:a1", "call:left") == [{"call_id": CALL, "user_id": C}]
    assert h.emits.to("session:b1", "call:left") == [{"call_id": CALL, "user_id": C}]
    # The socket's own disconnect arriving later changes nothing more.
    await h.tell(SessionGone(user_id=C, session_id="c1", node_id=N2))
    assert h.record() == record


async def test_node_left_for_a_call_not_stored_or_not_a_call_id_is_harmless(
        h: Cluster) -> None:
    await h.tell(NodeLeft(node_id=N1), call_id=CALL2)
    await h.tell(NodeLeft(node_id=N1), call_id="not-a-call-id")
    assert h.system.stats.restarts == 0 and h.store.calls == {}
    await start_on(h)
    await h.do(HangUp(user_id=A, session_id="a1", node_id=N1))
    ended = h.record()
    await h.tell(NodeLeft(node_id=N1))  # an ended call: nothing
    assert h.record() == ended and h.system.stats.restarts == 0
