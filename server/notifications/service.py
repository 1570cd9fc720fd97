"""Listing and reading notifications, and the consumer that creates them.

The consumer ("notifications") turns hubbub.users, hubbub.posts and hubbub.scheduling events
into notifications (server.notifications.rules), exactly once per event: the store claims the
event id in the same transaction as the inserts. After the commit each new notification is
handed to every registered NotificationSink (live delivery by the realtime gateway).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from protocols.common import Page, PageQuery
from protocols.events import EVENT_TYPES, EventEnvelope, payload
from protocols.notifications import MarkedRead, Notification, UnreadCount
from server.http.cursors import CursorId, decode_cursor, encode_cursor
from server.notifications.ports import NotificationSink, NotificationStore
from server.notifications.rules import drafts_for

log = logging.getLogger("hubbub.notifications")

CONSUMER = "notifications"
TOPICS = ("hubbub.users", "hubbub.posts", "hubbub.scheduling")
NotificationKey = tuple[CursorId]


class NotificationService:
    def __init__(self, store: NotificationStore) -> None:
        self._store = store

    async def list(self, user_id: str, query: PageQuery) -> Page[Notification]:
        """Newest first; marks the returned ones read (see NotificationStore.page)."""
        before = decode_cursor(query.cursor, NotificationKey)[0] if query.cursor else None
        items, more = await self._store.page(user_id, before, query.limit)
        cursor = encode_cursor((items[-1].id,)) if more and items else None
        return Page(items=items, next_cursor=cursor)

    async def unread_count(self, user_id: str) -> UnreadCount:
        return UnreadCount(count=await self._store.unread_count(user_id))

    async def mark_read(self, user_id: str, up_to_id: str) -> MarkedRead:
        marked, unread = await self._store.mark_read(user_id, up_to_id.lower())
        return MarkedRead(count=marked, unread_count=unread)


class NotificationConsumer:
    def __init__(self, store: NotificationStore, sinks: Sequence[NotificationSink]) -> None:
        self._store = store
        self._sinks = sinks  # read at each delivery: sinks registered later are used too

    async def handle(self, event: EventEnvelope) -> None:
        """The EventHandler subscribed as CONSUMER to TOPICS."""
        if event.type not in EVENT_TYPES:
            return
        drafts = drafts_for(payload(event))
        if not drafts:
            return
        created = await self._store.create(CONSUMER, event.id, drafts)
        for user_id, notification in created:
            for sink in list(self._sinks):
                try:
                    await sink(user_id, notification)
                except Exception:
                    # Delivery is best effort: the notification is committed and listed.
                    log.exception("notification sink failed",
                                  extra={"notification_id": notification.id})
