"""The Postgres feed queries against a real database, and the fan-out consumer against real
Postgres and Redis."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
import redis.asyncio as redis

from protocols.events import PostCreated, envelope
from server.feed.fanout import FanOut
from storage.postgres.feed import PostgresFeedStore, id_floor
from storage.redis.timelines import RedisTimelineStore
from tests.integration.feed_rows import Rows

pytestmark = pytest.mark.integration

THRESHOLD = 2


@pytest.fixture
def rows(db_pool: asyncpg.Pool) -> Rows:
    return Rows(db_pool)


@pytest.fixture
def store(db_pool: asyncpg.Pool) -> PostgresFeedStore:
    return PostgresFeedStore(db_pool)


async def test_seed_pulled_and_home_follow_the_home_feed_rule(
    rows: Rows, store: PostgresFeedStore
) -> None:
    viewer, small, big, stranger = await rows.users(4)
    await rows.follow(viewer, small, big)
    await rows.follow(await rows.user(), big)  # big: THRESHOLD followers -> pulled
    p_small = await rows.post(small)
    p_big = await rows.post(big)
    await rows.post(small, reply_to=p_big)  # others' replies: never in a home feed
    await rows.post(big, reply_to=p_small)
    own_reply = await rows.post(viewer, reply_to=p_small)  # own replies are
    await rows.post(small, deleted=True)
    await rows.post(stranger)
    repost = await rows.post(small, repost_of=p_big)
    p_big2 = await rows.post(big)

    assert await store.timeline_seed(viewer, 10, THRESHOLD) == [repost, own_reply, p_small]
    assert await store.pulled(viewer, None, 10, THRESHOLD) == [p_big2, p_big]
    home = [p_big2, repost, own_reply, p_big, p_small]
    assert await store.home(viewer, None, 10) == home
    assert await store.home(viewer, None, 2) == home[:2]
    assert await store.home(viewer, home[1], 2) == home[2:4]
    assert await store.pulled(viewer, p_big2, 10, THRESHOLD) == [p_big]
    assert await store.timeline_seed(viewer, 1, THRESHOLD) == [repost]
    # Above the threshold for everyone: nothing is pushed, everything is pulled.
    assert await store.timeline_seed(viewer, 10, 1) == [own_reply]
    assert await store.pulled(viewer, None, 10, 1) == [p_big2, repost, p_big, p_small]


async def test_relations(rows: Rows, store: PostgresFeedStore, db_pool: asyncpg.Pool) -> None:
    viewer, friend, blocker, blocked, muted, other = await rows.users(6)
    await rows.follow(viewer, friend, muted)
    await db_pool.execute("INSERT INTO blocks VALUES ($1, $2), ($3, $4)",
                          blocker, viewer, viewer, blocked)
    await db_pool.execute("INSERT INTO mutes VALUES ($1, $2)", viewer, muted)
    following, hidden = await store.relations(
        viewer, [friend, blocker, blocked, muted, other, friend])
    assert following == {friend, muted}
    assert hidden == {blocker, blocked, muted}
    assert await store.relations(viewer, []) == (frozenset(), frozenset())


async def test_followers_stream_in_keyset_batches(rows: Rows, store: PostgresFeedStore) -> None:
    author = await rows.user()
    fans = await rows.users(25)
    for fan in fans:
        await rows.follow(fan, author)
    batches = [batch async for batch in store.followers(author, 10)]
    assert [len(b) for b in batches] == [10, 10, 5]
    assert sorted(i for b in batches for i in b) == sorted(fans)
    assert [b async for b in store.followers(await rows.user(), 10)] == []
    assert await store.follower_count(author) == 25
    assert await store.follower_count(rows.next_id()) is None


async def test_recent_posts_skip_replies_and_deleted(rows: Rows,
                                                     store: PostgresFeedStore) -> None:
    author = await rows.user()
    first = await rows.post(author)
    await rows.post(author, reply_to=first)
    await rows.post(author, deleted=True)
    second = await rows.post(author)
    assert await store.recent_posts(author, 10) == [second, first]
    assert await store.recent_posts(author, 1) == [second]


async def test_popular_ranks_recent_weighted_engagement(
    rows: Rows, store: PostgresFeedStore
) -> None:
    author, *fans = await rows.users(5)
    liked = await rows.post(author)  # 3 likes: 3
    commented = await rows.post(author)  # 1 comment: 2
    shared = await rows.post(author)  # a repost and a quote: 6
    stale = await rows.post(author, age=timedelta(days=5))  # 4 old likes: out of the window
    gone = await rows.post(author, deleted=True)
    for fan in fans[:3]:
        await rows.like(fan, liked)
    await rows.comment(fans[0], commented)
    await rows.post(fans[1], repost_of=shared)
    await rows.post(fans[2], quote_of=shared)
    for fan in fans:
        await rows.like(fan, stale, age=timedelta(days=4))
        await rows.like(fan, gone)
    ranking = await store.popular(48, 500)
    mine = [p for p in ranking if p in {liked, commented, shared, stale, gone}]
    assert mine == [shared, liked, commented]
    assert len(await store.popular(48, 1)) == 1


def test_id_floor_is_the_smallest_id_of_its_millisecond() -> None:
    at = datetime(2024, 5, 6, 7, 8, 9, 123000, tzinfo=UTC)
    floor = id_floor(at)
    assert floor.startswith(f"{int(at.timestamp() * 1000):012x}"[:8])
    assert floor[14] == "7" and floor < id_floor(at + timedelta(milliseconds=1))


async def test_fan_out_against_postgres_and_redis(
    rows: Rows, store: PostgresFeedStore, redis_client: redis.Redis, clean_redis_prefix: str,
) -> None:
    timelines = RedisTimelineStore(redis_client, clean_redis_prefix, length=50, ttl=600)
    fanout = FanOut(timelines=timelines, followers=store, push_threshold=30, batch=7,
                    backfill=50)
    author, big = await rows.user(), await rows.user()
    fans = await rows.users(20)
    for fan in fans:
        await rows.follow(fan, author)
    big_fans = await rows.users(30)
    for fan in big_fans:
        await rows.follow(fan, big)
    readers = [author, big, *fans[:15], *big_fans]  # fans[15:] have no timeline yet
    for user in readers:
        async def nothing() -> list[str]:
            return []
        await timelines.rebuild(user, nothing)

    async def publish(author_id: str) -> str:
        post_id = await rows.post(author_id)
        data = PostCreated(post_id=post_id, author_id=author_id, created_at=datetime.now(UTC))
        event = envelope(data, actor_id=author_id, occurred_at=data.created_at)
        await fanout.handle(event)
        await fanout.handle(event)  # redelivered: still one entry
        return post_id

    post = await publish(author)
    for user in (author, *fans[:15]):
        assert await timelines.page(user, None, 10) == [post]
    for user in fans[15:]:
        assert await timelines.page(user, None, 10) is None
    big_post = await publish(big)
    assert await timelines.page(big, None, 10) == [big_post]
    for fan in big_fans:
        assert await timelines.page(fan, None, 10) == []  # pulled at read time instead
