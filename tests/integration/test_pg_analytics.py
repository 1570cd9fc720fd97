"""The analytics consumer and store against a real database: an event applied twice counts
once (also concurrently), upserts add into the same hourly bucket, follower evidence only
from followers, views from the view flush, the user summary and followers gained."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta

import asyncpg
import pytest

from protocols.events import (
    CommentCreated,
    EventData,
    EventEnvelope,
    FollowCreated,
    FollowDeleted,
    PostCreated,
    PostDeleted,
    PostLiked,
    PostReposted,
    PostUnliked,
    envelope,
)
from server.analytics.consumer import AnalyticsConsumer
from server.analytics.views import BucketViewSink
from storage.postgres.analytics import PostgresAnalyticsStore
from tests.integration.feed_rows import Rows

pytestmark = pytest.mark.integration

HOUR = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=2)


@pytest.fixture
def rows(db_pool: asyncpg.Pool) -> Rows:
    return Rows(db_pool)


@pytest.fixture
def store(db_pool: asyncpg.Pool) -> PostgresAnalyticsStore:
    return PostgresAnalyticsStore(db_pool)


def event(data: EventData, actor: str, at: datetime = HOUR + timedelta(minutes=7)
          ) -> EventEnvelope:
    return envelope(data, actor_id=actor, occurred_at=at)


async def test_the_same_event_twice_counts_once(rows: Rows,
                                                store: PostgresAnalyticsStore) -> None:
    author, fan = await rows.users(2)
    post = await rows.post(author)
    consumer = AnalyticsConsumer(store)
    liked = event(PostLiked(post_id=post, author_id=author, user_id=fan), fan)
    await asyncio.gather(*(consumer.handle(liked) for _ in range(5)))
    await consumer.handle(liked)
    [bucket] = await store.hours(post, HOUR, HOUR + timedelta(hours=1))
    assert (bucket.hour, bucket.likes) == (HOUR, 1)
    assert (await store.user_totals(author)).likes == 1


async def test_events_of_one_hour_add_into_one_bucket(rows: Rows,
                                                      store: PostgresAnalyticsStore) -> None:
    author, a, b = await rows.users(3)
    post = await rows.post(author)
    consumer = AnalyticsConsumer(store)
    quote = await rows.post(b, quote_of=post)
    for data, actor, at in [
        (PostCreated(post_id=post, author_id=author, created_at=HOUR), author, HOUR),
        (PostLiked(post_id=post, author_id=author, user_id=a), a, HOUR),
        (PostLiked(post_id=post, author_id=author, user_id=b), b, HOUR + timedelta(minutes=59)),
        (PostUnliked(post_id=post, author_id=author, user_id=b), b, HOUR),
        (CommentCreated(comment_id=rows.next_id(), post_id=post, post_author_id=author,
                        author_id=a), a, HOUR),
        (PostReposted(post_id=post, original_author_id=author, repost_id=rows.next_id(),
                      user_id=a, created_at=HOUR), a, HOUR),
        (PostCreated(post_id=quote, author_id=b, created_at=HOUR, quote_of_id=post,
                     quote_of_author_id=author), b, HOUR),
        (PostLiked(post_id=post, author_id=author, user_id=a), a, HOUR + timedelta(hours=1)),
    ]:
        await consumer.handle(event(data, actor, at))
    first, second = await store.hours(post, HOUR, HOUR + timedelta(hours=2))
    assert (first.likes, first.unlikes, first.comments, first.reposts, first.quotes) == \
        (2, 1, 1, 1, 1)
    assert (second.hour, second.likes) == (HOUR + timedelta(hours=1), 1)
    totals = await store.user_totals(author)
    assert (totals.likes, totals.unlikes, totals.engagements) == (3, 1, 5)
    [best, *_] = await store.ranked_posts(author, best=True, limit=3)
    assert best.post_id == post and best.engagements == 5


async def test_follower_evidence_counts_followers_only(rows: Rows,
                                                       store: PostgresAnalyticsStore) -> None:
    author, follower, stranger, other = await rows.users(4)
    await rows.follow(follower, author, other)
    post = await rows.post(author)
    consumer = AnalyticsConsumer(store)
    await consumer.handle(event(PostLiked(post_id=post, author_id=author, user_id=follower),
                                follower))
    await consumer.handle(event(PostLiked(post_id=post, author_id=author, user_id=stranger),
                                stranger))
    [row] = await store.activity(author, HOUR, HOUR + timedelta(hours=1))
    assert (row.hour, row.engaged, row.active) == (HOUR, 1, 1)
    # The follower's like shows them active for everyone they follow.
    [elsewhere] = await store.activity(other, HOUR, HOUR + timedelta(hours=1))
    assert (elsewhere.engaged, elsewhere.active) == (0, 1)


async def test_views_go_to_the_current_hour_and_deleted_posts_leave_the_summary(
    rows: Rows, store: PostgresAnalyticsStore, db_pool: asyncpg.Pool
) -> None:
    author = await rows.user()
    post, gone = await rows.post(author), await rows.post(author)
    sink = BucketViewSink(store)
    await sink.add_views({post: 3, gone: 1, rows.next_id(): 5})  # a missing post is skipped
    await sink.add_views({post: 2})
    now = await db_pool.fetchval("SELECT date_trunc('hour', now(), 'UTC')")
    [bucket] = await store.hours(post, now, now + timedelta(hours=1))
    assert bucket.views == 5
    await AnalyticsConsumer(store).handle(
        event(PostDeleted(post_id=gone, author_id=author, deleted_by=author), author))
    assert (await store.user_totals(author)).views == 5
    assert [p.post_id for p in await store.ranked_posts(author, best=False, limit=5)] == [post]


async def test_followers_gained_and_lost_per_day(rows: Rows,
                                                 store: PostgresAnalyticsStore) -> None:
    user, a, b = await rows.users(3)
    consumer = AnalyticsConsumer(store)
    old = HOUR - timedelta(days=40)
    for data, at in [(FollowCreated(follower_id=a, followee_id=user), HOUR),
                     (FollowCreated(follower_id=b, followee_id=user), HOUR),
                     (FollowDeleted(follower_id=b, followee_id=user), HOUR),
                     (FollowCreated(follower_id=b, followee_id=user), old)]:
        await consumer.handle(event(data, a, at))
    since: date = (HOUR - timedelta(days=27)).date()
    assert await store.follower_changes(user, since) == (2, 1)
    assert await store.follower_changes(user, old.date()) == (3, 1)
