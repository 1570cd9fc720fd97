"""Time as a port: actors read the time and set timers only through a Clock.

`LoopClock` is the real one. `ManualClock` moves only when told to (`advance`), so tests and
simulations of typing expiry, presence grace periods, ringing timeouts and passivation run
instantly and deterministically, without sleeping.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Callable
from typing import Protocol


class Timer(Protocol):
    def cancel(self) -> None: ...


class Clock(Protocol):
    def time(self) -> float:
        """Wall-clock seconds since the epoch (for timestamps that leave the process)."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never goes backwards (for durations and deadlines)."""
        ...

    def call_later(self, delay: float, callback: Callable[[], None]) -> Timer:
        """Run `callback` (synchronously, on the event loop) after `delay` seconds."""
        ...


class LoopClock:
    """The real clock, with timers on the running asyncio loop."""

    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    def call_later(self, delay: float, callback: Callable[[], None]) -> Timer:
        return asyncio.get_running_loop().call_later(max(0.0, delay), callback)


class _ManualTimer:
    __slots__ = ("cancelled",)

    def __init__(self) -> None:
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class ManualClock:
    """A clock that stands still until `advance()`; due timers then fire in deadline order."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._wall_offset = start
        self._now = 0.0
        self._timers: list[tuple[float, int, _ManualTimer, Callable[[], None]]] = []
        self._order = itertools.count()

    def time(self) -> float:
        return self._wall_offset + self._now

    def monotonic(self) -> float:
        return self._now

    def call_later(self, delay: float, callback: Callable[[], None]) -> Timer:
        timer = _ManualTimer()
        heapq.heappush(self._timers, (self._now + max(0.0, delay), next(self._order), timer,
                                      callback))
        return timer

    def pending(self) -> int:
        return sum(1 for *_, timer, _cb in self._timers if not timer.cancelled)

    def advance(self, seconds: float) -> None:
        """Move time forward, firing every timer that falls due, at its own deadline."""
        target = self._now + seconds
        while self._timers and self._timers[0][0] <= target:
            deadline, _, timer, callback = heapq.heappop(self._timers)
            self._now = max(self._now, deadline)
            if not timer.cancelled:
                callback()
        self._now = target
