"""Messages to a UserActor (actor messages, never on the wire). A UserActor is the single
writer of its user's presence and unread notification count, and the one that knows all of
the user's sessions.

Everything here is a tell except where the docstring says ask. Senders: the gateway (session
and presence messages) and the live-push hooks of the notifications and feed areas. The
cluster also tells a UserActor protocols.cluster.NodeLeft when a node is gone.

Sessions: the gateway records a socket in the session records (server/gateway/ports.py
SessionRecords) before it sends SessionOpened, and removes it before SessionClosed, so these
two messages are hints that make the actor react at once; the records are the truth it
reloads on start and on every heartbeat.
"""

from __future__ import annotations

from typing import Any

import msgspec

from protocols.presence import ChosenStatus, PresenceRecord


class PresenceSnapshot(msgspec.Struct, frozen=True, kw_only=True):
    """The user's presence record as the gateway read it in the same atomic step that
    recorded the socket (None: there was none), and `stamp`, the presence store's mark of
    that version of the record (opaque): a save conditional on it fails when anything saved
    the record in between."""

    record: PresenceRecord | None
    stamp: str


class SessionOpened(msgspec.Struct, frozen=True, kw_only=True):
    """A socket of this user connected (on `node_id`; already in the session records). The
    first session makes the user online; a session opened within the grace period after the
    last one closed cancels the pending offline, so a quick reconnect never shows as
    offline. Idempotent.

    `presence` is set when this socket was the user's only recorded session as it was
    recorded: an actor that has not loaded its state yet may then start from it instead of
    reading the records, provided its first save, conditional on the snapshot, succeeds."""

    session_id: str
    node_id: str
    presence: PresenceSnapshot | None = None


class SessionClosed(msgspec.Struct, frozen=True, kw_only=True):
    """A socket of this user went away (already out of the session records). When it was the
    last one, the user goes offline after the grace period unless a session opens
    meanwhile. Unknown ids are ignored."""

    session_id: str


class SetPresence(msgspec.Struct, frozen=True, kw_only=True):
    """Ask -> protocols.socket.PresenceEvent. The user picks online, away or dnd; kept while
    connected (a new connection after being offline starts online again)."""

    status: ChosenStatus


class GetPresence(msgspec.Struct, frozen=True):
    """Ask -> protocols.socket.PresenceEvent: the user's presence as others see it."""


class PushNotification(msgspec.Struct, frozen=True, kw_only=True):
    """A notification for this user was committed: push `notification` {notification,
    unread_count} to every socket of the user. `notification` is the wire shape
    (protocols.notifications.Notification as JSON-ready builtins)."""

    notification: dict[str, Any]


class PushFeedItem(msgspec.Struct, frozen=True, kw_only=True):
    """A post landed in this user's home feed: push `feed:new` {post} to every socket of the
    user. `post` is the wire shape (protocols.posts.Post as JSON-ready builtins)."""

    post: dict[str, Any]


class NotificationsRead(msgspec.Struct, frozen=True, kw_only=True):
    """The user read notifications elsewhere (REST): this many remain unread."""

    unread_count: int


class GetUnread(msgspec.Struct, frozen=True):
    """Ask -> int: the user's unread notification count (0 when unknown)."""
