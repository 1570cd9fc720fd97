"""The scheduling rules: pending limit, minimum spacing, rolling hourly and daily limits,
and the next free slot a refusal names."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import msgspec
import pytest

from protocols.schedule_records import ScheduleLoad
from server.scheduling.rules import (
    ScheduleConflict,
    ScheduleRules,
    check,
    conflict_at,
    next_free_slot,
)

T0 = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def refused(rules: ScheduleRules, times: list[datetime], when: datetime, *,
            pending: int = 0, adding: bool = True) -> ScheduleConflict:
    with pytest.raises(ScheduleConflict) as conflict:
        check(rules, ScheduleLoad(pending=pending, times=times), when, adding=adding)
    return conflict.value


def test_no_rules_no_conflicts() -> None:
    rules = ScheduleRules()
    check(rules, ScheduleLoad(pending=10_000, times=[T0] * 50), T0, adding=True)


def test_pending_limit_counts_only_new_posts() -> None:
    rules = ScheduleRules(max_pending=3)
    check(rules, ScheduleLoad(pending=2, times=[]), T0, adding=True)
    conflict = refused(rules, [], T0, pending=3)
    assert conflict.code == "schedule_pending_limit" and conflict.next_free_slot is None
    check(rules, ScheduleLoad(pending=3, times=[]), T0, adding=False)  # a reschedule


def test_min_interval_both_ways_with_the_boundary_allowed() -> None:
    rules = ScheduleRules(min_interval=timedelta(minutes=10))
    times = [at(0)]
    assert conflict_at(rules, times, at(9.9)) == "schedule_min_interval"
    assert conflict_at(rules, times, at(-9.9)) == "schedule_min_interval"
    assert conflict_at(rules, times, at(10)) is None
    assert conflict_at(rules, times, at(-10)) is None
    conflict = refused(rules, times, at(3))
    assert conflict.code == "schedule_min_interval"
    assert conflict.next_free_slot == at(10)
    assert "10 min" in (conflict.detail or "")


def test_next_free_slot_skips_a_crowded_stretch() -> None:
    rules = ScheduleRules(min_interval=timedelta(minutes=10))
    times = [at(0), at(15), at(22)]
    # 5 is too close to 0; 10 is too close to 15; 25 too close to 22; 32 is free.
    assert next_free_slot(rules, times, at(5)) == at(32)


def test_hourly_limit_is_a_rolling_window() -> None:
    rules = ScheduleRules(max_per_hour=3)
    times = [at(0), at(20), at(40)]
    assert conflict_at(rules, times, at(50)) == "schedule_hourly_limit"
    assert conflict_at(rules, times, at(-10)) == "schedule_hourly_limit"
    # Any hour holding the new post and three others is full; 60 drops 0 out.
    assert conflict_at(rules, times, at(60)) is None
    conflict = refused(rules, times, at(45))
    assert conflict.code == "schedule_hourly_limit"
    assert conflict.next_free_slot == at(60)
    # Two posts in any hour leave room for a third.
    assert conflict_at(rules, [at(0), at(50)], at(30)) is None


def test_hourly_limit_counts_windows_on_either_side() -> None:
    rules = ScheduleRules(max_per_hour=2)
    # [10, 70) would hold 10, 30 and 65: one too many.
    assert conflict_at(rules, [at(10), at(65)], at(30)) == "schedule_hourly_limit"
    # [0, 60) holds 0 and 30; [30, 90) holds 30 and 89; no hour holds three.
    assert conflict_at(rules, [at(0), at(89)], at(30)) is None


def test_daily_limit_and_its_next_slot() -> None:
    rules = ScheduleRules(max_per_day=2)
    times = [at(0), at(600)]
    conflict = refused(rules, times, at(700))
    assert conflict.code == "schedule_daily_limit"
    assert conflict.next_free_slot == at(24 * 60)


def test_the_next_slot_satisfies_every_rule_at_once() -> None:
    rules = ScheduleRules(min_interval=timedelta(minutes=30), max_per_hour=2, max_per_day=4)
    times = [at(0), at(30), at(60), at(90)]
    slot = next_free_slot(rules, times, at(10))
    assert conflict_at(rules, times, slot) is None
    assert slot == at(24 * 60)  # four a day already


def test_the_conflict_problem_carries_the_slot() -> None:
    rules = ScheduleRules(min_interval=timedelta(minutes=10))
    problem = refused(rules, [at(0)], at(1)).to_problem("/v1/scheduled_posts")
    body = msgspec.to_builtins(problem)
    assert body["status"] == 409 and body["code"] == "schedule_min_interval"
    assert body["next_free_slot"] == "2026-05-04T12:10:00Z"


def test_lookback_covers_the_widest_rule() -> None:
    assert ScheduleRules().lookback == timedelta(0)
    assert ScheduleRules(min_interval=timedelta(minutes=5), max_per_hour=1).lookback \
        == timedelta(hours=1)
    assert ScheduleRules(max_per_day=1).lookback == timedelta(days=1)
