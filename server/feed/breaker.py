"""A circuit breaker: stop calling a dependency that keeps failing, and try it again later.

Generic, typed and free of I/O: time comes from an injected clock (monotonic seconds), so a
test drives it by hand. Not thread-safe; meant for one asyncio loop (every method is
synchronous, so nothing interleaves inside one).

States (BreakerState; also the values of the `hubbub_feed_breaker_state` gauge):

- CLOSED (0): calls go through. `failure_threshold` failures in a row open the breaker; any
  success resets the count.
- OPEN (1): calls are refused (the caller fails fast to its fallback) for `cooldown` seconds.
- HALF_OPEN (2): the cooldown is over. The next call goes through as the one trial; every other
  call is refused while it runs. The trial's success closes the breaker; its failure opens it
  again for another cooldown. A trial that reports nothing for `cooldown` seconds (hung, or its
  caller lost it) is written off, and the next call becomes the trial.

Use:

    permit = breaker.permit()
    if permit is None:
        return fallback()            # open: fail fast
    try:
        result = await call()
    except DependencyDown:
        permit.failure()
        return fallback()
    except BaseException:
        permit.release()             # says nothing about the dependency (a bug, a cancel)
        raise
    permit.success()

A permit belongs to the state it was issued in: the outcome of a call admitted before the
breaker last changed state (a slow call admitted while closed that fails after the breaker
opened, or one that succeeds after a trial re-opened it) is ignored, so a late result never
undoes a newer decision. Reporting twice is harmless: only the first report counts.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from enum import IntEnum

Clock = Callable[[], float]


class BreakerState(IntEnum):
    CLOSED = 0
    OPEN = 1
    HALF_OPEN = 2


# Called with (old state, new state) on every transition.
StateListener = Callable[[BreakerState, BreakerState], None]


class Permit:
    """Leave to make one call; report its outcome exactly once (later reports are ignored)."""

    __slots__ = ("_breaker", "_epoch", "_reported", "trial")

    def __init__(self, breaker: CircuitBreaker, epoch: int, *, trial: bool) -> None:
        self._breaker = breaker
        self._epoch = epoch
        self._reported = False
        self.trial = trial  # the one call let through while half-open

    def success(self) -> None:
        if self._report():
            self._breaker._succeeded(self._epoch)

    def failure(self) -> None:
        if self._report():
            self._breaker._failed(self._epoch)

    def release(self) -> None:
        """Give the permit back without a verdict (the call failed for a reason that says
        nothing about the dependency): a trial lets the next call try instead."""
        if self._report() and self.trial:
            self._breaker._released(self._epoch)

    def _report(self) -> bool:
        first = not self._reported
        self._reported = True
        return first


class CircuitBreaker:
    def __init__(self, *, failure_threshold: int = 5, cooldown: float = 10.0,
                 clock: Clock = time.monotonic,
                 listener: StateListener | None = None) -> None:
        if failure_threshold < 1:
            raise ValueError("failure_threshold must be at least 1")
        if cooldown <= 0:
            raise ValueError("cooldown must be positive")
        self.failure_threshold = failure_threshold
        self.cooldown = cooldown
        self._clock = clock
        self._listener = listener
        self._state = BreakerState.CLOSED
        self._failures = 0  # in a row, while closed
        self._opened_at = 0.0
        self._trial_since: float | None = None  # when the trial in flight was let through
        self._epoch = 0  # bumped on every transition; permits of older epochs do not count

    @property
    def state(self) -> BreakerState:
        """The state as of now: OPEN reads as HALF_OPEN once its cooldown is over (the next
        call will be the trial)."""
        if self._state is BreakerState.OPEN and self._cooled_down():
            return BreakerState.HALF_OPEN
        return self._state

    @property
    def failures(self) -> int:
        """Failures in a row so far while closed."""
        return self._failures

    def permit(self) -> Permit | None:
        """A permit to call the dependency, or None: fail fast (open, or a trial is running)."""
        if self._state is BreakerState.CLOSED:
            return Permit(self, self._epoch, trial=False)
        if self._state is BreakerState.OPEN:
            if not self._cooled_down():
                return None
            self._move(BreakerState.HALF_OPEN)
        now = self._clock()
        if self._trial_since is not None:
            if now - self._trial_since < self.cooldown:
                return None
            self._epoch += 1  # the lost trial's report, should it come, no longer counts
        self._trial_since = now
        return Permit(self, self._epoch, trial=True)

    def _cooled_down(self) -> bool:
        return self._clock() - self._opened_at >= self.cooldown

    def _succeeded(self, epoch: int) -> None:
        if epoch != self._epoch:
            return
        if self._state is BreakerState.HALF_OPEN:
            self._move(BreakerState.CLOSED)
        else:
            self._failures = 0

    def _failed(self, epoch: int) -> None:
        if epoch != self._epoch:
            return
        if self._state is BreakerState.HALF_OPEN:
            self._open()
            return
        self._failures += 1
        if self._failures >= self.failure_threshold:
            self._open()

    def _released(self, epoch: int) -> None:
        if epoch == self._epoch and self._state is BreakerState.HALF_OPEN:
            self._trial_since = None

    def _open(self) -> None:
        self._opened_at = self._clock()
        self._move(BreakerState.OPEN)

    def _move(self, state: BreakerState) -> None:
        old, self._state = self._state, state
        self._epoch += 1
        self._failures = 0
        self._trial_since = None
        if self._listener is not None and old is not state:
            self._listener(old, state)
