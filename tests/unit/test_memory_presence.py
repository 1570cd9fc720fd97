"""The in-memory PresenceStore (the Redis one runs the same checks in integration)."""

from __future__ import annotations

from actors.clock import ManualClock
from protocols.presence import PresenceRecord, effective
from storage.memory.presence import MemoryPresenceStore
from tests.unit.presence_contract import check_presence_store


async def test_memory_presence_store_contract() -> None:
    clock = ManualClock()
    await check_presence_store(MemoryPresenceStore(clock=clock.time, retention=100),
                               clock, retention=100)


def test_effective_presence() -> None:
    assert effective(None, 10).status == "offline"
    live = PresenceRecord(status="away", alive_until=20)
    assert effective(live, 10).status == "away"
    stale = effective(live, 20)
    assert (stale.status, stale.last_seen_at) == ("offline", 20)
    gone = effective(PresenceRecord(status="offline", last_seen_at=5), 10)
    assert (gone.status, gone.last_seen_at) == ("offline", 5)
