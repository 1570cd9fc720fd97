"""How often something arrives, smoothed: a moving average of the gaps between arrivals.

The group commit (storage/postgres/message_batches.py) asks it whether another message is due
within its linger before making a batch wait for company. Each new gap weighs RATE_MEMORY, so a
change of pace shows within a few arrivals. A gap counts as `slow` at most (any longer one just
means "slow"): one quiet spell moves the average by one slow gap, not by hours, and after a
longer quiet a few quick arrivals bring it down again.
"""

from __future__ import annotations

import time
from collections.abc import Callable

RATE_MEMORY = 0.2


class ArrivalPace:
    def __init__(self, slow: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._slow = slow
        self._clock = clock
        self._gap = slow  # nothing seen yet: slow
        self._last: float | None = None

    def arrived(self) -> None:
        now = self._clock()
        if self._last is not None:
            self._gap += (min(now - self._last, self._slow) - self._gap) * RATE_MEMORY
        self._last = now

    def within(self, seconds: float) -> bool:
        """Whether, at the recent pace, the next arrival is due within `seconds`."""
        return self._gap <= seconds
