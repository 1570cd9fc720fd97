"""Per-connection limits: a token bucket on event rate, and a ceiling on event size."""

from __future__ import annotations

import time
from collections.abc import Callable

# The largest event payload a client may send (the JSON of its arguments). A message text is
# at most 4000 characters, i.e. 16 KB of UTF-8; this leaves room for the other fields.
MAX_EVENT_BYTES = 32 * 1024
# Engine.IO closes a connection whose single packet exceeds this: a transport-level abuse
# ceiling above MAX_EVENT_BYTES, so an oversized event normally gets an ack, not a close.
MAX_PACKET_BYTES = 256 * 1024


class TokenBucket:
    """`burst` tokens, refilling at `rate` per second; each event spends one. Not shared
    between loops; a take never awaits, so it is atomic on its loop."""

    __slots__ = ("_burst", "_clock", "_rate", "_tokens", "_updated")

    def __init__(self, rate: float, burst: int,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._rate = rate
        self._burst = float(burst)
        self._tokens = float(burst)
        self._updated = clock()

    def take(self) -> float:
        """Spend one token: 0.0 when allowed, else the seconds until one is available (and
        nothing is spent)."""
        now = self._clock()
        self._tokens = min(self._burst, self._tokens + max(0.0, now - self._updated) * self._rate)
        self._updated = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return 0.0
        return (1.0 - self._tokens) / self._rate
