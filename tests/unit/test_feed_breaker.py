"""The circuit breaker (server/feed/breaker.py) on a hand-driven clock: it opens after the
threshold, fails fast while open, half-opens after the cooldown, closes on the trial's
success, re-opens on its failure, and lets one trial through however many calls arrive."""

from __future__ import annotations

import asyncio

import pytest

from server.feed.breaker import BreakerState, CircuitBreaker, Permit


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def breaker(clock: Clock, transitions: list[tuple[str, str]] | None = None,
            threshold: int = 3, cooldown: float = 10.0) -> CircuitBreaker:
    def listener(old: BreakerState, new: BreakerState) -> None:
        if transitions is not None:
            transitions.append((old.name, new.name))

    return CircuitBreaker(failure_threshold=threshold, cooldown=cooldown, clock=clock,
                          listener=listener)


def granted(b: CircuitBreaker) -> Permit:
    permit = b.permit()
    assert permit is not None, b.state
    return permit


def fail(b: CircuitBreaker, times: int) -> None:
    for _ in range(times):
        granted(b).failure()


def test_opens_after_the_threshold_of_failures_in_a_row() -> None:
    clock, transitions = Clock(), []
    b = breaker(clock, transitions)
    fail(b, 2)
    assert b.state is BreakerState.CLOSED and b.failures == 2
    granted(b).success()  # a success resets the count
    assert b.failures == 0
    fail(b, 2)
    assert b.state is BreakerState.CLOSED
    fail(b, 1)
    assert b.state is BreakerState.OPEN
    assert transitions == [("CLOSED", "OPEN")]


def test_fails_fast_while_open_and_half_opens_after_the_cooldown() -> None:
    clock = Clock()
    b = breaker(clock)
    fail(b, 3)
    for _ in range(5):
        assert b.permit() is None
    clock.now += 9.99
    assert b.permit() is None and b.state is BreakerState.OPEN
    clock.now += 0.01
    assert b.state is BreakerState.HALF_OPEN  # reads as half-open once cooled down
    trial = granted(b)
    assert trial.trial and b.state is BreakerState.HALF_OPEN


def test_a_successful_trial_closes() -> None:
    clock, transitions = Clock(), []
    b = breaker(clock, transitions)
    fail(b, 3)
    clock.now += 10
    granted(b).success()
    assert b.state is BreakerState.CLOSED and b.failures == 0
    assert transitions == [("CLOSED", "OPEN"), ("OPEN", "HALF_OPEN"), ("HALF_OPEN", "CLOSED")]
    plain = granted(b)
    assert not plain.trial
    fail(b, 2)  # counting starts again from zero
    assert b.state is BreakerState.CLOSED


def test_a_failed_trial_reopens_for_another_cooldown() -> None:
    clock, transitions = Clock(), []
    b = breaker(clock, transitions)
    fail(b, 3)
    clock.now += 10
    granted(b).failure()  # one failure is enough while half-open
    assert b.state is BreakerState.OPEN
    clock.now += 9
    assert b.permit() is None
    clock.now += 1
    granted(b).success()
    assert b.state is BreakerState.CLOSED
    assert transitions == [("CLOSED", "OPEN"), ("OPEN", "HALF_OPEN"), ("HALF_OPEN", "OPEN"),
                           ("OPEN", "HALF_OPEN"), ("HALF_OPEN", "CLOSED")]


async def test_concurrent_calls_while_half_open_let_one_trial_through() -> None:
    clock = Clock()
    b = breaker(clock)
    fail(b, 3)
    clock.now += 10
    release, all_asked = asyncio.Event(), asyncio.Event()
    outcomes: list[str] = []

    def decided(outcome: str) -> None:
        outcomes.append(outcome)
        if len(outcomes) == 20:
            all_asked.set()

    async def call() -> None:
        permit = b.permit()
        if permit is None:
            decided("fallback")
            return
        decided("trial")
        await release.wait()  # the dependency takes its time
        permit.success()

    tasks = [asyncio.create_task(call()) for _ in range(20)]
    await all_asked.wait()
    assert outcomes.count("trial") == 1 and outcomes.count("fallback") == 19
    assert b.state is BreakerState.HALF_OPEN
    release.set()
    await asyncio.gather(*tasks)
    assert b.state is BreakerState.CLOSED
    assert all(b.permit() is not None for _ in range(5))  # closed: everyone goes through


def test_a_released_trial_lets_the_next_call_try() -> None:
    clock = Clock()
    b = breaker(clock)
    fail(b, 3)
    clock.now += 10
    trial = granted(b)
    assert b.permit() is None
    trial.release()  # e.g. a bug, or the request was cancelled: no verdict
    assert b.state is BreakerState.HALF_OPEN
    granted(b).success()
    assert b.state is BreakerState.CLOSED


def test_a_lost_trial_is_written_off_after_a_cooldown() -> None:
    clock = Clock()
    b = breaker(clock)
    fail(b, 3)
    clock.now += 10
    lost = granted(b)  # never reports (hung)
    clock.now += 9
    assert b.permit() is None
    clock.now += 1
    second = granted(b)
    lost.failure()  # too late: it no longer counts
    assert b.state is BreakerState.HALF_OPEN
    second.success()
    assert b.state is BreakerState.CLOSED


def test_late_outcomes_of_calls_admitted_before_a_transition_are_ignored() -> None:
    clock = Clock()
    b = breaker(clock)
    slow_failure, slow_success = granted(b), granted(b)  # admitted while closed
    fail(b, 3)
    assert b.state is BreakerState.OPEN
    slow_success.success()  # does not close an open breaker
    assert b.state is BreakerState.OPEN
    clock.now += 10
    granted(b).success()
    slow_failure.failure()  # does not count against the newly closed breaker
    assert b.state is BreakerState.CLOSED and b.failures == 0


def test_each_permit_reports_once() -> None:
    b = breaker(Clock())
    permit = granted(b)
    for _ in range(5):
        permit.failure()
    assert b.failures == 1 and b.state is BreakerState.CLOSED


def test_a_released_permit_while_closed_changes_nothing() -> None:
    b = breaker(Clock())
    fail(b, 2)
    granted(b).release()
    assert b.failures == 2


@pytest.mark.parametrize(("threshold", "cooldown"), [(0, 1.0), (1, 0.0), (1, -1.0)])
def test_refuses_settings_that_cannot_work(threshold: int, cooldown: float) -> None:
    with pytest.raises(ValueError):
        CircuitBreaker(failure_threshold=threshold, cooldown=cooldown)
