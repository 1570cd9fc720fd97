"""Items due at given wall-clock times, all on one timer of the running loop: the gateway's
token expiries (server/gateway/session.py). A loop timer per socket cost about half a KiB
each (uvloop's handle, its timer object and libuv's struct; tracemalloc, 1,000 sockets); an
entry of this heap is a tenth of that.

Cancelling an entry only marks it: it leaves the heap when it comes due, or when cancelled
entries make up most of the heap (then it is rebuilt), so sockets that come and go in
numbers do not keep their entries for a whole token lifetime."""

from __future__ import annotations

import asyncio
import heapq
import math
import time
from collections.abc import Callable
from typing import Generic, TypeVar

_COMPACT_AT = 64  # cancelled entries below this never trigger a rebuild
T = TypeVar("T")


class Deadline(Generic[T]):
    """One item's due time in a Deadlines heap; `cancel()` it to have it never come due."""

    __slots__ = ("at", "item", "owner")

    def __init__(self, at: float, item: T, owner: Deadlines[T]) -> None:
        self.at = at
        self.item: T | None = item  # None once cancelled or due
        self.owner = owner

    def __lt__(self, other: Deadline[T]) -> bool:
        return self.at < other.at

    def cancel(self) -> None:
        if self.item is not None:
            self.item = None
            self.owner.cancelled(self)

    def done(self) -> bool:
        """Whether it was cancelled or came due."""
        return self.item is None


class Deadlines(Generic[T]):
    """`due(item)` runs (synchronously, on the loop) once the item's time has come, unless
    its Deadline was cancelled. `clock`: wall-clock unix seconds, the unit of `at`. Loop
    timers may fire a little early against that clock: `due` must check if it cares."""

    def __init__(self, due: Callable[[T], None], clock: Callable[[], float] = time.time) -> None:
        self._due = due
        self._clock = clock
        self._heap: list[Deadline[T]] = []
        self._live = 0
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = math.inf

    def __len__(self) -> int:
        """The entries not cancelled and not yet due."""
        return self._live

    def add(self, at: float, item: T) -> Deadline[T]:
        deadline = Deadline(at, item, self)
        heapq.heappush(self._heap, deadline)
        self._live += 1
        if at < self._timer_at:
            self._arm(at)
        return deadline

    def cancelled(self, deadline: Deadline[T]) -> None:
        """Called by Deadline.cancel."""
        self._live -= 1
        if self._live == 0:
            # Nothing left to wait for: drop the timer and the marked entries now.
            self._heap.clear()
            self._disarm()
        elif len(self._heap) - self._live > max(_COMPACT_AT, self._live):
            # In place: `_fire` may be walking this list (a due item's handler cancelling).
            self._heap[:] = [d for d in self._heap if d.item is not None]
            heapq.heapify(self._heap)

    def _arm(self, at: float) -> None:
        self._disarm()
        self._timer_at = at
        self._timer = asyncio.get_running_loop().call_later(max(0.0, at - self._clock()),
                                                            self._fire)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = math.inf

    def _fire(self) -> None:
        self._timer = None
        self._timer_at = math.inf
        heap, now = self._heap, self._clock()
        while heap and (heap[0].item is None or heap[0].at <= now):
            deadline = heapq.heappop(heap)
            item = deadline.item
            if item is None:
                continue  # cancelled: counted out then
            deadline.item = None
            self._live -= 1
            self._due(item)  # may add entries: they go in the heap, and are seen here
        if heap:
            self._arm(heap[0].at)
