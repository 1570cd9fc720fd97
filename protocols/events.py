"""Domain events: the envelope every event travels in, and the payload of each event type.

Envelope (contract): {id (uuid), type, version, occurred_at, actor_id, key, data}. `key` is the
aggregate id (the post for post.*, the follower for follow.*), so one aggregate's events stay
in order on a Kafka partition. Payloads evolve by adding fields with defaults only.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

from protocols.base import Outbound
from protocols.ids import new_id


class EventEnvelope(Outbound):
    id: str
    type: str
    version: int
    occurred_at: datetime
    actor_id: str | None
    key: str
    data: dict[str, Any]


class EventData(msgspec.Struct, frozen=True, kw_only=True):
    """Base of every payload. Subclasses set TYPE, TOPIC and VERSION and implement `key`."""

    TYPE = ""
    TOPIC = ""
    VERSION = 1

    def key(self) -> str:
        raise NotImplementedError


# hubbub.users ---------------------------------------------------------------------------


class UserCreated(EventData, frozen=True, kw_only=True):
    TYPE, TOPIC = "user.created", "hubbub.users"
    user_id: str
    username: str

    def key(self) -> str:
        return self.user_id


class FollowCreated(EventData, frozen=True, kw_only=True):
    TYPE, TOPIC = "follow.created", "hubbub.users"
    follower_id: str
    followee_id: str

    def key(self) -> str:
        return self.follower_id


class FollowDeleted(EventData, frozen=True, kw_only=True):
    TYPE, TOPIC = "follow.deleted", "hubbub.users"
    follower_id: str
    followee_id: str

    def key(self) -> str:
        return self.follower_id


# hubbub.posts ---------------------------------------------------------------------------


class PostCreated(EventData, frozen=True, kw_only=True):
    TYPE, TOPIC = "post.created", "hubbub.posts"
    post_id: str
    author_id: str
    created_at: datetime
    reply_to_id: str | None = None
    reply_to_author_id: str | None = None
    quote_of_id: str | None = None
    quote_of_author_id: str | None = None
    mentioned_user_ids: list[str] = []
    has_media: bool = False

    def key(self) -> str:
        return self.post_id


class PostDeleted(EventData, frozen=True, kw_only=True):
    TYPE, TOPIC = "post.deleted", "hubbub.posts"
    post_id: str
    author_id: str
    deleted_by: str

    def key(self) -> str:
        return self.post_id


class PostLiked(EventData, frozen=True, kw_only=True):
    TYPE, TOPIC = "post.liked", "hubbub.posts"
    post_id: str
    author_id: str  # the post's author (who is notified)
    user_id: str  # who liked

    def key(self) -> str:
        return self.post_id


class PostUnliked(EventData, frozen=True, kw_only=True):
    TYPE, TOPIC = "post.unliked", "hubbub.posts"
    post_id: str
    author_id: str
    user_id: str

    def key(self) -> str:
        return self.post_id


class CommentCreated(EventData, frozen=True, kw_only=True):
    TYPE, TOPIC = "comment.created", "hubbub.posts"
    comment_id: str
    post_id: str
    post_author_id: str
    author_id: str  # who commented
    mentioned_user_ids: list[str] = []

    def key(self) -> str:
        return self.post_id


class PostReposted(EventData, frozen=True, kw_only=True):
    TYPE, TOPIC = "post.reposted", "hubbub.posts"
    post_id: str  # the original
    original_author_id: str
    repost_id: str  # the repost, itself a post row authored by user_id
    user_id: str
    created_at: datetime

    def key(self) -> str:
        return self.post_id


# hubbub.chat ----------------------------------------------------------------------------


class MessageSent(EventData, frozen=True, kw_only=True):
    TYPE, TOPIC = "message.sent", "hubbub.chat"
    message_id: str
    room_id: str
    seq: int
    sender_id: str
    created_at: datetime

    def key(self) -> str:
        return self.room_id


# hubbub.scheduling ----------------------------------------------------------------------
# Keyed by the scheduled post (rate_limit.reached: by the connection, else the user).


class ScheduledTargetResult(msgspec.Struct, frozen=True, kw_only=True):
    """One target of a scheduled post as a round left it."""

    index: int
    kind: str
    connection_id: str | None = None
    status: str  # pending | published | failed | cancelled
    external_id: str | None = None
    url: str | None = None
    error_code: str | None = None
    error: str | None = None


class PostScheduled(EventData, frozen=True, kw_only=True):
    TYPE, TOPIC = "post.scheduled", "hubbub.scheduling"
    scheduled_post_id: str
    author_id: str
    scheduled_for: datetime
    timezone: str
    priority: str
    target_kinds: list[str] = []

    def key(self) -> str:
        return self.scheduled_post_id


class PostRescheduled(EventData, frozen=True, kw_only=True):
    TYPE, TOPIC = "post.rescheduled", "hubbub.scheduling"
    scheduled_post_id: str
    author_id: str
    scheduled_for: datetime
    previous_scheduled_for: datetime
    timezone: str
    priority: str

    def key(self) -> str:
        return self.scheduled_post_id


class PostPublished(EventData, frozen=True, kw_only=True):
    """Every target of the scheduled post is published; post_id is the Hubbub post (None
    without a hubbub target)."""

    TYPE, TOPIC = "post.published", "hubbub.scheduling"
    scheduled_post_id: str
    author_id: str
    post_id: str | None = None
    scheduled_for: datetime
    published_at: datetime
    targets: list[ScheduledTargetResult] = []

    def key(self) -> str:
        return self.scheduled_post_id


class PostFailed(EventData, frozen=True, kw_only=True):
    """No target of the scheduled post is pending any more and at least one failed: it is in
    the dead-letter queue. post_id is set when its hubbub target was published all the same."""

    TYPE, TOPIC = "post.failed", "hubbub.scheduling"
    scheduled_post_id: str
    author_id: str
    post_id: str | None = None
    failed_at: datetime
    error: str | None = None
    targets: list[ScheduledTargetResult] = []

    def key(self) -> str:
        return self.scheduled_post_id


class PostCancelled(EventData, frozen=True, kw_only=True):
    TYPE, TOPIC = "post.cancelled", "hubbub.scheduling"
    scheduled_post_id: str
    author_id: str
    cancelled_at: datetime

    def key(self) -> str:
        return self.scheduled_post_id


class RateLimitReached(EventData, frozen=True, kw_only=True):
    """A publishing target (the X API, say) refused more requests until `reset_at`; posts
    for it wait until then instead of failing."""

    TYPE, TOPIC = "rate_limit.reached", "hubbub.scheduling"
    kind: str
    user_id: str
    connection_id: str | None = None
    scheduled_post_id: str | None = None
    reset_at: datetime | None = None
    limit: int | None = None
    remaining: int | None = None

    def key(self) -> str:
        return self.connection_id or self.user_id


EVENT_TYPES: dict[str, type[EventData]] = {
    cls.TYPE: cls
    for cls in (UserCreated, FollowCreated, FollowDeleted, PostCreated, PostDeleted,
                PostLiked, PostUnliked, CommentCreated, PostReposted, MessageSent,
                PostScheduled, PostRescheduled, PostPublished, PostFailed, PostCancelled,
                RateLimitReached)
}
TOPICS = sorted({cls.TOPIC for cls in EVENT_TYPES.values()})


def envelope(data: EventData, *, actor_id: str | None, occurred_at: datetime) -> EventEnvelope:
    """Wrap a payload for the outbox."""
    return EventEnvelope(
        id=new_id(), type=data.TYPE, version=data.VERSION, occurred_at=occurred_at,
        actor_id=actor_id, key=data.key(), data=msgspec.to_builtins(data),
    )


def payload(event: EventEnvelope) -> EventData:
    """The typed payload of an envelope; raises KeyError for an unknown type."""
    return msgspec.convert(event.data, EVENT_TYPES[event.type])
