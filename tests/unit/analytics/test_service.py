"""The analytics service over an in-memory store, with an injected clock: author-only
access, range rules, best times window and zone, the stats fields, the view sink's retry."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, timedelta

import pytest

from protocols.analytics import AnalyticsQuery, BestTimesQuery
from protocols.analytics_records import (
    ActivityRow,
    Effect,
    HourRow,
    PostOwner,
    PostTotals,
    UserTotals,
)
from protocols.posts import UserStats
from server.analytics.service import AnalyticsService
from server.analytics.views import BucketViewSink
from server.auth.principal import Principal
from server.http.problems import NotFound, ValidationFailed

NOW = datetime(2026, 3, 10, 12, 30, tzinfo=UTC)
AUTHOR = "0190a0b0-0000-7000-8000-000000000001"
OTHER = "0190a0b0-0000-7000-8000-000000000002"
POST = "0190a0b0-0000-7000-8000-0000000000aa"


class FakeStore:
    def __init__(self) -> None:
        self.rows: list[HourRow] = [HourRow(NOW.replace(minute=0) - timedelta(hours=1),
                                            views=4, likes=1)]
        self.activity_rows: list[ActivityRow] = []
        self.asked: list[tuple[datetime, datetime]] = []
        self.views: list[dict[str, int]] = []
        self.fail_views = False

    async def apply(self, consumer: str, event_id: str, effects: Sequence[Effect]) -> bool:
        return True

    async def add_views(self, hour: datetime | None, counts: Mapping[str, int]) -> None:
        if self.fail_views:
            raise OSError("down")
        self.views.append(dict(counts))

    async def owner(self, post_id: str) -> PostOwner | None:
        return PostOwner(AUTHOR, NOW) if post_id == POST else None

    async def hours(self, post_id: str, start: datetime, end: datetime) -> list[HourRow]:
        return [r for r in self.rows if start <= r.hour < end]

    async def activity(self, user_id: str, start: datetime, end: datetime) -> list[ActivityRow]:
        self.asked.append((start, end))
        return self.activity_rows

    async def user_totals(self, user_id: str) -> UserTotals:
        return UserTotals(views=10, likes=2, comments=1, engagements=3)

    async def ranked_posts(self, user_id: str, *, best: bool, limit: int) -> list[PostTotals]:
        posts = [PostTotals(f"p{i}", NOW, 10, i, 0, 0, 0, 0, i) for i in (3, 1)]
        return posts if best else list(reversed(posts))

    async def follower_changes(self, user_id: str, since: date) -> tuple[int, int]:
        assert since == date(2026, 2, 11)  # 28 days, today included
        return 5, 1


def caller(user_id: str) -> Principal:
    return Principal(user_id=user_id, role="user", token_id="t", expires_at=0)


@pytest.fixture
def store() -> FakeStore:
    return FakeStore()


@pytest.fixture
def service(store: FakeStore) -> AnalyticsService:
    return AnalyticsService(store, clock=lambda: NOW)


async def test_only_the_author_sees_a_posts_analytics(service: AnalyticsService) -> None:
    result = await service.post(caller(AUTHOR), POST.upper(), AnalyticsQuery())
    assert result.post_id == POST and result.totals.views == 4
    assert result.to == NOW.replace(minute=0) + timedelta(hours=1)
    assert len(result.series) == 7 * 24 + 1  # from defaults to 7 days before now
    for who, post in ((OTHER, POST), (AUTHOR, "not-an-id"), (AUTHOR, OTHER)):
        with pytest.raises(NotFound):
            await service.post(caller(who), post, AnalyticsQuery())


def test_range_rules(service: AnalyticsService) -> None:
    with pytest.raises(ValidationFailed) as bad:
        service.range(AnalyticsQuery(from_=NOW, to=NOW - timedelta(hours=1)))
    assert bad.value.code == "invalid_range"
    with pytest.raises(ValidationFailed) as big:
        service.range(AnalyticsQuery(from_=NOW - timedelta(days=91), to=NOW))
    assert big.value.code == "range_too_large"
    start, end = service.range(AnalyticsQuery(from_=NOW - timedelta(days=2), bucket="day"))
    assert (start, end) == (datetime(2026, 3, 8, tzinfo=UTC), datetime(2026, 3, 11, tzinfo=UTC))


async def test_best_times_reads_the_last_28_days_in_the_zone(service: AnalyticsService,
                                                             store: FakeStore) -> None:
    store.activity_rows = [ActivityRow(datetime(2026, 3, 9, 13, tzinfo=UTC), engaged=2)]
    result = await service.best_times(caller(AUTHOR), BestTimesQuery(timezone="Asia/Tokyo"))
    [(start, end)] = store.asked
    assert end == datetime(2026, 3, 10, 13, tzinfo=UTC) and end - start == timedelta(days=28)
    [slot] = result.slots
    assert (slot.weekday, slot.hour, slot.engagements, slot.score) == ("monday", 22, 2, 4)
    with pytest.raises(ValidationFailed) as unknown:
        await service.best_times(caller(AUTHOR), BestTimesQuery(timezone="Mars/Olympus"))
    assert unknown.value.code == "unknown_timezone"


async def test_stats_gain_totals_best_worst_and_growth(service: AnalyticsService) -> None:
    base = UserStats(user_id=AUTHOR, followers=1, following=0, posts=2, reposts=0,
                     likes_received=2, comments_received=1, reposts_received=0, likes_given=0)
    stats = await service.extend_stats(base)
    assert stats.views_received == 10 and stats.engagement_rate == 0.3
    assert [p.post_id for p in stats.best_posts] == ["p3", "p1"]
    assert stats.worst_posts == []  # both are already shown as best
    assert (stats.followers_growth.gained, stats.followers_growth.lost) == (5, 1)
    assert stats.followers == 1  # the existing fields are kept


async def test_view_sink_keeps_what_it_could_not_write(store: FakeStore) -> None:
    sink = BucketViewSink(store)
    store.fail_views = True
    await sink.add_views({"a": 2})
    store.fail_views = False
    await sink.add_views({"a": 1, "b": 1})
    assert store.views == [{"a": 3, "b": 1}]


def test_extreme_timestamps_are_a_422_not_a_crash(service: AnalyticsService) -> None:
    for query in (AnalyticsQuery(to=datetime(1, 1, 1, tzinfo=UTC)),
                  AnalyticsQuery(from_=datetime(9999, 12, 31, 23, 30, tzinfo=UTC),
                                 to=datetime(9999, 12, 31, 23, 59, tzinfo=UTC))):
        with pytest.raises(ValidationFailed):
            service.range(query)
