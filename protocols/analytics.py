"""Analytics shapes (contract, ../shared/API.md "Analytics"): a post's metrics over time, the
best times for a user to post, and what `GET /v1/users/{id}/stats` gained.

Buckets are UTC hours or UTC days. Engagement is likes (net of unlikes) + comments + reposts
+ quotes; the engagement rate is engagement / views, null while there are no views.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec

from protocols import fields
from protocols.base import Inbound, Outbound

Bucket = Literal["hour", "day"]
Timestamp = Annotated[datetime, msgspec.Meta(tz=True, description="RFC 3339 with an offset")]
TimeZoneName = fields.pattern(
    r"^[A-Za-z][A-Za-z0-9_+\-]*(/[A-Za-z0-9_+\-]+)*$(?!\n)",
    "must be an IANA time zone name such as Europe/Paris or UTC", max_length=64,
    description="An IANA time zone name (Europe/Paris, America/New_York, UTC)")
Weekday = Literal["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
WEEKDAYS: tuple[Weekday, ...] = ("monday", "tuesday", "wednesday", "thursday", "friday",
                                 "saturday", "sunday")

MAX_RANGE_DAYS = 90  # the longest `from`..`to` one analytics request may cover
DEFAULT_RANGE_DAYS = 7
BEST_TIMES_WINDOW_DAYS = 28


class AnalyticsQuery(Inbound):
    """`?from=&to=&bucket=`: from defaults to 7 days before `to`, to defaults to now; the range
    is widened to whole buckets and may cover at most 90 days."""

    from_: Timestamp | None = msgspec.field(default=None, name="from")
    to: Timestamp | None = None
    bucket: Bucket = "hour"


class AnalyticsCounts(Outbound):
    views: int = 0
    likes: int = 0  # likes received, gross
    unlikes: int = 0  # likes taken back
    comments: int = 0
    reposts: int = 0
    quotes: int = 0
    engagements: int = 0  # max(likes - unlikes, 0) + comments + reposts + quotes
    engagement_rate: float | None = None  # engagements / views; null without views


class AnalyticsPoint(AnalyticsCounts, kw_only=True):
    start: datetime  # the bucket's first instant (UTC)


class PostAnalytics(Outbound):
    """`GET /v1/posts/{id}/analytics`: every bucket of the range (empty ones as zeros), oldest
    first, and the totals over the range."""

    post_id: str
    bucket: Bucket
    from_: datetime = msgspec.field(name="from")
    to: datetime
    series: list[AnalyticsPoint]
    totals: AnalyticsCounts


class BestTimesQuery(Inbound):
    """`?timezone=&limit=`: the zone the hours are given in (default UTC), how many slots."""

    timezone: TimeZoneName = "UTC"
    limit: Annotated[int, msgspec.Meta(ge=1, le=168)] = 5


class BestTimeSlot(Outbound):
    weekday: Weekday
    hour: int  # 0..23, on the wall clock of the requested time zone
    engagements: int  # followers' likes, comments, reposts, quotes, replies on your posts
    active_followers: int  # followers' actions anywhere (posts, likes, comments, reposts)
    score: int  # 2 x engagements + active_followers: the ranking


class BestTimes(Outbound):
    """`GET /v1/users/me/best_times`: the best hours of the week, best first, from the last
    28 days; slots without evidence are left out."""

    timezone: str
    window_days: int
    since: datetime
    until: datetime
    slots: list[BestTimeSlot]


class PostPerformance(Outbound):
    """One post in a user's summary (best or worst by engagement)."""

    post_id: str
    created_at: datetime
    views: int
    engagements: int
    engagement_rate: float | None = None


class FollowerGrowth(Outbound):
    days: int = BEST_TIMES_WINDOW_DAYS
    gained: int = 0
    lost: int = 0
