"""Bucketing math: floors and ceilings on UTC boundaries, dense series, engagement rate."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from protocols.analytics_records import HourRow
from server.analytics import buckets


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 3, day, hour, minute, tzinfo=UTC)


def test_floor_and_ceil_are_utc_boundaries() -> None:
    paris = timezone(timedelta(hours=1))
    local = datetime(2026, 3, 8, 0, 30, tzinfo=paris)  # 23:30 UTC the day before
    assert buckets.floor(local, "hour") == at(7, 23)
    assert buckets.floor(local, "day") == at(7, 0)
    assert buckets.ceil(local, "hour") == at(8, 0)
    assert buckets.ceil(at(8, 0), "day") == at(8, 0)  # already on a boundary
    assert buckets.ceil(at(8, 0, 1), "day") == at(9, 0)


def test_engagement_rate_is_none_without_views() -> None:
    assert buckets.engagement_rate(3, 0) is None
    assert buckets.engagement_rate(0, 10) == 0.0
    assert buckets.engagement_rate(1, 3) == 0.3333


def test_net_likes_never_go_below_zero() -> None:
    assert buckets.engagements(likes=1, unlikes=3, comments=2, reposts=1, quotes=1) == 4
    assert buckets.engagements(likes=5, unlikes=2, comments=0, reposts=0, quotes=0) == 3


def test_hour_series_is_dense_and_totals_add_up() -> None:
    rows = [HourRow(at(8, 10), views=10, likes=2, comments=1),
            HourRow(at(8, 12), views=0, reposts=1, quotes=1),
            HourRow(at(8, 13), views=99)]  # outside [10:00, 13:00)
    points, totals = buckets.series(rows, at(8, 10), at(8, 13), "hour")
    assert [p.start for p in points] == [at(8, 10), at(8, 11), at(8, 12)]
    assert [p.views for p in points] == [10, 0, 0]
    assert points[0].engagements == 3 and points[0].engagement_rate == 0.3
    assert points[1].engagement_rate is None  # nothing happened: no rate, not 0
    assert points[2].engagements == 2 and points[2].engagement_rate is None
    assert (totals.views, totals.likes, totals.comments, totals.reposts, totals.quotes) == \
        (10, 2, 1, 1, 1)
    assert totals.engagements == 5 and totals.engagement_rate == 0.5


def test_day_series_sums_the_hours_of_each_utc_day() -> None:
    rows = [HourRow(at(8, 0), views=4, likes=1), HourRow(at(8, 23), views=6, unlikes=1),
            HourRow(at(9, 5), views=1, comments=1)]
    points, totals = buckets.series(rows, at(8, 0), at(10, 0), "day")
    assert [(p.start, p.views, p.likes, p.unlikes, p.engagements) for p in points] == [
        (at(8, 0), 10, 1, 1, 0), (at(9, 0), 1, 0, 0, 1)]
    assert totals.views == 11 and totals.engagements == 1
