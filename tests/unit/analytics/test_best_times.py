"""Best-times ranking: wall-clock slots in the asked zone, DST weeks, order and evidence."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from protocols.analytics_records import ActivityRow
from server.analytics.best_times import rank

NEW_YORK = ZoneInfo("America/New_York")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_slots_are_ranked_by_score_then_engagements_then_week_order() -> None:
    rows = [
        ActivityRow(utc(2026, 6, 1, 9), engaged=1, active=0),   # Monday 09: score 2
        ActivityRow(utc(2026, 6, 2, 9), engaged=0, active=2),   # Tuesday 09: score 2
        ActivityRow(utc(2026, 6, 3, 18), engaged=3, active=1),  # Wednesday 18: score 7
        ActivityRow(utc(2026, 6, 4, 7), engaged=0, active=0),   # no evidence: left out
    ]
    slots = rank(rows, ZoneInfo("UTC"), limit=10)
    assert [(s.weekday, s.hour, s.score) for s in slots] == [
        ("wednesday", 18, 7), ("monday", 9, 2), ("tuesday", 9, 2)]
    assert (slots[0].engagements, slots[0].active_followers) == (3, 1)
    assert len(rank(rows, ZoneInfo("UTC"), limit=1)) == 1


def test_same_weekday_and_hour_of_different_weeks_add_up() -> None:
    rows = [ActivityRow(utc(2026, 6, 1, 9) + timedelta(weeks=w), engaged=1) for w in range(4)]
    [slot] = rank(rows, ZoneInfo("UTC"), limit=5)
    assert (slot.weekday, slot.hour, slot.engagements) == ("monday", 9, 4)


def test_hours_are_read_in_the_zone_with_its_offset_of_that_day() -> None:
    # 14:00 UTC is 09:00 in New York in winter (EST, -5) and 10:00 in summer (EDT, -4).
    winter = rank([ActivityRow(utc(2026, 1, 12, 14), engaged=1)], NEW_YORK, limit=1)
    summer = rank([ActivityRow(utc(2026, 7, 13, 14), engaged=1)], NEW_YORK, limit=1)
    assert (winter[0].weekday, winter[0].hour) == ("monday", 9)
    assert (summer[0].weekday, summer[0].hour) == ("monday", 10)


def test_a_dst_week_puts_each_real_hour_on_its_own_wall_hour() -> None:
    # New York springs forward on Sunday 2026-03-08 at 02:00 EST (07:00 UTC) to 03:00 EDT.
    before = ActivityRow(utc(2026, 3, 8, 6), engaged=1)   # 01:00 EST
    after = ActivityRow(utc(2026, 3, 8, 7), engaged=1)    # 03:00 EDT: 02:00 never happened
    later = ActivityRow(utc(2026, 3, 9, 13), engaged=1)   # Monday 09:00 EDT
    slots = rank([before, after, later], NEW_YORK, limit=10)
    assert sorted((s.weekday, s.hour) for s in slots) == [
        ("monday", 9), ("sunday", 1), ("sunday", 3)]


def test_the_repeated_hour_of_a_fall_back_night_receives_both_real_hours() -> None:
    # New York falls back on Sunday 2026-11-01: 01:00-02:00 happens twice (05:00 and 06:00 UTC).
    rows = [ActivityRow(utc(2026, 11, 1, 5), engaged=1),
            ActivityRow(utc(2026, 11, 1, 6), engaged=1, active=1)]
    [slot] = rank(rows, NEW_YORK, limit=10)
    assert (slot.weekday, slot.hour, slot.engagements, slot.active_followers) == \
        ("sunday", 1, 2, 1)
