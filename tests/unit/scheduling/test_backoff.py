"""The retry schedule: exponential steps with equal jitter, capped; Retry-After honoured."""

from __future__ import annotations

import random

from server.scheduling.backoff import MAX_RETRY_AFTER, RetryPolicy

POLICY = RetryPolicy(max_attempts=5, base=2.0, cap=30.0)


def test_steps_double_up_to_the_cap() -> None:
    assert [POLICY.step(n) for n in range(1, 7)] == [2.0, 4.0, 8.0, 16.0, 30.0, 30.0]


def test_each_wait_is_half_the_step_plus_jitter() -> None:
    rng = random.Random(1)
    for attempt in range(1, 8):
        step = POLICY.step(attempt)
        waits = [POLICY.delay(attempt, rng) for _ in range(200)]
        assert all(step / 2 <= w <= step for w in waits)
        assert max(waits) - min(waits) > step / 4  # really spread out


def test_the_same_seed_gives_the_same_schedule() -> None:
    first = [POLICY.delay(n, random.Random(42)) for n in range(1, 5)]
    again = [POLICY.delay(n, random.Random(42)) for n in range(1, 5)]
    assert first == again


def test_retry_after_is_a_floor_and_is_bounded() -> None:
    rng = random.Random(3)
    assert POLICY.delay(1, rng, retry_after=600.0) == 600.0
    assert POLICY.delay(5, rng, retry_after=0.5) >= 15.0  # the backoff is longer
    assert POLICY.delay(1, rng, retry_after=10 * MAX_RETRY_AFTER) == MAX_RETRY_AFTER


def test_attempts_run_out_at_the_maximum() -> None:
    assert [POLICY.exhausted(n) for n in range(1, 7)] == [False] * 4 + [True] * 2
    assert RetryPolicy(max_attempts=1).exhausted(1)
