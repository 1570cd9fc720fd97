"""UserActor starting from the gateway's presence snapshot (SessionOpened.presence) instead of
loading: adopted only when the save conditional on the snapshot succeeds, and loaded as
before when it fails (something saved the record since), raises, or the store cannot save
conditionally. An activation without a message of its own (Activate) still loads."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from actors.clock import ManualClock
from actors.system import ActorSystem
from actors.user import UserActor
from protocols.cluster import Activate
from protocols.presence import PresenceRecord
from protocols.user_messages import GetPresence, PresenceSnapshot, SessionClosed, SessionOpened
from storage.memory.presence import MemoryPresenceStore
from tests.unit.user_actor.rig import GRACE, USER, FakeBroadcaster, FakeDirectory


class StampedStore(MemoryPresenceStore):
    """A PresenceStore with `save_if`: every save counts a version, the stamp of a snapshot
    is the version it saw (as the Redis store's counter `v`)."""

    def __init__(self, clock: ManualClock) -> None:
        super().__init__(clock=clock.time)
        self.version = 0
        self.loads = 0
        self.conditional: list[bool] = []  # the outcome of each save_if
        self.failing = False

    def snapshot(self) -> PresenceSnapshot:
        entry = self._records.get(USER)
        return PresenceSnapshot(record=entry[0] if entry else None, stamp=str(self.version))

    async def save(self, user_id: str, record: PresenceRecord) -> None:
        await super().save(user_id, record)
        self.version += 1

    async def save_if(self, user_id: str, record: PresenceRecord, stamp: str) -> bool:
        if self.failing:
            raise ConnectionError("redis is down")
        saved = stamp == str(self.version)
        self.conditional.append(saved)
        if saved:
            await self.save(user_id, record)
        return saved

    async def load(self, user_id: str) -> PresenceRecord | None:
        self.loads += 1
        return await super().load(user_id)


@dataclass
class Harness:
    clock: ManualClock
    store: StampedStore
    directory: FakeDirectory
    broadcaster: FakeBroadcaster
    system: ActorSystem
    opened: list[str] = field(default_factory=list)

    def ref(self) -> Any:
        return self.system.ref(UserActor, USER)

    async def open(self, session_id: str, snapshot: PresenceSnapshot | None) -> None:
        """What the gateway does: record, then tell (with the snapshot read at the record)."""
        self.directory.add(USER, session_id, "n1")
        await self.ref().tell(SessionOpened(session_id=session_id, node_id="n1",
                                            presence=snapshot))
        await self.system.settled()

    async def status(self) -> str:
        event = await self.ref().ask(GetPresence())
        return str(event.status)


def build(store: type[MemoryPresenceStore] = StampedStore) -> Harness:
    clock = ManualClock()
    presence = StampedStore(clock)
    directory = FakeDirectory()
    broadcaster = FakeBroadcaster()
    system = ActorSystem(clock=clock, idle_timeout=300.0)
    chosen = presence if store is StampedStore else store(clock=clock.time)
    system.register(UserActor, lambda key, ctx: UserActor(
        key, ctx, presence=chosen, broadcaster=broadcaster, directory=directory, grace=GRACE))
    return Harness(clock, presence, directory, broadcaster, system)


@pytest.fixture
async def h() -> Any:
    harness = build()
    yield harness
    await harness.system.stop()


async def test_a_snapshot_spares_every_read_and_the_user_goes_online(h: Harness) -> None:
    await h.open("s1", h.store.snapshot())
    assert h.store.loads == 0 and h.directory.reads == 0  # nothing read
    assert h.store.conditional == [True]  # one write, conditional on the snapshot
    assert await h.status() == "online"
    assert [p["status"] for p in h.broadcaster.presence()] == ["online"]
    record = await h.store.load(USER)
    assert record is not None and record.status == "online" and record.alive_until > 0
    # The actor goes on from there as from a load: the close starts the grace period.
    h.directory.remove(USER, "s1")
    await h.ref().tell(SessionClosed(session_id="s1"))
    await h.system.settled()
    h.clock.advance(GRACE + 1)
    await h.system.settled()
    assert await h.status() == "offline"


async def test_a_chosen_status_in_a_live_snapshot_is_kept(h: Harness) -> None:
    await h.store.save(USER, PresenceRecord(status="dnd",
                                            alive_until=h.clock.time() + 60))
    await h.open("s1", h.store.snapshot())
    assert h.store.conditional == [True]
    assert await h.status() == "dnd"
    assert h.broadcaster.presence() == []  # was not offline: nothing to announce


async def test_a_save_since_the_snapshot_makes_the_actor_load(h: Harness) -> None:
    snapshot = h.store.snapshot()  # offline, no record
    # Before SessionOpened arrives, another activation (a crash, a handover) saw a second
    # session and saved the user as away.
    h.directory.add(USER, "elsewhere", "n2")
    await h.store.save(USER, PresenceRecord(status="away", alive_until=h.clock.time() + 60))
    await h.open("s1", snapshot)
    assert h.store.conditional == [False]
    assert h.store.loads == 1 and h.directory.reads == 1  # loaded as without a snapshot
    assert await h.status() == "away"  # from the record, not the stale snapshot
    # Both sessions known: closing ours keeps the user online.
    h.directory.remove(USER, "s1")
    await h.ref().tell(SessionClosed(session_id="s1"))
    await h.system.settled()
    h.clock.advance(GRACE + 1)
    await h.system.settled()
    assert await h.status() == "away"


async def test_a_failing_conditional_save_falls_back_to_the_load(h: Harness) -> None:
    h.store.failing = True
    await h.open("s1", h.store.snapshot())
    assert h.store.loads == 1 and h.directory.reads == 1
    assert await h.status() == "online"


async def test_a_store_without_conditional_saves_ignores_the_snapshot() -> None:
    h = build(store=MemoryPresenceStore)
    try:
        await h.open("s1", PresenceSnapshot(record=None, stamp="0"))
        assert h.directory.reads == 1  # loaded from the records
        assert await h.status() == "online"
    finally:
        await h.system.stop()


async def test_without_a_snapshot_the_actor_loads(h: Harness) -> None:
    await h.open("s1", None)
    assert h.store.loads == 1 and h.directory.reads == 1 and h.store.conditional == []
    assert await h.status() == "online"


async def test_a_snapshot_reaching_a_loaded_actor_is_ignored(h: Harness) -> None:
    await h.open("s1", None)
    stale = PresenceSnapshot(record=None, stamp="0")
    await h.open("s2", stale)
    assert h.store.conditional == []  # a loaded actor handles SessionOpened as always
    assert await h.status() == "online"


async def test_an_activation_without_a_message_still_loads(h: Harness) -> None:
    # Activate (a view change) gets no message of its own: the load timer loads, and the
    # heartbeat that keeps a connected user live is armed.
    h.directory.add(USER, "s1", "n1")
    await h.ref().tell(Activate())
    await h.system.settled()
    assert h.directory.reads == 0
    h.clock.advance(0)
    await h.system.settled()
    assert h.directory.reads == 1 and h.store.loads == 1
    record = await h.store.load(USER)
    assert record is not None and record.status == "online"
