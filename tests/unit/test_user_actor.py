"""UserActor with a ManualClock and in-memory ports: sessions, grace period, presence.

The fake directory plays the session records: the harness records a session before it tells
SessionOpened and removes it before SessionClosed, as the gateway does."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from actors.clock import ManualClock
from actors.errors import Rejected
from actors.system import ActorSystem
from actors.user import DEFAULT_ALIVE_WINDOW, DEFAULT_HEARTBEAT, UserActor
from protocols.cluster import NodeLeft
from protocols.socket import PresenceEvent
from protocols.user_messages import (
    GetPresence,
    GetUnread,
    NotificationsRead,
    PushFeedItem,
    PushNotification,
    SessionClosed,
    SessionOpened,
    SetPresence,
)
from storage.memory.presence import MemoryPresenceStore

GRACE = 10.0
USER = "0190a0b0-0000-7000-8000-00000000000a"


@dataclass
class FakeBroadcaster:
    sent: list[tuple[str, str, str, dict[str, Any]]] = field(default_factory=list)

    async def to_room(self, room_id: str, event: str, data: dict[str, Any]) -> None:
        self.sent.append(("room", room_id, event, data))

    async def to_user(self, user_id: str, event: str, data: dict[str, Any]) -> None:
        self.sent.append(("user", user_id, event, data))

    async def to_watchers(self, user_id: str, event: str, data: dict[str, Any]) -> None:
        self.sent.append(("watchers", user_id, event, data))

    def presence(self) -> list[dict[str, Any]]:
        return [d for kind, _, event, d in self.sent if kind == "watchers" and event == "presence"]

    def to_user_events(self, event: str) -> list[dict[str, Any]]:
        return [d for kind, _, e, d in self.sent if kind == "user" and e == event]


@dataclass
class FakeUnread:
    count: int = 0

    async def unread_count(self, user_id: str) -> int:
        return self.count


@dataclass
class FakeDirectory:
    """SessionDirectory over a dict of records: user -> socket id -> node."""

    records: dict[str, dict[str, str]] = field(default_factory=dict)
    live: set[str] | None = None  # nodes in the view; None: every node is live
    failing: bool = False
    reads: int = 0

    def add(self, user_id: str, session_id: str, node_id: str) -> None:
        self.records.setdefault(user_id, {})[session_id] = node_id

    def remove(self, user_id: str, session_id: str) -> None:
        self.records.get(user_id, {}).pop(session_id, None)

    async def sessions(self, user_id: str) -> dict[str, str]:
        self.reads += 1
        if self.failing:
            raise ConnectionError("redis is down")
        return {sid: node for sid, node in self.records.get(user_id, {}).items()
                if self.live is None or node in self.live}


class FailingStore(MemoryPresenceStore):
    async def save(self, user_id: str, record: Any) -> None:
        raise ConnectionError("redis is down")


@dataclass
class Harness:
    clock: ManualClock
    store: MemoryPresenceStore
    broadcaster: FakeBroadcaster
    unread: FakeUnread
    directory: FakeDirectory
    system: ActorSystem

    def ref(self, user_id: str = USER) -> Any:
        return self.system.ref(UserActor, user_id)

    async def open(self, session_id: str, node_id: str = "n1", user_id: str = USER) -> None:
        self.directory.add(user_id, session_id, node_id)
        await self.ref(user_id).tell(SessionOpened(session_id=session_id, node_id=node_id))

    async def close(self, session_id: str, user_id: str = USER) -> None:
        self.directory.remove(user_id, session_id)
        await self.ref(user_id).tell(SessionClosed(session_id=session_id))

    async def advance(self, seconds: float) -> None:
        await self.system.settled()  # timers are set while handling earlier tells
        self.clock.advance(seconds)
        await self.system.settled()

    async def status(self, user_id: str = USER) -> PresenceEvent:
        return await self.ref(user_id).ask(GetPresence())


def build(clock: ManualClock | None = None, store: MemoryPresenceStore | None = None,
          idle_timeout: float = 300.0, directory: FakeDirectory | None = None) -> Harness:
    clock = clock or ManualClock()
    store = store or MemoryPresenceStore(clock=clock.time)
    broadcaster = FakeBroadcaster()
    unread = FakeUnread()
    directory = directory or FakeDirectory()
    system = ActorSystem(clock=clock, idle_timeout=idle_timeout)
    system.register(UserActor, lambda key, ctx: UserActor(
        key, ctx, presence=store, broadcaster=broadcaster, unread=unread,
        directory=directory, grace=GRACE))
    return Harness(clock, store, broadcaster, unread, directory, system)


@pytest.fixture
async def h() -> Any:
    harness = build()
    yield harness
    await harness.system.stop()


async def test_first_session_makes_the_user_online_and_tells_watchers(h: Harness) -> None:
    assert (await h.status()).status == "offline"
    await h.open("s1", "n1")
    assert (await h.status()).status == "online"
    assert h.broadcaster.presence() == [
        {"user_id": USER, "status": "online", "last_seen_at": None}]
    record = await h.store.load(USER)
    assert record is not None and record.status == "online" and record.last_seen_at is None
    assert await h.store.online([USER, "someone-else"]) == {USER}


async def test_two_devices_on_two_nodes_closing_one_does_not_flap(h: Harness) -> None:
    await h.open("s1", "n1")
    await h.open("s2", "n2")
    await h.close("s1")
    await h.advance(GRACE * 3)
    await h.advance(DEFAULT_HEARTBEAT)  # the reload finds the other node's session
    assert (await h.status()).status == "online"
    assert len(h.broadcaster.presence()) == 1  # only the first "online"
    assert await h.store.online([USER]) == {USER}
    await h.close("s2")
    await h.advance(GRACE)
    assert (await h.status()).status == "offline"


async def test_offline_only_after_the_grace_period_with_last_seen(h: Harness) -> None:
    await h.open("s1", "n1")
    await h.advance(5)
    closed_at = h.clock.time()
    await h.close("s1")
    await h.advance(GRACE - 0.5)
    assert (await h.status()).status == "online"
    await h.advance(1)
    seen = await h.status()
    assert seen.status == "offline"
    assert seen.last_seen_at is not None and seen.last_seen_at.timestamp() == closed_at
    assert [p["status"] for p in h.broadcaster.presence()] == ["online", "offline"]
    assert await h.store.online([USER]) == set()


async def test_a_reconnect_within_the_grace_period_never_shows_offline(h: Harness) -> None:
    await h.open("s1", "n1")
    await h.close("s1")
    await h.advance(GRACE / 2)
    await h.open("s2", "n1")
    await h.advance(GRACE * 2)
    assert (await h.status()).status == "online"
    assert [p["status"] for p in h.broadcaster.presence()] == ["online"]
    # A second disconnect starts a fresh grace period of its own.
    await h.close("s2")
    await h.advance(GRACE - 0.5)
    assert (await h.status()).status == "online"
    await h.advance(1)
    assert (await h.status()).status == "offline"


async def test_unknown_session_close_is_ignored(h: Harness) -> None:
    await h.open("s1", "n1")
    await h.close("nope")
    await h.advance(GRACE * 2)
    assert (await h.status()).status == "online"


async def test_away_and_dnd_are_chosen_while_connected(h: Harness) -> None:
    with pytest.raises(Rejected) as refused:
        await h.ref().ask(SetPresence(status="away"))
    assert refused.value.code == "not_connected"
    await h.open("s1", "n1")
    away = await h.ref().ask(SetPresence(status="away"))
    assert away == PresenceEvent(user_id=USER, status="away", last_seen_at=None)
    await h.ref().ask(SetPresence(status="away"))  # unchanged: no second broadcast
    await h.ref().ask(SetPresence(status="dnd"))
    assert [p["status"] for p in h.broadcaster.presence()] == ["online", "away", "dnd"]
    assert await h.store.online([USER]) == {USER}  # dnd is connected, not offline
    # Offline, then back: a new connection starts online again.
    await h.close("s1")
    await h.advance(GRACE + 1)
    await h.open("s2", "n1")
    assert (await h.status()).status == "online"
    assert [p["status"] for p in h.broadcaster.presence()][-2:] == ["offline", "online"]


async def test_heartbeat_keeps_a_connected_user_live_and_the_actor_in_memory() -> None:
    h = build(idle_timeout=30)
    await h.open("s1", "n1")
    for _ in range(10):
        await h.advance(DEFAULT_HEARTBEAT)
    record = await h.store.load(USER)
    assert record is not None and record.alive_until > h.clock.time()
    assert await h.store.online([USER]) == {USER}
    assert h.system.snapshot().live == {"UserActor": 1}
    assert h.system.snapshot().passivations == 0
    await h.system.stop()


async def test_an_offline_user_is_passivated_and_comes_back_from_storage() -> None:
    h = build(idle_timeout=30)
    await h.open("s1", "n1")
    await h.close("s1")
    await h.advance(GRACE + 1)
    await h.advance(31)
    assert h.system.snapshot().live == {}
    seen = await h.status()  # reactivated from the store
    assert seen.status == "offline" and seen.last_seen_at is not None
    await h.system.stop()


async def test_a_dead_nodes_record_goes_stale_and_a_restart_restores_sessions() -> None:
    clock = ManualClock()
    store = MemoryPresenceStore(clock=clock.time)
    first = build(clock, store)
    await first.open("s1", "n1")
    await first.ref().ask(SetPresence(status="away"))
    await first.system.settled()
    await first.system.stop()  # the actor's node goes away; the socket's node lives on
    # Soon after, another activation (a crash, a handover) finds the sessions in the
    # directory and keeps the status the user chose...
    second = build(clock, store, directory=first.directory)
    assert (await second.status()).status == "away"
    assert second.broadcaster.presence() == []  # nothing changed for the watchers
    await second.close("s1")
    await second.advance(GRACE + 1)
    assert (await second.status()).status == "offline"
    await second.system.stop()
    # ...but a record nobody heartbeats reads as offline once alive_until has passed.
    third_store = MemoryPresenceStore(clock=clock.time)
    third = build(clock, third_store)
    await third.open("s9", "n1")
    await third.system.settled()
    await third.system.stop()
    clock.advance(DEFAULT_ALIVE_WINDOW + 1)
    assert await third_store.online([USER]) == set()


async def test_notifications_and_feed_items_reach_connected_users_only(h: Harness) -> None:
    await h.ref().tell(PushNotification(notification={"id": "n-1"}))
    await h.ref().tell(PushFeedItem(post={"id": "p-1"}))
    await h.system.settled()
    assert h.broadcaster.to_user_events("notification") == []
    assert h.broadcaster.to_user_events("feed:new") == []

    await h.open("s1", "n1")
    h.unread.count = 3
    await h.ref().tell(PushNotification(notification={"id": "n-2"}))
    await h.ref().tell(PushFeedItem(post={"id": "p-2"}))
    await h.system.settled()
    assert h.broadcaster.to_user_events("notification") == [
        {"notification": {"id": "n-2"}, "unread_count": 3}]
    assert h.broadcaster.to_user_events("feed:new") == [{"post": {"id": "p-2"}}]
    await h.ref().tell(NotificationsRead(unread_count=0))
    assert await h.ref().ask(GetUnread()) == 0


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
