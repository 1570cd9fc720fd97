"""UserActor when things go wrong: storage or directory failures, lost closes, dead nodes,
restarts and heartbeats that put the sessions right."""

from __future__ import annotations

from typing import Any

from actors.clock import ManualClock
from actors.user import DEFAULT_ALIVE_WINDOW, DEFAULT_HEARTBEAT
from protocols.cluster import NodeLeft
from protocols.user_messages import (
    SessionClosed,
    SessionOpened,
    SetPresence,
)
from storage.memory.presence import MemoryPresenceStore
from tests.unit.user_actor.rig import GRACE, USER, FailingStore, Harness, build


async def test_a_storage_failure_keeps_presence_in_memory() -> None:
    clock = ManualClock()
    h = build(clock, FailingStore(clock=clock.time))
    await h.open("s1", "n1")
    assert (await h.status()).status == "online"
    assert h.system.snapshot().restarts == 0
    await h.system.stop()


async def test_the_heartbeat_drops_sessions_the_directory_no_longer_lists(
        h: Harness) -> None:
    await h.open("s1", "n1")
    await h.open("s2", "n1")
    h.directory.remove(USER, "s1")  # a close that never reached the actor
    await h.advance(DEFAULT_HEARTBEAT)
    assert (await h.status()).status == "online"
    h.directory.remove(USER, "s2")
    await h.advance(DEFAULT_HEARTBEAT)
    await h.advance(GRACE - 0.5)
    assert (await h.status()).status == "online"
    await h.advance(1)
    assert (await h.status()).status == "offline"
    assert [p["status"] for p in h.broadcaster.presence()] == ["online", "offline"]
    # A late SessionClosed for a session the heartbeat dropped changes nothing.
    await h.ref().tell(SessionClosed(session_id="s1"))
    assert [p["status"] for p in h.broadcaster.presence()] == ["online", "offline"]


async def test_a_failing_directory_keeps_the_sessions_the_actor_knows(h: Harness) -> None:
    await h.open("s1", "n1")
    h.directory.failing = True
    await h.advance(DEFAULT_HEARTBEAT * 3)
    assert (await h.status()).status == "online"
    assert h.system.snapshot().restarts == 0
    h.directory.failing = False
    h.directory.remove(USER, "s1")
    await h.advance(DEFAULT_HEARTBEAT)
    await h.advance(GRACE)
    assert (await h.status()).status == "offline"


async def test_the_heartbeat_finds_sessions_opened_elsewhere_during_the_grace_period(
        h: Harness) -> None:
    # A session recorded whose SessionOpened has not arrived (yet) cancels the grace
    # period at the next heartbeat, without a flap.
    await h.open("s1", "n1")
    await h.advance(DEFAULT_HEARTBEAT - 1)
    await h.close("s1")
    h.directory.add(USER, "s2", "n2")
    await h.advance(1)  # the heartbeat, within the grace period
    await h.advance(GRACE * 2)
    assert (await h.status()).status == "online"
    assert [p["status"] for p in h.broadcaster.presence()] == ["online"]


async def test_a_restart_with_no_sessions_left_starts_the_grace_period() -> None:
    clock = ManualClock()
    store = MemoryPresenceStore(clock=clock.time)
    first = build(clock, store)
    await first.open("s1", "n1")
    await first.system.settled()
    await first.system.stop()
    first.directory.remove(USER, "s1")  # closed while no activation was there to hear it
    second = build(clock, store, directory=first.directory)
    assert (await second.status()).status == "online"
    await second.advance(GRACE + 1)
    seen = await second.status()
    assert seen.status == "offline" and seen.last_seen_at is not None
    assert [p["status"] for p in second.broadcaster.presence()] == ["offline"]
    await second.system.stop()


async def test_sessions_found_at_activation_make_an_offline_user_online(h: Harness) -> None:
    # The gateway records the session first: a message that activates the actor before
    # SessionOpened arrives already finds the user connected, and watchers hear of it once.
    h.directory.add(USER, "s1", "n2")
    assert (await h.status()).status == "online"
    await h.ref().tell(SessionOpened(session_id="s1", node_id="n2"))
    await h.system.settled()
    assert [p["status"] for p in h.broadcaster.presence()] == ["online"]
    assert await h.store.online([USER]) == {USER}


