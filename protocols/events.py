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


EVENT_TYPES: dict[str, type[EventData]] = {
    cls.TYPE: cls
    for cls in (UserCreated, FollowCreated, FollowDeleted, PostCreated, PostDeleted,
                PostLiked, PostUnliked, CommentCreated, PostReposted, MessageSent)
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
