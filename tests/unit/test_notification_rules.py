"""Which notifications each event makes, and the consumer's hand-off to live sinks."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from protocols.events import (
    CommentCreated,
    FollowCreated,
    FollowDeleted,
    PostCreated,
    PostLiked,
    PostReposted,
    PostUnliked,
    envelope,
)
from protocols.ids import new_id
from protocols.notifications import Notification, NotificationDraft
from server.notifications.rules import drafts_for
from server.notifications.service import CONSUMER, NotificationConsumer

NOW = datetime(2024, 1, 1, tzinfo=UTC)
A, B, C, D = (new_id() for _ in range(4))
POST, OTHER, COMMENT = new_id(), new_id(), new_id()


def summary(drafts: list[NotificationDraft]) -> list[tuple[str, str, str | None, str | None]]:
    return [(d.user_id, d.kind, d.post_id, d.comment_id) for d in drafts]


def test_follow_like_and_repost() -> None:
    follow = drafts_for(FollowCreated(follower_id=A, followee_id=B))
    assert summary(follow) == [(B, "follow", None, None)] and follow[0].actor_id == A
    assert summary(drafts_for(PostLiked(post_id=POST, author_id=B, user_id=A))) == [
        (B, "like", POST, None)]
    repost = drafts_for(PostReposted(post_id=POST, original_author_id=B, repost_id=OTHER,
                                     user_id=A, created_at=NOW))
    assert summary(repost) == [(B, "repost", POST, None)]
    assert repost[0].data == {"repost_id": OTHER}


def test_comments_notify_the_author_and_the_mentioned_once_each() -> None:
    drafts = drafts_for(CommentCreated(comment_id=COMMENT, post_id=POST, post_author_id=B,
                                       author_id=A, mentioned_user_ids=[C, B, A, C]))
    assert summary(drafts) == [(B, "comment", POST, COMMENT), (C, "mention", POST, COMMENT)]
    assert {d.actor_id for d in drafts} == {A}


def test_quotes_and_mentions_in_posts() -> None:
    drafts = drafts_for(PostCreated(post_id=POST, author_id=A, created_at=NOW,
                                    quote_of_id=OTHER, quote_of_author_id=B,
                                    mentioned_user_ids=[B, D]))
    assert summary(drafts) == [(B, "quote", POST, None), (D, "mention", POST, None)]
    assert drafts[0].data == {"quoted_post_id": OTHER}
    plain = PostCreated(post_id=POST, author_id=A, created_at=NOW, reply_to_id=OTHER,
                        reply_to_author_id=B)
    assert drafts_for(plain) == []  # a reply alone notifies nobody


def test_own_actions_and_other_events_notify_nobody() -> None:
    assert drafts_for(PostLiked(post_id=POST, author_id=A, user_id=A)) == []
    assert drafts_for(CommentCreated(comment_id=COMMENT, post_id=POST, post_author_id=A,
                                     author_id=A, mentioned_user_ids=[A])) == []
    assert drafts_for(PostCreated(post_id=POST, author_id=A, created_at=NOW,
                                  quote_of_id=OTHER, quote_of_author_id=A)) == []
    assert drafts_for(PostUnliked(post_id=POST, author_id=B, user_id=A)) == []
    assert drafts_for(FollowDeleted(follower_id=A, followee_id=B)) == []


class FakeStore:
    def __init__(self) -> None:
        self.claimed: set[tuple[str, str]] = set()
        self.created: list[NotificationDraft] = []

    async def create(self, consumer: str, event_id: str,
                     drafts: Sequence[NotificationDraft]) -> list[tuple[str, Notification]]:
        if (consumer, event_id) in self.claimed:
            return []
        self.claimed.add((consumer, event_id))
        self.created += drafts
        return [(d.user_id, Notification(id=d.id, kind=d.kind, actor=None, post_id=d.post_id,
                                         comment_id=d.comment_id, data=d.data, created_at=NOW,
                                         read=False)) for d in drafts]


async def test_consumer_claims_once_and_feeds_every_sink_even_past_a_broken_one() -> None:
    store = FakeStore()
    delivered: list[tuple[str, str]] = []

    async def broken(user_id: str, notification: Notification) -> None:
        raise RuntimeError("socket gone")

    async def collect(user_id: str, notification: Notification) -> None:
        delivered.append((user_id, notification.kind))

    sinks = [broken]
    consumer = NotificationConsumer(store, sinks)  # type: ignore[arg-type]
    sinks.append(collect)  # registered after construction: still used
    event = envelope(PostLiked(post_id=POST, author_id=B, user_id=A), actor_id=A,
                     occurred_at=NOW)
    await consumer.handle(event)
    await consumer.handle(event)
    assert delivered == [(B, "like")]
    assert store.claimed == {(CONSUMER, event.id)} and len(store.created) == 1
    await consumer.handle(envelope(PostLiked(post_id=POST, author_id=A, user_id=A),
                                   actor_id=A, occurred_at=NOW))
    assert len(store.claimed) == 1  # nothing to notify: not even a claim
