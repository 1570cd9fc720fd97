"""The notifications consumer and store against a real database: exactly-once under
redelivery, the block / mute / self rules, once-only kinds, listing that marks read, unread
counts and marking read up to an id."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import asyncpg
import pytest

from protocols.events import (
    CommentCreated,
    EventData,
    EventEnvelope,
    FollowCreated,
    PostCreated,
    PostLiked,
    envelope,
)
from protocols.notifications import Notification
from server.notifications.service import NotificationConsumer
from storage.postgres.notifications import PostgresNotificationStore
from tests.integration.feed_rows import Rows

pytestmark = pytest.mark.integration


@pytest.fixture
def rows(db_pool: asyncpg.Pool) -> Rows:
    return Rows(db_pool)


@pytest.fixture
def store(db_pool: asyncpg.Pool) -> PostgresNotificationStore:
    return PostgresNotificationStore(db_pool)


class Sink:
    def __init__(self) -> None:
        self.seen: list[tuple[str, Notification]] = []

    async def __call__(self, user_id: str, notification: Notification) -> None:
        self.seen.append((user_id, notification))


def event(data: EventData, actor: str) -> EventEnvelope:
    return envelope(data, actor_id=actor, occurred_at=datetime.now(UTC))


async def kinds(store: PostgresNotificationStore, user: str) -> list[str]:
    items, _ = await store.page(user, None, 100)
    return [n.kind for n in items]


async def test_redelivered_event_notifies_once(rows: Rows,
                                               store: PostgresNotificationStore) -> None:
    author, fan = await rows.users(2)
    post = await rows.post(author)
    sink = Sink()
    consumer = NotificationConsumer(store, [sink])
    liked = event(PostLiked(post_id=post, author_id=author, user_id=fan), fan)
    await asyncio.gather(*(consumer.handle(liked) for _ in range(5)))  # concurrent, too
    await consumer.handle(liked)
    assert await store.unread_count(author) == 1
    [(user_id, notification)] = sink.seen
    assert user_id == author and notification.kind == "like"
    assert notification.post_id == post and notification.read is False
    assert notification.actor is not None and notification.actor.id == fan


async def test_blocks_mutes_self_and_once_only_kinds(
    rows: Rows, store: PostgresNotificationStore, db_pool: asyncpg.Pool
) -> None:
    author, fan, blocked, blocker, muted = await rows.users(5)
    await db_pool.execute("INSERT INTO blocks VALUES ($1, $2), ($3, $4)",
                          author, blocked, blocker, author)
    await db_pool.execute("INSERT INTO mutes VALUES ($1, $2)", author, muted)
    post = await rows.post(author)
    consumer = NotificationConsumer(store, [])
    for actor in (blocked, blocker, muted, author):
        await consumer.handle(event(PostLiked(post_id=post, author_id=author, user_id=actor),
                                    actor))
    assert await kinds(store, author) == []
    # Like, unlike, like again: two events, one notification. Same for follows.
    for _ in range(2):
        await consumer.handle(event(PostLiked(post_id=post, author_id=author, user_id=fan),
                                    fan))
        await consumer.handle(event(FollowCreated(follower_id=fan, followee_id=author), fan))
    assert sorted(await kinds(store, author)) == ["follow", "like"]


async def test_comment_mention_quote_and_missing_rows(
    rows: Rows, store: PostgresNotificationStore
) -> None:
    author, fan, friend = await rows.users(3)
    post = await rows.post(author)
    comment = await rows.comment(fan, post)
    consumer = NotificationConsumer(store, [])
    await consumer.handle(event(CommentCreated(
        comment_id=comment, post_id=post, post_author_id=author, author_id=fan,
        mentioned_user_ids=[friend, rows.next_id()]), fan))  # one mention of no one
    quote = await rows.post(fan, quote_of=post)
    await consumer.handle(event(PostCreated(
        post_id=quote, author_id=fan, created_at=datetime.now(UTC), quote_of_id=post,
        quote_of_author_id=author), fan))
    items, _ = await store.page(author, None, 10)
    assert [(n.kind, n.post_id, n.comment_id) for n in items] == [
        ("quote", quote, None), ("comment", post, comment)]
    assert items[0].data == {"quoted_post_id": post}
    [mention] = (await store.page(friend, None, 10))[0]
    assert (mention.kind, mention.post_id, mention.comment_id) == ("mention", post, comment)


async def test_listing_marks_exactly_the_returned_ones_read(
    rows: Rows, store: PostgresNotificationStore
) -> None:
    author, *fans = await rows.users(6)
    post = await rows.post(author)
    consumer = NotificationConsumer(store, [])
    for fan in fans:
        await consumer.handle(event(PostLiked(post_id=post, author_id=author, user_id=fan),
                                    fan))
    assert await store.unread_count(author) == 5
    first, more = await store.page(author, None, 2)
    assert more and [n.read for n in first] == [False, False]
    assert [n.actor.id for n in first if n.actor] == fans[::-1][:2]  # newest first
    assert await store.unread_count(author) == 3
    second, more = await store.page(author, first[-1].id, 2)
    assert more and [n.actor.id for n in second if n.actor] == fans[::-1][2:4]
    again, _ = await store.page(author, None, 2)
    assert [n.read for n in again] == [True, True]  # read by the first listing
    assert await store.unread_count(author) == 1
    last, more = await store.page(author, second[-1].id, 2)
    assert len(last) == 1 and not more
    assert await store.unread_count(author) == 0


async def test_mark_read_up_to_an_id_and_hiding(
    rows: Rows, store: PostgresNotificationStore, db_pool: asyncpg.Pool
) -> None:
    author, *fans = await rows.users(4)
    post = await rows.post(author)
    consumer = NotificationConsumer(store, [])
    for fan in fans:
        await consumer.handle(event(FollowCreated(follower_id=fan, followee_id=author), fan))
    await consumer.handle(event(PostLiked(post_id=post, author_id=author, user_id=fans[0]),
                                fans[0]))
    ids = sorted((await db_pool.fetch(
        "SELECT id FROM notifications WHERE user_id = $1", author)), key=lambda r: r["id"])
    assert len(ids) == 4
    assert await store.mark_read(author, ids[1]["id"]) == (2, 2)
    assert await store.mark_read(author, ids[1]["id"]) == (0, 2)
    # Blocking an actor hides their notifications; deleting the post hides its ones.
    await db_pool.execute("INSERT INTO blocks VALUES ($1, $2)", author, fans[2])
    await db_pool.execute("UPDATE posts SET deleted_at = now() WHERE id = $1", post)
    assert await store.unread_count(author) == 0
    assert await kinds(store, author) == ["follow", "follow"]
