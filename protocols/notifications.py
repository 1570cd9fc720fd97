"""Notification shapes: a notification as its recipient sees it, the unread count, and
marking notifications read."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import msgspec

from protocols import fields
from protocols.base import Inbound, Outbound
from protocols.users import UserSummary

NotificationKind = Literal[
    "follow",  # actor followed you
    "like",  # actor liked your post (post_id)
    "comment",  # actor commented on your post (post_id, comment_id)
    "repost",  # actor reposted your post (post_id: yours; data.repost_id: theirs)
    "quote",  # actor quoted your post (post_id: the quote; data.quoted_post_id: yours)
    "mention",  # actor mentioned you (post_id, and comment_id when in a comment)
    "message",
    "call_missed",
    "post_published",
    "post_failed",
]

NotificationId = fields.EntityId


class Notification(Outbound):
    """One notification. `read` is its state before the request that returned it: listing
    marks the returned items read, so a listing shows which of them were new."""

    id: str
    kind: NotificationKind
    actor: UserSummary | None  # who did it; null for system notifications
    post_id: str | None
    comment_id: str | None
    data: dict[str, Any]
    created_at: datetime
    read: bool


class UnreadCount(Outbound):
    """`GET /v1/notifications/unread_count`."""

    count: int


class MarkRead(Inbound):
    """`POST /v1/notifications/read`: mark every notification with an id <= up_to_id read."""

    up_to_id: NotificationId


class MarkedRead(Outbound):
    """How many notifications this request marked read, and how many stay unread."""

    count: int
    unread_count: int = 0


class NotificationDraft(msgspec.Struct, frozen=True, kw_only=True):
    """Internal: a notification a consumer asks storage to create (storage assigns nothing;
    the id is a fresh UUIDv7 so id order is creation order)."""

    id: str
    user_id: str  # the recipient
    kind: NotificationKind
    actor_id: str | None
    post_id: str | None = None
    comment_id: str | None = None
    data: dict[str, Any] = {}


class NotificationPushed(Outbound):
    """Socket.IO `notification` (server -> client): a new notification, live, with the user's
    unread count after it (for a badge)."""

    notification: Notification
    unread_count: int
