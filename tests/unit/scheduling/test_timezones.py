"""Turning requested times into instants: offsets, wall times in IANA zones, and the
daylight-saving gaps and overlaps resolved as the caller chose (never silently)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from server.http.problems import ValidationFailed
from server.scheduling.timezones import resolve, wall_time

NEW_YORK = "America/New_York"


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_an_instant_with_an_offset_is_exact_and_shown_in_the_zone() -> None:
    when = resolve(datetime(2026, 6, 1, 14, 30, tzinfo=timezone(timedelta(hours=2))),
                   "America/New_York")
    assert when.scheduled_for == utc(2026, 6, 1, 12, 30)
    assert when.local_time == datetime(2026, 6, 1, 8, 30)  # EDT, UTC-4
    assert when.resolution == "exact" and when.requested_local_time is None


def test_an_instant_without_a_zone_is_shown_in_utc() -> None:
    when = resolve(utc(2026, 6, 1, 12, 0), None)
    assert (when.timezone, when.local_time) == ("UTC", datetime(2026, 6, 1, 12, 0))


def test_an_ordinary_wall_time_is_exact() -> None:
    when = resolve(datetime(2026, 1, 15, 9, 0), "Europe/Paris")
    assert when.scheduled_for == utc(2026, 1, 15, 8, 0)
    assert when.resolution == "exact"
    assert when.local_time == when.requested_local_time == datetime(2026, 1, 15, 9, 0)


@pytest.mark.parametrize(("zone", "wall", "instant", "shown"), [
    # New York jumps from 02:00 EST to 03:00 EDT: 02:30 does not exist.
    (NEW_YORK, datetime(2026, 3, 8, 2, 30), utc(2026, 3, 8, 7, 30), datetime(2026, 3, 8, 3, 30)),
    # Paris jumps from 02:00 CET to 03:00 CEST.
    ("Europe/Paris", datetime(2026, 3, 29, 2, 0), utc(2026, 3, 29, 1, 0),
     datetime(2026, 3, 29, 3, 0)),
    # Lord Howe Island moves by half an hour: 02:15 becomes 02:45.
    ("Australia/Lord_Howe", datetime(2026, 10, 4, 2, 15), utc(2026, 10, 3, 15, 45),
     datetime(2026, 10, 4, 2, 45)),
])
def test_a_wall_time_in_a_gap_is_shifted_forward_by_the_gap(
        zone: str, wall: datetime, instant: datetime, shown: datetime) -> None:
    when = resolve(wall, zone)
    assert when.resolution == "shifted_forward"
    assert when.scheduled_for == instant
    assert when.local_time == shown and when.requested_local_time == wall


def test_a_gap_can_be_refused() -> None:
    with pytest.raises(ValidationFailed) as refused:
        resolve(datetime(2026, 3, 8, 2, 30), NEW_YORK, nonexistent="reject")
    assert refused.value.code == "nonexistent_local_time"


def test_an_overlap_takes_the_occurrence_asked_for() -> None:
    # New York falls back from 02:00 EDT to 01:00 EST: 01:30 happens twice.
    wall = datetime(2026, 11, 1, 1, 30)
    earlier = resolve(wall, NEW_YORK)
    later = resolve(wall, NEW_YORK, ambiguous="later")
    assert (earlier.resolution, earlier.scheduled_for) == ("earlier_of_two",
                                                           utc(2026, 11, 1, 5, 30))
    assert (later.resolution, later.scheduled_for) == ("later_of_two", utc(2026, 11, 1, 6, 30))
    assert earlier.local_time == later.local_time == wall
    with pytest.raises(ValidationFailed) as refused:
        resolve(wall, NEW_YORK, ambiguous="reject")
    assert refused.value.code == "ambiguous_local_time"


def test_the_hour_around_a_change_is_exact() -> None:
    assert resolve(datetime(2026, 3, 8, 1, 59), NEW_YORK).resolution == "exact"
    assert resolve(datetime(2026, 3, 8, 3, 0), NEW_YORK).resolution == "exact"
    assert resolve(datetime(2026, 11, 1, 2, 0), NEW_YORK).resolution == "exact"


@pytest.mark.parametrize("name", ["Mars/Olympus_Mons", "../../etc/passwd", "Europe/"])
def test_unknown_zones_are_refused(name: str) -> None:
    with pytest.raises(ValidationFailed) as refused:
        resolve(datetime(2026, 1, 1, 9, 0), name)
    assert refused.value.code == "unknown_timezone"


def test_a_wall_time_needs_a_zone() -> None:
    with pytest.raises(ValidationFailed) as refused:
        resolve(datetime(2026, 1, 1, 9, 0), None)
    assert refused.value.code == "timezone_required"


def test_wall_time_of_an_instant() -> None:
    assert wall_time(utc(2026, 7, 1, 12, 0), "Asia/Kolkata") == datetime(2026, 7, 1, 17, 30)
