"""Deadlines (server/gateway/deadlines.py): items come due in time order on one loop timer,
cancelled ones never, the timer follows the earliest live entry, and cancelled entries do not
pile up. A fake wall clock; the loop's timer fires at once for anything due."""

from __future__ import annotations

import asyncio

from server.gateway.deadlines import Deadlines


class Clock:
    def __init__(self, now: float = 1_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Due:
    """The items that came due, and an event per expected count."""

    def __init__(self) -> None:
        self.items: list[str] = []
        self._waiting: tuple[int, asyncio.Event] | None = None

    def __call__(self, item: str) -> None:
        self.items.append(item)
        if self._waiting is not None and len(self.items) >= self._waiting[0]:
            self._waiting[1].set()

    async def until(self, count: int) -> list[str]:
        event = asyncio.Event()
        self._waiting = (count, event)
        if len(self.items) < count:
            await asyncio.wait_for(event.wait(), 5)
        return self.items


async def test_items_come_due_in_time_order_and_cancelled_ones_never() -> None:
    clock, due = Clock(), Due()
    deadlines = Deadlines(due, clock)
    deadlines.add(1_030.0, "c")
    deadlines.add(1_010.0, "a")
    cancelled = deadlines.add(1_015.0, "x")
    deadlines.add(1_020.0, "b")
    later = deadlines.add(5_000.0, "later")
    cancelled.cancel()
    assert cancelled.done() and len(deadlines) == 4
    clock.now = 1_030.0
    deadlines.add(999.0, "now")  # earlier than the armed timer: re-armed for it
    assert await due.until(4) == ["now", "a", "b", "c"]
    assert len(deadlines) == 1 and not later.done()
    later.cancel()
    assert len(deadlines) == 0 and deadlines._timer is None  # nothing left: no timer


async def test_a_due_item_may_add_and_cancel_entries() -> None:
    clock, due = Clock(), Due()
    deadlines: Deadlines[str] = Deadlines(lambda item: (due(item), follow(item)), clock)
    other = deadlines.add(1_000.0, "other")

    def follow(item: str) -> None:
        if item == "first":
            other.cancel()
            deadlines.add(999.0, "again")  # due already: seen in the same pass

    deadlines.add(999.0, "first")
    assert await due.until(2) == ["first", "again"]
    assert other.done() and len(deadlines) == 0


async def test_cancelled_entries_do_not_pile_up() -> None:
    deadlines = Deadlines(Due(), Clock())
    entries = [deadlines.add(2_000.0 + i, str(i)) for i in range(1_000)]
    for entry in entries[:990]:
        entry.cancel()
    assert len(deadlines) == 10
    assert len(deadlines._heap) <= 64 + 10  # rebuilt once cancelled entries outnumber the rest
    for entry in entries[990:]:
        entry.cancel()
    assert deadlines._heap == []
