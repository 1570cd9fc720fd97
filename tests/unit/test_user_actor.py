"""UserActor with a ManualClock and in-memory ports: sessions, grace period, presence."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from actors.clock import ManualClock
from actors.errors import Rejected
from actors.system import ActorSystem
from actors.user import DEFAULT_ALIVE_WINDOW, DEFAULT_HEARTBEAT, UserActor
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
    gone: set[str] = field(default_factory=set)

    async def closed(self, sessions: dict[str, str]) -> set[str]:
        return {sid for sid in sessions if sid in self.gone}


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

    async def advance(self, seconds: float) -> None:
        await self.system.settled()  # timers are set while handling earlier tells
        self.clock.advance(seconds)
        await self.system.settled()

    async def status(self, user_id: str = USER) -> PresenceEvent:
        return await self.ref(user_id).ask(GetPresence())


def build(clock: ManualClock | None = None, store: MemoryPresenceStore | None = None,
          idle_timeout: float = 300.0) -> Harness:
    clock = clock or ManualClock()
    store = store or MemoryPresenceStore(clock=clock.time)
    broadcaster = FakeBroadcaster()
    unread = FakeUnread()
    directory = FakeDirectory()
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
    await h.ref().tell(SessionOpened(session_id="s1", node_id="n1"))
    assert (await h.status()).status == "online"
    assert h.broadcaster.presence() == [
        {"user_id": USER, "status": "online", "last_seen_at": None}]
    record = await h.store.load(USER)
    assert record is not None and record.sessions == {"s1": "n1"}
    assert await h.store.online([USER, "someone-else"]) == {USER}


async def test_more_devices_and_closing_one_of_them_do_not_flap(h: Harness) -> None:
    await h.ref().tell(SessionOpened(session_id="s1", node_id="n1"))
    await h.ref().tell(SessionOpened(session_id="s2", node_id="n2"))
    await h.ref().tell(SessionClosed(session_id="s1"))
    await h.advance(GRACE * 3)
    assert (await h.status()).status == "online"
    assert len(h.broadcaster.presence()) == 1  # only the first "online"
    record = await h.store.load(USER)
    assert record is not None and record.sessions == {"s2": "n2"}


async def test_offline_only_after_the_grace_period_with_last_seen(h: Harness) -> None:
    await h.ref().tell(SessionOpened(session_id="s1", node_id="n1"))
    await h.advance(5)
    closed_at = h.clock.time()
    await h.ref().tell(SessionClosed(session_id="s1"))
    await h.advance(GRACE - 0.5)
    assert (await h.status()).status == "online"
    await h.advance(1)
    seen = await h.status()
    assert seen.status == "offline"
    assert seen.last_seen_at is not None and seen.last_seen_at.timestamp() == closed_at
    assert [p["status"] for p in h.broadcaster.presence()] == ["online", "offline"]
    assert await h.store.online([USER]) == set()


async def test_a_reconnect_within_the_grace_period_never_shows_offline(h: Harness) -> None:
    await h.ref().tell(SessionOpened(session_id="s1", node_id="n1"))
    await h.ref().tell(SessionClosed(session_id="s1"))
    await h.advance(GRACE / 2)
    await h.ref().tell(SessionOpened(session_id="s2", node_id="n1"))
    await h.advance(GRACE * 2)
    assert (await h.status()).status == "online"
    assert [p["status"] for p in h.broadcaster.presence()] == ["online"]
    # A second disconnect starts a fresh grace period of its own.
    await h.ref().tell(SessionClosed(session_id="s2"))
    await h.advance(GRACE - 0.5)
    assert (await h.status()).status == "online"
    await h.advance(1)
    assert (await h.status()).status == "offline"


async def test_unknown_session_close_is_ignored(h: Harness) -> None:
    await h.ref().tell(SessionOpened(session_id="s1", node_id="n1"))
    await h.ref().tell(SessionClosed(session_id="nope"))
    await h.advance(GRACE * 2)
    assert (await h.status()).status == "online"


async def test_away_and_dnd_are_chosen_while_connected(h: Harness) -> None:
    with pytest.raises(Rejected) as refused:
        await h.ref().ask(SetPresence(status="away"))
    assert refused.value.code == "not_connected"
    await h.ref().tell(SessionOpened(session_id="s1", node_id="n1"))
    away = await h.ref().ask(SetPresence(status="away"))
    assert away == PresenceEvent(user_id=USER, status="away", last_seen_at=None)
    await h.ref().ask(SetPresence(status="away"))  # unchanged: no second broadcast
    await h.ref().ask(SetPresence(status="dnd"))
    assert [p["status"] for p in h.broadcaster.presence()] == ["online", "away", "dnd"]
    assert await h.store.online([USER]) == {USER}  # dnd is connected, not offline
    # Offline, then back: a new connection starts online again.
    await h.ref().tell(SessionClosed(session_id="s1"))
    await h.advance(GRACE + 1)
    await h.ref().tell(SessionOpened(session_id="s2", node_id="n1"))
    assert (await h.status()).status == "online"
    assert [p["status"] for p in h.broadcaster.presence()][-2:] == ["offline", "online"]


async def test_heartbeat_keeps_a_connected_user_live_and_the_actor_in_memory() -> None:
    h = build(idle_timeout=30)
    await h.ref().tell(SessionOpened(session_id="s1", node_id="n1"))
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
    await h.ref().tell(SessionOpened(session_id="s1", node_id="n1"))
    await h.ref().tell(SessionClosed(session_id="s1"))
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
    await first.ref().tell(SessionOpened(session_id="s1", node_id="n1"))
    await first.system.settled()
    await first.system.stop()  # the node goes away without closing its sockets
    # Soon after, another activation (say after a crash) takes the sessions over...
    second = build(clock, store)
    assert (await second.status()).status == "online"
    await second.ref().tell(SessionClosed(session_id="s1"))
    await second.advance(GRACE + 1)
    assert (await second.status()).status == "offline"
    await second.system.stop()
    # ...but a record nobody heartbeats reads as offline once alive_until has passed.
    third_store = MemoryPresenceStore(clock=clock.time)
    third = build(clock, third_store)
    await third.ref().tell(SessionOpened(session_id="s9", node_id="n1"))
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

    await h.ref().tell(SessionOpened(session_id="s1", node_id="n1"))
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
    await h.ref().tell(SessionOpened(session_id="s1", node_id="n1"))
    assert (await h.status()).status == "online"
    assert h.system.snapshot().restarts == 0
    await h.system.stop()


async def test_a_session_whose_close_was_lost_is_dropped_at_the_next_heartbeat(
        h: Harness) -> None:
    await h.ref().tell(SessionOpened(session_id="s1", node_id="n1"))
    await h.ref().tell(SessionOpened(session_id="s2", node_id="n1"))
    h.directory.gone = {"s1"}
    await h.advance(DEFAULT_HEARTBEAT)
    record = await h.store.load(USER)
    assert record is not None and record.sessions == {"s2": "n1"}
    assert (await h.status()).status == "online"
    h.directory.gone = {"s2"}
    await h.advance(DEFAULT_HEARTBEAT)
    await h.advance(GRACE)
    assert (await h.status()).status == "offline"
