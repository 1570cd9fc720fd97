"""One contract check run against every PresenceStore (memory here, Redis in integration)."""

from __future__ import annotations

from typing import Any

from actors.clock import ManualClock
from protocols.presence import PresenceRecord


async def check_presence_store(store: Any, clock: ManualClock, *,
                               retention: float | None) -> None:
    """`clock` is the store's clock. `retention=None` skips the check that records expire
    (a real Redis expires keys on its own clock; its test checks the TTL instead)."""
    move = clock.advance
    a, b, c = "user-a", "user-b", "user-c"
    assert await store.load(a) is None
    assert await store.get_many([a, b]) == {}
    assert await store.online([a, b]) == set()

    now = clock.time()
    online = PresenceRecord(status="online", alive_until=now + 60)
    await store.save(a, online)
    await store.save(b, PresenceRecord(status="offline", last_seen_at=now - 5))
    await store.save(c, PresenceRecord(status="dnd", alive_until=now + 10))
    assert await store.load(a) == online
    assert set(await store.get_many([a, b, c, "nobody"])) == {a, b, c}
    assert await store.online([a, b, c, "nobody"]) == {a, c}

    # Replacing a record drops fields the new one does not have.
    await store.save(a, PresenceRecord(status="away", alive_until=now + 60))
    assert await store.load(a) == PresenceRecord(status="away", alive_until=now + 60)

    # c was not heartbeated: stale, so offline, but the record is still there.
    move(11)
    assert await store.online([a, c]) == {a}
    assert await store.load(c) is not None

    if retention is None:
        return
    # After the retention period past its last write (and alive_until) a record is gone.
    move(retention + 60)
    assert await store.load(b) is None
    assert await store.get_many([a, b, c]) == {}
