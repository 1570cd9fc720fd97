"""The hybrid home feed and the popular feed over in-memory ports: merge order, dedupe,
cursor stability, filtering with top-up, rebuilds, reading past the bounded head, and the
fan-out consumer's pushes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import pytest

from protocols.common import PageQuery
from protocols.events import (
    FollowCreated,
    FollowDeleted,
    PostCreated,
    PostDeleted,
    PostReposted,
    envelope,
)
from server.feed.fanout import FanOut
from server.feed.merge import merge_newest
from server.feed.service import FeedPolicy, FeedService
from server.http.cursors import encode_cursor
from server.http.problems import BadRequest
from storage.errors import StorageError
from storage.memory.popular import MemoryRankingCache
from storage.memory.timelines import MemoryTimelineStore
from tests.support.manual_clock import ManualClock
from tests.unit.fakes_feed import FakeFeedSource, FakeHydrator, FeedWorld

THRESHOLD = 3  # authors with 3+ followers are pulled


class Kit:
    def __init__(self, *, length: int = 50, batch: int = 2) -> None:
        self.world = FeedWorld()
        self.source = FakeFeedSource(self.world)
        self.clock = ManualClock()
        self.timelines = MemoryTimelineStore(length=length, ttl=100, clock=self.clock)
        self.rankings = MemoryRankingCache(ttl=30, retain=300, clock=self.clock)
        self.feed = FeedService(
            timelines=self.timelines, source=self.source, posts=FakeHydrator(self.world),
            rankings=self.rankings,
            policy=FeedPolicy(push_threshold=THRESHOLD, timeline_length=length,
                              popular_window_hours=48))
        self.fanout = FanOut(timelines=self.timelines, followers=self.source,
                             push_threshold=THRESHOLD, batch=batch, backfill=length)

    async def publish(self, author: str, **kw: str) -> str:
        """Create a post and deliver its post.created to the fan-out consumer."""
        post_id = self.world.post(author, **kw)
        data = PostCreated(post_id=post_id, author_id=author, created_at=datetime.now(UTC),
                           reply_to_id=kw.get("reply_to_id"))
        await self.fanout.handle(envelope(data, actor_id=author, occurred_at=data.created_at))
        return post_id

    async def ids(self, viewer: str, limit: int = 20, cursor: str | None = None,
                  ) -> tuple[list[str], str | None]:
        page = await self.feed.home(viewer, PageQuery(limit=limit, cursor=cursor))
        return [p.id for p in page.items], page.next_cursor

    async def walk(self, viewer: str, limit: int) -> list[str]:
        seen: list[str] = []
        cursor = None
        for _ in range(100):
            ids, cursor = await self.ids(viewer, limit, cursor)
            seen += ids
            if cursor is None:
                return seen
        raise AssertionError("the feed never ended")


def followers(kit: Kit, author: str, n: int) -> list[str]:
    fans = [kit.world.user() for _ in range(n)]
    for fan in fans:
        kit.world.follow(fan, author)
    return fans


def test_merge_newest_dedupes_and_orders() -> None:
    assert merge_newest([["5", "3", "1"], ["4", "3"], []], 4) == ["5", "4", "3", "1"]
    assert merge_newest([], 3) == []


async def test_push_and_pull_authors_merge_into_one_ordered_page() -> None:
    kit = Kit()
    viewer, small, big = kit.world.user(), kit.world.user(), kit.world.user()
    kit.world.follow(viewer, small, big)
    followers(kit, big, THRESHOLD - 1)  # with the viewer: THRESHOLD followers -> pulled
    await kit.ids(viewer)  # builds the (empty) timeline
    expected = []
    for author in (small, big, small, big, viewer, big):
        expected.append(await kit.publish(author))
    ids, cursor = await kit.ids(viewer)
    assert ids == expected[::-1] and cursor is None
    timeline = await kit.timelines.page(viewer, None, 50)
    assert timeline is not None and len(timeline) == 3  # the big author was never pushed
    assert {kit.world.posts[i].author_id for i in timeline} == {small, viewer}


async def test_a_post_in_both_timeline_and_pull_shows_once() -> None:
    kit = Kit()
    viewer, author = kit.world.user(), kit.world.user()
    kit.world.follow(viewer, author)
    await kit.ids(viewer)
    early = await kit.publish(author)  # pushed while small
    followers(kit, author, THRESHOLD)  # now big: its posts are also pulled
    late = await kit.publish(author)
    ids, _ = await kit.ids(viewer)
    assert ids == [late, early]


async def test_cursor_is_stable_when_new_posts_arrive() -> None:
    kit = Kit()
    viewer, small, big = kit.world.user(), kit.world.user(), kit.world.user()
    kit.world.follow(viewer, small, big)
    followers(kit, big, THRESHOLD)
    posts = [await kit.publish(small if i % 2 else big) for i in range(9)]
    first, cursor = await kit.ids(viewer, limit=4)
    assert first == posts[::-1][:4] and cursor is not None
    newer = [await kit.publish(small), await kit.publish(big)]
    second, cursor = await kit.ids(viewer, limit=4, cursor=cursor)
    assert second == posts[::-1][4:8]
    third, cursor = await kit.ids(viewer, limit=4, cursor=cursor)
    assert third == posts[::-1][8:] and cursor is None
    fresh, _ = await kit.ids(viewer, limit=2)
    assert fresh == newer[::-1]


async def test_filtering_tops_the_page_up() -> None:
    kit = Kit()
    viewer, noisy, quiet, gone = (kit.world.user() for _ in range(4))
    kit.world.follow(viewer, noisy, quiet, gone)
    await kit.ids(viewer)
    keep = [await kit.publish(quiet) for _ in range(3)]
    dropped = [await kit.publish(noisy) for _ in range(7)]
    dropped.append(await kit.publish(gone))
    kit.world.mutes.add((viewer, noisy))
    kit.world.follows.discard((viewer, gone))  # unfollow: takes effect on the next read
    ids, cursor = await kit.ids(viewer, limit=3)
    assert ids == keep[::-1] and cursor is None
    assert not set(ids) & set(dropped)


async def test_blocks_either_way_deletes_and_reposts_of_hidden_users() -> None:
    kit = Kit()
    viewer, friend, blocker, blocked = (kit.world.user() for _ in range(4))
    kit.world.follow(viewer, friend, blocker, blocked)
    await kit.ids(viewer)
    shown = await kit.publish(friend)
    by_blocker = await kit.publish(blocker)
    by_blocked = await kit.publish(blocked)
    deleted = await kit.publish(friend)
    repost = kit.world.post(friend, repost_of_id=by_blocked)
    await kit.fanout.handle(envelope(PostReposted(
        post_id=by_blocked, original_author_id=blocked, repost_id=repost, user_id=friend,
        created_at=datetime.now(UTC)), actor_id=friend, occurred_at=datetime.now(UTC)))
    kit.world.blocks |= {(blocker, viewer), (viewer, blocked)}
    kit.world.posts[deleted].deleted = True
    ids, _ = await kit.ids(viewer)
    assert ids == [shown]
    assert by_blocker not in ids and repost not in ids


async def test_filtering_that_empties_many_rounds_still_hands_a_cursor() -> None:
    kit = Kit()
    viewer, muted, friend = (kit.world.user() for _ in range(3))
    kit.world.follow(viewer, muted, friend)
    await kit.ids(viewer)
    old = await kit.publish(friend)
    for _ in range(30):
        await kit.publish(muted)
    kit.world.mutes.add((viewer, muted))
    ids, cursor = await kit.ids(viewer, limit=2)  # 4 rounds of 3 candidates, all muted
    assert ids == [] and cursor is not None
    assert await kit.walk(viewer, 2) == [old]


async def test_missing_timeline_is_rebuilt_from_the_source() -> None:
    kit = Kit()
    viewer, small, big = (kit.world.user() for _ in range(3))
    kit.world.follow(viewer, small, big)
    followers(kit, big, THRESHOLD)
    posts = [kit.world.post(a) for a in (small, big, viewer, small)]  # never fanned out
    reply = kit.world.post(small, reply_to_id=posts[0])  # others' replies stay out
    own_reply = kit.world.post(viewer, reply_to_id=posts[0])  # own replies are in
    ids, _ = await kit.ids(viewer)
    assert ids == [own_reply, *posts[::-1]] and reply not in ids
    assert kit.source.calls["timeline_seed"] == 1
    assert await kit.timelines.page(viewer, None, 50) == [own_reply, posts[3], posts[2],
                                                          posts[0]]
    await kit.ids(viewer)
    assert kit.source.calls["timeline_seed"] == 1  # built: not rebuilt
    kit.clock.now += 101  # idle past the TTL
    await kit.ids(viewer)
    assert kit.source.calls["timeline_seed"] == 2


async def test_reading_past_the_bounded_head_falls_back_to_the_source() -> None:
    kit = Kit(length=5)
    viewer, author = kit.world.user(), kit.world.user()
    kit.world.follow(viewer, author)
    await kit.ids(viewer)
    posts = [await kit.publish(author) for _ in range(13)]
    assert len(await kit.timelines.page(viewer, None, 50) or []) == 5
    assert await kit.walk(viewer, 4) == posts[::-1]


async def test_bad_cursor_is_a_400() -> None:
    kit = Kit()
    viewer = kit.world.user()
    for bad in ("nope", encode_cursor(("not-an-id",)), encode_cursor((1, 2))):
        with pytest.raises(BadRequest) as caught:
            await kit.ids(viewer, cursor=bad)
        assert caught.value.code == "invalid_cursor"


# Fan-out


async def test_fan_out_pushes_small_authors_in_batches_and_not_big_ones() -> None:
    kit = Kit(batch=1)
    small, big = kit.world.user(), kit.world.user()
    *fans, cold = followers(kit, small, THRESHOLD - 1)  # cold never reads: no timeline
    big_fans = followers(kit, big, THRESHOLD + 2)
    for user in [small, big, *fans, *big_fans]:
        await kit.feed.rebuild(user)
    post = await kit.publish(small)
    assert kit.source.calls["followers_batch"] == 2  # 2 followers, 1 per batch
    for fan in [small, *fans]:
        assert await kit.timelines.page(fan, None, 10) == [post]
    assert await kit.timelines.page(cold, None, 10) is None  # rebuilt on its first read
    big_post = await kit.publish(big)
    assert await kit.timelines.page(big, None, 10) == [big_post]  # own timeline only
    for fan in big_fans:
        assert await kit.timelines.page(fan, None, 10) == []
        assert (await kit.ids(fan))[0] == [big_post]  # pulled at read time


async def test_fan_out_replies_reposts_deletes_and_redelivery() -> None:
    kit = Kit()
    author, fan, other = (kit.world.user() for _ in range(3))
    kit.world.follow(fan, author)
    for user in (author, fan, other):
        await kit.feed.rebuild(user)
    original = await kit.publish(other)
    reply = await kit.publish(author, reply_to_id=original)
    assert await kit.timelines.page(author, None, 10) == [reply]
    assert await kit.timelines.page(fan, None, 10) == []
    repost = kit.world.post(author, repost_of_id=original)
    event = envelope(PostReposted(post_id=original, original_author_id=other,
                                  repost_id=repost, user_id=author,
                                  created_at=datetime.now(UTC)),
                     actor_id=author, occurred_at=datetime.now(UTC))
    await kit.fanout.handle(event)
    await kit.fanout.handle(event)  # delivered twice: one entry
    assert await kit.timelines.page(fan, None, 10) == [repost]
    assert await kit.timelines.page(author, None, 10) == [repost, reply]
    deleted = envelope(PostDeleted(post_id=repost, author_id=author, deleted_by=author),
                       actor_id=author, occurred_at=datetime.now(UTC))
    await kit.fanout.handle(deleted)
    assert await kit.timelines.page(author, None, 10) == [reply]


async def test_follow_backfills_and_unfollow_cleans_the_timeline() -> None:
    kit = Kit()
    fan, author = kit.world.user(), kit.world.user()
    await kit.feed.rebuild(fan)
    posts = [kit.world.post(author) for _ in range(3)]
    kit.world.follow(fan, author)
    now = datetime.now(UTC)
    await kit.fanout.handle(envelope(FollowCreated(follower_id=fan, followee_id=author),
                                     actor_id=fan, occurred_at=now))
    assert await kit.timelines.page(fan, None, 10) == posts[::-1]
    kit.world.follows.discard((fan, author))
    await kit.fanout.handle(envelope(FollowDeleted(follower_id=fan, followee_id=author),
                                     actor_id=fan, occurred_at=now))
    assert await kit.timelines.page(fan, None, 10) == []


async def test_unknown_event_types_are_ignored() -> None:
    kit = Kit()
    author = kit.world.user()
    event = envelope(PostDeleted(post_id=kit.world.next_id(), author_id=author,
                                 deleted_by=author), actor_id=author,
                     occurred_at=datetime.now(UTC))
    await kit.fanout.handle(event.__class__(**{**{f: getattr(event, f)
                                                  for f in event.__struct_fields__},
                                               "type": "post.teleported"}))
    assert kit.source.calls == {}


# Popular


async def test_popular_is_cached_paged_and_filtered() -> None:
    kit = Kit()
    viewer, muted, other = (kit.world.user() for _ in range(3))
    ranked = [kit.world.post(muted if i in (1, 2) else other) for i in range(7)]
    kit.source.popular_ids = ranked
    kit.world.mutes.add((viewer, muted))
    visible = [p for i, p in enumerate(ranked) if i not in (1, 2)]
    first = await kit.feed.popular(viewer, PageQuery(limit=2))
    assert [p.id for p in first.items] == visible[:2] and first.next_cursor
    kit.source.popular_ids = ranked[::-1]  # a new computation would differ...
    kit.clock.now += 31  # ...and the cache has expired
    second = await kit.feed.popular(viewer, PageQuery(limit=2, cursor=first.next_cursor))
    assert [p.id for p in second.items] == visible[2:4]  # the cursor's generation still
    third = await kit.feed.popular(viewer, PageQuery(limit=2, cursor=second.next_cursor))
    assert [p.id for p in third.items] == visible[4:] and third.next_cursor is None
    assert kit.source.calls["popular"] == 1
    fresh = await kit.feed.popular(viewer, PageQuery(limit=10))
    assert [p.id for p in fresh.items] == visible[::-1]
    assert kit.source.calls["popular"] == 2
    kit.clock.now += 400  # the old generation is gone: its cursor reads the current one
    late = await kit.feed.popular(viewer, PageQuery(limit=2, cursor=first.next_cursor))
    offset = ranked.index(visible[1]) + 1  # where the first page stopped
    assert [p.id for p in late.items] == [p for p in ranked[::-1][offset:] if p in visible]


class DownStore:
    """A timeline store and ranking cache whose backend (Redis) is unreachable."""

    def __getattr__(self, name: str) -> Callable[..., Awaitable[None]]:
        async def down(*args: object, **kwargs: object) -> None:
            raise StorageError("redis down")
        return down


async def test_feeds_still_answer_when_redis_is_down() -> None:
    kit = Kit()
    viewer, author = kit.world.user(), kit.world.user()
    kit.world.follow(viewer, author)
    posts = [kit.world.post(author) for _ in range(3)]
    kit.source.popular_ids = posts[:2]
    feed = FeedService(timelines=DownStore(), source=kit.source,  # type: ignore[arg-type]
                       posts=FakeHydrator(kit.world), rankings=DownStore(),  # type: ignore[arg-type]
                       policy=FeedPolicy(push_threshold=THRESHOLD, timeline_length=50,
                                         popular_window_hours=48))
    page = await feed.home(viewer, PageQuery(limit=2))
    assert [p.id for p in page.items] == posts[::-1][:2]
    rest = await feed.home(viewer, PageQuery(limit=2, cursor=page.next_cursor))
    assert [p.id for p in rest.items] == [posts[0]] and rest.next_cursor is None
    popular = await feed.popular(viewer, PageQuery(limit=1))
    assert [p.id for p in popular.items] == posts[:1] and popular.next_cursor
    more = await feed.popular(viewer, PageQuery(limit=1, cursor=popular.next_cursor))
    assert [p.id for p in more.items] == posts[1:2]
