"""UserActor: sessions, the grace period, chosen presence, pushes to connected users."""

from __future__ import annotations

import pytest

from actors.clock import ManualClock
from actors.errors import Rejected
from actors.user import DEFAULT_ALIVE_WINDOW, DEFAULT_HEARTBEAT
from protocols.socket import PresenceEvent
from protocols.user_messages import (
    GetUnread,
    NotificationsRead,
    PushFeedItem,
    PushNotification,
    SetPresence,
)
from storage.memory.presence import MemoryPresenceStore
from tests.unit.user_actor.rig import GRACE, USER, Harness, build


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
