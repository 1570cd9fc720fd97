"""Reading analytics: a post's series (author only), a user's best times, and the fields a
user's stats gained. Every read is an index range over the counters the consumer keeps."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec

from protocols.analytics import (
    BEST_TIMES_WINDOW_DAYS,
    DEFAULT_RANGE_DAYS,
    MAX_RANGE_DAYS,
    AnalyticsQuery,
    BestTimes,
    BestTimesQuery,
    FollowerGrowth,
    PostAnalytics,
    PostPerformance,
)
from protocols.analytics_records import PostTotals
from protocols.ids import is_id
from protocols.posts import UserStats
from protocols.problems import FieldError
from server.analytics import best_times, buckets
from server.analytics.ports import AnalyticsStore
from server.auth.principal import Principal
from server.http.problems import NotFound, ValidationFailed

Clock = Callable[[], datetime]
SUMMARY_POSTS = 3  # best and worst posts shown in a user's stats


def utc_now() -> datetime:
    return datetime.now(UTC)


class AnalyticsService:
    def __init__(self, store: AnalyticsStore, *, clock: Clock = utc_now) -> None:
        self._store = store
        self._clock = clock

    async def post(self, caller: Principal, raw_id: str, query: AnalyticsQuery) -> PostAnalytics:
        """The post's buckets over the range; 404 `post_not_found` unless the caller wrote
        it (others may not learn whether it exists), 422 for a bad range."""
        post_id = raw_id.lower() if is_id(raw_id) else None
        owner = await self._store.owner(post_id) if post_id else None
        if post_id is None or owner is None or owner.author_id != caller.user_id:
            raise NotFound(f"No post {raw_id!r}", code="post_not_found")
        start, end = self.range(query)
        rows = await self._store.hours(post_id, start, end)
        points, totals = buckets.series(rows, start, end, query.bucket)
        return PostAnalytics(post_id=post_id, bucket=query.bucket, from_=start, to=end,
                             series=points, totals=totals)

    def range(self, query: AnalyticsQuery) -> tuple[datetime, datetime]:
        """[from, to) widened to whole buckets; 422 `invalid_range` when from is not before
        to, `range_too_large` past MAX_RANGE_DAYS."""
        try:  # years 1 and 9999 are valid timestamps but have no room for the arithmetic
            end = query.to or self._clock()
            start = query.from_ or end - timedelta(days=DEFAULT_RANGE_DAYS)
            if start >= end:
                raise _invalid("from", "`from` must be before `to`", "invalid_range")
            if end - start > timedelta(days=MAX_RANGE_DAYS):
                raise _invalid("to", f"The range may cover at most {MAX_RANGE_DAYS} days",
                               "range_too_large")
            return buckets.floor(start, query.bucket), buckets.ceil(end, query.bucket)
        except OverflowError:
            raise _invalid("to", "The range is out of bounds", "invalid_range") from None

    async def best_times(self, caller: Principal, query: BestTimesQuery) -> BestTimes:
        tz = _zone(query.timezone)
        until = buckets.ceil(self._clock(), "hour")
        since = until - timedelta(days=BEST_TIMES_WINDOW_DAYS)
        rows = await self._store.activity(caller.user_id, since, until)
        return BestTimes(timezone=query.timezone, window_days=BEST_TIMES_WINDOW_DAYS,
                         since=since, until=until,
                         slots=best_times.rank(rows, tz, query.limit))

    async def extend_stats(self, stats: UserStats) -> UserStats:
        """`stats` with the analytics fields filled in (totals, best / worst posts, followers
        gained and lost in the last 28 days)."""
        totals = await self._store.user_totals(stats.user_id)
        best = await self._store.ranked_posts(stats.user_id, best=True, limit=SUMMARY_POSTS)
        worst = await self._store.ranked_posts(stats.user_id, best=False, limit=SUMMARY_POSTS)
        shown = {p.post_id for p in best}  # with few posts, one is not both best and worst
        since: date = (self._clock() - timedelta(days=BEST_TIMES_WINDOW_DAYS - 1)).date()
        gained, lost = await self._store.follower_changes(stats.user_id, since)
        return msgspec.structs.replace(
            stats, views_received=totals.views, quotes_received=totals.quotes,
            engagements_received=totals.engagements,
            engagement_rate=buckets.engagement_rate(totals.engagements, totals.views),
            best_posts=[_performance(p) for p in best],
            worst_posts=[_performance(p) for p in worst if p.post_id not in shown],
            followers_growth=FollowerGrowth(days=BEST_TIMES_WINDOW_DAYS, gained=gained,
                                            lost=lost))


def _performance(p: PostTotals) -> PostPerformance:
    return PostPerformance(post_id=p.post_id, created_at=p.created_at, views=p.views,
                           engagements=p.engagements,
                           engagement_rate=buckets.engagement_rate(p.engagements, p.views))


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        # ValueError / OSError: a name zoneinfo refuses to look up as a path.
        raise _invalid("timezone", f"{name!r} is not an IANA time zone",
                       "unknown_timezone") from None


def _invalid(field: str, message: str, code: str) -> ValidationFailed:
    return ValidationFailed(message, code=code, errors=[FieldError(field=field, message=message)])
