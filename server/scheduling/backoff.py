"""How long a target waits before its next try after a transient failure.

Exponential with jitter: the step doubles from SCHEDULE_RETRY_BASE_SECONDS up to
SCHEDULE_RETRY_MAX_SECONDS, and the wait is half the step plus a random part of the other
half ("equal jitter"), so posts that failed together (a target was down) come back spread out
yet never sooner than half the step. A target that said when to come back (`Retry-After`,
an X rate-limit reset) is not tried before then.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

# A retry_after beyond this is not honoured as given (a broken header must not park a post
# for years); the target is tried after this long instead.
MAX_RETRY_AFTER = 24 * 3600.0


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int = 5  # tries per target per round, the first included
    base: float = 5.0  # seconds: the first step
    cap: float = 900.0  # seconds: the largest step

    def step(self, attempt: int) -> float:
        """The full step after the `attempt`-th try failed (1-based)."""
        return min(self.cap, self.base * 2 ** max(0, attempt - 1))

    def delay(self, attempt: int, rng: random.Random, retry_after: float | None = None,
              ) -> float:
        """Seconds to wait after the `attempt`-th try failed transiently."""
        step = self.step(attempt)
        wait = step / 2 + rng.uniform(0, step / 2)
        if retry_after is not None and retry_after > 0:
            wait = max(wait, min(retry_after, MAX_RETRY_AFTER))
        return wait

    def exhausted(self, attempt: int) -> bool:
        """After the `attempt`-th try failed transiently: is that the last one?"""
        return attempt >= self.max_attempts
