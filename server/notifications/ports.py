"""The ports notifications need: the notification store, and sinks for live delivery.

Adapter: storage/postgres/notifications.py. "Visible" below: a notification whose actor the
recipient blocks, is blocked by or mutes, or whose post is deleted, is not listed or counted.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

from protocols.notifications import Notification, NotificationDraft

# Live delivery of a notification just created: (recipient user id, notification). The
# realtime gateway registers one to push `notification` to the user's sockets. Called after
# the notification is committed; best effort (a sink that fails is logged and skipped: the
# notification is listed all the same).
NotificationSink = Callable[[str, Notification], Awaitable[None]]


class NotificationStore(Protocol):
    async def create(self, consumer: str, event_id: str,
                     drafts: Sequence[NotificationDraft]) -> list[tuple[str, Notification]]:
        """Apply one event's notifications exactly once. In one transaction: claim
        (consumer, event_id) in processed_events; if it was claimed before, write nothing and
        return []. Otherwise insert the drafts, skipping any whose recipient is the actor,
        whose recipient and actor are separated by a block (either way) or a mute by the
        recipient, whose recipient, actor, post or comment no longer exists, and any
        duplicate of a follow / like / repost notification from the same actor about the
        same post. Returns (recipient, notification) for each one created."""
        ...

    async def page(self, user_id: str, before_id: str | None,
                   limit: int) -> tuple[list[Notification], bool]:
        """The user's visible notifications older than before_id, newest first, at most
        `limit`, and whether more follow. In the same statement marks exactly the returned
        ones read; each item's `read` is its state before this call."""
        ...

    async def unread_count(self, user_id: str) -> int:
        """How many of the user's visible notifications are unread."""
        ...

    async def mark_read(self, user_id: str, up_to_id: str) -> tuple[int, int]:
        """Mark every unread notification of the user with id <= up_to_id read. Returns
        (how many this call marked, how many visible ones stay unread)."""
        ...