async def test_a_directory_failure_at_activation_waits_for_the_heartbeat() -> None:
    clock = ManualClock()
    store = MemoryPresenceStore(clock=clock.time)
    first = build(clock, store)
    await first.open("s1", "n1")
    await first.system.settled()
    await first.system.stop()
    first.directory.failing = True
    second = build(clock, store, directory=first.directory)
    # Unknown is not "no sessions": the live record stands, no grace period starts...
    assert (await second.status()).status == "online"
    await second.advance(GRACE + 1)
    assert (await second.status()).status == "online"
    # ...until a heartbeat reads the directory again.
    first.directory.failing = False
    await second.advance(DEFAULT_HEARTBEAT)
    assert (await second.status()).status == "online"
    assert second.broadcaster.presence() == []
    await second.system.stop()


async def test_node_left_of_the_only_node_goes_offline_after_the_grace_period(
        h: Harness) -> None:
    await h.open("s1", "n1")
    await h.open("s2", "n1")
    await h.advance(5)
    left_at = h.clock.time()
    h.directory.live = {"n2"}  # n1 is out of the view, its records with it
    await h.ref().tell(NodeLeft(node_id="n1"))
    await h.advance(GRACE - 0.5)
    assert (await h.status()).status == "online"
    await h.advance(1)
    seen = await h.status()
    assert seen.status == "offline"
    assert seen.last_seen_at is not None and seen.last_seen_at.timestamp() == left_at
    assert [p["status"] for p in h.broadcaster.presence()] == ["online", "offline"]
    assert await h.store.online([USER]) == set()


async def test_node_left_of_another_node_keeps_the_user_online(h: Harness) -> None:
    await h.open("s1", "n1")
    await h.open("s2", "n2")
    h.directory.live = {"n1"}
    await h.ref().tell(NodeLeft(node_id="n2"))
    await h.ref().tell(NodeLeft(node_id="n3"))  # a node the user never had a session on
    await h.advance(GRACE * 2)
    await h.advance(DEFAULT_HEARTBEAT)
    assert (await h.status()).status == "online"
    assert [p["status"] for p in h.broadcaster.presence()] == ["online"]
    # The one session left is the last one now.
    await h.close("s1")
    await h.advance(GRACE)
    assert (await h.status()).status == "offline"


async def test_a_reconnect_within_the_grace_period_after_node_left_never_shows_offline(
        h: Harness) -> None:
    await h.open("s1", "n1")
    h.directory.live = {"n2"}
    await h.ref().tell(NodeLeft(node_id="n1"))
    await h.advance(GRACE / 2)
    await h.open("s2", "n2")  # the client reconnected to a surviving node
    await h.advance(GRACE * 2)
    assert (await h.status()).status == "online"
    assert [p["status"] for p in h.broadcaster.presence()] == ["online"]


async def test_a_chosen_status_does_not_outlive_a_stale_record() -> None:
    clock = ManualClock()
    store = MemoryPresenceStore(clock=clock.time)
    first = build(clock, store)
    await first.open("s1", "n1")
    await first.ref().ask(SetPresence(status="dnd"))
    await first.system.settled()
    await first.system.stop()
    clock.advance(DEFAULT_ALIVE_WINDOW + 1)  # nobody heartbeated: the record is stale
    second = build(clock, store, directory=first.directory)
    assert (await second.status()).status == "online"
    assert [p["status"] for p in second.broadcaster.presence()] == ["online"]
    await second.system.stop()


async def test_the_records_are_checked_before_going_offline(h: Harness) -> None:
    # A session recorded (say on a node the last heartbeat's view did not have yet) whose
    # SessionOpened has not arrived keeps the user online when the grace period ends.
    await h.open("s1", "n1")
    await h.close("s1")
    h.directory.add(USER, "s2", "n2")
    await h.advance(GRACE + 1)
    assert (await h.status()).status == "online"
    assert [p["status"] for p in h.broadcaster.presence()] == ["online"]
    h.directory.remove(USER, "s2")
    await h.advance(DEFAULT_HEARTBEAT)
    await h.advance(GRACE)
    assert (await h.status()).status == "offline"


class CountingStore(MemoryPresenceStore):
    saves = 0

    async def save(self, user_id: str, record: Any) -> None:
        self.saves += 1
        await super().save(user_id, record)


async def test_a_first_connect_writes_the_presence_record_once() -> None:
    clock = ManualClock()
    store = CountingStore(clock=clock.time)
    h = build(clock, store)
    try:
        await h.open("s1", "n1")  # activates the actor: on_start finds s1 in the records
        await h.system.settled()
        assert store.saves == 1
        await h.open("s2", "n1")  # a second device: a new session, written
        await h.system.settled()
        assert store.saves == 2
        assert (await h.status()).status == "online"
    finally:
        await h.system.stop()
