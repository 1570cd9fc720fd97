"""Bucketing math for a post's series: pure functions over UTC instants, no I/O.

Rows are stored per UTC hour; a day bucket is the sum of its 24 hours (UTC days). The series
a client gets is dense (empty buckets as zeros) so charts need no gap filling.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from protocols.analytics import AnalyticsCounts, AnalyticsPoint, Bucket
from protocols.analytics_records import HourRow

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


def step(bucket: Bucket) -> timedelta:
    return HOUR if bucket == "hour" else DAY


def floor(at: datetime, bucket: Bucket) -> datetime:
    """The start of the UTC hour or day holding `at`."""
    at = at.astimezone(UTC)
    at = at.replace(minute=0, second=0, microsecond=0)
    return at.replace(hour=0) if bucket == "day" else at


def ceil(at: datetime, bucket: Bucket) -> datetime:
    """The first bucket boundary at or after `at`."""
    start = floor(at, bucket)
    return start if start == at.astimezone(UTC) else start + step(bucket)


def engagements(likes: int, unlikes: int, comments: int, reposts: int, quotes: int) -> int:
    # Net likes, floored at 0: a bucket where more likes were taken back than given does not
    # cancel out the comments and reposts of that bucket.
    return max(likes - unlikes, 0) + comments + reposts + quotes


def engagement_rate(engaged: int, views: int) -> float | None:
    """engaged / views, rounded to 4 places; None without views (not 0, and not infinity
    when a post is engaged with through a feed that did not count a view)."""
    if views <= 0:
        return None
    return round(engaged / views, 4)


def counts(views: int, likes: int, unlikes: int, comments: int, reposts: int,
           quotes: int) -> AnalyticsCounts:
    engaged = engagements(likes, unlikes, comments, reposts, quotes)
    return AnalyticsCounts(views=views, likes=likes, unlikes=unlikes, comments=comments,
                           reposts=reposts, quotes=quotes, engagements=engaged,
                           engagement_rate=engagement_rate(engaged, views))


def series(rows: Iterable[HourRow], start: datetime, end: datetime,
           bucket: Bucket) -> tuple[list[AnalyticsPoint], AnalyticsCounts]:
    """Every bucket in [start, end) (both on bucket boundaries), oldest first, with the rows
    summed into them, and the totals over all of them. Rows outside the range are ignored."""
    sums: dict[datetime, list[int]] = {}
    for row in rows:
        if not start <= row.hour < end:
            continue
        acc = sums.setdefault(floor(row.hour, bucket), [0] * 6)
        for i, value in enumerate((row.views, row.likes, row.unlikes, row.comments,
                                   row.reposts, row.quotes)):
            acc[i] += value
    points: list[AnalyticsPoint] = []
    total = [0] * 6
    at = start
    while at < end:
        acc = sums.get(at, [0] * 6)
        c = counts(*acc)
        points.append(AnalyticsPoint(start=at, **_fields(c)))
        total = [t + v for t, v in zip(total, acc, strict=True)]
        at += step(bucket)
    return points, counts(*total)


def _fields(c: AnalyticsCounts) -> dict[str, object]:
    return {name: getattr(c, name) for name in c.__struct_fields__}
